"""Trivial baselines: the scores a model must beat before any number means anything.

All take the label matrices as ``(n_films, n_genres)`` 0/1 arrays and return a
score matrix for ``n`` films, so every metric can be computed for them exactly as
for the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score


def all_negative_scores(n: int, n_genres: int) -> np.ndarray:
    """Predict no genre at all: the number the paper's ~90% 'accuracy' should face."""
    return np.zeros((n, n_genres))


def label_prior_scores(train_y: np.ndarray, n: int) -> np.ndarray:
    """Every film scored with each genre's training-split frequency."""
    return np.tile(np.asarray(train_y, dtype=float).mean(axis=0), (n, 1))


def constant_scores(n: int, n_genres: int, value: float = 0.5) -> np.ndarray:
    return np.full((n, n_genres), value)


def _ap(y: np.ndarray, s: np.ndarray, average: str) -> float:
    keep = y.sum(axis=0) > 0  # AP is undefined for a genre with no positive film
    return float(average_precision_score(y[:, keep], s[:, keep], average=average))


def trivial_baselines(train_y: np.ndarray, test_y: np.ndarray) -> pd.DataFrame:
    """The three numbers the prepare stage reports for the test split.

    * all-negative per-label binary accuracy (the paper's 'accuracy' for predicting nothing);
    * label-prior micro-AP (training frequencies as scores);
    * constant-score macro-AP (equals the mean positive rate of the genres present).
    """
    test_y = np.asarray(test_y)
    n, g = test_y.shape
    rows = [
        ("all-negative", "per-label binary accuracy", float((all_negative_scores(n, g) == test_y).mean())),
        ("label prior", "micro-AP", _ap(test_y, label_prior_scores(train_y, n), "micro")),
        ("constant score", "macro-AP", _ap(test_y, constant_scores(n, g), "macro")),
    ]
    return pd.DataFrame(rows, columns=["baseline", "metric", "value"])
