"""Pretrained frame encoders: keras-hub presets (``presets``), the offline ImageNet
EfficientNet-Lite0 converted from a PyPI package (``efficientnet_lite0`` over
``torch_legacy``), and the embed stage's per-frame embedding cache (``embeddings``).
"""
