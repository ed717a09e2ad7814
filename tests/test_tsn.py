"""The whole-trailer tsn model with the scratch encoder: sampling, masking, pooling,
the film loader, a short training through its kind, save/reload/predict and load_run."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from lib.core.genres import GENRES
from lib.core.params import ParamsError, TrainParams, TsnParams, load_section, parse, to_dict
from lib.frames.store import FilmFrames, write_frame_store
from lib.loaders import segments as S
from lib.loaders.films import FilmDataset
from lib.loaders.slices import write_synthetic_corpus
from lib.models import scoring, tsn
from lib.models.info import ModelInfo
from lib.models.kinds import KINDS, Hyper, get_kind, load_run
from lib.train import fit as T
from lib.train.runtime import setup_runtime

TSN = {
    "n_segments": 4,
    "pooling": "attention",
    "encoder": "scratch",
    "frozen": True,
    "scratch_filters": [4, 8],
    "dim": 8,
    "heads": 2,
    "layers": 1,
    "dense": [8],
    "dropout": 0.0,
    "lr": 1e-2,
    "batch_size": 4,
    "batchnorm": "precise",
    "epochs": 6,
    "patience": 6,
    "embed_batch_size": 16,
    "modalities": ["frames"],
    "audio_filters": [8, 8],
}
TRAIN = {
    "model": "tsn",
    "seed": 3,
    "mixed_precision": False,
    "jit_compile": False,
    "workers": 1,
    "cnn3d": {
        "profile": "tiny",
        "profiles": {
            "tiny": {
                "widths": [2, 3],
                "blocks": [1, 1],
                "first_stride": 2,
                "dense": [8],
                "dropout": 0.0,
                "lr": 3e-3,
                "decay": 1e-6,
                "batch_size": 4,
                "batchnorm": "precise",
            }
        },
        "slice_depth": 4,
        "max_slices_per_film": None,
        "epochs": 2,
        "patience": 2,
    },
    "tsn": TSN,
}


def tsn_params(**changes) -> TsnParams:
    return parse(TsnParams, {**TSN, **changes}, "train.tsn")


# -- sampling ----------------------------------------------------------------------------
@pytest.mark.parametrize("n,segments", [(8, 8), (13, 4), (45, 8), (10, 3), (100, 7)])
def test_segments_tile_the_film_and_centred_frames_sit_in_the_middle(n, segments):
    plan = S.segment_plan(n, segments)
    assert plan.mask.all() and (plan.lengths >= 1).all()
    assert plan.starts[0] == 0 and plan.starts[-1] + plan.lengths[-1] == n
    assert (plan.starts[1:] == plan.starts[:-1] + plan.lengths[:-1]).all()  # contiguous, no overlap
    assert plan.lengths.max() - plan.lengths.min() <= 1
    centred, _ = S.sample_segments(n, segments, training=False)
    assert ((centred >= plan.starts) & (centred < plan.starts + plan.lengths)).all()
    assert (np.abs(2 * centred - (2 * plan.starts + plan.lengths - 1)) <= 1).all()


def test_training_offsets_are_random_within_segments_and_seeded():
    plan = S.segment_plan(40, 4)  # segments of 10 frames
    draws = np.stack([S.sample_segments(40, 4, training=True, rng=np.random.default_rng(s))[0] for s in range(200)])
    assert ((draws >= plan.starts) & (draws < plan.starts + plan.lengths)).all()
    for j in range(4):  # every offset of every segment occurs
        assert set(draws[:, j] - plan.starts[j]) == set(range(10))
    a = S.sample_segments(40, 4, training=True, rng=np.random.default_rng(7))[0]
    b = S.sample_segments(40, 4, training=True, rng=np.random.default_rng(7))[0]
    assert (a == b).all()
    with pytest.raises(ValueError, match="rng"):
        S.sample_segments(40, 4, training=True)


def test_short_film_uses_every_frame_once_and_masks_the_rest():
    rows, mask = S.sample_segments(3, 8, training=True, rng=np.random.default_rng(0))
    assert mask.tolist() == [True] * 3 + [False] * 5
    assert rows[:3].tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        S.segment_plan(0, 4)


# -- the loader --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(
        tmp_path_factory.mktemp("tsn_store"), n_films=40, frames_per_film=(2, 20), size=16, seed=1, signal=0.9
    )


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
    model = tsn.build_tsn(tsn_params(pooling=pooling, dropout=0.0), (16, 16, 3))
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
    with pytest.raises(ParamsError, match=r"train\.tsn: missing key\(s\) \['pooling'\]"):
        parse(TsnParams, {k: v for k, v in TSN.items() if k != "pooling"}, "train.tsn")
    with pytest.raises(
        ParamsError, match=r"train\.tsn\.pooling: expected one of \['mean', 'attention', 'transformer'\]"
    ):
        tsn_params(pooling="max")
    with pytest.raises(ParamsError, match=r"train\.tsn\.n_segments: expected int"):
        tsn_params(n_segments="8")
    common = TrainParams.from_section(TRAIN)
    kind = get_kind(common.model)
    params = kind.parse(common.section("tsn"))
    assert params == tsn_params() and kind.hyper(params) == Hyper(
        lr=TSN["lr"], decay=0.0, batch_size=4, epochs=6, patience=6, batchnorm="precise"
    )
    with pytest.raises(ParamsError, match="no section 'tsn'"):
        TrainParams.from_section({k: v for k, v in TRAIN.items() if k != "tsn"}).section("tsn")
    cnn3d = get_kind("cnn3d")
    assert cnn3d.hyper(cnn3d.parse(common.section("cnn3d"))).lr == 3e-3  # slice models unchanged


def test_params_yaml_tsn_section_resolves():
    common = load_section(TrainParams, "train")
    params = get_kind("tsn").parse(common.section("tsn"))
    assert params.pooling in tsn.POOLINGS and params.n_segments >= 1


# -- training, saving, predicting --------------------------------------------------------
@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """The train notebook's calls for tsn with the scratch encoder (nothing cached)."""
    store, labels = corpus
    common = TrainParams.from_section({**TRAIN, "tsn": {**TSN, "pooling": "mean"}})
    kind = get_kind(common.model)
    params = kind.parse(common.section(kind.name))
    hyper = kind.hyper(params)
    runtime = setup_runtime(common.seed, verbose=False)
    data = kind.datasets(params, store, labels, seed=common.seed, workers=common.workers)
    assert data.embed_dim is None and data.embed_meta is None
    model = kind.build(params, store.frame_shape, data)
    weights = T.present_genres(data.val.slice_labels())
    T.compile_model(model, hyper.lr, hyper.decay, common.jit_compile, weights)
    out = tmp_path_factory.mktemp("tsn_run")
    result = T.fit(model, data.train, data.val, out, epochs=hyper.epochs, patience=hyper.patience, verbose=0)
    kind.finish(params, result.model_path, store.frame_shape)  # nothing to do without a cache
    best = kind.load_model(result.model_path, params)
    T.model_info(kind, params, common, runtime, result, store, best, extra=kind.info_extra(params, data)).write(out)
    return store, labels, params, result, out, data.table


def test_short_training_beats_chance_on_a_learnable_toy_set(trained):
    store, labels, params, result, out, table = trained
    assert table.loc["train", "slices"] == table.loc["train", "films"]  # one example per film
    test = labels[labels["split"] == "test"]
    films, slices = load_run(out).predict_films(store, test["movieId"].tolist())
    y = test[list(GENRES)].to_numpy()
    present = y.sum(axis=0) > 0
    ap = average_precision_score(y[:, present], films[list(GENRES)].to_numpy()[:, present], average="macro")
    prior = average_precision_score(y[:, present], np.tile(y.mean(0)[present], (len(y), 1)), average="macro")
    assert ap > prior + 0.15, (ap, prior)
    assert slices is None


def test_saved_model_reloads_and_predicts_the_same(trained):
    store, labels, params, result, out, _ = trained
    info = ModelInfo.read(out)
    assert info.model == "tsn" and info.settings["n_segments"] == 4 and info.settings["encoder"] == "scratch"
    assert info.settings == to_dict(params) and info.profile is None
    assert info.extra == {"cached_embeddings": False, "embeddings": None}
    model = keras.saving.load_model(out / "model.keras")  # plain load works once lib.models.tsn is imported
    ids = labels.loc[labels["split"] == "val", "movieId"].tolist()
    films, _ = get_kind("tsn").predict_films(model, info, store, ids, batch_size=3)
    assert films.index.tolist() == ids and list(films.columns) == ["n_slices", *GENRES]
    n = (store.index.loc[ids, "stop"] - store.index.loc[ids, "start"]).clip(upper=4).to_numpy()
    assert films["n_slices"].tolist() == n.tolist()
    # the checkpointed epoch's val metric, recomputed from the reloaded model
    ds = FilmDataset(store, labels[labels["split"] == "val"], n_segments=4, batch_size=4)
    scores = model.predict(ds, verbose=0)
    np.testing.assert_allclose(scores, films[list(GENRES)].to_numpy(), atol=1e-5)
    auc = T.macro_auc_pr(ds.slice_labels(), scores, T.present_genres(ds.slice_labels()))
    assert auc == pytest.approx(result.best["val_auc_pr"], abs=1e-3)
    # one film on its own (what trailer-genres does) gives the same scores, through the kind too
    one = S.film_inputs(store.film(ids[0]), 4)
    np.testing.assert_allclose(model.predict(one, verbose=0)[0], films.iloc[0][list(GENRES)].to_numpy(float), atol=1e-5)
    framed = get_kind("tsn").score_frames(model, info, np.asarray(store.film(ids[0])))
    np.testing.assert_allclose(framed.scores, films.iloc[0][list(GENRES)].to_numpy(float), atol=1e-5)
    assert framed.per_slice is None and f"frames used: {n[0]} of" in framed.used


def test_a_slice_kind_predicts_as_predict_films(corpus, tmp_path):
    store, labels = corpus
    common = TrainParams.from_section({**TRAIN, "model": "cnn3d"})
    kind = get_kind("cnn3d")
    params = kind.parse(common.section("cnn3d"))
    model = kind.build(params, store.frame_shape, None)
    info = ModelInfo(
        model="cnn3d",
        genres=list(GENRES),
        frame_shape=list(store.frame_shape),
        frames=None,
        settings=to_dict(params),
        seed=common.seed,
    )
    ids = labels["movieId"].tolist()[:6]
    films, slices = kind.predict_films(model, info, store, ids, how="max")
    ref_films, ref_slices = scoring.predict_films(model, store, ids, params.slice_depth, how="max")
    pd.testing.assert_frame_equal(films, ref_films)
    pd.testing.assert_frame_equal(slices, ref_slices)


def test_training_is_one_example_per_film_not_per_slice(tmp_path):
    # two films, one long (100 frames) and one short: each is one example per epoch
    films = [
        FilmFrames(1, "a", np.zeros((100, 8, 8, 3), np.uint8)),
        FilmFrames(2, "b", np.zeros((5, 8, 8, 3), np.uint8)),
    ]
    store = write_frame_store(tmp_path / "s", films)
    labels = pd.DataFrame({"movieId": [1, 2], **{g: [0, 1] for g in GENRES}})
    ds = FilmDataset(store, labels, n_segments=4, batch_size=8, training=True, shuffle=True)
    assert len(ds) == 1 and ds.n_visits == 2 and ds[0][0]["frames"].shape == (2, 4, 8, 8, 3)


def test_notebook_smoke_sections_have_the_keys_of_params_yaml():
    import ast

    from lib.core.params import load_params
    from lib.core.paths import ROOT

    nb = json.loads((ROOT / "notebooks/03_train.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    train = next(
        ast.literal_eval(n.value)
        for n in ast.parse("".join(cell["source"])).body
        if isinstance(n, ast.Assign) and n.targets[0].id == "train"
    )
    yaml_train = load_params("train")
    assert set(train["tsn"]) == set(yaml_train["tsn"]) == {f.name for f in dataclasses.fields(TsnParams)}
    common = TrainParams.from_section(train)
    for name, kind in KINDS.items():  # every built-in kind's smoke section is complete and valid
        assert set(train[name]) == set(yaml_train[name]), name
        kind.parse(common.section(name))


def test_embed_with_a_scratch_encoder_caches_nothing_and_says_why(corpus, tmp_path):
    from lib.core.params import load_params
    from lib.encoders import embeddings as E

    store, _ = corpus
    params = get_kind("tsn").parse(TrainParams.from_section(load_params("train")).section("tsn"))
    meta = E.embed_for_config(dataclasses.replace(params, encoder="scratch"), store, tmp_path / "embed", progress=False)
    assert meta == E.read_meta(tmp_path / "embed")
    assert (
        meta["cached"] is False
        and "scratch" in meta["reason"]
        and not (tmp_path / "embed" / E.EMBEDDINGS_FILE).exists()
    )
    with pytest.raises(ValueError, match="run the frames stage"):
        E.load_embeddings(tmp_path / "embed", store, "scratch")


def test_params_yaml_encoder_is_run_by_the_frames_stage_at_its_own_size():
    """params.yaml's train.tsn as it is: the frozen offline EfficientNet-Lite0, fed 224x224 centre crops."""
    from lib.core.params import load_params
    from lib.encoders import embeddings as E

    tsn = load_params("train")["tsn"]
    encoder, why = E.encoder_for_config(tsn["encoder"], tsn["frozen"], tsn["embed_batch_size"])
    assert why == "" and (encoder.preset, encoder.size, encoder.resize, encoder.dim) == (
        tsn["encoder"],
        224,
        "crop",
        1280,
    )
    assert E.encoder_for_config("scratch", True) == (None, "encoder is scratch (trained end to end)")
    assert E.encoder_for_config(tsn["encoder"], False)[0] is None
