"""Pretrained frame encoders: keras-hub presets (``presets``), the offline ImageNet
EfficientNet-Lite0 converted from a PyPI package (``efficientnet_lite0`` over
``torch_legacy``), a frozen preset at its own input size that the frames stage runs on its
decode (``native``), and the per-frame embedding cache it writes (``embeddings``).
"""
