"""The classic non-deep baseline: one-vs-rest logistic regression on computable film features.

The features (average shot length, motion content, lighting key, colour variance and a
few relatives; see ``lib.frames.features``) are measured once per trailer by the
frames stage, from the full video, and written to ``outputs/frames/features.csv``.
This is the baseline a reviewer of a genre study expects (Rasheed, Sheikh & Shah 2005):
if it ranks genres as well as the network, the network has learned editing rhythm and
lighting and nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lib.evaluate.baselines.colour import MeanColourBaseline
from lib.frames.features import FEATURES


def feature_matrix(features: pd.DataFrame, movie_ids: Sequence[int], columns: Sequence[str] = FEATURES) -> np.ndarray:
    """``(n_films, n_features)`` in the order of ``movie_ids``; a film without a row is an error.

    Missing values (a trailer whose measurement failed) are filled later, with the
    training films' medians, so no film is dropped and no test value leaks into the fit.
    """
    table = features.drop_duplicates("movieId").set_index("movieId")
    absent = [int(m) for m in movie_ids if int(m) not in table.index]
    if absent:
        raise KeyError(f"no computable features for {len(absent)} film(s), e.g. movieId {absent[:5]}")
    return table.loc[[int(m) for m in movie_ids], list(columns)].to_numpy(dtype=float)


def features_baseline_scores(
    features: pd.DataFrame,
    train_ids: Sequence[int],
    train_y: np.ndarray,
    score_ids: dict[str, Sequence[int]],
    seed: int = 0,
    columns: Sequence[str] = FEATURES,
) -> dict[str, np.ndarray]:
    """Fit on the training films, score each named set of films (e.g. {'val': ..., 'test': ...})."""
    X_train = feature_matrix(features, train_ids, columns)
    fill = np.nanmedian(X_train, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)

    def filled(X: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(X), X, fill)

    model = MeanColourBaseline(seed=seed).fit(filled(X_train), train_y)
    return {
        name: model.predict_proba(filled(feature_matrix(features, ids, columns))) for name, ids in score_ids.items()
    }
