"""Batches for training and prediction, streamed out of the frame store: the paper's
slices (``slicing``, ``slices``) and whole-trailer segment samples (``segments``,
``films``).
"""
