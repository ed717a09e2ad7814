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

from lib import embeddings as E
from lib import training as T
from lib import tsn
from lib.film_loader import FilmDataset, make_film_datasets
from lib.genres import GENRES
from lib.loader import write_synthetic_corpus
from lib.paths import ROOT
from lib.predict import load_run, predict_run

keras_hub = pytest.importorskip("keras_hub")

SIZE = 16


def save_tiny_preset(folder: Path, image_size=(24, 24)) -> Path:
    """A ~80 k-parameter ResNet and a converter that resizes to ``image_size`` and scales to [0, 1]."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block", use_pre_activation=False, image_shape=(None, None, 3),
    )
    backbone.save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(image_size=image_size, scale=1 / 255.0).save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return str(save_tiny_preset(tmp_path_factory.mktemp("tiny_preset")))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("preset_store"), n_films=20, frames_per_film=(3, 12), size=SIZE, seed=2, signal=0.9)


def tsn_params(preset, frozen=True, pooling="attention"):
    return {
        "n_segments": 4, "pooling": pooling, "encoder": preset, "frozen": frozen, "scratch_filters": [4],
        "dim": 8, "heads": 2, "layers": 1, "dense": [8], "dropout": 0.0, "lr": 1e-2, "batch_size": 4,
        "epochs": 3, "patience": 3, "embed_batch_size": 7,
    }


def test_preset_encoder_uses_the_presets_converter_and_freezes(preset):
    enc = tsn.load_preset_encoder(preset, (SIZE, SIZE, 3), trainable=False)
    assert tsn.converter_image_size(enc) == [24, 24]  # the preset's own size, not the store's
    assert enc.output.shape[-1] == 64 and not enc.trainable_weights
    frames = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    # the same numbers as the preset's converter + backbone + average pooling by hand
    backbone = keras_hub.models.Backbone.from_preset(preset)
    converter = keras_hub.layers.ImageConverter.from_preset(preset)
    ref = keras.ops.convert_to_numpy(backbone(converter(frames.astype("float32")))).mean(axis=(1, 2))
    np.testing.assert_allclose(enc.predict(frames, verbose=0), ref, rtol=1e-4, atol=1e-5)
    tuned = tsn.load_preset_encoder(preset, (SIZE, SIZE, 3), trainable=True)
    assert len(tuned.trainable_weights) > 0


def test_preset_without_converter_is_refused(tmp_path):
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64], stackwise_num_blocks=[1],
        stackwise_num_strides=[1], block_type="basic_block",
    ).save_to_preset(str(tmp_path))
    with pytest.raises(ValueError, match="image converter"):
        tsn.load_preset_encoder(str(tmp_path), (SIZE, SIZE, 3))
    with pytest.raises(ValueError, match="cannot load"):
        tsn.load_preset_encoder(str(tmp_path / "absent"), (SIZE, SIZE, 3))


def test_embedding_cache_is_aligned_with_the_store(preset, corpus, tmp_path):
    store, _ = corpus
    info = E.embed_for_config(tsn_params(preset), store, tmp_path, progress=False)
    assert info["cached"] and info["n_frames"] == len(store.frames) and info["dim"] == 64 and info["image_size"] == [24, 24]
    emb = E.load_embeddings(tmp_path, store, preset)
    assert emb.dtype == np.float16 and emb.shape == (len(store.frames), 64)
    enc = tsn.load_preset_encoder(preset, store.frame_shape)
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
        assert "holds no embeddings" in E.cache_problem(tmp_path, store, params["encoder"])


def test_frozen_head_trains_on_the_cache_and_the_saved_model_takes_raw_frames(preset, corpus, tmp_path):
    store, labels = corpus
    params = tsn_params(preset, pooling="transformer")
    cfg = T.resolve_config({
        "model": "tsn", "profile": "p", "profiles": {"p": {k: 1 for k in T.PROFILE_KEYS}}, "cnn_lstm": {},
        "slice_depth": 4, "max_slices_per_film": None, "epochs": 1, "patience": 1, "seed": 0,
        "mixed_precision": False, "jit_compile": False, "workers": 1, "tsn": params,
    })
    T.setup_runtime(0, verbose=False)
    meta = E.embed_for_config(params, store, tmp_path / "embed", progress=False)
    emb = E.load_embeddings(tmp_path / "embed", store, preset)
    datasets, _ = make_film_datasets(store, labels, n_segments=4, batch_size=4, seed=0, embeddings=emb)
    x, _ = datasets["train"][0]
    assert set(x) == {"embeddings", "mask"} and x["embeddings"].shape == (4, 4, 64)
    head = T.build_configured_model(cfg, store.frame_shape, embed_dim=meta["dim"])
    assert "encode" not in [layer.name for layer in head.layers]  # no encoder in the training graph
    T.compile_model(head, cfg, T.present_genres(datasets["val"].slice_labels()))
    out = tmp_path / "run"
    result = T.fit(head, datasets["train"], datasets["val"], cfg, out, verbose=0)
    full = T.finish_tsn(cfg, result, store.frame_shape)
    T.write_model_info(out, full, cfg, T.setup_runtime(0, verbose=False), result, store.frame_shape, extra=T.tsn_info(cfg, meta))
    model, info = load_run(out)
    assert info["tsn"]["cached_embeddings"] and info["tsn"]["encoder"] == preset
    assert model.get_layer("encode").count_params() > 0 and not model.get_layer("encode").trainable_weights
    ids = labels.loc[labels["split"] == "val", "movieId"].tolist()
    films, slices = predict_run(model, info, store, ids)
    on_cache = head_scores = keras.saving.load_model(out / "model.keras").get_layer("tsn_head").predict(datasets["val"], verbose=0)
    np.testing.assert_allclose(films[list(GENRES)].to_numpy(), on_cache, atol=1e-4)
    assert slices is None and head_scores.shape == (len(ids), len(GENRES))


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
    from lib import embeddings as E, training as T, tsn
    from lib.film_loader import make_film_datasets
    from lib.loader import write_synthetic_corpus
    from lib.predict import load_run, predict_run
    sys.path.insert(0, str(Path(sys.argv[1])))
    from test_tsn_preset import save_tiny_preset, tsn_params

    tmp = Path(tempfile.mkdtemp())
    store, labels = write_synthetic_corpus(tmp / "store", n_films=15, frames_per_film=(3, 10), size=16, seed=4, signal=0.9)
    preset = str(save_tiny_preset(tmp / "preset"))
    report = {}
    # One run (JAX compiles every new shape, which costs minutes on a busy 2-core CI):
    # the frozen preset path has it all: keras-hub layers, the cache, the head's training
    # (transformer pooling, the most layers), the raw-frame model, saving and loading.
    for name, params in (("frozen", tsn_params(preset, pooling="transformer")),):
        params = {**params, "epochs": 2}
        train = {"model": "tsn", "profile": "p", "profiles": {"p": {k: 1 for k in T.PROFILE_KEYS}}, "cnn_lstm": {},
                 "slice_depth": 4, "max_slices_per_film": None, "epochs": 1, "patience": 1, "seed": 0,
                 "mixed_precision": False, "jit_compile": "auto", "workers": 1, "tsn": params}
        cfg = T.resolve_config(train)
        rt = T.setup_runtime(0, verbose=False)
        emb, meta = None, None
        if tsn.uses_cache(params):
            meta = E.embed_for_config(params, store, tmp / "embed", progress=False)
            emb = E.load_embeddings(tmp / "embed", store, preset)
        ds, _ = make_film_datasets(store, labels, n_segments=4, batch_size=4, seed=0, embeddings=emb)
        model = T.build_configured_model(cfg, store.frame_shape, embed_dim=meta and meta["dim"])
        T.compile_model(model, cfg, T.present_genres(ds["val"].slice_labels()))
        out = tmp / name
        result = T.fit(model, ds["train"], ds["val"], cfg, out, verbose=0)
        full = T.finish_tsn(cfg, result, store.frame_shape)
        T.write_model_info(out, full, cfg, rt, result, store.frame_shape, extra=T.tsn_info(cfg, meta))
        reloaded, info = load_run(out)
        ids = labels.loc[labels["split"] == "val", "movieId"].tolist()
        a, _ = predict_run(full, info, store, ids)
        b, _ = predict_run(reloaded, info, store, ids)
        # the weights live in JAX arrays: the model ran on JAX, TensorFlow only came with keras_hub
        assert all(isinstance(w.value, jax.Array) for w in reloaded.weights)
        report[name] = {"backend": info["backend"], "max_diff": float(np.abs(a.to_numpy() - b.to_numpy()).max()),
                        "finite": bool(np.isfinite(a.to_numpy()).all()), "epochs": int(len(result.history))}
    print("RESULT" + json.dumps(report))
    """
)


def test_tsn_trains_saves_and_predicts_under_jax(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(Path(__file__).parent)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    report = json.loads(lines[-1][len("RESULT"):])
    for name in ("frozen",):
        assert report[name]["backend"] == "jax" and report[name]["finite"] and report[name]["epochs"] == 2
        assert report[name]["max_diff"] < 1e-5, report


def test_the_offline_imagenet_encoder_name_resolves_to_its_converted_folder(preset, monkeypatch):
    # `efficientnet_lite0_pypi` must take the same from_preset path as any folder; the
    # conversion itself is tested in test_pretrained, so point it at the tiny preset here.
    import lib.pretrained
    from lib.tsn import load_preset_parts

    calls = []
    monkeypatch.setattr(lib.pretrained, "efficientnet_lite0_preset", lambda: calls.append(1) or Path(preset))
    backbone, converter = load_preset_parts("efficientnet_lite0_pypi")
    assert calls == [1]
    assert backbone.count_params() == load_preset_parts(str(preset))[0].count_params()
    with pytest.raises(ValueError, match="cannot load keras-hub backbone preset"):
        load_preset_parts("efficientnet_lite0_pypi_typo")
