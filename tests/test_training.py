"""Training: configuration from params.yaml, the metric, a tiny end-to-end fit, CPU determinism."""
from __future__ import annotations

import copy
import json

import keras
import numpy as np
import pandas as pd
import pytest

from lib import training as T
from lib.config import load_params
from lib.loader import make_split_datasets, write_synthetic_corpus
from lib.models import PAPER_BLOCKS, PAPER_DECAY, PAPER_DENSE, PAPER_LR, PAPER_WIDTHS

TINY = {
    "model": "cnn3d",
    "profile": "tiny",
    "profiles": {"tiny": {"widths": [2, 3], "blocks": [1, 1], "first_stride": 2, "dense": [8], "dropout": 0.0, "lr": 3e-3, "decay": 1e-6, "batch_size": 4}},
    "cnn_lstm": {"filters": [2], "rnn": "gru", "units": 4},
    "slice_depth": 4,
    "max_slices_per_film": None,
    "epochs": 3,
    "patience": 3,
    "seed": 11,
    "mixed_precision": False,
    "jit_compile": False,
    "workers": 1,
}


# -- configuration ----------------------------------------------------------------------
def test_params_yaml_paper_profile_is_the_papers_network():
    train = load_params("train")
    paper = T.resolve_config({**train, "profile": "paper", "model": "cnn3d"})
    assert paper.model_kwargs == {"widths": list(PAPER_WIDTHS), "blocks": list(PAPER_BLOCKS), "first_stride": 1, "dense": list(PAPER_DENSE), "dropout": 0.0}
    assert (paper.lr, paper.decay, paper.batch_size, paper.slice_depth) == (PAPER_LR, PAPER_DECAY, 16, 10)
    for profile in train["profiles"]:
        for model in ("cnn3d", "cnn_lstm"):
            T.resolve_config({**train, "profile": profile, "model": model})


def test_resolve_config_names_what_is_missing_or_wrong():
    with pytest.raises(KeyError, match="epochs"):
        T.resolve_config({k: v for k, v in TINY.items() if k != "epochs"})
    with pytest.raises(KeyError, match="not one of"):
        T.resolve_config({**TINY, "profile": "paper"})
    with pytest.raises(ValueError, match="cnn3d or cnn_lstm"):
        T.resolve_config({**TINY, "model": "vit"})
    lstm = T.resolve_config({**TINY, "model": "cnn_lstm"})
    assert lstm.model_kwargs == {"filters": [2], "rnn": "gru", "units": 4, "dense": [8], "dropout": 0.0}
    assert T.resolve_config({**TINY, "workers": 0}).workers >= 1


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
    rt = T.setup_runtime(0, mixed_precision="mixed_bfloat16", verbose=False)
    try:
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        assert rt.devices and rt.device_type in {"cpu", "gpu", "tpu"} and rt.backend in rt.describe()
    finally:
        T.setup_runtime(0, mixed_precision=False, verbose=False)
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(ValueError):
        T.setup_runtime(0, mixed_precision="float8", verbose=False)


# -- a tiny end-to-end fit --------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("store"), n_films=25, frames_per_film=(3, 14), size=8, seed=2)


def _train(corpus, out_dir, params=TINY):
    store, labels = corpus
    cfg = T.resolve_config(copy.deepcopy(params))
    runtime = T.setup_runtime(cfg.seed, cfg.mixed_precision, verbose=False)
    datasets, _ = make_split_datasets(store, labels, depth=cfg.slice_depth, batch_size=cfg.batch_size, seed=cfg.seed)
    model = T.build_configured_model(cfg, store.frame_shape)
    weights = T.present_genres(datasets["val"].slice_labels())
    T.compile_model(model, cfg, weights)
    result = T.fit(model, datasets["train"], datasets["val"], cfg, out_dir, live_dir=out_dir / "dvclive", verbose=0)
    T.write_model_info(out_dir, model, cfg, runtime, result, store.frame_shape)
    return result, datasets, weights


@pytest.fixture(scope="module")
def two_runs(corpus, tmp_path_factory):
    return [_train(corpus, tmp_path_factory.mktemp(f"run{i}")) for i in range(2)]


def test_fit_writes_the_stage_outputs(two_runs):
    (result, datasets, weights), _ = two_runs
    out = result.model_path.parent
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert {"loss", "val_loss", "auc_pr", "val_auc_pr", "binary_accuracy", "val_binary_accuracy"} <= set(history.columns)
    assert result.best_epoch == int(history.loc[history["val_auc_pr"].idxmax(), "epoch"])
    assert not (out / "checkpoint.weights.h5").exists()

    # model.keras is the best epoch, and loads without any of the study's code.
    model = keras.saving.load_model(out / "model.keras")
    scores = model.predict(datasets["val"], verbose=0)
    assert T.macro_auc_pr(datasets["val"].slice_labels(), scores, weights) == pytest.approx(result.best["val_auc_pr"], abs=1e-3)

    info = json.loads((out / "model_info.json").read_text())
    assert (info["model"], info["slice_depth"], info["size"], len(info["genres"])) == ("cnn3d", 4, 8, 18)
    assert info["backend"] == keras.config.backend() and info["device"]

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
        cfg = T.resolve_config({**TINY, "seed": seed})
        T.setup_runtime(cfg.seed, verbose=False)
        datasets, _ = make_split_datasets(corpus[0], corpus[1], depth=cfg.slice_depth, batch_size=cfg.batch_size, seed=cfg.seed)
        model = T.build_configured_model(cfg, corpus[0].frame_shape)
        return datasets["train"].batch_indices(0), model.get_layer("block1_conv1").get_weights()[0]

    (i1, w1), (i2, w2), (i3, w3) = first_batch_and_weights(1), first_batch_and_weights(1), first_batch_and_weights(2)
    assert (i1 == i2).all() and (w1 == w2).all()
    assert not (i1 == i3).all() and not (w1 == w3).all()
