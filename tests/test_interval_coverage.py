"""benchmarks/bench_interval_coverage.py: its targets, its statistic and intervals against the study's code and
scipy's, and a smoke-size run of the whole simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks import bench_interval_coverage as bic
from lib.scoring.metrics import _interval, average_precision, bootstrap_ci, macro_ap, paired_bootstrap_ci


def small_design(n: int = 40) -> bic.Design:
    # Few films and one rare genre, so that resamples do lose a genre now and then.
    return bic.Design(prevalence=np.array([0.06, 0.2, 0.45]), rho=0.5, n=n)


def films_first(y: np.ndarray, s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The study's layout, (n_films, n_genres), of scorer k."""
    return y.T, s[k].T


@pytest.mark.parametrize(("d", "p"), [(1.0, 0.1), (2.1, 0.065), (0.15, 0.45), (3.0, 0.02)])
def test_population_ap_matches_a_large_monte_carlo_sample(d, p):
    rng = np.random.default_rng(2024)
    n, k = 1_000_000, round(p * 1_000_000)
    y = np.zeros(n, bool)
    y[:k] = True  # fixed prevalence: the realised share of positives would add noise, not information
    # AP's spread at this size is ~0.0015 (the first positives' precision varies), so average 4 samples.
    mc = np.mean([average_precision(y, rng.standard_normal(n) + d * y) for _ in range(4)])
    assert bic.population_ap(d, p) == pytest.approx(mc, abs=0.004)


def test_population_ap_at_chance_is_the_prevalence_and_grows_with_d():
    assert bic.population_ap(0.0, 0.13) == 0.13
    values = [bic.population_ap(d, 0.13) for d in (0.01, 0.5, 1.0, 2.0, 4.0)]
    assert values[0] == pytest.approx(0.13, abs=2e-3)
    assert np.all(np.diff(values) > 0) and values[-1] < 1


def test_scorers_are_binormal_and_share_their_errors():
    design = bic.Design(prevalence=np.array([0.3]), d={"x": 1.5, "z": 0.0}, rho=0.6, n=200_000)
    y, s = bic.draw_test_sets(design, np.random.default_rng(1))
    pos = y[0] == 1
    assert s[0, 0, pos].mean() == pytest.approx(1.5, abs=0.02)
    assert s[0, 0, ~pos].mean() == pytest.approx(0.0, abs=0.02)
    assert s[0, 0, ~pos].std() == pytest.approx(1.0, abs=0.02)
    assert np.corrcoef(s[0, 0, ~pos], s[1, 0, ~pos])[0, 1] == pytest.approx(0.6, abs=0.02)


def test_vectorised_statistic_is_the_study_macro_ap_on_every_resample():
    design = small_design()
    y, s = bic.draw_test_sets(design, np.random.default_rng(3))
    idx = np.random.default_rng(4).integers(0, design.n, (300, design.n))
    values = bic.statistic_for(design)(np.broadcast_to(y, s.shape)[..., idx], s[..., idx])
    dropped = 0
    for b in range(len(idx)):
        yb = y[:, idx[b]].T
        dropped += int((yb.sum(axis=0) == 0).any())
        macro = [macro_ap(yb, s[k][:, idx[b]].T) for k in range(len(design.d))]
        expected = macro + [macro[i] - macro[j] for i, j in design.pair_index]
        np.testing.assert_allclose(values[:, b], expected, rtol=0, atol=1e-12)
    assert dropped > 0  # the genre-dropping path was exercised


def test_scipy_draws_the_study_resamples_and_its_percentile_is_the_hand_one():
    findings = bic.index_findings(n=30, n_boot=50, seed=5)
    assert findings["rng=Generator"] and findings["rng=int"] and findings["rng=Generator, batch"]
    assert not findings["random_state=int"]

    design = small_design()
    y, s = bic.draw_test_sets(design, np.random.default_rng(6))
    statistic = bic.statistic_for(design)
    res = bic.bca_bootstrap(y, s, statistic, 400, 0.95, np.random.default_rng(7), method="percentile")
    hand = bic.hand_bootstrap(y, s, statistic, 400, np.random.default_rng(7))
    np.testing.assert_array_equal(res.bootstrap_distribution, hand)
    scipy_iv = np.stack([res.confidence_interval.low, res.confidence_interval.high], axis=-1)
    # Same resamples; the quantiles agree to round-off (scipy.stats.quantile is not np.quantile's code).
    np.testing.assert_allclose(scipy_iv, bic.percentile_interval(hand, 0.95), rtol=0, atol=1e-12)
    lib_iv = [_interval(row, 0.0, 0.95, "percentile") for row in hand]
    np.testing.assert_array_equal(bic.percentile_interval(hand, 0.95), lib_iv)


def test_bca_helper_agrees_with_scipy_on_the_study_macro_ap():
    design = small_design(n=30)
    y, s = bic.draw_test_sets(design, np.random.default_rng(8))
    mine = bic.bca_bootstrap(y, s, bic.statistic_for(design), 200, 0.95, np.random.default_rng(9))

    def reference(i, axis=-1):
        # lib's macro_ap on each resample of film indices, one at a time (jackknife rows included)
        rows = np.atleast_2d(i).reshape(-1, i.shape[-1])
        out = []
        for r in rows:
            macro = [macro_ap(*films_first(y[:, r], s[:, :, r], k)) for k in range(len(design.d))]
            out.append(macro + [macro[a] - macro[b] for a, b in design.pair_index])
        out = np.array(out).T
        return out.reshape(out.shape[0], *i.shape[:-1])

    ref = stats.bootstrap(
        (np.arange(design.n),),
        reference,
        n_resamples=200,
        method="BCa",
        vectorized=True,
        rng=np.random.default_rng(9),
    )
    np.testing.assert_allclose(mine.confidence_interval.low, ref.confidence_interval.low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mine.confidence_interval.high, ref.confidence_interval.high, rtol=0, atol=1e-12)
    assert np.all(mine.confidence_interval.low < mine.confidence_interval.high)


def test_bc_reproduces_the_study_interval_end_to_end():
    design = small_design()
    y, s = bic.draw_test_sets(design, np.random.default_rng(10))
    seed, n_boot = 11, 150
    res = bic.bca_bootstrap(y, s, bic.statistic_for(design), n_boot, 0.95, np.random.default_rng(seed))
    boot = res.bootstrap_distribution
    estimate = bic.statistic_for(design)(y, s)
    bc = bic.bc_interval(boot, estimate, 0.95)
    weak = design.scorers.index("weak")
    # lib draws its own resamples from the same seed and scores them with macro_ap, film matrix by film matrix
    assert bc[weak] == pytest.approx(
        bootstrap_ci(*films_first(y, s, weak), n_boot=n_boot, seed=seed, method="bc"), abs=1e-12
    )
    j = len(design.scorers) + design.pairs.index(("medium", "weak"))
    lib_paired = paired_bootstrap_ci(
        y.T, s[design.scorers.index("medium")].T, s[weak].T, n_boot=n_boot, seed=seed, method="bc"
    )
    assert bc[j] == pytest.approx(lib_paired, abs=1e-12)
    # The diagnostic's quantile level is the one lib's BC takes its lower end at.
    lower = bic.bc_lower_level(boot, estimate, 0.95)
    np.testing.assert_allclose([np.quantile(b, q) for b, q in zip(boot, lower)], bc[:, 0], rtol=0, atol=1e-12)


def test_smoke_run_reports_every_scenario_and_method_and_repeats_itself(tmp_path, capsys):
    argv = ["--replicates", "3", "--n-boot", "40", "--expected-sets", "300", "--verify", "2"]
    first = bic.main([*argv, "--jobs", "1", "--out", str(tmp_path / "a.md")])
    second = bic.main([*argv, "--jobs", "2", "--out", str(tmp_path / "b.md")])
    capsys.readouterr()

    rows = first.coverage_rows()
    labels = first.design.labels
    assert len(labels) == 7 and sorted((r["scenario"], r["method"]) for r in rows) == sorted(
        (label, m) for label in labels for m in bic.METHODS
    )
    for r in rows:
        assert 0 <= r["cov_a"] <= 1 and 0 <= r["cov_b"] <= 1
        assert r["cov_a"] + r["low_a"] + r["high_a"] + r["undefined"] / len(first.replicates) == pytest.approx(1)
    text = (tmp_path / "a.md").read_text()
    for label in labels:
        for m in bic.METHODS:
            assert sum(line.startswith(f"| {label} | {bic.NAMES[m]} |") for line in text.splitlines()) == 1
    assert "## Recommendation" in text and "**Use " in text
    assert all(r["same_distribution"] for r in first.replicates[:2]) and "same_distribution" not in first.replicates[2]

    # Same arguments, other worker count: the same tables (only the runtime line may change).
    other = (
        (tmp_path / "b.md").read_text().replace("--out " + str(tmp_path / "b.md"), "--out " + str(tmp_path / "a.md"))
    )
    assert text.split("## Runtime")[0] == other.split("## Runtime")[0]
    for key in ("population", "expected at n"):
        np.testing.assert_array_equal(first.targets[key], second.targets[key])
