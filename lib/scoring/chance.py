"""Chance: what a random ranking of the test films scores, exactly, and its spread.

With few positives a random ranking earns more average precision than the positive rate
(one positive among ``n`` films earns the mean of ``1/rank``, ``H_n / n``: 0.05 at
``n = 107`` against a rate of 0.009). So the label prior is not chance, and one seeded
random draw is chance plus noise. Here chance is the expectation over uniformly random
rankings, in closed form, for every AP-based metric of ``lib.scoring.metrics``:

* step AP (scikit-learn's): a positive at rank ``k`` (probability ``p / n``) finds on
  average ``(k - 1)(p - 1)/(n - 1)`` other positives above it, so
  ``E[AP] = (H_n + (p - 1)/(n - 1) (n - H_n)) / n`` (Bestgen, "Exact expected average
  precision of the random baseline for system evaluation", PBML 103, 2015);
* trapezoid AP (the peers'): each positive pays the mean of the precision at its rank and
  at the rank before (1 before the first), whose expectation is ``(p - 1)/(n - 1)`` for
  ``k >= 2``; so ``E = (E_step + p / n) / 2``;
* ROC-AUC: 0.5.

Threshold metrics (F1 at tuned thresholds, Hamming loss...) have no such formula; they
come from ``n_draws`` random score matrices, thresholds tuned on random validation
scores as for every scorer. The draws also give the spread of what one random ranking
scores on these films, and a permutation p-value for a model's macro-AP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.scoring import metrics as M


def expected_random_ap(n: np.ndarray | int, p: np.ndarray | int, kind: str = "step") -> np.ndarray:
    """Exact expected AP of a uniformly random ranking of ``n`` items, ``p`` of them
    positive (elementwise; NaN where ``p == 0``)."""
    n = np.asarray(n, dtype=float)
    p = np.asarray(p, dtype=float)
    n_max = int(np.max(n)) if n.size else 0
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n_max + 1))])
    h = harmonic[n.astype(int)]
    with np.errstate(divide="ignore", invalid="ignore"):
        others = np.where(n > 1, (p - 1) / np.maximum(n - 1, 1), 0.0)
        step = (h + others * (n - h)) / n
        if kind == "step":
            out = step
        elif kind == "trapezoid":
            out = (step + p / n) / 2
        else:
            raise ValueError(f"unknown AP kind {kind!r}; use 'step' or 'trapezoid'")
    return np.where(p > 0, out, np.nan)


def chance_ap_per_genre(y, kind: str = "step") -> np.ndarray:
    """Expected AP of a random ranking, per genre column of ``y`` (NaN with no positive)."""
    y = np.asarray(y).astype(int)
    return expected_random_ap(len(y), y.sum(axis=0), kind)


def chance_macro_ap(y, kind: str = "step") -> float:
    """Expected macro-AP of random rankings, over the genres with a positive film (as ``macro_ap``)."""
    per_genre = chance_ap_per_genre(y, kind)
    return float(np.nanmean(per_genre)) if np.isfinite(per_genre).any() else float("nan")


def chance_ranking_metrics(y) -> dict[str, float]:
    """Every AP-based entry of ``metrics.metrics_summary``, in expectation over random
    rankings of the films (and of each film's genres, for sAP), plus ROC-AUC 0.5."""
    y = np.asarray(y).astype(int)
    pos = y.sum(axis=0)
    keep = pos > 0
    film_pos = y.sum(axis=1)
    out = {"macro_ap": chance_macro_ap(y), "micro_ap": float(expected_random_ap(y[:, keep].size, pos.sum()))}
    for kind, suffix in (("trapezoid", ""), ("step", "_step")):
        per_genre = chance_ap_per_genre(y, kind)
        per_film = expected_random_ap(y.shape[1], film_pos, kind)
        out[f"uAP{suffix}"] = float(expected_random_ap(y.size, pos.sum(), kind))
        out[f"mAP{suffix}"] = float(np.mean(per_genre[keep])) if keep.any() else float("nan")
        out[f"wAP{suffix}"] = float(np.average(per_genre[keep], weights=pos[keep])) if keep.any() else float("nan")
        out[f"sAP{suffix}"] = float(np.nanmean(per_film)) if np.isfinite(per_film).any() else float("nan")
    out["macro_roc_auc"] = 0.5
    return out


# Each headline metric's exact chance value for a label matrix.
EXPECTED = {
    "macro_ap": chance_macro_ap,
    "mAP": lambda y: chance_macro_ap(y, "trapezoid"),
    "uAP": lambda y: float(expected_random_ap(np.asarray(y).size, np.asarray(y).sum(), "trapezoid")),
    "sAP": lambda y: chance_ranking_metrics(y)["sAP"],
}
# Means over genres: K random scorers stacked side by side give the mean of their K values in one call.
_COLUMN_MEANS = {"macro_ap", "mAP"}


@dataclass(frozen=True)
class RandomRankings:
    """Chance as the other side of a paired bootstrap: ``k`` random scorers of the same
    films, so that a resample that repeats a film repeats its random score too.

    Subtracting the exact expectation on each resample would be wrong: a resample's
    repeated films tie, and tied positives raise AP, so resampled APs of any scorer sit
    above what its films would give without repeats (+0.019 macro-AP for a random scorer
    at the study's sizes). Random scorers resampled the same way carry the same lift,
    which cancels in the difference: measured on 150 simulated test sets of random
    scorers, the 95% interval against the exact expectation excluded 0 in 29-40% of
    them, against these in 2-4%. The point estimate still subtracts the exact value
    (``exact``), which needs no resampling."""

    scores: np.ndarray  # (n_films, n_genres * k): scorer j in columns [j * n_genres, (j + 1) * n_genres)
    k: int

    @property
    def exact(self) -> dict:
        return EXPECTED

    def value(self, name: str, fn, y: np.ndarray, rows: np.ndarray) -> float:
        """``fn``'s mean over the ``k`` scorers, on the films ``rows`` (with repeats) of labels ``y``."""
        y_rows, s_rows = y[rows], self.scores[rows]
        if name in _COLUMN_MEANS:
            return fn(np.tile(y_rows, (1, self.k)), s_rows)
        g = y.shape[1]
        return float(np.mean([fn(y_rows, s_rows[:, j * g : (j + 1) * g]) for j in range(self.k)]))


def random_rankings(n_films: int, n_genres: int, k: int = 20, seed: int = 0) -> RandomRankings:
    return RandomRankings(np.random.default_rng(seed).random((n_films, n_genres * k)), k)


def random_draws(y_val, y_test, n_draws: int = 1000, seed: int = 0) -> list[dict[str, float]]:
    """``metrics_summary`` (point values, no bootstrap) of ``n_draws`` random scorers:
    uniform scores for the validation and test films, thresholds tuned on validation."""
    rng = np.random.default_rng(seed)
    y_val, y_test = np.asarray(y_val).astype(int), np.asarray(y_test).astype(int)
    draws = []
    for _ in range(n_draws):
        s_val, s_test = rng.random(y_val.shape), rng.random(y_test.shape)
        thresholds = M.tune_thresholds(y_val, s_val)
        draws.append(M.metrics_summary(y_test, s_test, thresholds, n_boot=0))
    return draws


def chance_summary(y_test, draws: list[dict[str, float]], level: float = 0.95) -> dict[str, float]:
    """The ``chance`` scorer's entry of the comparison, shaped like ``metrics_summary``'s:
    each metric's exact expectation where there is one (``chance_ranking_metrics``), else
    the mean over the ``draws`` of ``random_draws``; ``<metric>_ci95_low``/``_high`` are the
    central ``level`` range of the draws (what one random ranking scores on these films,
    not a bootstrap interval), ``<metric>_draw_std`` their standard deviation."""
    keys = [k for k in draws[0] if not k.endswith(("_ci95_low", "_ci95_high"))]
    values = draw_values(draws)
    exact = chance_ranking_metrics(y_test)
    alpha = (1 - level) / 2
    out: dict[str, float] = {}
    for k in keys:
        v = values[k][np.isfinite(values[k])]
        out[k] = exact.get(k, float(v.mean()) if v.size else float("nan"))
    for k in M.headline_metrics(tuned_thresholds=np.zeros(1)):
        v = values[k][np.isfinite(values[k])]
        if v.size:
            out[f"{k}_ci95_low"], out[f"{k}_ci95_high"] = (float(q) for q in np.quantile(v, [alpha, 1 - alpha]))
            out[f"{k}_draw_std"] = float(v.std(ddof=1))
    out["n_draws"] = len(draws)
    return out


def draw_values(draws: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """Metric -> its values over the draws."""
    return {k: np.array([d[k] for d in draws], dtype=float) for k in draws[0]}


def p_above_chance(value: float, draws: np.ndarray) -> float:
    """Permutation p-value: the share of random rankings scoring at least ``value``
    (with the +1 correction, so never 0)."""
    draws = np.asarray(draws, dtype=float)
    return float((1 + np.sum(draws >= value)) / (1 + draws.size))
