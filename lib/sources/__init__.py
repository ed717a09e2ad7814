"""Command-line tools that make ``data/`` (not pipeline stages): the real MovieLens and
YouTube download (``python -m lib.sources.download``) and the offline demo corpus
(``python -m lib.sources.demo_corpus``).
"""
