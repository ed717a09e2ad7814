"""Saved single-parameter experiments compared with the study they vary, paired on the same films."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lib.apps import experiments as E
from lib.core.genres import GENRES

N_FILMS = 60


def _labels(rng) -> pd.DataFrame:
    y = (rng.random((N_FILMS, len(GENRES))) < 0.3).astype(int)
    y[0] = 1  # every genre has a positive test film
    frame = pd.DataFrame(y, columns=list(GENRES))
    frame.insert(0, "movieId", np.arange(100, 100 + N_FILMS))
    frame.insert(1, "youtubeId", [f"yt{i:04d}" for i in range(N_FILMS)])  # labels.csv's contract (lib.prepare.labels)
    frame.insert(2, "title", [f"Film {i}" for i in range(N_FILMS)])
    frame["split"] = "test"
    frame["copies"] = 1
    extra = frame.iloc[:5].assign(movieId=np.arange(5), split="train")  # not test: must not be saved
    return pd.concat([extra, frame], ignore_index=True)


def _write_study(root, labels: pd.DataFrame, scores: dict[str, np.ndarray]):
    tables = root / "outputs" / "evaluate" / "tables"
    test = labels[labels["split"] == "test"]
    for run, s in scores.items():
        (tables / run).mkdir(parents=True)
        frame = pd.DataFrame(s, columns=list(GENRES))
        frame.insert(0, "movieId", test["movieId"].to_numpy())
        frame.insert(1, "title", "x")
        frame.to_csv(tables / run / E.SCORES_NAME, index=False)
    (tables.parent / "metrics.json").write_text(json.dumps({"runs": sorted(scores)}))
    labels_csv = root / "labels.csv"
    labels.to_csv(labels_csv, index=False)
    return tables, labels_csv


@pytest.fixture
def study(tmp_path):
    rng = np.random.default_rng(0)
    labels = _labels(rng)
    y = labels[labels["split"] == "test"][list(GENRES)].to_numpy()
    noisy = np.clip(0.25 * y + rng.random(y.shape), 0, 1)  # weak but real signal
    return tmp_path, labels, y, noisy


def _save(tmp_path, name, labels, scores):
    root = tmp_path / name
    tables, labels_csv = _write_study(root, labels, scores)
    return E.save(name, tables_dir=tables, out_dir=tmp_path / "experiments", labels_csv=labels_csv, note="-S x=1")


def test_save_keeps_scores_test_labels_and_metrics(study):
    tmp_path, labels, y, noisy = study
    dest = _save(tmp_path, "default", labels, {"cnn3d-seed42": noisy, "tsn-seed42": noisy})
    assert sorted(p.name for p in dest.iterdir()) == [
        "cnn3d-seed42",
        "metrics.json",
        "note.txt",
        "test_labels.csv",
        "tsn-seed42",
    ]
    saved_labels, runs = E.load(dest)
    assert list(saved_labels.index) == list(range(100, 100 + N_FILMS))
    np.testing.assert_array_equal(saved_labels.to_numpy(), y)
    np.testing.assert_allclose(runs["tsn-seed42"].to_numpy(), noisy)


def test_a_better_experiment_is_measurably_higher_and_an_identical_one_is_not(study):
    tmp_path, labels, y, noisy = study
    base = _save(tmp_path, "default", labels, {"cnn3d-seed42": noisy})
    better = _save(tmp_path, "better", labels, {"cnn3d-seed42": np.clip(noisy + 0.6 * y, 0, 2)})
    same = _save(tmp_path, "same", labels, {"cnn3d-seed42": noisy})
    added = _save(tmp_path, "added", labels, {"cnn3d-seed42": noisy, "cnn_lstm-seed42": 1 - noisy})
    table = E.compare(base, {"better": better, "same": same, "added": added}, n_boot=200).set_index(
        ["experiment", "run"]
    )
    paired = E.compare(base, {"added": added}, against={"cnn_lstm-seed42": "cnn3d-seed42"}, n_boot=200).set_index(
        ["experiment", "run"]
    )
    assert paired.loc[("added", "cnn_lstm-seed42"), "against"] == "cnn3d-seed42"
    assert paired.loc[("added", "cnn_lstm-seed42"), "verdict"] == "lower", "1 - scores ranks the genres backwards"
    assert "(vs cnn3d-seed42) | lower |" in E.markdown(paired.reset_index())
    assert table.loc[("better", "cnn3d-seed42"), "verdict"] == "higher"
    assert table.loc[("better", "cnn3d-seed42"), "diff_low"] > 0
    assert table.loc[("same", "cnn3d-seed42"), "diff"] == 0
    assert table.loc[("same", "cnn3d-seed42"), "verdict"] == "no clear difference"
    assert np.isnan(table.loc[("added", "cnn_lstm-seed42"), "diff"]), (
        "a run the baseline lacks has nothing to pair with"
    )
    row = table.loc[("default", "cnn3d-seed42")]
    assert row["low"] <= row["macro_ap"] <= row["high"] and row["n_films"] == N_FILMS
    assert table.loc[("same", "cnn3d-seed42"), "identical"] and not table.loc[("better", "cnn3d-seed42"), "identical"]
    text = E.markdown(table.reset_index())
    assert "| better | cnn3d-seed42 | 60 |" in text and "higher" in text
    assert "| same |" not in text, "a run the experiment left unchanged is noise in the table"
    assert "| same | cnn3d-seed42 | 60 |" in E.markdown(table.reset_index(), show_identical=True)


def test_an_experiment_that_changed_the_test_labels_is_refused(study):
    tmp_path, labels, y, noisy = study
    base = _save(tmp_path, "default", labels, {"cnn3d-seed42": noisy})
    relabelled = labels.copy()
    relabelled.loc[relabelled["split"] == "test", "Drama"] = 1 - relabelled.loc[relabelled["split"] == "test", "Drama"]
    other = _save(tmp_path, "relabelled", relabelled, {"cnn3d-seed42": noisy})
    with pytest.raises(ValueError, match="test labels differ"):
        E.compare(base, {"relabelled": other}, n_boot=50)


def test_save_refuses_bad_names_and_an_unevaluated_workspace(tmp_path):
    with pytest.raises(ValueError, match="plain folder name"):
        E.save("../escape", tables_dir=tmp_path, out_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="evaluate stage"):
        E.save("x", tables_dir=tmp_path / "none", out_dir=tmp_path)
