"""The comparison of every run and baseline: run folders, loading a run through its kind,
tables, seed means, pairs, metrics.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES
from lib.core.params import to_dict
from lib.evaluate import compare as C
from lib.evaluate.baselines import BASELINES, NEEDS, BaselineInputs, baseline_scores
from lib.frames.audio import AUDIO_FEATURES
from lib.frames.features import FEATURES
from lib.loaders.slices import write_synthetic_corpus
from lib.models.info import ModelInfo
from lib.models.kinds import get_kind, load_run
from lib.models.scoring import predict_films
from lib.scoring import metrics as M

DEPTH, SIZE = 4, 16


def tiny_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((DEPTH, SIZE, SIZE, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    return keras.Model(
        inputs, keras.layers.Dense(len(GENRES), activation="sigmoid")(keras.layers.Dense(4, activation="tanh")(x))
    )


SLICES = {"slice_depth": DEPTH, "max_slices_per_film": None, "epochs": 1, "patience": 1}
SECTIONS = {  # train.<kind> as a run records it in model_info.json
    "cnn3d": {
        "profile": "p",
        "profiles": {
            "p": {
                "widths": [2],
                "blocks": [1],
                "first_stride": 1,
                "dense": [],
                "dropout": 0.0,
                "lr": 1e-3,
                "decay": 0.0,
                "batch_size": 4,
                "batchnorm": "precise",
            }
        },
        **SLICES,
    },
    "cnn_lstm": {
        "filters": [2],
        "rnn": "lstm",
        "units": 2,
        "dense": [],
        "dropout": 0.0,
        "lr": 1e-3,
        "decay": 0.0,
        "batch_size": 4,
        "batchnorm": "precise",
        **SLICES,
    },
}


def info(kind: str, seed: int) -> ModelInfo:
    settings = to_dict(get_kind(kind).parse(SECTIONS[kind]))
    return ModelInfo(
        model=kind, genres=list(GENRES), frame_shape=[SIZE, SIZE, 3], frames=None, settings=settings, seed=seed
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    store, labels = write_synthetic_corpus(root / "store", n_films=30, size=SIZE)
    train_dir = root / "train"
    plan = {"models": ["cnn3d", "cnn_lstm"], "seeds": [1, 2]}
    for k, (model, seed) in enumerate(C.study_runs(plan)):
        run = train_dir / C.run_name(model, seed)
        run.mkdir(parents=True)
        if k == 0:  # only the first run's model is ever loaded; the others just need to exist
            tiny_model(k).save(run / "model.keras")
        else:
            (run / "model.keras").write_bytes(b"")
        info(model, seed).write(run)
    return store, labels, train_dir, plan


def test_run_names_and_the_study_order():
    assert C.run_name("cnn3d", 42) == "cnn3d-seed42"
    assert C.study_runs({"models": ["a", "b"], "seeds": [1, 2]}) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    with pytest.raises(ValueError, match="twice"):
        C.study_runs({"models": ["a", "a"], "seeds": [1]})
    with pytest.raises(ValueError, match="at least one"):
        C.study_runs({"models": [], "seeds": [1]})


def test_load_runs_finds_every_run_and_names_a_missing_one(study):
    _, _, train_dir, plan = study
    runs = C.load_runs(train_dir, plan)
    assert [r.name for r in runs] == ["cnn3d-seed1", "cnn3d-seed2", "cnn_lstm-seed1", "cnn_lstm-seed2"]
    assert runs[2].model_name == "cnn_lstm" and runs[2].seed == 1 and runs[2].info == info("cnn_lstm", 1)
    assert runs[2].info.settings["slice_depth"] == DEPTH
    with pytest.raises(FileNotFoundError, match=r"\['tsn-seed1'\].*cnn3d-seed1"):
        C.load_runs(train_dir, {"models": ["tsn"], "seeds": [1]})


def test_a_run_loads_through_its_kind_and_scores_as_predict_films(study):
    store, labels, train_dir, plan = study
    run = C.load_runs(train_dir, plan)[0]
    loaded = run.load()
    assert loaded.kind is get_kind("cnn3d") and loaded.info is run.info
    ids = labels.loc[labels.split == "test", "movieId"].tolist()[::-1]
    films, slices = loaded.predict_films(store, ids, how="max", batch_size=5)
    expected, expected_slices = predict_films(loaded.model, store, ids, DEPTH, how="max")
    assert list(films.index) == ids and list(films.columns) == ["n_slices", *GENRES]
    pd.testing.assert_frame_equal(films, expected)
    assert len(slices) == len(expected_slices) == films["n_slices"].sum()
    with pytest.raises(ValueError, match="unknown model kind 'mystery'"):
        load_run(run.path, dataclasses.replace(run.info, model="mystery"))


def test_baselines_are_a_dict_scored_on_the_requested_films(study):
    store, labels, _, _ = study
    ids = {s: labels.loc[labels.split == s, "movieId"].tolist() for s in ("train", "val", "test")}
    y_train = labels.loc[labels.split == "train", list(GENRES)].to_numpy()
    # Computable features that tell the first genre apart, so the features baseline has a signal to find.
    rng = np.random.default_rng(0)
    all_ids = labels["movieId"].to_numpy()
    features = pd.DataFrame(rng.normal(size=(len(all_ids), len(FEATURES))), columns=list(FEATURES))
    features[FEATURES[0]] += 3 * labels[GENRES[0]].to_numpy()
    features.insert(0, "movieId", all_ids)
    # a table written before the soundtrack: the audio baselines are left out, not faked
    video_only = baseline_scores(BaselineInputs(store, ids, y_train, seed=0, features=features))
    assert list(video_only) == [n for n in BASELINES if n not in ("computable_audio_lr", "computable_av_lr")]
    with pytest.raises(ValueError, match="needs columns"):
        baseline_scores(BaselineInputs(store, ids, y_train, seed=0, features=features), names=["computable_audio_lr"])
    sound = pd.DataFrame(rng.normal(size=(len(all_ids), len(AUDIO_FEATURES))), columns=list(AUDIO_FEATURES))
    sound[AUDIO_FEATURES[0]] += 3 * labels[GENRES[1]].to_numpy()
    features = pd.concat([features, sound], axis=1)
    got = baseline_scores(BaselineInputs(store, ids, y_train, seed=0, features=features))
    assert list(got) == list(BASELINES)
    # Without the features table those baselines are left out, not faked; asked for by name, it is an error.
    without = baseline_scores(BaselineInputs(store, ids, y_train, seed=0))
    assert list(without) == [n for n in BASELINES if not n.startswith("computable_")]
    with pytest.raises(ValueError, match="needs BaselineInputs.features"):
        baseline_scores(BaselineInputs(store, ids, y_train, seed=0), names=["computable_features_lr"])
    # each reads its own columns: with the picture's all constant, its scores cannot tell films apart
    flat = features.assign(**{c: 0.0 for c in FEATURES})
    fitted = baseline_scores(BaselineInputs(store, ids, y_train, seed=0, features=flat), ("test",))
    spread = {name: fitted[name]["test"].std(axis=0).max() for name in NEEDS}
    assert spread["computable_features_lr"] < 1e-9 < min(spread["computable_audio_lr"], spread["computable_av_lr"])


def summaries_for(runs, values):
    return {
        r.name: {"mAP": v, "mAP_ci95_low": v - 0.1, "mAP_ci95_high": v + 0.1, "uAP": v / 2}
        for r, v in zip(runs, values)
    }


def test_seed_aggregate_is_mean_and_sample_std_over_seeds(study):
    runs = C.load_runs(study[2], study[3])
    agg = C.seed_aggregate(summaries_for(runs, [0.5, 0.7, 0.2, 0.2]), runs)
    assert set(agg) == {"cnn3d (mean of 2 seeds)", "cnn_lstm (mean of 2 seeds)"}
    assert agg["cnn3d (mean of 2 seeds)"]["mAP"] == pytest.approx(0.6)
    assert agg["cnn3d (mean of 2 seeds)"]["mAP_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert agg["cnn_lstm (mean of 2 seeds)"]["mAP_std"] == 0 and agg["cnn3d (mean of 2 seeds)"]["n_seeds"] == 2
    assert "mAP_ci95_low" not in agg["cnn3d (mean of 2 seeds)"]
    assert C.seed_aggregate(summaries_for(runs[:1], [0.5]), runs[:1]) == {}  # one seed: no aggregate


def test_comparison_table_formats_intervals_std_and_the_flag(study):
    runs = C.load_runs(study[2], study[3])
    summaries = summaries_for(runs, [0.5, 0.7, 0.2, 0.2])
    agg = C.seed_aggregate(summaries, runs)
    y_small = np.zeros((3, len(GENRES)), int)
    y_small[:, 0] = 1
    table = C.comparison_table({**summaries, **agg}, y_small, metrics=("mAP", "uAP"))
    text = C.format_comparison(table, metrics=("mAP", "uAP"))
    assert text.loc["cnn3d-seed1", "mAP"] == "0.500 [0.400, 0.600]"
    assert text.loc["cnn3d (mean of 2 seeds)", "mAP"] == f"0.600 ± {np.std([0.5, 0.7], ddof=1):.3f}"
    assert text.loc["cnn3d-seed1", "uAP"] == "0.250"
    assert (table["flag"].str.contains("too few films")).all()
    y_big = np.zeros((40, len(GENRES)), int)
    y_big[:, 0] = 1
    assert (C.comparison_table(summaries, y_big, metrics=("mAP",))["flag"] == "").all()


def test_pairs_and_paired_table(study):
    runs = C.load_runs(study[2], study[3])
    pairs = C.pairs_to_compare(runs, ["label_prior"])
    assert pairs[:2] == [("cnn3d-seed1", "cnn_lstm-seed1"), ("cnn3d-seed2", "cnn_lstm-seed2")]
    assert len(pairs) == 2 + 4
    rng = np.random.default_rng(0)
    y = (rng.random((60, len(GENRES))) < 0.3).astype(int)
    good = np.clip(0.6 * y + 0.5 * rng.random(y.shape), 0, 1)
    scores = {"good": good, "noise": rng.random(y.shape), "same": good.copy()}
    table = C.paired_table(y, scores, [("good", "noise"), ("noise", "good"), ("good", "same")], n_boot=100, seed=0)
    assert list(table["mAP_verdict"]) == ["a better", "b better", "no clear difference"]
    assert table.loc[2, "mAP_diff"] == 0 and table.loc[0, "mAP_low"] > 0


def test_metrics_document_has_counts_runs_means_baselines_and_pairs(study):
    runs = C.load_runs(study[2], study[3])
    summaries = {**summaries_for(runs, [0.5, 0.7, 0.2, float("nan")]), "label_prior": {"mAP": 0.1}}
    agg = C.seed_aggregate(summaries, runs)
    paired = pd.DataFrame([{"a": "cnn3d-seed1", "b": "label_prior", "mAP_diff": 0.4, "mAP_low": 0.3, "mAP_high": 0.5}])
    doc = C.metrics_document({"n_test_films": 3}, summaries, agg, paired, runs, {"label_prior": {"corr": 1.0}})
    assert doc["data"] == {"n_test_films": 3}
    assert doc["runs"]["cnn3d-seed2"] == {"model": "cnn3d", "seed": 2, **summaries["cnn3d-seed2"]}
    assert doc["runs"]["cnn_lstm-seed2"]["mAP"] is None  # JSON has no NaN
    assert doc["baselines"] == {"label_prior": {"mAP": 0.1, "corr": 1.0}}
    assert doc["paired"]["cnn3d-seed1_vs_label_prior"]["mAP_diff"] == 0.4
    assert set(doc["seed_mean"]) == {"cnn3d", "cnn_lstm"} and doc["seed_mean"]["cnn3d"]["mAP"] == pytest.approx(0.6)
    json.dumps(doc, allow_nan=False)


def test_all_metrics_table_of_several_seeds_formats_as_numbers(study):
    """The evaluate report's "All metrics" table once failed on a seed mean's model name."""
    runs = C.load_runs(study[2], study[3])
    summaries = summaries_for(runs, [0.5, 0.7, 0.2, 0.2])
    everything = M.comparison_table({**summaries, **C.seed_aggregate(summaries, runs)})
    assert "model" not in everything.index and "n_seeds" in everything.index
    assert everything.loc["mAP", "cnn3d (mean of 2 seeds)"] == pytest.approx(0.6)
    everything.style.format("{:.3f}", na_rep="n/a").to_html()  # raised ValueError on the text cell


def test_the_soundtrack_ablation_per_genre_is_the_fused_arm_minus_frames_only_per_seed():
    from lib.evaluate.compare import ABLATION, Run, ablation_genres

    rng = np.random.default_rng(0)
    y = (rng.random((40, 3)) < 0.3).astype(int)
    y[0] = 1  # every genre has a positive
    genres = ["A", "B", "C"]
    perfect, noise = y + 0.0, rng.random(y.shape)
    runs, scores = [], {}
    for seed in (1, 2):
        for model, s in (("tsn", noise), ("tsn_audio", noise), ("tsn_av", perfect)):
            name = f"{model}-seed{seed}"
            runs.append(Run(name, model, seed, Path("."), None))
            scores[name] = s
    table = ablation_genres(y, scores, runs, genres)
    assert list(table.columns) == ["positives", *ABLATION, "gain", "seeds_gaining"]
    assert np.allclose(table["frames + sound"], 1.0)
    expected = 1.0 - M.ap_per_genre(y, noise)
    assert np.allclose(table.loc[genres, "gain"], expected)
    assert set(table["seeds_gaining"]) == {"2 of 2"}
    assert table["gain"].is_monotonic_decreasing
    # the figure: a bar per genre, green where sound helps, and the three arms' dots beside it
    from matplotlib.colors import to_rgba

    from lib.evaluate.plots import ablation_gain_bars

    table.loc["A", "gain"] = -0.1
    fig = ablation_gain_bars(table, list(ABLATION))
    bars = fig.axes[1].patches
    assert len(bars) == 3 and len(fig.axes[0].collections) == 3
    colours = {round(b.get_width(), 6): b.get_facecolor() for b in bars}
    assert colours[-0.1] == to_rgba("tab:red") and all(c == to_rgba("tab:green") for w, c in colours.items() if w > 0)
    # without the fused arm there is no ablation to show
    assert ablation_genres(y, scores, [r for r in runs if r.model_name != "tsn_av"], genres).empty


def test_late_fusion_picks_the_sound_weight_on_validation_and_never_loses_to_frames_there():
    from lib.evaluate.compare import Run, late_fusion_pairs, late_fusion_weight, late_fusions

    rng = np.random.default_rng(1)
    y = {s: (rng.random((60, 4)) < 0.3).astype(int) for s in ("val", "test")}
    for s in y:
        y[s][0] = 1

    # frames see genres 0-1, the sound genres 2-3: a blend beats both arms
    def arm(labels, seen):
        out = rng.random(labels.shape) * 0.5
        out[:, seen] += labels[:, seen]
        return out

    frames = {s: arm(y[s], [0, 1]) for s in y}
    sound = {s: arm(y[s], [2, 3]) for s in y}
    w = late_fusion_weight(y["val"], frames["val"], sound["val"])
    assert 0 < w < 1
    blend = M.macro_ap(y["val"], (1 - w) * frames["val"] + w * sound["val"])
    assert blend >= M.macro_ap(y["val"], frames["val"]) and blend >= M.macro_ap(y["val"], sound["val"])
    # a useless sound arm gets weight 0: late fusion is then frames only
    assert late_fusion_weight(y["val"], frames["val"], np.zeros_like(sound["val"])) == 0.0
    runs = [Run(f"{m}-seed7", m, 7, Path("."), None) for m in ("tsn", "tsn_audio", "tsn_av")]
    scores = {"tsn-seed7": (frames["val"], frames["test"]), "tsn_audio-seed7": (sound["val"], sound["test"])}
    fused = late_fusions(y, scores, runs)
    assert list(fused) == ["late_fusion-seed7"] and fused["late_fusion-seed7"].weight == w
    assert np.allclose(fused["late_fusion-seed7"].test, (1 - w) * frames["test"] + w * sound["test"])
    assert late_fusion_pairs(fused, runs) == [
        ("late_fusion-seed7", "tsn-seed7"),
        ("late_fusion-seed7", "tsn_av-seed7"),
        ("late_fusion-seed7", "chance"),
    ]
    assert late_fusions(y, scores, runs[:1]) == {}
