"""A non-deep baseline: one-vs-rest logistic regression on each film's mean colour.

If three numbers (mean R, G, B over a film's stored frames) rank genres as well as
the network, the network has learned the palette and nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lib.frames.store import FrameStore


def film_mean_colours(store: FrameStore, movie_ids: Sequence[int]) -> np.ndarray:
    """``(n_films, 3)`` mean RGB in [0, 1] over each film's stored frames."""
    out = np.empty((len(movie_ids), 3))
    for i, movie_id in enumerate(movie_ids):
        frames = store.film(int(movie_id))
        out[i] = frames.reshape(-1, frames.shape[-1]).mean(axis=0) / 255.0
    return out


class MeanColourBaseline:
    """One logistic regression per genre; a genre with a single class in training is
    scored with its training frequency (0 or 1), since no classifier can be fitted."""

    def __init__(self, C: float = 1.0, seed: int = 0):
        self.C, self.seed = C, seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> MeanColourBaseline:
        y = np.asarray(y).astype(int)
        self.models_ = []
        for j in range(y.shape[1]):
            if y[:, j].min() == y[:, j].max():
                self.models_.append(float(y[0, j]) if len(y) else 0.0)
                continue
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, random_state=self.seed, max_iter=1000))
            self.models_.append(clf.fit(X, y[:, j]))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        cols = [np.full(len(X), m) if isinstance(m, float) else m.predict_proba(X)[:, 1] for m in self.models_]
        return np.column_stack(cols)


def colour_baseline_scores(
    store: FrameStore, train_ids, train_y, score_ids: dict[str, Sequence[int]], seed: int = 0
) -> dict[str, np.ndarray]:
    """Fit on the training films, score each named set of films (e.g. {'val': ..., 'test': ...})."""
    model = MeanColourBaseline(seed=seed).fit(film_mean_colours(store, train_ids), train_y)
    return {name: model.predict_proba(film_mean_colours(store, ids)) for name, ids in score_ids.items()}
