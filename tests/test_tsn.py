"""The whole-trailer tsn model with the scratch encoder: sampling, masking, pooling,
the film loader, a short training, save/reload/predict and predict_run."""
from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from lib import training as T
from lib import tsn
from lib.film_loader import FilmDataset, make_film_datasets
from lib.frame_store import FilmFrames, write_frame_store
from lib.genres import GENRES
from lib.loader import write_synthetic_corpus
from lib.predict import load_run, predict_films, predict_run

TSN = {
    "n_segments": 4, "pooling": "attention", "encoder": "scratch", "frozen": True, "scratch_filters": [4, 8],
    "dim": 8, "heads": 2, "layers": 1, "dense": [8], "dropout": 0.0, "lr": 1e-2, "batch_size": 4,
    "epochs": 6, "patience": 6, "embed_batch_size": 16,
}
TRAIN = {
    "model": "tsn", "profile": "tiny",
    "profiles": {"tiny": {"widths": [2, 3], "blocks": [1, 1], "first_stride": 2, "dense": [8], "dropout": 0.0, "lr": 3e-3, "decay": 1e-6, "batch_size": 4}},
    "cnn_lstm": {"filters": [2], "rnn": "gru", "units": 4}, "slice_depth": 4, "max_slices_per_film": None,
    "epochs": 2, "patience": 2, "seed": 3, "mixed_precision": False, "jit_compile": False, "workers": 1, "tsn": TSN,
}


# -- sampling ----------------------------------------------------------------------------
@pytest.mark.parametrize("n,segments", [(8, 8), (13, 4), (45, 8), (10, 3), (100, 7)])
def test_segments_tile_the_film_and_centred_frames_sit_in_the_middle(n, segments):
    plan = tsn.segment_plan(n, segments)
    assert plan.mask.all() and (plan.lengths >= 1).all()
    assert plan.starts[0] == 0 and plan.starts[-1] + plan.lengths[-1] == n
    assert (plan.starts[1:] == plan.starts[:-1] + plan.lengths[:-1]).all()  # contiguous, no overlap
    assert plan.lengths.max() - plan.lengths.min() <= 1
    centred, _ = tsn.sample_segments(n, segments, training=False)
    assert ((centred >= plan.starts) & (centred < plan.starts + plan.lengths)).all()
    assert (np.abs(2 * centred - (2 * plan.starts + plan.lengths - 1)) <= 1).all()


def test_training_offsets_are_random_within_segments_and_seeded():
    plan = tsn.segment_plan(40, 4)  # segments of 10 frames
    draws = np.stack([tsn.sample_segments(40, 4, training=True, rng=np.random.default_rng(s))[0] for s in range(200)])
    assert ((draws >= plan.starts) & (draws < plan.starts + plan.lengths)).all()
    for j in range(4):  # every offset of every segment occurs
        assert set(draws[:, j] - plan.starts[j]) == set(range(10))
    a = tsn.sample_segments(40, 4, training=True, rng=np.random.default_rng(7))[0]
    b = tsn.sample_segments(40, 4, training=True, rng=np.random.default_rng(7))[0]
    assert (a == b).all()
    with pytest.raises(ValueError, match="rng"):
        tsn.sample_segments(40, 4, training=True)


def test_short_film_uses_every_frame_once_and_masks_the_rest():
    rows, mask = tsn.sample_segments(3, 8, training=True, rng=np.random.default_rng(0))
    assert mask.tolist() == [True] * 3 + [False] * 5
    assert rows[:3].tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        tsn.segment_plan(0, 4)


# -- the loader --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("tsn_store"), n_films=40, frames_per_film=(2, 20), size=16, seed=1, signal=0.9)


def test_film_loader_one_example_per_film_copies_and_seeded_epochs(corpus):
    store, labels = corpus
    train = labels[labels["split"] == "train"].copy()
    train["copies"] = 1
    train.loc[train.index[0], "copies"] = 3
    ds = FilmDataset(store, train, n_segments=4, batch_size=5, training=True, shuffle=True, seed=9)
    assert ds.n_visits == len(train) + 2 and ds.n_films == len(train)
    seen = np.concatenate([ds.batch_rows(i)[0] for i in range(len(ds))])
    assert np.bincount(seen).tolist() == [3] + [1] * (len(train) - 1)
    (x, y) = ds[0]
    assert x["frames"].shape == (5, 4, 16, 16, 3) and x["frames"].dtype == np.uint8 and y.shape == (5, len(GENRES))
    # each sampled row lies inside its own film
    for i in range(len(ds)):
        films, rows, mask = ds.batch_rows(i)
        idx = store.index.loc[ds.movie_ids[films]]
        inside = (rows >= idx["start"].to_numpy()[:, None]) & (rows < idx["stop"].to_numpy()[:, None])
        assert inside[mask].all()
    first = [ds.batch_rows(i)[1].copy() for i in range(len(ds))]
    ds.on_epoch_end()
    second = [ds.batch_rows(i)[1].copy() for i in range(len(ds))]
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    again = FilmDataset(store, train, n_segments=4, batch_size=5, training=True, shuffle=True, seed=9)
    assert all(np.array_equal(a, again.batch_rows(i)[1]) for i, a in enumerate(first))
    # evaluation: the film order and the centred frames, every epoch the same
    ev = FilmDataset(store, train, n_segments=4, batch_size=5, use_copies=False)
    rows0 = ev.batch_rows(0)[1].copy()
    ev.on_epoch_end()
    assert np.array_equal(rows0, ev.batch_rows(0)[1]) and ev.n_visits == len(train)


def test_padded_slots_are_zero_and_masked(corpus):
    store, labels = corpus
    short = store.index.loc[store.index["stop"] - store.index["start"] < 4, "movieId"]
    assert len(short), "the toy corpus has short films"
    films = labels[labels["movieId"].isin(short)]
    x, _ = FilmDataset(store, films, n_segments=4, batch_size=len(films))[0]
    n = (store.index.loc[films["movieId"], "stop"] - store.index.loc[films["movieId"], "start"]).to_numpy()
    assert (x["mask"].sum(axis=1) == n).all()
    assert (x["frames"][~x["mask"]] == 0).all()


# -- the model ---------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", tsn.POOLINGS)
def test_padded_frames_do_not_change_the_output(pooling):
    keras.utils.set_random_seed(0)
    model = tsn.build_tsn({**TSN, "pooling": pooling, "dropout": 0.0}, (16, 16, 3))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    junk = frames.copy()
    junk[0, 2:] = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    a = model.predict({"frames": frames, "mask": mask}, verbose=0)
    b = model.predict({"frames": junk, "mask": mask}, verbose=0)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # ...while a real frame does change it (the check above is not vacuous)
    c = model.predict({"frames": junk, "mask": np.ones_like(mask)}, verbose=0)
    assert np.abs(a[0] - c[0]).max() > 1e-6
    assert a.shape == (2, len(GENRES)) and ((a > 0) & (a < 1)).all()


def test_mean_pooling_is_the_masked_mean():
    x = np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2)
    mask = np.array([[True, False, True], [False, False, False]])
    out = keras.ops.convert_to_numpy(tsn.MaskedMeanPooling()(x, mask))
    np.testing.assert_allclose(out[0], (x[0, 0] + x[0, 2]) / 2)
    np.testing.assert_allclose(out[1], 0.0)  # nothing real: zeros, not NaN


def test_attention_weights_are_a_distribution_over_real_frames():
    layer = tsn.AttentionPooling(4)
    x = np.random.default_rng(0).normal(size=(1, 3, 5)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x, np.array([[True, False, False]])))
    np.testing.assert_allclose(out[0], x[0, 0], atol=1e-5)  # one real frame: its own vector


def test_config_names_what_is_missing_or_wrong():
    with pytest.raises(KeyError, match="pooling"):
        tsn.check_config({k: v for k, v in TSN.items() if k != "pooling"})
    with pytest.raises(ValueError, match="pooling"):
        tsn.check_config({**TSN, "pooling": "max"})
    cfg = T.resolve_config(TRAIN)
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.decay, cfg.tsn["n_segments"]) == (TSN["lr"], 4, 6, 0.0, 4)
    with pytest.raises(KeyError, match="tsn"):
        T.resolve_config({k: v for k, v in TRAIN.items() if k != "tsn"})
    assert T.resolve_config({**TRAIN, "model": "cnn3d"}).lr == 3e-3  # slice models unchanged


def test_params_yaml_tsn_section_resolves():
    from lib.config import load_params

    train = load_params("train")
    cfg = T.resolve_config({**train, "model": "tsn"})
    assert cfg.tsn["pooling"] in tsn.POOLINGS and cfg.tsn["n_segments"] >= 1


# -- training, saving, predicting --------------------------------------------------------
@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    store, labels = corpus
    cfg = T.resolve_config({**TRAIN, "tsn": {**TSN, "pooling": "mean"}})
    T.setup_runtime(cfg.seed, verbose=False)
    datasets, table = make_film_datasets(store, labels, n_segments=4, batch_size=cfg.batch_size, seed=cfg.seed)
    model = T.build_configured_model(cfg, store.frame_shape)
    weights = T.present_genres(datasets["val"].slice_labels())
    T.compile_model(model, cfg, weights)
    out = tmp_path_factory.mktemp("tsn_run")
    result = T.fit(model, datasets["train"], datasets["val"], cfg, out, verbose=0)
    best = T.finish_tsn(cfg, result, store.frame_shape)
    T.write_model_info(out, best, cfg, T.setup_runtime(cfg.seed, verbose=False), result, store.frame_shape, extra=T.tsn_info(cfg))
    return store, labels, cfg, result, out, table


def test_short_training_beats_chance_on_a_learnable_toy_set(trained):
    store, labels, cfg, result, out, table = trained
    assert table.loc["train", "slices"] == table.loc["train", "films"]  # one example per film
    test = labels[labels["split"] == "test"]
    model, info = load_run(out)
    films, slices = predict_run(model, info, store, test["movieId"].tolist())
    y = test[list(GENRES)].to_numpy()
    present = y.sum(axis=0) > 0
    ap = average_precision_score(y[:, present], films[list(GENRES)].to_numpy()[:, present], average="macro")
    prior = average_precision_score(y[:, present], np.tile(y.mean(0)[present], (len(y), 1)), average="macro")
    assert ap > prior + 0.15, (ap, prior)
    assert slices is None


def test_saved_model_reloads_and_predicts_the_same(trained):
    store, labels, cfg, result, out, _ = trained
    info = json.loads((out / "model_info.json").read_text())
    assert info["model"] == "tsn" and info["tsn"]["n_segments"] == 4 and info["tsn"]["encoder"] == "scratch"
    model = keras.saving.load_model(out / "model.keras")  # plain load works once lib.predict is imported
    ids = labels.loc[labels["split"] == "val", "movieId"].tolist()
    films, _ = predict_run(model, info, store, ids, batch_size=3)
    assert films.index.tolist() == ids and list(films.columns) == ["n_slices", *GENRES]
    n = (store.index.loc[ids, "stop"] - store.index.loc[ids, "start"]).clip(upper=4).to_numpy()
    assert films["n_slices"].tolist() == n.tolist()
    # the checkpointed epoch's val metric, recomputed from the reloaded model
    ds = FilmDataset(store, labels[labels["split"] == "val"], n_segments=4, batch_size=4)
    scores = model.predict(ds, verbose=0)
    np.testing.assert_allclose(scores, films[list(GENRES)].to_numpy(), atol=1e-5)
    auc = T.macro_auc_pr(ds.slice_labels(), scores, T.present_genres(ds.slice_labels()))
    assert auc == pytest.approx(result.best["val_auc_pr"], abs=1e-3)
    # one film on its own (what trailer-genres does) gives the same scores
    one = tsn.film_inputs(store.film(ids[0]), 4)
    np.testing.assert_allclose(model.predict(one, verbose=0)[0], films.iloc[0][list(GENRES)].to_numpy(float), atol=1e-5)


def test_predict_run_on_a_slice_model_is_predict_films(corpus, tmp_path):
    store, labels = corpus
    cfg = T.resolve_config({**TRAIN, "model": "cnn3d"})
    model = T.build_configured_model(cfg, store.frame_shape)
    info = {"model": "cnn3d", "slice_depth": cfg.slice_depth, "genres": list(GENRES)}
    ids = labels["movieId"].tolist()[:6]
    films, slices = predict_run(model, info, store, ids, how="max")
    ref_films, ref_slices = predict_films(model, store, ids, cfg.slice_depth, how="max")
    pd.testing.assert_frame_equal(films, ref_films)
    pd.testing.assert_frame_equal(slices, ref_slices)


def test_training_is_one_example_per_film_not_per_slice(tmp_path):
    # two films, one long (100 frames) and one short: each is one example per epoch
    films = [FilmFrames(1, "a", np.zeros((100, 8, 8, 3), np.uint8)), FilmFrames(2, "b", np.zeros((5, 8, 8, 3), np.uint8))]
    store = write_frame_store(tmp_path / "s", films)
    labels = pd.DataFrame({"movieId": [1, 2], **{g: [0, 1] for g in GENRES}})
    ds = FilmDataset(store, labels, n_segments=4, batch_size=8, training=True, shuffle=True)
    assert len(ds) == 1 and ds.n_visits == 2 and ds[0][0]["frames"].shape == (2, 4, 8, 8, 3)


def test_notebook_smoke_tsn_has_the_keys_of_params_yaml():
    import ast

    from lib.config import load_params
    from lib.paths import ROOT

    nb = json.loads((ROOT / "notebooks/03_train.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    train = next(ast.literal_eval(n.value) for n in ast.parse("".join(cell["source"])).body if isinstance(n, ast.Assign) and n.targets[0].id == "train")
    assert set(train["tsn"]) == set(load_params("train")["tsn"]) == set(tsn.TSN_KEYS)


def test_embed_with_a_scratch_encoder_caches_nothing_and_says_why(corpus, tmp_path):
    from lib import embeddings as E
    from lib.config import load_params

    store, _ = corpus
    meta = E.embed_for_config({**load_params("train")["tsn"], "encoder": "scratch"}, store, tmp_path / "embed", progress=False)
    assert meta == E.read_meta(tmp_path / "embed")
    assert meta["cached"] is False and "scratch" in meta["reason"] and not (tmp_path / "embed" / E.EMBEDDINGS_FILE).exists()
    with pytest.raises(ValueError, match="run the embed stage"):
        E.load_embeddings(tmp_path / "embed", store, "scratch")


def test_embed_command_caches_the_default_encoders_embeddings(corpus, tmp_path):
    """The embed stage's command with params.yaml as it is: the frozen offline EfficientNet-Lite0."""
    from lib import embeddings as E
    from lib.config import load_params

    store, _ = corpus
    encoder = load_params("train")["tsn"]["encoder"]
    assert E.main(["--store", str(store.directory), "--out", str(tmp_path / "embed")]) == 0
    meta = E.read_meta(tmp_path / "embed")
    assert meta["cached"] is True and meta["encoder"] == encoder and meta["n_frames"] == len(store.frames)
    emb = E.load_embeddings(tmp_path / "embed", store, encoder)
    assert emb.shape == (len(store.frames), meta["dim"]) and emb.dtype == np.float16 and np.isfinite(emb).all()
    assert float(np.abs(emb).max()) > 0, "every embedding is zero"
