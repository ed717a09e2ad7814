"""The bottom layer, imported by every other package: paths anchored at the repository root,
the 18 genres, typed and validated parameters (one dataclass per params.yaml section),
atomic writes, interruption handling, and TensorFlow's native stderr kept out of reports.
It imports no other package of the project.
"""
