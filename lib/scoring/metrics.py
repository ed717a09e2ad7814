"""Multi-label metrics for one score matrix, the same code for the model and every baseline.

Inputs are ``y`` (n_films, n_genres) 0/1 and ``scores`` (n_films, n_genres) in [0, 1].
Ranking metrics (AP, ROC-AUC) are undefined for a genre with no positive test film
(ROC-AUC also for one with no negative): such genres are left out of the ranking
averages and ``evaluated_genres`` says which ones were kept, so the exclusion is reported,
never silent.

Threshold metrics come at 0.5 and at per-genre thresholds tuned on the validation
split (``thresholds_from_validation``, which reads nothing of the test split, over
``tune_thresholds``); test labels never choose a threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lib.core.genres import GENRES


def _as_arrays(y, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be the same (n_films, n_genres) shape")
    return y, s


def _ap_columns(y: np.ndarray, s: np.ndarray, kind: str = "step") -> np.ndarray:
    """AP of every column of ``y`` (n, m) ranked by ``s`` (n, m), NaN where a column has
    no positive. Tied scores form one threshold, as in scikit-learn.

    ``step``: ``sum_n (R_n - R_{n-1}) P_n``, each positive's recall gain paid at the
    precision of its tie run's last position. ``trapezoid``: the gain paid at the mean of
    that precision and the one at the previous run's end (1 for the first run: the
    curve's (0, 1) anchor), i.e. the area under straight lines between the PR points.
    Vectorised over columns: the bootstraps call it thousands of times.
    """
    y = np.asarray(y).astype(int)
    s = np.asarray(s, dtype=float)
    n, m = y.shape
    order = np.argsort(-s, axis=0, kind="mergesort")
    s_sorted = np.take_along_axis(s, order, axis=0)
    y_sorted = np.take_along_axis(y, order, axis=0)
    idx = np.broadcast_to(np.arange(n)[:, None], (n, m))
    differs = s_sorted[1:] != s_sorted[:-1]
    is_end = np.vstack([differs, np.ones((1, m), bool)])
    is_start = np.vstack([np.ones((1, m), bool), differs])
    # Index of each position's run end (next end at or after it) and run start.
    run_end = np.flip(np.minimum.accumulate(np.flip(np.where(is_end, idx, n), axis=0), axis=0), axis=0)
    run_start = np.maximum.accumulate(np.where(is_start, idx, -1), axis=0)
    precision = np.cumsum(y_sorted, axis=0) / (idx + 1)
    at_end = np.take_along_axis(precision, run_end, axis=0)
    if kind == "step":
        paid = at_end
    elif kind == "trapezoid":
        before = np.take_along_axis(precision, np.maximum(run_start - 1, 0), axis=0)
        paid = (at_end + np.where(run_start == 0, 1.0, before)) / 2
    else:
        raise ValueError(f"unknown AP kind {kind!r}; use 'step' or 'trapezoid'")
    n_pos = y.sum(axis=0)
    total = (y_sorted * paid).sum(axis=0)
    return np.divide(total, n_pos, out=np.full(m, np.nan), where=n_pos > 0)


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """AP of one genre, the step-wise sum ``sum_n (R_n - R_{n-1}) P_n`` of scikit-learn,
    ties between scores counted as one threshold. NaN if the genre has no positive."""
    return float(_ap_columns(np.asarray(y).reshape(-1, 1), np.asarray(s).reshape(-1, 1), "step")[0])


def ap_per_genre(y, scores) -> np.ndarray:
    y, s = _as_arrays(y, scores)
    return _ap_columns(y, s, "step")


def evaluated_genres(y) -> np.ndarray:
    """Mask of genres with at least one positive film: the ones AP can be computed for."""
    return np.asarray(y).sum(axis=0) > 0


def macro_ap(y, scores) -> float:
    return float(np.nanmean(ap_per_genre(y, scores)))


def micro_ap(y, scores) -> float:
    y, s = _as_arrays(y, scores)
    keep = evaluated_genres(y)
    return average_precision(y[:, keep].ravel(), s[:, keep].ravel())


def roc_auc_per_genre(y, scores) -> np.ndarray:
    y, s = _as_arrays(y, scores)
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        if 0 < y[:, j].sum() < len(y):  # needs both classes
            out[j] = roc_auc_score(y[:, j], s[:, j])
    return out


def tune_thresholds(y_val, scores_val, default: float = 0.5) -> np.ndarray:
    """Per-genre threshold that maximises F1 on the validation split.

    Candidates are the validation scores themselves (predict positive when score >=
    threshold); ties in F1 go to the higher threshold. A genre with no positive
    validation film keeps ``default``.
    """
    y, s = _as_arrays(y_val, scores_val)
    thresholds = np.full(y.shape[1], float(default))
    for j in range(y.shape[1]):
        pos = y[:, j].sum()
        if pos == 0:
            continue
        cand = np.unique(s[:, j])
        pred = s[:, j][None, :] >= cand[:, None]  # (n_candidates, n_films)
        tp = (pred & (y[:, j] == 1)[None, :]).sum(axis=1)
        f1 = 2 * tp / (pred.sum(axis=1) + pos)
        best = np.flatnonzero(f1 == f1.max())[-1]
        thresholds[j] = cand[best]
    return thresholds


def thresholds_from_validation(
    y_by_split: Mapping[str, np.ndarray], scores: Mapping[str, tuple], default: float = 0.5
) -> dict[str, np.ndarray]:
    """Each scorer's per-genre thresholds, tuned on the validation split and never on test.

    ``y_by_split`` maps split names to label matrices (``y_by_split["val"]`` is used) and
    ``scores`` maps each scorer to its ``(validation scores, test scores)`` pair, as the
    evaluate notebook holds them. Only the validation labels and the validation half of
    each pair are read: whatever the test entries hold, they cannot move a threshold.
    """
    y_val = y_by_split["val"]
    return {name: tune_thresholds(y_val, pair[0], default=default) for name, pair in scores.items()}


def binarize(scores, thresholds) -> np.ndarray:
    """Positive where score >= threshold; ``thresholds`` a scalar or one per genre."""
    s = np.asarray(scores, dtype=float)
    return (s >= np.broadcast_to(np.asarray(thresholds, dtype=float), s.shape[1:])).astype(int)


def precision_recall_f1(y, pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-genre precision, recall, F1 with 0 where a denominator is 0 (scikit-learn's zero_division=0)."""
    y, p = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    tp = (y & p).sum(axis=0)
    n_pred, n_true = p.sum(axis=0), y.sum(axis=0)
    precision = np.divide(tp, n_pred, out=np.zeros(len(tp)), where=n_pred > 0)
    recall = np.divide(tp, n_true, out=np.zeros(len(tp)), where=n_true > 0)
    f1 = np.divide(2 * tp, n_pred + n_true, out=np.zeros(len(tp)), where=(n_pred + n_true) > 0)
    return precision, recall, f1


def micro_f1(y, pred) -> float:
    y, p = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    tp, denom = (y & p).sum(), p.sum() + y.sum()
    return float(2 * tp / denom) if denom else 0.0


def macro_f1(y, pred, keep: np.ndarray | None = None) -> float:
    """Mean per-genre F1 over ``keep`` (default: genres with a positive test film)."""
    keep = evaluated_genres(y) if keep is None else keep
    return float(precision_recall_f1(y, pred)[2][keep].mean())


def hamming_loss(y, pred) -> float:
    return float((np.asarray(y).astype(int) != np.asarray(pred).astype(int)).mean())


def subset_accuracy(y, pred) -> float:
    """Share of films whose predicted genre set is exactly the true set."""
    return float((np.asarray(y).astype(int) == np.asarray(pred).astype(int)).all(axis=1).mean())


def binary_accuracy(y, scores, threshold: float = 0.5) -> float:
    """The paper's 'accuracy': per-label agreement at 0.5, pooled over every film and genre
    (Keras ``binary_accuracy``). Predicting no genre at all already scores high on it."""
    return float((np.asarray(y).astype(int) == (np.asarray(scores) > threshold)).mean())


def categorical_accuracy(y, scores) -> float:
    """Keras ``categorical_accuracy`` as the paper used it: the top-scored genre is a true genre."""
    y, s = _as_arrays(y, scores)
    return float(y[np.arange(len(y)), s.argmax(axis=1)].mean())


# The interval method of every bootstrap here, chosen by measured coverage at the study's sizes
# (docs/interval-coverage.md): 94.0-97.0% coverage in every simulated scenario, where BC fell to 68.5%.
INTERVAL_METHOD = "centred"


def _interval(boot: np.ndarray, estimate: float, level: float, method: str | None = None) -> tuple[float, float]:
    """Bootstrap interval from resampled values (``method`` defaults to ``INTERVAL_METHOD``).

    ``centred``: the percentile interval of the resamples shifted so that their mean is the
    estimate; only their spread is used. Resampling films repeats some of them, repeated
    positives tie and lift AP, so resampled macro-APs sit above the estimate (+0.02 for a
    weak scorer at 107 films) although the estimate is unbiased for what it estimates, the
    expected macro-AP of a test set of this size. ``percentile``: the plain quantiles, which
    inherit that lift (78-80% coverage for chance-level and weak scorers in the simulation). ``bc``: Efron's
    bias-corrected percentile interval, the study's method until issue 20; it reads the lift
    as a bias and over-corrects, so for weak scorers its lower end collapses onto the
    bootstrap minimum (68-70% coverage).
    """
    from scipy.stats import norm

    method = method or INTERVAL_METHOD
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    if method == "centred":
        # the percentile interval of the resamples shifted so that their mean is the estimate
        return _interval(boot - (boot.mean() - estimate), estimate, level, "percentile")
    if method == "percentile":
        q = np.array([alpha, 1 - alpha])
    elif method == "bc":
        below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / boot.size
        below = np.clip(below, 0.5 / boot.size, 1 - 0.5 / boot.size)
        z0 = norm.ppf(below)
        q = norm.cdf(2 * z0 + norm.ppf([alpha, 1 - alpha]))
    else:
        raise ValueError(f"unknown interval method {method!r}; use 'bc', 'percentile' or 'centred'")
    return float(np.quantile(boot, q[0])), float(np.quantile(boot, q[1]))


def bootstrap_ci(
    y,
    scores,
    metric: Callable[[np.ndarray, np.ndarray], float] = macro_ap,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: str | None = None,
) -> tuple[float, float]:
    """Interval of ``metric`` over test films resampled with replacement (see ``_interval``)."""
    y, s = _as_arrays(y, scores)
    values = _resampled(len(y), n_boot, seed, lambda i: metric(y[i], s[i]))
    return _interval(values, metric(y, s), level, method)


def _resampled(n: int, n_boot: int, seed: int, statistic: Callable[[np.ndarray], float]) -> np.ndarray:
    """``statistic`` of ``n_boot`` seeded resamples (with replacement) of ``n`` row indices."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    return np.array([statistic(i) for i in idx])


def paired_bootstrap_ci(
    y,
    scores_a,
    scores_b,
    metric: Callable[[np.ndarray, np.ndarray], float] = macro_ap,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: str | None = None,
) -> tuple[float, float]:
    """Interval of ``metric(a) - metric(b)`` with both scorers on the same resampled films."""
    y, a = _as_arrays(y, scores_a)
    _, b = _as_arrays(y, scores_b)
    diffs = _resampled(len(y), n_boot, seed, lambda i: metric(y[i], a[i]) - metric(y[i], b[i]))
    return _interval(diffs, metric(y, a) - metric(y, b), level, method)


def per_genre_table(y, scores, thresholds=0.5, genres: Sequence[str] = GENRES) -> pd.DataFrame:
    """One row per genre: support, AP, ROC-AUC, and precision/recall/F1 at ``thresholds``."""
    y, s = _as_arrays(y, scores)
    thr = np.broadcast_to(np.asarray(thresholds, dtype=float), (y.shape[1],))
    precision, recall, f1 = precision_recall_f1(y, binarize(s, thr))
    return pd.DataFrame(
        {
            "genre": list(genres),
            "support": y.sum(axis=0),
            "ap": ap_per_genre(y, s),
            "roc_auc": roc_auc_per_genre(y, s),
            "threshold": thr,
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )


def bootstrap_intervals(
    y,
    scores,
    metrics: dict[str, Callable[[np.ndarray, np.ndarray], float]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: str | None = None,
    against=None,
) -> dict[str, tuple[float, float]]:
    """``bootstrap_ci`` for several metrics at once, all on the same resampled films.

    With ``against`` (a second score matrix) each interval is the paired one of
    ``metric(scores) - metric(against)``, as ``paired_bootstrap_ci``. ``against`` may
    instead be a reference with ``value(name, fn, y, rows)`` (chance's
    ``lib.scoring.chance.RandomRankings``), evaluated on the same resampled rows.
    """
    y, s = _as_arrays(y, scores)
    reference = against if hasattr(against, "value") else None
    b = None if against is None or reference is not None else _as_arrays(y, against)[1]

    def value(name, fn, i):
        if reference is not None:
            return fn(y[i], s[i]) - reference.value(name, fn, y, i)
        return fn(y[i], s[i]) if b is None else fn(y[i], s[i]) - fn(y[i], b[i])

    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    everything = np.arange(len(y))
    return {
        name: _interval(np.array([value(name, fn, i) for i in idx]), value(name, fn, everything), level, method)
        for name, fn in metrics.items()
    }


def headline_metrics(tuned_thresholds=None) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The metrics that get a bootstrap interval: scikit-learn's macro-AP, the peers' µAP,
    mAP and sAP (trapezoid), and macro-F1 at the validation-tuned thresholds."""
    out = {
        "macro_ap": macro_ap,
        "uAP": lambda y, s: pr_auc_trapezoid(y, s),
        "mAP": trapezoid_macro_ap,
        "sAP": lambda y, s: float(np.nanmean(_ap_columns(y.T, s.T, "trapezoid"))),
    }
    if tuned_thresholds is not None:
        out["macro_f1_tuned"] = lambda y, s: macro_f1(y, binarize(s, tuned_thresholds))
    return out


def metrics_summary(y, scores, tuned_thresholds=None, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Every headline metric of one score matrix, as a flat dict for metrics.json.

    ``tuned_thresholds``: per-genre thresholds from ``tune_thresholds`` on the validation
    split (None leaves the tuned-F1 entries out). The headline metrics
    (``headline_metrics``) come with bootstrap 95% intervals (``INTERVAL_METHOD``)
    (``<name>_ci95_low``/``_high``) over the test films, all from the same resamples.
    """
    y, s = _as_arrays(y, scores)
    keep = evaluated_genres(y)
    at_half = binarize(s, 0.5)
    out = {
        "macro_ap": macro_ap(y, s),
        "micro_ap": micro_ap(y, s),
        **peer_metrics_summary(y, s),
        "macro_roc_auc": float(np.nanmean(roc_auc_per_genre(y, s))),
        "micro_f1_at_0.5": micro_f1(y, at_half),
        "macro_f1_at_0.5": macro_f1(y, at_half, keep),
    }
    if tuned_thresholds is not None:
        tuned = binarize(s, tuned_thresholds)
        out["micro_f1_tuned"] = micro_f1(y, tuned)
        out["macro_f1_tuned"] = macro_f1(y, tuned, keep)
    out.update(
        {
            "hamming_loss": hamming_loss(y, at_half),
            "subset_accuracy": subset_accuracy(y, at_half),
            "binary_accuracy_paper": binary_accuracy(y, s),
            "categorical_accuracy_keras": categorical_accuracy(y, s),
        }
    )
    if n_boot > 0:
        for name, (low, high) in bootstrap_intervals(
            y, s, headline_metrics(tuned_thresholds), n_boot=n_boot, seed=seed
        ).items():
            out[f"{name}_ci95_low"], out[f"{name}_ci95_high"] = low, high
    return out


def comparison_table(summaries: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Metrics as rows, scorers (model, baselines) as columns: each number beside its baselines.
    Only numbers: a seed mean also names its model (``lib.evaluate.compare.seed_aggregate``), and one
    text cell would make every row of the table text."""
    numbers = {
        name: {k: v for k, v in summary.items() if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        for name, summary in summaries.items()
    }
    return pd.DataFrame(numbers)


def json_safe(value):
    """``value`` with every non-finite float as None: JSON has no NaN, and an undefined
    metric (e.g. precision with no confident genre) must read as null, not as a number."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return None if isinstance(value, float) and not np.isfinite(value) else value


# --- Ranking metrics as the peers report them -------------------------------------------
# DIViTA (richardtml/DIViTA, train.py: ``pre_rec_auc`` and ``compute_full_metrics``)
# scores AP as ``sklearn.metrics.auc(recall, precision)`` over
# ``precision_recall_curve``: the TRAPEZOID area under the PR curve, which starts at
# (recall 0, precision 1) and joins consecutive points by straight lines. scikit-learn's
# ``average_precision_score`` (``average_precision`` above) is the STEP sum
# ``sum_n (R_n - R_{n-1}) P_n``: each recall gain is paid at the precision reached there.
# Without tied scores, the point before a recall gain sits right after the negatives
# ranked above the new positive, at a lower precision, and the trapezoid's straight line
# from it pays less than the step: trapezoid <= step (one negative ranked first, then one
# positive: step 1/2, trapezoid (0 + 1/2) / 2 = 1/4). Ties of positives with negatives
# can turn it the other way, and strongly: a run of tied scores is one straight line from
# the previous point, so a CONSTANT scorer (all-negative, the label prior) draws one line
# from (0, 1) to (1, positive rate) and earns (1 + positive rate) / 2, above most real
# rankings, where the step sum gives it just the positive rate. Models rarely tie, so
# this mostly flatters the constant baselines: read trapezoid columns against the
# baselines in the same column. Both are reported; the peers' numbers are trapezoid ones.


def pr_auc_trapezoid(y: np.ndarray, s: np.ndarray) -> float:
    """Trapezoid area under the PR curve of one label vector (any shape, flattened), as
    DIViTA's ``pre_rec_auc``: ``auc(recall, precision)`` over scikit-learn's curve, one
    point per distinct score plus (0, 1). NaN if there is no positive."""
    return float(_ap_columns(np.asarray(y).reshape(-1, 1), np.asarray(s).reshape(-1, 1), "trapezoid")[0])


def peer_ranking_metrics(y, scores, ap: str = "trapezoid") -> dict[str, float]:
    """µAP, mAP, wAP and sAP as DIViTA defines them, with AP per ``ap``: ``trapezoid``
    (DIViTA) or ``step`` (scikit-learn).

    * ``micro``: one AP over every (film, genre) pair pooled;
    * ``macro``: mean of the per-genre APs;
    * ``weighted``: per-genre APs weighted by the genre's share of positive labels;
    * ``samples``: mean over films of the AP of each film's genre ranking.

    One difference from DIViTA, which only matters when a genre has no positive test
    film: DIViTA counts such a genre's (undefined) AP as 0 in mAP, here it is left out,
    as in every other average of this module (its weight in wAP is 0 either way). A film
    with no genre has no sAP and is left out of that mean likewise.
    """
    y, s = _as_arrays(y, scores)
    per_genre = _ap_columns(y, s, ap)
    pos = y.sum(axis=0)
    keep = pos > 0
    per_film = _ap_columns(y.T, s.T, ap)
    return {
        "micro": float(_ap_columns(y.reshape(-1, 1), s.reshape(-1, 1), ap)[0]),
        "macro": float(np.mean(per_genre[keep])) if keep.any() else float("nan"),
        "weighted": float(np.average(per_genre[keep], weights=pos[keep])) if keep.any() else float("nan"),
        "samples": float(np.nanmean(per_film)) if np.isfinite(per_film).any() else float("nan"),
    }


def trapezoid_macro_ap(y, scores) -> float:
    """DIViTA's mAP (trapezoid AP per genre, averaged): a ``metric`` for the bootstraps."""
    y, s = _as_arrays(y, scores)
    keep = evaluated_genres(y)
    return float(np.mean(_ap_columns(y[:, keep], s[:, keep], "trapezoid"))) if keep.any() else float("nan")


def peer_metrics_summary(y, scores) -> dict[str, float]:
    """The four peer metrics with both AP definitions, flat for metrics.json:
    ``uAP``/``mAP``/``wAP``/``sAP`` (trapezoid, as the peers) and ``*_step`` (scikit-learn)."""
    out = {}
    for ap, suffix in (("trapezoid", ""), ("step", "_step")):
        m = peer_ranking_metrics(y, scores, ap)
        out.update(
            {
                f"uAP{suffix}": m["micro"],
                f"mAP{suffix}": m["macro"],
                f"wAP{suffix}": m["weighted"],
                f"sAP{suffix}": m["samples"],
            }
        )
    return out
