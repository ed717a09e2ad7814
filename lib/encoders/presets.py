"""Pretrained frame encoders as keras-hub presets: one loading call for every kind.

``load_preset_encoder`` takes a preset name (``efficientnet_lite0_ra_imagenet``), a
Kaggle handle or a local preset folder through ``Backbone.from_preset``, and always
preprocesses with the preset's own image converter (never hand-rolled ImageNet
statistics). ``efficientnet_lite0_pypi`` resolves to the ImageNet EfficientNet-Lite0
converted offline from a pinned PyPI package (``lib.encoders.efficientnet_lite0``).

keras-hub is imported only when a preset is used (importing it loads TensorFlow, which
takes seconds); the rest is keras/keras.ops and runs on any backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from lib.encoders.efficientnet_lite0 import resolve_preset

SCRATCH = "scratch"  # (also lib.encoders.embeddings.SCRATCH) not a preset: the whole-trailer model's own small CNN, trained end to end


def import_keras_hub():
    try:
        import keras_hub
    except ImportError as exc:  # pragma: no cover - pinned in requirements.lock
        raise ImportError(
            "a keras-hub preset encoder needs the keras-hub package (pinned in requirements.lock)"
        ) from exc
    return keras_hub


def load_preset_parts(preset: str):
    """(backbone, image converter) of a keras-hub preset: a name such as
    ``efficientnet_lite0_ra_imagenet``, a Kaggle handle, or a local preset folder, all
    through ``Backbone.from_preset``. The converter is the preset's own preprocessing
    (resize to its image size, scale, offset): a preset without one is refused rather
    than fed guessed ImageNet statistics."""
    keras_hub = import_keras_hub()
    preset = resolve_preset(preset)
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    except Exception as exc:
        raise ValueError(f"cannot load keras-hub backbone preset {preset!r}: {exc}") from exc
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception as exc:
        raise ValueError(
            f"keras-hub preset {preset!r} has no image converter (image_converter.json); "
            "the encoder needs the preset's own preprocessing"
        ) from exc
    return backbone, converter


def load_preset_encoder(
    preset: str, frame_shape: Sequence[int] | None, trainable: bool = False, name: str = "preset_encoder"
) -> keras.Model:
    """uint8 frame -> the preset's image converter -> backbone -> global average pooling.

    The converter resizes to the preset's image size (``image_size`` in its
    image_converter.json; e.g. 224 for ImageNet presets), so a 64x64 store is upsampled
    there; a converter without an image size takes the store's frames as they are.
    ``frame_shape=None``: frames already at the converter's size (``lib.encoders.native``).
    ``trainable=False`` freezes the backbone (BatchNorm then runs in inference mode)."""
    backbone, converter = load_preset_parts(preset)
    if frame_shape is None:
        if converter.image_size is None:
            raise ValueError(f"preset {preset!r}: its image converter has no image size to take frames at")
        frame_shape = (*[int(s) for s in converter.image_size], 3)
    backbone.trainable = bool(trainable)
    converter.trainable = False
    inputs = keras.Input(shape=tuple(frame_shape), dtype="uint8", name="frame")
    x = converter(ops.cast(inputs, "float32"))
    x = backbone(x)
    if isinstance(x, dict):  # some backbones return named feature maps
        x = x[sorted(x)[-1]]
    rank = len(x.shape)
    if rank == 4:
        x = layers.GlobalAveragePooling2D(name="frame_vector")(x)
    elif rank == 3:  # token sequences (ViT-like backbones)
        x = layers.GlobalAveragePooling1D(name="frame_vector")(x)
    elif rank != 2:
        raise ValueError(f"preset {preset!r}: backbone output of rank {rank} is not a feature map")
    return keras.Model(inputs, x, name=name)


def _converter(encoder: keras.Model):
    for layer in encoder.layers:
        if hasattr(layer, "image_size") and hasattr(layer, "resizing"):
            return layer
    return None


def converter_image_size(encoder: keras.Model) -> list[int] | None:
    converter = _converter(encoder)
    if converter is None or converter.image_size is None:
        return None
    return [int(s) for s in converter.image_size]


def converter_resize(encoder: keras.Model) -> str:
    """How the preset's converter fits a picture of another shape into its square:
    ``crop`` (the centred square, ``crop_to_aspect_ratio``, keras-hub's default and how
    ImageNet and CLIP encoders are evaluated) or ``squash`` (the whole picture, stretched),
    in the names of ``lib.frames.extract``'s resize modes."""
    converter = _converter(encoder)
    resizing = getattr(converter, "resizing", None)
    return "crop" if getattr(resizing, "crop_to_aspect_ratio", False) else "squash"


def is_preset(encoder: str) -> bool:
    return str(encoder) != SCRATCH


def uses_cache(encoder: str, frozen: bool) -> bool:
    """A frozen preset encoder: its embeddings are cached and only the head trains."""
    return is_preset(encoder) and bool(frozen)
