"""The frames stage (notebooks/02_frames.ipynb): one ffmpeg decode per trailer keeps every
``step``-th frame (``extract``) and measures the computable features on the way
(``features``); ``stage`` runs it in parallel and resumably; ``store`` is the compact
memory-mapped frame store every later stage reads.
"""
