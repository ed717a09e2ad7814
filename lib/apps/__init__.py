"""The top layer, for people rather than the pipeline: the ``trailer-genres`` command
(``infer``) and saved experiments (``experiments``).
"""
