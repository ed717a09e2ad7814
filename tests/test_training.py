"""Training: typed params from params.yaml through the model kinds, the metric, a tiny
end-to-end fit (the train notebook's sequence of calls), CPU determinism."""

from __future__ import annotations

import copy
import json

import keras
import numpy as np
import pandas as pd
import pytest

from lib.core.params import ParamsError, TrainParams, load_section, to_dict
from lib.loaders.slices import write_synthetic_corpus
from lib.models.info import ModelInfo
from lib.models.kinds import Hyper, get_kind, load_run
from lib.models.slice_models import PAPER_BLOCKS, PAPER_DECAY, PAPER_DENSE, PAPER_LR, PAPER_WIDTHS
from lib.train import fit as T
from lib.train.runtime import default_workers, setup_runtime

TINY_PROFILE = {
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
# params.yaml's `train:` shape: the common keys, then one section per model.
TINY = {
    "model": "cnn3d",
    "seed": 11,
    "mixed_precision": False,
    "jit_compile": False,
    "workers": 1,
    "cnn3d": {
        "profile": "tiny",
        "profiles": {"tiny": TINY_PROFILE},
        "slice_depth": 4,
        "max_slices_per_film": None,
        "epochs": 3,
        "patience": 3,
    },
    "cnn_lstm": {
        "filters": [2],
        "rnn": "gru",
        "units": 4,
        "dense": [8],
        "dropout": 0.0,
        "lr": 3e-3,
        "decay": 1e-6,
        "batch_size": 4,
        "batchnorm": "precise",
        "slice_depth": 4,
        "max_slices_per_film": None,
        "epochs": 3,
        "patience": 3,
    },
}


def resolve(train):
    """What the train notebook does with its ``train`` dict: common keys, the kind, its typed section."""
    common = TrainParams.from_section(copy.deepcopy(train))
    kind = get_kind(common.model)
    return common, kind, kind.parse(common.section(kind.name))


# -- configuration ----------------------------------------------------------------------
def test_params_yaml_paper_profile_is_the_papers_network():
    common = load_section(TrainParams, "train")
    kind = get_kind("cnn3d")
    section = common.section("cnn3d")
    paper = kind.parse({**section, "profile": "paper"})
    p = paper.hyper
    assert (p.widths, p.blocks, p.first_stride, p.dense, p.dropout) == (
        list(PAPER_WIDTHS),
        list(PAPER_BLOCKS),
        1,
        list(PAPER_DENSE),
        0.0,
    )
    hyper = kind.hyper(paper)
    assert (hyper.lr, hyper.decay, hyper.batch_size, paper.slice_depth) == (PAPER_LR, PAPER_DECAY, 16, 10)
    assert T.count_params(kind.build(paper, (64, 64, 3), None))["total"] == 3_295_938  # test_models' hand count
    for profile in section["profiles"]:
        kind.parse({**section, "profile": profile})
    lstm = get_kind("cnn_lstm")
    lstm.hyper(lstm.parse(common.section("cnn_lstm")))


def test_train_params_name_what_is_missing_or_wrong():
    cnn3d = TINY["cnn3d"]
    with pytest.raises(ParamsError, match=r"train\.cnn3d: missing key\(s\) \['epochs'\]"):
        resolve({**TINY, "cnn3d": {k: v for k, v in cnn3d.items() if k != "epochs"}})
    with pytest.raises(ParamsError, match=r"train\.cnn3d\.profile: 'paper' is not among the profiles"):
        resolve({**TINY, "cnn3d": {**cnn3d, "profile": "paper"}})
    with pytest.raises(ParamsError, match=r"train\.cnn3d\.profiles\.tiny\.blocks"):
        resolve({**TINY, "cnn3d": {**cnn3d, "profiles": {"tiny": {**TINY_PROFILE, "blocks": [1, 0]}}}})
    with pytest.raises(ParamsError, match=r"train\.seed: expected int"):
        resolve({**TINY, "seed": "11"})
    with pytest.raises(ValueError, match="unknown model kind 'vit'; known: cnn3d, cnn_lstm, tsn"):
        resolve({**TINY, "model": "vit"})
    with pytest.raises(ParamsError, match="no section 'tsn'"):
        resolve({**TINY, "model": "tsn"})

    common, kind, lstm = resolve({**TINY, "model": "cnn_lstm"})
    assert kind.hyper(lstm) == Hyper(lr=3e-3, decay=1e-6, batch_size=4, epochs=3, patience=3, batchnorm="precise")
    model = kind.build(lstm, (8, 8, 3), None)
    assert model.input_shape == (None, 4, 8, 8, 3) and isinstance(model.get_layer("gru"), keras.layers.GRU)
    assert model.get_layer("gru").units == 4 and model.get_layer("dense_1").units == 8

    # workers: 0 means one per spare core, resolved by the runtime, never 0 loader threads
    assert TrainParams.from_section({**TINY, "workers": 0}).workers == 0
    assert 1 <= default_workers() <= 4


# -- metrics and runtime ----------------------------------------------------------------
def test_macro_auc_pr_over_present_genres():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 18)) < 0.3).astype("float32")
    y[:, 5] = 0  # a genre without positives
    w = T.present_genres(y)
    assert w.tolist() == [0.0 if g == 5 else 1.0 for g in range(18)]
    assert T.macro_auc_pr(y, y, w) == pytest.approx(1.0, abs=1e-3)
    assert T.macro_auc_pr(y, y, None) < 0.99  # the absent genre drags an unweighted mean down
    prior = np.tile(y.mean(axis=0), (len(y), 1))
    assert T.macro_auc_pr(y, prior, w) == pytest.approx(y.mean(axis=0)[w > 0].mean(), abs=0.05)


def test_runtime_reports_a_device_and_sets_precision():
    rt = setup_runtime(0, mixed_precision="mixed_bfloat16", verbose=False)
    try:
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        assert rt.devices and rt.device_type in {"cpu", "gpu", "tpu"} and rt.backend in rt.describe()
    finally:
        setup_runtime(0, mixed_precision=False, verbose=False)
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(ValueError):
        setup_runtime(0, mixed_precision="float8", verbose=False)
    with pytest.raises(ParamsError, match="mixed_precision"):  # and params.yaml stops it before any runtime
        TrainParams.from_section({**TINY, "mixed_precision": "float8"})


# -- a tiny end-to-end fit --------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("store"), n_films=25, frames_per_film=(3, 14), size=8, seed=2)


def _train(corpus, out_dir, params=TINY):
    """The train notebook's calls, in its order."""
    store, labels = corpus
    common, kind, section = resolve(params)
    hyper = kind.hyper(section)
    runtime = setup_runtime(common.seed, common.mixed_precision, verbose=False)
    data = kind.datasets(section, store, labels, seed=common.seed, workers=common.workers)
    model = kind.build(section, store.frame_shape, data)
    weights = T.present_genres(data.val.slice_labels())
    T.compile_model(model, hyper.lr, hyper.decay, common.jit_compile, weights)
    result = T.fit(
        model,
        data.train,
        data.val,
        out_dir,
        epochs=hyper.epochs,
        patience=hyper.patience,
        live_dir=out_dir / "dvclive",
        verbose=0,
        batchnorm=hyper.batchnorm,
    )
    kind.finish(section, result.model_path, store.frame_shape)
    T.model_info(kind, section, common, runtime, result, store, model, extra=kind.info_extra(section, data)).write(
        out_dir
    )
    return result, data, weights


@pytest.fixture(scope="module")
def two_runs(corpus, tmp_path_factory):
    return [_train(corpus, tmp_path_factory.mktemp(f"run{i}")) for i in range(2)]


def test_fit_writes_the_stage_outputs(two_runs):
    (result, data, weights), _ = two_runs
    out = result.model_path.parent
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert {"loss", "val_loss", "auc_pr", "val_auc_pr", "binary_accuracy", "val_binary_accuracy"} <= set(
        history.columns
    )
    assert result.best_epoch == int(history.loc[history["val_auc_pr"].idxmax(), "epoch"])
    assert not (out / "checkpoint.weights.h5").exists()

    # model.keras is the best epoch, and loads without any of the study's code.
    model = keras.saving.load_model(out / "model.keras")
    scores = model.predict(data.val, verbose=0)
    assert T.macro_auc_pr(data.val.slice_labels(), scores, weights) == pytest.approx(
        result.best["val_auc_pr"], abs=1e-3
    )

    info = ModelInfo.read(out)
    assert (info.model, info.settings["slice_depth"], info.size, len(info.genres)) == ("cnn3d", 4, 8, 18)
    assert info.settings == to_dict(resolve(TINY)[2]) and info.profile == "tiny" and info.seed == TINY["seed"]
    assert info.frames is None  # a synthetic store records no extraction settings
    assert info.runtime["backend"] == keras.config.backend() and info.runtime["device"]
    assert (info.best_epoch, info.epochs_run, info.extra) == (result.best_epoch, 3, {})
    assert info.n_params == T.count_params(model) and info.best["val_auc_pr"] == result.best["val_auc_pr"]
    assert json.loads((out / "model_info.json").read_text())["model"] == "cnn3d"

    # ...and the one run loader scores stored films with it, through its kind.
    run = load_run(out)
    assert run.kind is get_kind("cnn3d") and run.info == info
    ids = data.val.slices["movieId"].unique().tolist()
    films, slices = run.predict_films(data.val.store, ids)
    assert list(films.index) == ids and len(slices) == data.val.n_slices
    np.testing.assert_allclose(slices[info.genres].to_numpy(), scores, rtol=1e-5, atol=1e-6)

    live = out / "dvclive"
    metrics = json.loads((live / "metrics.json").read_text())
    assert metrics["best"]["epoch"] == result.best_epoch
    assert metrics["best"]["val_auc_pr"] == pytest.approx(result.best["val_auc_pr"])
    for split in ("train", "val"):
        for name in ("loss", "auc_pr"):
            table = pd.read_csv(live / "plots" / "metrics" / split / f"{name}.tsv", sep="\t")
            assert table["step"].tolist() == [0, 1, 2]
            column = name if split == "train" else f"val_{name}"
            assert np.allclose(table[name], history[column])


def test_same_params_give_the_same_metrics_on_cpu(two_runs):
    (a, _, _), (b, _, _) = two_runs
    columns = ["loss", "auc_pr", "val_loss", "val_auc_pr"]
    pd.testing.assert_frame_equal(a.history[columns], b.history[columns], check_exact=True)


def test_the_seed_matters(corpus):
    def first_batch_and_weights(seed):
        common, kind, section = resolve({**TINY, "seed": seed})
        setup_runtime(common.seed, verbose=False)
        data = kind.datasets(section, corpus[0], corpus[1], seed=common.seed, workers=common.workers)
        model = kind.build(section, corpus[0].frame_shape, data)
        return data.train.batch_indices(0), model.get_layer("block1_conv1").get_weights()[0]

    (i1, w1), (i2, w2), (i3, w3) = first_batch_and_weights(1), first_batch_and_weights(1), first_batch_and_weights(2)
    assert (i1 == i2).all() and (w1 == w2).all()
    assert not (i1 == i3).all() and not (w1 == w3).all()
