"""The train stage (notebooks/03_train.ipynb): seeds and devices (``runtime``), and the
one training loop every model kind shares (``fit``).
"""
