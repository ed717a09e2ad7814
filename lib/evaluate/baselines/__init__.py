"""Scorers that learn nothing from the frames, or only from hand-made features, scored
on the same films as the models: the study's floor.

``BASELINES`` is one dict, name -> f(inputs, splits) -> {split: (n_films, n_genres)
scores}: a new baseline is one line. Chance is not among them: it is no one score matrix
but the expectation over random rankings (``lib.scoring.chance``). Each sees the training films' labels, the frame
store and the frames stage's computable features only, never test labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.evaluate.baselines.colour import colour_baseline_scores
from lib.evaluate.baselines.features import features_baseline_scores
from lib.frames.audio import AUDIO_FEATURES
from lib.frames.features import FEATURES
from lib.frames.store import FrameStore
from lib.scoring.trivial import all_negative_scores, label_prior_scores


@dataclass
class BaselineInputs:
    """What a baseline may use: the training films' labels and the store; never test labels."""

    store: FrameStore
    ids: dict[str, list[int]]  # split -> movieIds, in the evaluated order
    y_train: np.ndarray
    seed: int
    # The frames stage's computable features (lib.frames.features), one row per film
    features: pd.DataFrame | None = None

    def n(self, split: str) -> int:
        return len(self.ids[split])


def _colour(inp: BaselineInputs, splits: Sequence[str]) -> dict[str, np.ndarray]:
    return colour_baseline_scores(
        inp.store, inp.ids["train"], inp.y_train, {s: inp.ids[s] for s in splits}, seed=inp.seed
    )


def _features(columns: Sequence[str]) -> Callable[[BaselineInputs, Sequence[str]], dict[str, np.ndarray]]:
    def scores(inp: BaselineInputs, splits: Sequence[str]) -> dict[str, np.ndarray]:
        return features_baseline_scores(
            inp.features, inp.ids["train"], inp.y_train, {s: inp.ids[s] for s in splits}, seed=inp.seed, columns=columns
        )

    return scores


# name -> f(inputs, splits) -> {split: (n_films, n_genres) scores}. Scored on the same films as the models.
BASELINES: dict[str, Callable[[BaselineInputs, Sequence[str]], dict[str, np.ndarray]]] = {
    "all_negative": lambda inp, splits: {s: all_negative_scores(inp.n(s), inp.y_train.shape[1]) for s in splits},
    "label_prior": lambda inp, splits: {s: label_prior_scores(inp.y_train, inp.n(s)) for s in splits},
    "mean_colour_lr": _colour,
    # the classic computable features three ways: the picture's (shot length, motion, lighting, colour),
    # the sound's (energy, timbre, rhythm, silence: lib.frames.audio), and both
    "computable_features_lr": _features(FEATURES),
    "computable_audio_lr": _features(AUDIO_FEATURES),
    "computable_av_lr": _features((*FEATURES, *AUDIO_FEATURES)),
}
# Baselines that need an input BaselineInputs may lack (None there), and the columns of it they read: left out,
# not faked, when it is missing or lacks them (a features.csv written before the soundtrack has no audio columns).
NEEDS = {
    "computable_features_lr": ("features", FEATURES),
    "computable_audio_lr": ("features", AUDIO_FEATURES),
    "computable_av_lr": ("features", (*FEATURES, *AUDIO_FEATURES)),
}


def missing_input(inputs: BaselineInputs, name: str) -> str | None:
    """What ``name`` needs and ``inputs`` lacks, or None."""
    if name not in NEEDS:
        return None
    attribute, columns = NEEDS[name]
    table = getattr(inputs, attribute)
    if table is None:
        return f"BaselineInputs.{attribute}"
    absent = [c for c in columns if c not in table.columns]
    return f"columns {absent[:3]} of BaselineInputs.{attribute}" if absent else None


def baseline_scores(
    inputs: BaselineInputs, splits: Sequence[str] = ("val", "test"), names: Sequence[str] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """name -> {split: scores} for each baseline of ``BASELINES`` (or ``names``).

    Without ``names``, a baseline whose input is missing (``NEEDS``) is left out; named
    explicitly, it raises instead."""
    if names is None:
        names = [n for n in BASELINES if missing_input(inputs, n) is None]
    for name in names:
        if lacking := missing_input(inputs, name):
            raise ValueError(f"baseline {name!r} needs {lacking}")
    return {name: BASELINES[name](inputs, splits) for name in names}
