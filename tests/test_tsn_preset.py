"""tsn on a keras-hub preset encoder, offline: a tiny randomly initialised backbone and
its image converter are saved with ``save_to_preset`` into a temporary folder and loaded
through ``keras_hub.models.Backbone.from_preset``, the code path a preset name or a
Kaggle handle takes. Covers the embedding cache (alignment with the store), the
frozen head trained on it, the saved raw-frame model, and the same under JAX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from lib.core.genres import GENRES
from lib.core.params import TrainParams, TsnParams, parse
from lib.core.paths import ROOT
from lib.encoders import embeddings as E
from lib.encoders.presets import converter_image_size, load_preset_encoder, load_preset_parts
from lib.loaders.slices import write_synthetic_corpus
from lib.models import tsn
from lib.models.kinds import get_kind, load_run
from lib.train import fit as T
from lib.train.runtime import setup_runtime

keras_hub = pytest.importorskip("keras_hub")

SIZE = 16


def save_tiny_preset(folder: Path, image_size=(24, 24)) -> Path:
    """A ~80 k-parameter ResNet and a converter that resizes to ``image_size`` and scales to [0, 1]."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )
    backbone.save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(image_size=image_size, scale=1 / 255.0).save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return str(save_tiny_preset(tmp_path_factory.mktemp("tiny_preset")))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(
        tmp_path_factory.mktemp("preset_store"), n_films=20, frames_per_film=(3, 12), size=SIZE, seed=2, signal=0.9
    )


def tsn_section(preset, frozen=True, pooling="attention"):
    """params.yaml's ``train.tsn`` for a preset encoder, raw."""
    return {
        "n_segments": 4,
        "pooling": pooling,
        "encoder": preset,
        "frozen": frozen,
        "scratch_filters": [4],
        "dim": 8,
        "heads": 2,
        "layers": 1,
        "dense": [8],
        "dropout": 0.0,
        "lr": 1e-2,
        "batch_size": 4,
        "batchnorm": "precise",
        "epochs": 3,
        "patience": 3,
        "embed_batch_size": 7,
        "modalities": ["frames"],
        "audio_filters": [8, 8],
    }


def tsn_params(preset, frozen=True, pooling="attention") -> TsnParams:
    return parse(TsnParams, tsn_section(preset, frozen, pooling), "train.tsn")


def train_frozen(store, labels, section, out, embed_dir, jit_compile=False):
    """The train notebook's calls for ``model: tsn`` with a frozen preset: the head trains on
    ``embed_dir``'s cache, ``finish`` puts the encoder back, ``model_info.json`` is written."""
    common = TrainParams.from_section(
        {"model": "tsn", "seed": 0, "mixed_precision": False, "jit_compile": jit_compile, "workers": 1, "tsn": section}
    )
    kind = get_kind(common.model)
    params = kind.parse(common.section("tsn"))
    hyper = kind.hyper(params)
    runtime = setup_runtime(common.seed, verbose=False)
    data = kind.datasets(params, store, labels, seed=common.seed, workers=common.workers, embed_dir=embed_dir)
    head = kind.build(params, store.frame_shape, data)
    T.compile_model(head, hyper.lr, hyper.decay, common.jit_compile, T.present_genres(data.val.slice_labels()))
    result = T.fit(head, data.train, data.val, out, epochs=hyper.epochs, patience=hyper.patience, verbose=0)
    kind.finish(params, result.model_path, kind.model_frames(params, store, data)[0])
    full = kind.load_model(result.model_path, params)
    T.model_info(
        kind, params, common, runtime, result, store, full, extra=kind.info_extra(params, data), data=data
    ).write(out)
    return data, head, full, result


def test_preset_encoder_uses_the_presets_converter_and_freezes(preset):
    enc = load_preset_encoder(preset, (SIZE, SIZE, 3), trainable=False)
    assert converter_image_size(enc) == [24, 24]  # the preset's own size, not the store's
    assert enc.output.shape[-1] == 64 and not enc.trainable_weights
    frames = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    # the same numbers as the preset's converter + backbone + average pooling by hand
    backbone = keras_hub.models.Backbone.from_preset(preset)
    converter = keras_hub.layers.ImageConverter.from_preset(preset)
    ref = keras.ops.convert_to_numpy(backbone(converter(frames.astype("float32")))).mean(axis=(1, 2))
    np.testing.assert_allclose(enc.predict(frames, verbose=0), ref, rtol=1e-4, atol=1e-5)
    tuned = load_preset_encoder(preset, (SIZE, SIZE, 3), trainable=True)
    assert len(tuned.trainable_weights) > 0


def test_preset_without_converter_is_refused(tmp_path):
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
    ).save_to_preset(str(tmp_path))
    with pytest.raises(ValueError, match="image converter"):
        load_preset_encoder(str(tmp_path), (SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="cannot load"):
        load_preset_encoder(str(tmp_path / "absent"), (SIZE, SIZE, 3))


def test_embedding_cache_is_aligned_with_the_store(preset, corpus, tmp_path):
    store, _ = corpus
    info = E.embed_for_config(tsn_params(preset), store, tmp_path, progress=False)
    assert (
        info["cached"]
        and info["n_frames"] == len(store.frames)
        and info["dim"] == 64
        and info["image_size"] == [24, 24]
    )
    emb = E.load_embeddings(tmp_path, store, preset)
    assert emb.dtype == np.float16 and emb.shape == (len(store.frames), 64)
    enc = load_preset_encoder(preset, store.frame_shape)
    rows = np.array([0, 5, 6, len(store.frames) - 1])  # batch edges of the 7-frame batches included
    direct = enc.predict(np.asarray(store.frames[rows]), verbose=0)
    np.testing.assert_allclose(emb[rows].astype(np.float32), direct, rtol=2e-3, atol=1e-3)
    shuffled = enc.predict(np.asarray(store.frames[rows[::-1]]), verbose=0)[::-1]
    assert not np.allclose(emb[rows[::-1]].astype(np.float32), shuffled, atol=1e-3)  # rows are distinguishable
    # a cache made for another encoder or another store is refused, not used
    with pytest.raises(ValueError, match="caches encoder"):
        E.load_embeddings(tmp_path, store, "resnet_18_imagenet")
    other = write_synthetic_corpus(tmp_path / "other", n_films=3, size=SIZE)[0]
    with pytest.raises(ValueError, match="frames"):
        E.load_embeddings(tmp_path, other, preset)


def test_embed_stage_records_why_nothing_is_cached(preset, corpus, tmp_path):
    store, _ = corpus
    for params, why in ((tsn_params("scratch"), "scratch"), (tsn_params(preset, frozen=False), "fine-tuned")):
        info = E.embed_for_config(params, store, tmp_path, progress=False)
        assert not info["cached"] and why in info["reason"]
        assert not (tmp_path / E.EMBEDDINGS_FILE).exists()
        assert "holds no embeddings" in E.cache_problem(tmp_path, store, params.encoder)


def test_frozen_head_trains_on_the_cache_and_the_saved_model_takes_raw_frames(preset, corpus, tmp_path):
    store, labels = corpus
    section = tsn_section(preset, pooling="transformer")
    kind = get_kind("tsn")
    with pytest.raises(ValueError, match="pass embed_dir"):
        kind.datasets(kind.parse(section), store, labels, seed=0, workers=1)
    setup_runtime(0, verbose=False)
    meta = E.embed_for_config(tsn_params(preset, pooling="transformer"), store, tmp_path / "embed", progress=False)
    data, head, full, result = train_frozen(store, labels, section, tmp_path / "run", tmp_path / "embed")
    assert data.embed_dim == meta["dim"] == 64 and data.embed_meta == meta
    # the frames stage's embedding cache was used
    assert not any("encoding every frame now" in note for note in data.notes)
    x, _ = data.train[0]
    assert set(x) == {"embeddings", "mask"} and x["embeddings"].shape == (4, 4, 64)
    assert "encode" not in [layer.name for layer in head.layers]  # no encoder in the training graph
    run = load_run(tmp_path / "run")
    model, info = run.model, run.info
    assert info.extra["cached_embeddings"] and info.extra["embeddings"] == meta and info.settings["encoder"] == preset
    assert model.get_layer("encode").count_params() > 0 and not model.get_layer("encode").trainable_weights
    ids = labels.loc[labels["split"] == "val", "movieId"].tolist()
    films, slices = run.predict_films(store, ids)
    on_cache = head_scores = (
        keras.saving.load_model(tmp_path / "run" / "model.keras").get_layer("tsn_head").predict(data.val, verbose=0)
    )
    np.testing.assert_allclose(films[list(GENRES)].to_numpy(), on_cache, atol=1e-4)
    assert slices is None and head_scores.shape == (len(ids), len(GENRES))
    # the saved model takes the very inputs the train stage checks it on
    np.testing.assert_allclose(kind.predict_saved(model, data), on_cache, atol=1e-4)

    # evaluate's path: the head on the frames stage's embedding cache, the same scores as the encoder on the frames
    assert kind.scored_from(info, store, tmp_path / "embed") == "cached embeddings"
    cached, _ = run.predict_films(store, ids, embed_dir=tmp_path / "embed")
    np.testing.assert_allclose(cached[list(GENRES)].to_numpy(), films[list(GENRES)].to_numpy(), atol=1e-5)
    assert (cached["n_slices"] == films["n_slices"]).all() and list(cached.index) == ids
    # another cache (here: none) is never read in its place
    assert kind.scored_from(info, store, tmp_path / "elsewhere") == "frames"
    assert kind.scored_from(info, store, None) == "frames"


def test_a_frozen_tsn_without_the_embed_stage_encodes_its_own_cache(preset, corpus, tmp_path):
    store, labels = corpus
    kind = get_kind("tsn")
    data = kind.datasets(tsn_params(preset), store, labels, seed=0, workers=1, embed_dir=tmp_path / "embed")
    assert any("encoding every frame now" in note for note in data.notes), data.notes
    assert E.cache_problem(tmp_path / "embed", store, preset) is None and data.embed_dim == 64


def test_fine_tuned_preset_trains_end_to_end(preset, corpus):
    store, _ = corpus
    model = tsn.build_tsn(tsn_params(preset, frozen=False, pooling="mean"), store.frame_shape)
    head = tsn.head_of(model)
    assert len(model.trainable_weights) > len(head.trainable_weights)
    assert "as_cached" not in [layer.name for layer in model.layers]


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    import keras, numpy as np
    assert keras.config.backend() == "jax", keras.config.backend()
    import jax
    from lib.encoders import embeddings as E
    from lib.loaders.slices import write_synthetic_corpus
    from lib.models.kinds import load_run
    sys.path.insert(0, str(Path(sys.argv[1])))
    from test_tsn_preset import save_tiny_preset, train_frozen, tsn_params, tsn_section

    tmp = Path(tempfile.mkdtemp())
    store, labels = write_synthetic_corpus(tmp / "store", n_films=15, frames_per_film=(3, 10), size=16, seed=4, signal=0.9)
    preset = str(save_tiny_preset(tmp / "preset"))
    report = {}
    # One run (JAX compiles every new shape, which costs minutes on a busy 2-core CI):
    # the frozen preset path has it all: keras-hub layers, the cache, the head's training
    # (transformer pooling, the most layers), the raw-frame model, saving and loading.
    for name, section in (("frozen", {**tsn_section(preset, pooling="transformer"), "epochs": 2}),):
        E.embed_for_config(tsn_params(preset, pooling="transformer"), store, tmp / "embed", progress=False)
        data, head, _, result = train_frozen(store, labels, section, tmp / name, tmp / "embed", jit_compile="auto")
        run = load_run(tmp / name)
        ids = labels.loc[labels["split"] == "val", "movieId"].tolist()
        # the head as it trained (best epoch, on the cache) against the saved raw-frame model, reloaded
        a = np.asarray(head.predict(data.val, verbose=0))
        b, _ = run.predict_films(store, ids)
        b = b[run.info.genres].to_numpy()
        # the weights live in JAX arrays: the model ran on JAX, TensorFlow only came with keras_hub
        assert all(isinstance(w.value, jax.Array) for w in run.model.weights)
        report[name] = {"backend": run.info.runtime["backend"], "max_diff": float(np.abs(a - b).max()),
                        "finite": bool(np.isfinite(b).all()), "epochs": int(len(result.history))}
    print("RESULT" + json.dumps(report))
    """
)


def test_tsn_trains_saves_and_predicts_under_jax(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(Path(__file__).parent)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    report = json.loads(lines[-1][len("RESULT") :])
    for name in ("frozen",):
        assert report[name]["backend"] == "jax" and report[name]["finite"] and report[name]["epochs"] == 2
        assert report[name]["max_diff"] < 1e-4, report


def test_the_offline_imagenet_encoder_name_resolves_to_its_converted_folder(preset, monkeypatch):
    # `efficientnet_lite0_pypi` must take the same from_preset path as any folder; the
    # conversion itself is tested in test_pretrained, so point it at the tiny preset here.
    import lib.encoders.efficientnet_lite0

    calls = []
    monkeypatch.setattr(
        lib.encoders.efficientnet_lite0, "efficientnet_lite0_preset", lambda: calls.append(1) or Path(preset)
    )
    backbone, converter = load_preset_parts("efficientnet_lite0_pypi")
    assert calls == [1]
    assert backbone.count_params() == load_preset_parts(str(preset))[0].count_params()
    with pytest.raises(ValueError, match="cannot load keras-hub backbone preset"):
        load_preset_parts("efficientnet_lite0_pypi_typo")
