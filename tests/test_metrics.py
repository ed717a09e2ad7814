"""The evaluation metrics against hand-computed cases and scikit-learn, and the baselines."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from lib.evaluate.baselines.colour import MeanColourBaseline, film_mean_colours
from lib.frames.store import FilmFrames, write_frame_store
from lib.scoring import metrics as M
from lib.scoring.trivial import all_negative_scores, label_prior_scores


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    y = (rng.random((60, 6)) < [0.5, 0.3, 0.2, 0.1, 0.05, 0.4]).astype(int)
    y[0, 4] = 1  # every genre has a positive film
    scores = np.clip(0.35 * y + rng.random(y.shape) * 0.7, 0, 1)
    scores[:, 2] = np.round(scores[:, 2], 1)  # ties, which AP must treat as one threshold
    return y, scores


def test_average_precision_by_hand():
    # Ranked: pos, neg, pos, neg -> precision at the two hits 1/1 and 2/3.
    assert M.average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx((1 + 2 / 3) / 2)
    # All scores tied: one threshold, AP = positive rate.
    assert M.average_precision(np.array([1, 0, 0, 0]), np.full(4, 0.3)) == pytest.approx(0.25)
    assert np.isnan(M.average_precision(np.zeros(3), np.array([0.1, 0.2, 0.3])))


def test_ap_matches_sklearn(data):
    y, s = data
    expected = [skm.average_precision_score(y[:, j], s[:, j]) for j in range(y.shape[1])]
    np.testing.assert_allclose(M.ap_per_genre(y, s), expected)
    assert M.macro_ap(y, s) == pytest.approx(skm.average_precision_score(y, s, average="macro"))
    assert M.micro_ap(y, s) == pytest.approx(skm.average_precision_score(y, s, average="micro"))


def test_genre_without_positive_is_excluded_not_zeroed(data):
    y, s = data
    y = y.copy()
    y[:, 3] = 0
    assert list(M.evaluated_genres(y)) == [True, True, True, False, True, True]
    keep = M.evaluated_genres(y)
    assert M.macro_ap(y, s) == pytest.approx(skm.average_precision_score(y[:, keep], s[:, keep], average="macro"))
    assert M.micro_ap(y, s) == pytest.approx(skm.average_precision_score(y[:, keep], s[:, keep], average="micro"))
    auc = M.roc_auc_per_genre(y, s)
    assert np.isnan(auc[3]) and not np.isnan(auc[keep]).any()
    table = M.per_genre_table(y, s, genres=list("abcdef"))
    assert table.loc[3, "support"] == 0 and np.isnan(table.loc[3, "ap"])


def test_roc_auc_and_f1_match_sklearn(data):
    y, s = data
    assert np.nanmean(M.roc_auc_per_genre(y, s)) == pytest.approx(skm.roc_auc_score(y, s, average="macro"))
    pred = M.binarize(s, 0.5)
    assert M.micro_f1(y, pred) == pytest.approx(skm.f1_score(y, pred, average="micro"))
    assert M.macro_f1(y, pred) == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    p, r, f = M.precision_recall_f1(y, pred)
    np.testing.assert_allclose(p, skm.precision_score(y, pred, average=None, zero_division=0))
    np.testing.assert_allclose(r, skm.recall_score(y, pred, average=None, zero_division=0))
    np.testing.assert_allclose(f, skm.f1_score(y, pred, average=None, zero_division=0))
    assert M.hamming_loss(y, pred) == pytest.approx(skm.hamming_loss(y, pred))
    assert M.subset_accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))


def test_accuracies_by_hand():
    y = np.array([[1, 0, 0], [0, 1, 1]])
    s = np.array([[0.2, 0.9, 0.1], [0.1, 0.3, 0.8]])
    # binary: row 0 gets genre 0 and 1 wrong, row 1 gets genre 1 wrong -> 3 of 6 right
    assert M.binary_accuracy(y, s) == pytest.approx(3 / 6)
    # categorical: row 0's top genre (1) is false, row 1's top (2) is true
    assert M.categorical_accuracy(y, s) == pytest.approx(0.5)
    # Predicting nothing: binary accuracy is the share of negatives, the paper's flattering number.
    assert M.binary_accuracy(y, np.zeros_like(s)) == pytest.approx(3 / 6)
    pred = M.binarize(s, 0.5)
    assert M.hamming_loss(y, pred) == pytest.approx(3 / 6)
    assert M.subset_accuracy(y, pred) == 0.0
    assert M.subset_accuracy(y, y) == 1.0


def test_per_genre_thresholds_are_applied_per_column():
    s = np.array([[0.3, 0.3], [0.6, 0.6]])
    np.testing.assert_array_equal(M.binarize(s, [0.25, 0.5]), [[1, 0], [1, 1]])


def test_tuned_thresholds_maximise_validation_f1(data):
    y, s = data
    thr = M.tune_thresholds(y, s)
    for j in range(y.shape[1]):
        best = M.precision_recall_f1(y[:, [j]], M.binarize(s[:, [j]], thr[j]))[2][0]
        for t in np.unique(s[:, j]):  # no candidate threshold does better
            assert M.precision_recall_f1(y[:, [j]], M.binarize(s[:, [j]], t))[2][0] <= best + 1e-12
    # Separable genre: the threshold is the lowest positive score.
    yy = np.array([[0], [0], [1], [1]])
    ss = np.array([[0.1], [0.4], [0.6], [0.9]])
    assert M.tune_thresholds(yy, ss)[0] == pytest.approx(0.6)
    # No positive in validation: keep the default.
    assert M.tune_thresholds(np.zeros((3, 1)), np.array([[0.2], [0.5], [0.9]]), default=0.5)[0] == 0.5


def test_equal_f1_goes_to_the_higher_threshold():
    # Thresholds 0.9 and 0.6 both give F1 = 2/3 (one of one predicted, or all four with both positives).
    y = np.array([[1], [0], [0], [1]])
    s = np.array([[0.9], [0.8], [0.7], [0.6]])
    f1 = {t: M.precision_recall_f1(y, M.binarize(s, t))[2][0] for t in (0.9, 0.6)}
    assert f1[0.9] == pytest.approx(f1[0.6])
    assert M.tune_thresholds(y, s)[0] == pytest.approx(0.9)


def test_thresholds_come_from_the_validation_split_only(data):
    y, s = data
    y_by_split = {"val": y[:30], "test": y[30:]}
    scores = {"model": (s[:30], s[30:]), "flat": (np.full((30, 6), 0.3), np.full((30, 6), 0.7))}
    got = M.thresholds_from_validation(y_by_split, scores)
    assert set(got) == set(scores)
    for name, (s_val, _) in scores.items():
        np.testing.assert_array_equal(got[name], M.tune_thresholds(y[:30], s_val))
    # Tuning on test would have chosen other thresholds, so the test above can tell the two apart.
    assert not np.array_equal(got["model"], M.tune_thresholds(y[30:], s[30:]))
    # Test labels and scores are never read: the test halves may hold anything at all.
    blind = M.thresholds_from_validation({"val": y[:30], "test": None}, {n: (v, None) for n, (v, _) in scores.items()})
    for name in scores:
        np.testing.assert_array_equal(blind[name], got[name])


def test_bootstrap_ci_properties(data):
    y, s = data
    low, high = M.bootstrap_ci(y, s, n_boot=200, seed=1)
    assert low < M.macro_ap(y, s) < high
    assert (low, high) == M.bootstrap_ci(y, s, n_boot=200, seed=1)  # seeded
    wide = M.bootstrap_ci(y, s, n_boot=200, seed=1, level=0.99)
    assert wide[0] <= low and wide[1] >= high
    # Perfect scores: every resample has AP 1, so the interval collapses.
    assert M.bootstrap_ci(y, y.astype(float), n_boot=50, seed=0) == (1.0, 1.0)
    # Four times as many films: a narrower interval.
    y4, s4 = np.tile(y, (4, 1)), np.tile(s, (4, 1))
    low4, high4 = M.bootstrap_ci(y4, s4, n_boot=200, seed=1)
    assert high4 - low4 < high - low


def test_bias_corrected_interval_is_centred_where_rare_genres_drop_out():
    # 20 films; 6 rare genres with two positives each and scores that are noise. Resamples
    # often lose a rare (hard, low-AP) genre, so resampled macro-APs lean high and the
    # plain percentile interval sits almost entirely above the estimate.
    rng = np.random.default_rng(2)
    y = np.zeros((20, 8), dtype=int)
    y[:10, :2] = 1
    y[np.arange(6), np.arange(2, 8)] = 1
    y[np.arange(6, 12), np.arange(2, 8)] = 1
    s = rng.random(y.shape)
    s[:, :2] += 0.6 * y[:, :2]
    estimate = M.macro_ap(y, s)
    plain = M.bootstrap_ci(y, s, n_boot=400, seed=0, method="percentile")
    low, high = M.bootstrap_ci(y, s, n_boot=400, seed=0)

    def position(lo, hi):
        return (estimate - lo) / (hi - lo)  # 0.5 = centred

    assert low <= estimate <= high
    assert abs(position(low, high) - 0.5) < abs(position(*plain) - 0.5)
    with pytest.raises(ValueError, match="method"):
        M.bootstrap_ci(y, s, n_boot=5, method="bca")


def test_paired_bootstrap_separates_a_better_scorer(data):
    y, s = data
    prior = label_prior_scores(y, len(y))
    low, high = M.paired_bootstrap_ci(y, s, prior, n_boot=200, seed=0)
    assert 0 < low < high
    assert M.paired_bootstrap_ci(y, s, s, n_boot=20, seed=0) == (0.0, 0.0)


def test_metrics_summary_keys_and_baseline_facts(data):
    y, s = data
    n, g = y.shape
    thr = M.tune_thresholds(y, s)
    summary = M.metrics_summary(y, s, thr, n_boot=50, seed=0)
    assert {
        "macro_ap",
        "micro_ap",
        "macro_roc_auc",
        "micro_f1_at_0.5",
        "macro_f1_tuned",
        "hamming_loss",
        "subset_accuracy",
        "binary_accuracy_paper",
        "categorical_accuracy_keras",
        "macro_ap_ci95_low",
        "macro_ap_ci95_high",
    } <= set(summary)
    neg = M.metrics_summary(y, all_negative_scores(n, g), n_boot=20)
    # All-negative: binary accuracy equals the share of negative labels, F1 is 0, AUC is chance.
    assert neg["binary_accuracy_paper"] == pytest.approx(1 - y.mean())
    assert neg["micro_f1_at_0.5"] == 0 and neg["macro_roc_auc"] == pytest.approx(0.5)
    prior = M.metrics_summary(y, label_prior_scores(y, n), n_boot=20)
    # A constant score per genre: AP equals each genre's positive rate, ROC-AUC 0.5.
    assert prior["macro_ap"] == pytest.approx(y.mean(axis=0).mean())
    assert prior["macro_roc_auc"] == pytest.approx(0.5)
    assert summary["macro_ap"] > prior["macro_ap"]


def test_colour_baseline_learns_a_colour_cue(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    y = np.zeros((n, 3), dtype=int)
    y[: n // 2, 0] = 1  # genre 0: red films
    y[:, 1] = rng.random(n) < 0.5  # genre 1: unrelated to colour
    # genre 2: never positive in training -> a constant score, not a crash
    films = []
    for i in range(n):
        frames = rng.integers(0, 60, size=(3, 8, 8, 3), dtype=np.uint8)
        if y[i, 0]:
            frames[..., 0] += 150
        films.append(FilmFrames(i + 1, f"yt{i}", frames))
    store = write_frame_store(tmp_path / "store", films)
    X = film_mean_colours(store, range(1, n + 1))
    assert X.shape == (n, 3) and (X >= 0).all() and (X <= 1).all()
    np.testing.assert_allclose(X[0], store.film(1).reshape(-1, 3).mean(axis=0) / 255)
    model = MeanColourBaseline(seed=0).fit(X, y)
    p = model.predict_proba(X)
    assert p.shape == (n, 3)
    assert M.average_precision(y[:, 0], p[:, 0]) == pytest.approx(1.0)
    assert (p[:, 2] == 0).all()


def test_json_safe_turns_non_finite_floats_into_null_at_any_depth():
    import json

    from lib.scoring.metrics import json_safe

    out = json_safe({"a": float("nan"), "b": {"c": float("inf"), "d": 0.5}, "e": 3})
    assert out == {"a": None, "b": {"c": None, "d": 0.5}, "e": 3}
    json.dumps(out, allow_nan=False)  # raises if a NaN slipped through


# Four films, two genres, hand-computed below (precision after each ranked film).
PEER_Y = np.array([[1, 0], [0, 1], [1, 1], [0, 1]])
PEER_S = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.6], [0.5, 0.1]])


def test_trapezoid_ap_by_hand():
    # Ranked pos, neg, pos, neg. PR points (0,1) (.5,1) (.5,.5) (1,2/3): area .5 + .5 * (1/2 + 2/3) / 2.
    assert M.pr_auc_trapezoid([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2)
    # The step sum pays the second positive at 2/3: .5 + .5 * 2/3.
    assert M.average_precision(np.array([1, 0, 1, 0]), [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # A negative first: step 1/2, trapezoid from (0, 0) to (1, 1/2) = 1/4.
    assert M.pr_auc_trapezoid([0, 1], [0.9, 0.8]) == pytest.approx(0.25)
    # Ties of a positive with negatives turn it the other way: step .5 + .5 * 2/5, trapezoid .5 + .5 * (1 + 2/5) / 2.
    y, s = [1, 1, 0, 0, 0], [0.9, 0.5, 0.5, 0.5, 0.5]
    assert M.average_precision(np.array(y), s) == pytest.approx(0.7)
    assert M.pr_auc_trapezoid(y, s) == pytest.approx(0.85)
    assert np.isnan(M.pr_auc_trapezoid([0, 0], [0.1, 0.2]))


def test_trapezoid_ap_is_divitas_sklearn_auc_of_the_pr_curve(data):
    y, s = data
    rng = np.random.default_rng(3)
    for j in range(y.shape[1]):
        precision, recall, _ = skm.precision_recall_curve(y[:, j], s[:, j])
        assert M.pr_auc_trapezoid(y[:, j], s[:, j]) == pytest.approx(skm.auc(recall, precision), abs=1e-12)
    for _ in range(50):  # many ties
        yy = rng.integers(0, 2, 12)
        yy[0] = 1
        ss = np.round(rng.random(12), 1)
        precision, recall, _ = skm.precision_recall_curve(yy, ss)
        assert M.pr_auc_trapezoid(yy, ss) == pytest.approx(skm.auc(recall, precision), abs=1e-12)


def test_peer_metrics_by_hand():
    trap = M.peer_ranking_metrics(PEER_Y, PEER_S, "trapezoid")
    # Genre 0 ranks pos, neg, neg, pos: .5 + .5 * (1/3 + 1/2) / 2. Genre 1 ranks pos, pos, neg, pos: 2/3 + 1/3 * (2/3 + 3/4) / 2.
    g0, g1 = 0.5 + 0.5 * (1 / 3 + 1 / 2) / 2, 2 / 3 + (2 / 3 + 3 / 4) / 6
    assert trap["macro"] == pytest.approx((g0 + g1) / 2)
    assert trap["weighted"] == pytest.approx((2 * g0 + 3 * g1) / 5)  # 2 and 3 positives
    # Films: (pos first) 1, (neg first) 1/4, 1, 1/4.
    assert trap["samples"] == pytest.approx(0.625)
    # All 8 labels pooled, ranked + - + + - + - +: gains paid at (P_here + P_before) / 2.
    p = [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5, 4 / 6, 4 / 7, 5 / 8]
    assert trap["micro"] == pytest.approx(
        (1 + (p[2] + p[1]) / 2 + (p[3] + p[2]) / 2 + (p[5] + p[4]) / 2 + (p[7] + p[6]) / 2) / 5
    )
    step = M.peer_ranking_metrics(PEER_Y, PEER_S, "step")
    assert step["macro"] == pytest.approx((0.75 + (1 / 3 + 1 / 3 + 0.25)) / 2)
    assert step["samples"] == pytest.approx(0.75)
    assert step["micro"] == pytest.approx(skm.average_precision_score(PEER_Y.ravel(), PEER_S.ravel()))
    assert step["weighted"] == pytest.approx(skm.average_precision_score(PEER_Y, PEER_S, average="weighted"))
    assert step["samples"] == pytest.approx(skm.average_precision_score(PEER_Y, PEER_S, average="samples"))


def test_peer_macro_leaves_out_a_genre_without_positive():
    y = np.c_[PEER_Y, np.zeros(4, int)]
    s = np.c_[PEER_S, np.linspace(0, 1, 4)]
    assert M.peer_ranking_metrics(y, s)["macro"] == pytest.approx(M.peer_ranking_metrics(PEER_Y, PEER_S)["macro"])
    assert M.trapezoid_macro_ap(y, s) == pytest.approx(M.peer_ranking_metrics(PEER_Y, PEER_S)["macro"])


def test_summary_carries_peer_metrics_with_intervals(data):
    y, s = data
    summary = M.metrics_summary(y, s, M.tune_thresholds(y, s), n_boot=50, seed=0)
    for name in ("uAP", "mAP", "sAP", "macro_ap", "macro_f1_tuned"):
        assert summary[f"{name}_ci95_low"] <= summary[name] <= summary[f"{name}_ci95_high"], name
    assert summary["mAP_step"] == pytest.approx(summary["macro_ap"])
    assert summary["wAP"] != summary["mAP"]


def test_bootstrap_intervals_match_the_single_metric_ones(data):
    y, s = data
    prior = label_prior_scores(y, len(y))
    many = M.bootstrap_intervals(y, s, {"macro_ap": M.macro_ap}, n_boot=100, seed=4)
    assert many["macro_ap"] == M.bootstrap_ci(y, s, n_boot=100, seed=4)
    paired = M.bootstrap_intervals(y, s, {"macro_ap": M.macro_ap}, n_boot=100, seed=4, against=prior)
    assert paired["macro_ap"] == M.paired_bootstrap_ci(y, s, prior, n_boot=100, seed=4)


def test_trapezoid_gives_a_constant_scorer_half_of_one_plus_the_positive_rate():
    # Why the report reads trapezoid AP against the baselines: ties are one straight line from (0, 1).
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    assert M.pr_auc_trapezoid(y, np.zeros(10)) == pytest.approx((1 + 0.2) / 2)
    assert M.average_precision(y, np.zeros(10)) == pytest.approx(0.2)
