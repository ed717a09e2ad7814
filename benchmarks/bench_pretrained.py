"""The offline pretrained encoder (``lib.encoders.efficientnet_lite0``): conversion cost, size, encode speed, and its choices.

One run, side by side:

(a) conversion: the PyPI package's legacy ``.pth`` -> a keras-hub preset folder (wall and CPU time), and the
    folder's size;
(b) encode speed: uint8 frames -> the preset's image converter -> backbone -> global average pool (a 1280-d
    vector per frame), batch 32, for 224x224 frames and for 64x64 frames upsampled to 224x224 by the converter;
    per-frame milliseconds, best of ``--repeats`` after one warm-up batch;
(c) the photo test's top 5 for scikit-image's ``chelsea`` (a cat) and ``coffee``, as converted, and for the two
    choices the conversion makes, each undone: ImageNet mean/std instead of the TF-Lite ``(x - 127) / 128``, and
    symmetric ("v1"/PyTorch) padding instead of TensorFlow's ``"SAME"`` on the stride-2 convolutions.

    python benchmarks/bench_pretrained.py                   # KERAS_BACKEND picks the backend (default tensorflow)
    KERAS_BACKEND=jax python benchmarks/bench_pretrained.py

Times are wall-clock on a possibly shared machine: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lib.encoders import efficientnet_lite0 as pretrained
from lib.encoders import torch_legacy


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _encoder(folder: Path, size: int):
    import keras
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(str(folder))
    converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
    frames = keras.Input((size, size, 3))
    vectors = keras.layers.GlobalAveragePooling2D()(backbone(converter(frames)))
    return keras.Model(frames, vectors)


def _per_frame_ms(model, size: int, batch: int, repeats: int) -> tuple[float, float]:
    """Best wall-clock and CPU milliseconds per frame (CPU time also counts the busy threads on a shared machine)."""
    frames = np.random.default_rng(0).integers(0, 256, size=(batch, size, size, 3)).astype("float32")
    model.predict_on_batch(frames)  # compile
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), _cpu()
        out = model.predict_on_batch(frames)
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, _cpu() - c)
    assert out.shape == (batch, 1280)
    return 1000 * best / batch, 1000 * best_cpu / batch


def _top5(classifier, image) -> str:
    import keras_hub

    top = keras_hub.utils.decode_imagenet_predictions(classifier.predict(image[None], verbose=0), top=5)[0]
    return ", ".join(f"{name} {p:.3f}" for name, p in top)


def _variants(state_dict):
    import keras_hub

    def classifier(converter, **backbone_args):
        backbone = keras_hub.models.EfficientNetBackbone(**{**pretrained.LITE0_BACKBONE_ARGS, **backbone_args})
        pretrained.load_backbone_weights(backbone, state_dict)
        clf = keras_hub.models.EfficientNetImageClassifier(
            backbone=backbone,
            num_classes=1000,
            activation="softmax",
            preprocessor=keras_hub.models.EfficientNetImageClassifierPreprocessor(image_converter=converter),
        )
        clf.output_dense.kernel.assign(state_dict["_fc.weight"].T)
        clf.output_dense.bias.assign(state_dict["_fc.bias"])
        return clf

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    imagenet = keras_hub.layers.EfficientNetImageConverter(
        image_size=pretrained.IMAGE_SIZE,
        scale=list(1 / (255 * std)),
        offset=list(-mean / std),
        crop_to_aspect_ratio=True,
        interpolation="bilinear",
        antialias=True,
    )
    yield "ImageNet mean/std instead of (x-127)/128", classifier(imagenet)
    yield (
        "symmetric padding (all 'v1' blocks, stem padded)",
        classifier(
            pretrained.build_image_converter(),
            stackwise_block_types=["v1"] * 7,
            include_stem_padding=True,
            stem_conv_padding="valid",
        ),
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-variants", action="store_true", help="skip (c)'s two variants")
    args = ap.parse_args(argv)

    import keras
    import keras_hub
    import skimage.data

    print(
        f"backend: {keras.config.backend()}, keras-hub {keras_hub.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "lite0"
        wall, cpu = time.perf_counter(), _cpu()
        pretrained.efficientnet_lite0_preset(folder)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        print(
            f"(a) conversion: {wall:.1f} s wall, {cpu:.1f} s CPU; preset folder {_size_mb(folder):.1f} MB "
            f"(backbone weights {(folder / 'model.weights.h5').stat().st_size / 1e6:.1f} MB, "
            f"head {(folder / 'task.weights.h5').stat().st_size / 1e6:.1f} MB)"
        )

        for size in (224, 64):
            ms, cpu_ms = _per_frame_ms(_encoder(folder, size), size, args.batch, args.repeats)
            print(
                f"(b) encode {size}x{size} frames{' (upsampled to 224x224)' if size != 224 else ''}, "
                f"batch {args.batch}: {ms:.1f} ms/frame wall ({1000 / ms:.1f} frames/s), {cpu_ms:.1f} ms/frame CPU"
            )

        photos = {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee()}
        clf = keras_hub.models.ImageClassifier.from_preset(str(folder))
        for name, image in photos.items():
            print(f"(c) as converted, {name}: {_top5(clf, image)}")
        if not args.no_variants:
            state_dict = torch_legacy.load(pretrained.weights_path())
            for label, variant in _variants(state_dict):
                for name, image in photos.items():
                    print(f"(c) {label}, {name}: {_top5(variant, image)}")


if __name__ == "__main__":
    main()
