"""The prepare stage (notebooks/01_prepare.ipynb): MovieLens' catalogues read and
cleaned, labels one-hot, rebalanced and split by film. ``labels.read_labels`` is the one
reader of ``labels.csv`` for every later stage.
"""
