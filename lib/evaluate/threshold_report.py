"""The paper's threshold metric (section 3.5), made into a per-film report and a summary.

For each film and a pair of thresholds ``lower < upper``: the genres the model is
confident the film belongs to (score > upper), confident it does not (score < lower),
and the rest, undecided.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lib.core.genres import GENRES


def _check(lower: float, upper: float) -> None:
    if not 0.0 <= lower <= upper <= 1.0:
        raise ValueError(f"thresholds must satisfy 0 <= lower <= upper <= 1, got lower={lower}, upper={upper}")


def genre_sets(scores, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (confident, confident-not, undecided), each shaped like ``scores``."""
    _check(lower, upper)
    s = np.asarray(scores, dtype=float)
    confident, confident_not = s > upper, s < lower
    return confident, confident_not, ~(confident | confident_not)


def _names(mask_row: np.ndarray, scores_row: np.ndarray, genres: Sequence[str], with_scores: bool) -> str:
    idx = np.flatnonzero(mask_row)
    idx = idx[np.argsort(-scores_row[idx], kind="stable")]  # most confident first
    if with_scores:
        return ", ".join(f"{genres[j]} {scores_row[j]:.2f}" for j in idx)
    return ", ".join(genres[j] for j in idx)


def threshold_report(
    scores,
    y,
    lower: float,
    upper: float,
    films: pd.DataFrame | None = None,
    genres: Sequence[str] = GENRES,
) -> pd.DataFrame:
    """One row per film: its true genres, confident genres (with scores), undecided genres,
    the count of confident-not genres, and how many confident genres are true.

    ``films``: optional frame with the films' identifying columns (e.g. movieId, title),
    one row per film in the order of ``scores``; its columns lead the report.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(y).astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in shape")
    confident, confident_not, undecided = genre_sets(s, lower, upper)
    rows = {
        "true_genres": [_names(y[i], s[i], genres, False) for i in range(len(s))],
        "confident": [_names(confident[i], s[i], genres, True) for i in range(len(s))],
        "undecided": [_names(undecided[i], s[i], genres, True) for i in range(len(s))],
        "n_confident": confident.sum(axis=1),
        "n_confident_true": (confident & y).sum(axis=1),
        "n_undecided": undecided.sum(axis=1),
        "n_confident_not": confident_not.sum(axis=1),
        "n_confident_not_wrong": (confident_not & y).sum(axis=1),
    }
    report = pd.DataFrame(rows)
    if films is not None:
        if len(films) != len(report):
            raise ValueError(f"films has {len(films)} rows, scores {len(report)}")
        report = pd.concat([films.reset_index(drop=True), report], axis=1)
    return report


def threshold_summary(scores, y, lower: float, upper: float) -> dict[str, float]:
    """The report in a few numbers.

    * ``confident_precision``: share of confident genres that are true (NaN if none);
    * ``confident_not_precision``: share of confident-not genres that are truly absent;
    * ``undecided_fraction``: share of (film, genre) pairs left undecided;
    * ``films_without_confident_genre``: count (and share) of films with no genre above ``upper``;
    * ``true_genre_recall``: share of true (film, genre) pairs that land in the confident set.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(y).astype(bool)
    confident, confident_not, undecided = genre_sets(s, lower, upper)
    n_conf, n_not = int(confident.sum()), int(confident_not.sum())
    no_conf = int((confident.sum(axis=1) == 0).sum())
    return {
        "lower": float(lower),
        "upper": float(upper),
        "n_films": int(len(s)),
        "n_confident": n_conf,
        "confident_precision": float((confident & y).sum() / n_conf) if n_conf else float("nan"),
        "confident_not_precision": float((confident_not & ~y).sum() / n_not) if n_not else float("nan"),
        "undecided_fraction": float(undecided.mean()) if s.size else float("nan"),
        "films_without_confident_genre": no_conf,
        "films_without_confident_genre_fraction": float(no_conf / len(s)) if len(s) else float("nan"),
        "true_genre_recall": float((confident & y).sum() / y.sum()) if y.sum() else float("nan"),
    }
