"""Chance as it is (lib/scoring/chance.py): the exact expected AP of a random ranking,
checked against permutations, and the paired comparison against it."""

from __future__ import annotations

import numpy as np
import pytest

from lib.evaluate.compare import paired_table
from lib.scoring import chance as Ch
from lib.scoring import metrics as M


@pytest.mark.parametrize("n, p", [(107, 1), (107, 7), (107, 48), (30, 29), (5, 2)])
@pytest.mark.parametrize("kind", ["step", "trapezoid"])
def test_expected_ap_is_the_mean_over_random_rankings(n, p, kind):
    rng = np.random.default_rng(n * 100 + p)
    y = np.zeros((n, 1), int)
    y[:p] = 1
    draws = M._ap_columns(np.repeat(y, 4000, axis=1), rng.random((n, 4000)), kind)
    se = draws.std() / np.sqrt(draws.size)
    assert float(Ch.expected_random_ap(n, p, kind)) == pytest.approx(draws.mean(), abs=4 * se + 1e-12)


def test_chance_is_above_the_positive_rate_when_positives_are_few():
    n = 107
    assert float(Ch.expected_random_ap(n, 1)) == pytest.approx(sum(1 / k for k in range(1, n + 1)) / n)
    assert float(Ch.expected_random_ap(n, 7)) > 1.5 * 7 / n
    assert float(Ch.expected_random_ap(n, n)) == pytest.approx(1.0)
    assert np.isnan(Ch.expected_random_ap(n, 0))
    y = np.zeros((n, 3), int)
    y[:7, 0], y[:30, 1] = 1, 1  # the third genre has no positive: left out, as in macro_ap
    assert Ch.chance_macro_ap(y) == pytest.approx(np.mean([Ch.expected_random_ap(n, 7), Ch.expected_random_ap(n, 30)]))


@pytest.fixture(scope="module")
def labels():
    rng = np.random.default_rng(5)
    prevalence = np.linspace(0.07, 0.45, 18)
    return (rng.random((60, 18)) < prevalence).astype(int), (rng.random((107, 18)) < prevalence).astype(int)


def test_every_ap_metric_of_chance_matches_random_scorers(labels):
    y_val, y_test = labels
    draws = Ch.random_draws(y_val, y_test, n_draws=300, seed=1)
    values = Ch.draw_values(draws)
    exact = Ch.chance_ranking_metrics(y_test)
    assert set(exact) >= {"macro_ap", "micro_ap", "uAP", "mAP", "wAP", "sAP", "mAP_step", "sAP_step", "macro_roc_auc"}
    for name, value in exact.items():
        v = values[name]
        assert value == pytest.approx(v.mean(), abs=4 * v.std() / np.sqrt(v.size) + 1e-9), name

    summary = Ch.chance_summary(y_test, draws)
    assert summary["macro_ap"] == exact["macro_ap"] and summary["n_draws"] == 300
    assert summary["macro_f1_tuned"] == pytest.approx(values["macro_f1_tuned"].mean())  # no formula: the draws' mean
    assert summary["macro_ap_ci95_low"] < summary["macro_ap"] < summary["macro_ap_ci95_high"]
    # the label prior (a constant per genre) scores the positive rate, below chance
    prior = np.tile(y_test.mean(axis=0), (len(y_test), 1))
    assert M.macro_ap(y_test, prior) < summary["macro_ap"]


def test_paired_against_chance_resamples_random_scorers_with_the_films(labels):
    _, y = labels
    rng = np.random.default_rng(2)
    perfect, noise = y + 0.1 * rng.random(y.shape), rng.random(y.shape)
    reference = Ch.random_rankings(*y.shape, k=5, seed=7)
    table = paired_table(
        y, {"perfect": perfect, "noise": noise}, [("perfect", "chance"), ("noise", "chance")],
        n_boot=200, seed=4, metrics=("macro_ap", "mAP"), expected={"chance": reference},
    )  # fmt: skip
    perfect_row, noise_row = table.iloc[0], table.iloc[1]
    assert perfect_row["macro_ap_diff"] == pytest.approx(1 - Ch.chance_macro_ap(y))  # the exact value
    assert perfect_row["mAP_diff"] == pytest.approx(1 - Ch.chance_macro_ap(y, "trapezoid"))
    # each resample: the same rows of the 5 random scorers, their mean AP subtracted
    idx = np.random.default_rng(4).integers(0, len(y), size=(200, len(y)))
    scorers = [reference.scores[:, j * 18 : (j + 1) * 18] for j in range(5)]
    by_hand = np.array([1 - np.mean([M.macro_ap(y[i], r[i]) for r in scorers]) for i in idx])
    whole = 1 - np.mean([M.macro_ap(y, r) for r in scorers])
    assert perfect_row["macro_ap_low"] == pytest.approx(M._interval(by_hand, whole, 0.95, M.INTERVAL_METHOD)[0])
    assert perfect_row["macro_ap_verdict"] == "a better"
    assert noise_row["macro_ap_low"] < 0 < noise_row["macro_ap_high"]  # a random scorer is not above chance


def test_resampled_ap_of_a_random_scorer_sits_above_the_exact_expectation():
    """Why the paired comparison resamples random scorers instead of subtracting the exact
    value: repeated films tie, and tied positives lift AP."""
    rng = np.random.default_rng(0)
    y = (rng.random((107, 18)) < np.linspace(7, 48, 18) / 107).astype(int)
    s = rng.random((107, 18 * 20))
    y_wide = np.tile(y, (1, 20))
    idx = rng.integers(0, 107, size=(300, 107))
    lift = np.mean([M.macro_ap(y_wide[i], s[i]) - Ch.chance_macro_ap(y[i]) for i in idx])
    assert lift > 0.01
    assert abs(M.macro_ap(y_wide, s) - Ch.chance_macro_ap(y)) < 0.01  # without repeats, no lift


def test_permutation_p_value():
    draws = np.arange(99, dtype=float)
    assert Ch.p_above_chance(1000.0, draws) == pytest.approx(1 / 100)
    assert Ch.p_above_chance(-1.0, draws) == 1.0
    assert Ch.p_above_chance(49.0, draws) == pytest.approx(51 / 100)
