"""The offline pretrained encoder: the legacy .pth reader, and the converted EfficientNet-Lite0.

The reader tests build legacy-format files by hand (the pickle opcodes torch's
``_legacy_save`` emits, then the raw storages), so they need no PyTorch and say exactly
what the format is. The conversion is verified the only way that counts: the converted
network must recognise scikit-image's cat and coffee photos, with class names from
keras-hub, on TensorFlow and (in a subprocess) on JAX.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from lib.core.paths import ROOT
from lib.encoders import torch_legacy

# --- hand-built legacy files -------------------------------------------------------------


def _str(s: str) -> bytes:
    b = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return pickle.BININT + struct.pack("<i", i)


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _tuple(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _tensor(key, storage_type, numel, offset, size, stride, view=None) -> bytes:
    """``torch._utils._rebuild_tensor_v2(<persistent storage>, offset, size, stride, False, OrderedDict())``."""
    view_md = _tuple(_str(view[0]), _int(view[1]), _int(view[2])) if view else pickle.NONE
    pid = _tuple(_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"), _int(numel), view_md)
    hooks = _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    args = _tuple(
        pid + pickle.BINPERSID,
        _int(offset),
        _tuple(*map(_int, size)),
        _tuple(*map(_int, stride)),
        pickle.NEWFALSE,
        hooks,
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + pickle.REDUCE


def _state_dict_pickle(items: dict[str, bytes]) -> bytes:
    body = b"".join(_str(k) + v for k, v in items.items())
    return (
        pickle.PROTO
        + b"\x02"
        + _global("collections", "OrderedDict")
        + pickle.EMPTY_TUPLE
        + pickle.REDUCE
        + pickle.MARK
        + body
        + pickle.SETITEMS
        + pickle.STOP
    )


def _legacy_file(obj_pickle: bytes, storages: dict[str, np.ndarray], little_endian=True, magic=None) -> bytes:
    out = io.BytesIO()
    for header in (
        magic if magic is not None else torch_legacy.MAGIC_NUMBER,
        torch_legacy.PROTOCOL_VERSION,
        {"protocol_version": 1001, "little_endian": little_endian, "type_sizes": {"short": 2, "int": 4, "long": 8}},
    ):
        pickle.dump(header, out, protocol=2)
    out.write(obj_pickle)
    keys = sorted(storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        data = storages[key]
        out.write(struct.pack("<q", data.size))
        out.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


# A conv kernel of shape (4, 3, 2, 2) saved the way TF-converted checkpoints are: the storage
# holds it in (kh, kw, in, out) order and the tensor is a permuted view of it.
HWIO = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4) * 0.5 - 7
OIHW = np.transpose(HWIO, (3, 2, 0, 1))


def _sample() -> tuple[bytes, dict[str, np.ndarray]]:
    bias_storage = np.array([9, 9, 1.5, -2.5, 3.25, 9], dtype=np.float32)
    shared = np.arange(10, dtype=np.float32)
    storages = {"k1": HWIO.ravel(), "k2": bias_storage, "k3": np.array([42], dtype=np.int64), "k4": shared}
    obj = _state_dict_pickle(
        {
            "conv.weight": _tensor("k1", "FloatStorage", HWIO.size, 0, OIHW.shape, (1, 4, 24, 12)),
            "conv.bias": _tensor("k2", "FloatStorage", 6, 2, (3,), (1,)),
            "bn.num_batches_tracked": _tensor("k3", "LongStorage", 1, 0, (), ()),
            "view.part": _tensor("k4", "FloatStorage", 10, 1, (2, 2), (2, 1), view=("k4v", 3, 5)),
        }
    )
    expected = {
        "conv.weight": OIHW,
        "conv.bias": np.array([1.5, -2.5, 3.25], dtype=np.float32),
        "bn.num_batches_tracked": np.array(42, dtype=np.int64),
        "view.part": np.array([[4, 5], [6, 7]], dtype=np.float32),
    }
    return _legacy_file(obj, storages), expected


def test_reader_honours_strides_offsets_views_and_dtypes():
    data, expected = _sample()
    sd = torch_legacy.loads(data)
    assert isinstance(sd, collections.OrderedDict)
    assert list(sd) == list(expected)
    for key, want in expected.items():
        got = sd[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)
        assert got.flags["C_CONTIGUOUS"] and got.flags["WRITEABLE"]


def test_reader_refuses_arbitrary_globals():
    evil = pickle.PROTO + b"\x02" + _global("os", "system") + _tuple(_str("echo pwned")) + pickle.REDUCE + pickle.STOP
    with pytest.raises(torch_legacy.RefusedGlobal, match="os.system"):
        torch_legacy.loads(_legacy_file(evil, {}))


@pytest.mark.parametrize("keep", [0.99, 0.8, 0.7, 0.5, 0.2, 0.05])
def test_reader_reports_a_truncated_file(keep):
    data, _ = _sample()  # cuts land in the storages, the key list, the state dict and the header
    with pytest.raises(torch_legacy.TorchLegacyError):
        torch_legacy.loads(data[: int(len(data) * keep)])


def test_reader_rejects_trailing_bytes_wrong_magic_big_endian_and_zip():
    data, _ = _sample()
    with pytest.raises(torch_legacy.TorchLegacyError, match="after the last storage"):
        torch_legacy.loads(data + b"\0")
    obj = _state_dict_pickle({})
    with pytest.raises(torch_legacy.TorchLegacyError, match="magic"):
        torch_legacy.loads(_legacy_file(obj, {}, magic=12345))
    with pytest.raises(torch_legacy.TorchLegacyError, match="little-endian"):
        torch_legacy.loads(_legacy_file(obj, {}, little_endian=False))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", b"")
    with pytest.raises(torch_legacy.TorchLegacyError, match="zip"):
        torch_legacy.loads(zipped.getvalue())


def test_reader_checks_tensor_bounds_against_its_storage():
    obj = _state_dict_pickle({"w": _tensor("k", "FloatStorage", 4, 2, (3,), (1,))})  # needs 5 elements
    with pytest.raises(torch_legacy.TorchLegacyError, match="reaches element"):
        torch_legacy.loads(_legacy_file(obj, {"k": np.zeros(4, np.float32)}))


def test_reader_checks_storage_sizes_against_the_pickle():
    obj = _state_dict_pickle({"w": _tensor("k", "FloatStorage", 5, 0, (3,), (1,))})
    with pytest.raises(torch_legacy.TorchLegacyError, match="holds 4 elements"):
        torch_legacy.loads(_legacy_file(obj, {"k": np.zeros(4, np.float32)}))


# --- the real checkpoint and its conversion ----------------------------------------------

CAT_CLASSES = {"tabby", "tiger_cat", "Persian_cat", "Siamese_cat", "Egyptian_cat"}
COFFEE_CLASSES = {"cup", "espresso", "coffee_mug"}


def test_real_checkpoint_reads_completely():
    from lib.encoders.efficientnet_lite0 import weights_path

    sd = torch_legacy.load(weights_path())
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    params = sum(v.size for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert params == 4_694_024  # conv/bn/fc weights and bn statistics of EfficientNet-Lite0
    variances = [v for k, v in sd.items() if k.endswith("running_var")]
    # Non-negative and finite (some channels are dead after ReLU6 and have variance exactly 0).
    assert len(variances) == 49 and all(np.isfinite(v).all() and (v >= 0).all() for v in variances)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    from lib.encoders.efficientnet_lite0 import efficientnet_lite0_preset

    return efficientnet_lite0_preset(tmp_path_factory.mktemp("presets") / "lite0")


def _top5(classifier, image) -> list[str]:
    import keras_hub

    scores = classifier.predict(image[None], verbose=0)
    return [name for name, _ in keras_hub.utils.decode_imagenet_predictions(scores, top=5)[0]]


def test_converted_network_recognises_the_cat_and_the_coffee(preset):
    import keras_hub
    import skimage.data

    classifier = keras_hub.models.ImageClassifier.from_preset(str(preset))
    cat = _top5(classifier, skimage.data.chelsea())
    coffee = _top5(classifier, skimage.data.coffee())
    assert CAT_CLASSES & set(cat), f"chelsea (a cat) top 5: {cat}"
    assert COFFEE_CLASSES & set(coffee), f"coffee top 5: {coffee}"


def test_preset_loads_as_a_plain_backbone_and_image_converter(preset):
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(str(preset))
    converter = keras_hub.layers.ImageConverter.from_preset(str(preset))
    assert type(backbone).__name__ == "EfficientNetBackbone"
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    x = converter(frames)
    assert tuple(x.shape) == (2, 224, 224, 3)  # 64x64 frames upsampled to the trained size
    x = np.asarray(x)
    assert -1.0 <= x.min() and x.max() <= 1.0  # (x - 127) / 128
    assert tuple(backbone(x).shape) == (2, 7, 7, 1280)


def test_preset_is_reused_not_rewritten(preset):
    from lib.encoders.efficientnet_lite0 import efficientnet_lite0_preset, resolve_preset

    before = {p.name: p.stat().st_mtime_ns for p in preset.iterdir()}
    assert efficientnet_lite0_preset(preset) == preset
    assert {p.name: p.stat().st_mtime_ns for p in preset.iterdir()} == before
    assert json.loads((preset / "source.json").read_text())["file"].endswith(".pth")
    assert resolve_preset("resnet_18_imagenet") == "resnet_18_imagenet"
    assert not list(preset.parent.glob(".lite0-*"))  # no temporary folder left behind


def test_conversion_fails_loudly_on_a_checkpoint_that_does_not_fit():
    from lib.encoders.efficientnet_lite0 import build_backbone, load_backbone_weights, weights_path

    sd = torch_legacy.load(weights_path())
    backbone = build_backbone()
    missing = dict(sd)
    del missing["_blocks.7._bn1.running_var"]
    with pytest.raises(KeyError, match="_blocks.7._bn1.running_var"):
        load_backbone_weights(backbone, missing)
    extra = dict(sd, **{"_blocks.16._bn1.weight": np.ones(320, np.float32)})
    with pytest.raises(ValueError, match="not used"):
        load_backbone_weights(backbone, extra)


JAX_PHOTO_TEST = """
import sys, keras, keras_hub, skimage.data
assert keras.config.backend() == "jax", keras.config.backend()
clf = keras_hub.models.ImageClassifier.from_preset(sys.argv[1])
for image in (skimage.data.chelsea(), skimage.data.coffee()):
    top = keras_hub.utils.decode_imagenet_predictions(clf.predict(image[None], verbose=0), top=5)[0]
    print(",".join(name for name, _ in top))
"""


def test_converted_network_recognises_the_photos_under_jax(preset):
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", JAX_PHOTO_TEST, str(preset)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cat, coffee = (set(line.split(",")) for line in result.stdout.strip().splitlines()[-2:])
    assert CAT_CLASSES & cat, cat
    assert COFFEE_CLASSES & coffee, coffee
