"""Is there enough data for a number to mean anything? Counts, flags and the thresholds.

A metric from one test film reads ``1.000 [1.000, 1.000]``, and a bootstrap cannot
widen it: resampling one film gives that film back. So the evaluate report puts a flag
next to every number computed from too little data, and the train stage stops (or warns
loudly) when a split is too small to train on. The thresholds, and why:

* ``MIN_TEST_FILMS = 30``: fewer test films and every film moves each genre's precision
  and recall by more than 3 points, and the bootstrap's normal-theory footing (the
  bootstrap interval) is the usual n >= 30 rule of thumb. Below it, the aggregate
  metrics (macro/micro AP, F1, ...) are flagged ``too few films``.
* ``MIN_GENRE_POSITIVES = 5``: a genre's AP with k positive films moves by a whole
  ``1/k`` of recall per film (20 points at k = 5); with 1 positive it is just
  ``1/rank``. A genre under this is flagged ``unreliable`` in the per-genre table, and
  the aggregate rows say how many of the averaged genres are.
* Training: fewer than ``MIN_TRAIN_FILMS_ERROR = 5`` training films or
  ``MIN_VAL_FILMS_ERROR = 2`` validation films stops the stage (nothing can be learned
  of 18 genres, no epoch can be chosen); fewer than ``MIN_TRAIN_FILMS_WARN = 100`` or
  ``MIN_VAL_FILMS_WARN = 30`` warns loudly (the model will mostly learn the label
  prior, and validation AUC-PR, which picks the checkpoint, is noise).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lib.core.genres import GENRES

MIN_TEST_FILMS = 30
MIN_GENRE_POSITIVES = 5
MIN_TRAIN_FILMS_ERROR = 5
MIN_VAL_FILMS_ERROR = 2
MIN_TRAIN_FILMS_WARN = 100
MIN_VAL_FILMS_WARN = 30

TOO_FEW_FILMS = "too few films"
UNRELIABLE = "unreliable"


class TooLittleData(ValueError):
    """A split is too small to train on."""


class TooLittleDataWarning(UserWarning):
    """A number comes from, or a model is trained on, too little data to trust."""


def evaluation_counts(y, genres: Sequence[str] = GENRES) -> dict:
    """What a reader of the metrics needs to judge them: films, positives per genre, and
    which genres fall under ``MIN_GENRE_POSITIVES`` (for metrics.json)."""
    y = np.asarray(y).astype(int)
    positives = {g: int(p) for g, p in zip(genres, y.sum(axis=0))}
    few = [g for g, p in positives.items() if 0 < p < MIN_GENRE_POSITIVES]
    return {
        "n_test_films": int(len(y)),
        "too_few_films": bool(len(y) < MIN_TEST_FILMS),
        "positives_per_genre": positives,
        "genres_without_positive": [g for g, p in positives.items() if p == 0],
        "genres_unreliable": few,
        "thresholds": {"min_test_films": MIN_TEST_FILMS, "min_genre_positives": MIN_GENRE_POSITIVES},
    }


def genre_flags(y, genres: Sequence[str] = GENRES) -> pd.Series:
    """Per genre: ``""``, ``"unreliable"`` (under ``MIN_GENRE_POSITIVES`` positives) or
    ``"no positive"`` (AP undefined, left out of the averages)."""
    pos = np.asarray(y).astype(int).sum(axis=0)
    flags = np.where(
        pos == 0,
        "no positive",
        np.where(pos < MIN_GENRE_POSITIVES, f"{UNRELIABLE} (<{MIN_GENRE_POSITIVES} positives)", ""),
    )
    return pd.Series(flags, index=list(genres), name="flag")


def aggregate_flag(y) -> str:
    """The note that goes next to an aggregate metric of the test split ``y``: empty when
    the split is big enough and no averaged genre is under the positives threshold."""
    counts = evaluation_counts(y)
    notes = []
    if counts["too_few_films"]:
        notes.append(f"{TOO_FEW_FILMS} ({counts['n_test_films']} < {MIN_TEST_FILMS})")
    n_eval = sum(p > 0 for p in counts["positives_per_genre"].values())
    if counts["genres_unreliable"]:
        notes.append(f"{len(counts['genres_unreliable'])} of {n_eval} genres have < {MIN_GENRE_POSITIVES} positives")
    return "; ".join(notes)


def warn_if_too_little_test_data(y) -> str:
    """Issue a ``TooLittleDataWarning`` (printed in the report) when ``aggregate_flag`` has something to say; returns the flag."""
    flag = aggregate_flag(y)
    if flag:
        warnings.warn(
            f"test metrics from too little data: {flag}. Read every number below with that in mind.",
            TooLittleDataWarning,
            stacklevel=2,
        )
    return flag


def check_training_split(split_table: pd.DataFrame, train_y=None, genres: Sequence[str] = GENRES) -> list[str]:
    """Stop (``TooLittleData``) when the train or val split is too small to train on, warn
    loudly (``TooLittleDataWarning``) when it is merely small, or when a genre has fewer
    than ``MIN_GENRE_POSITIVES`` training films. ``split_table``: the loader's table
    (index train/val, column ``films``); ``train_y``: the training films' labels.
    Returns the warnings issued."""
    n_train = int(split_table.loc["train", "films"]) if "train" in split_table.index else 0
    n_val = int(split_table.loc["val", "films"]) if "val" in split_table.index else 0
    if n_train < MIN_TRAIN_FILMS_ERROR or n_val < MIN_VAL_FILMS_ERROR:
        raise TooLittleData(
            f"too little data to train: {n_train} training and {n_val} validation films with frames "
            f"(need at least {MIN_TRAIN_FILMS_ERROR} and {MIN_VAL_FILMS_ERROR}). Add trailers (data/trailers) "
            "or check why the frames stage kept so few (reports/02_frames.ipynb)."
        )
    notes = []
    if n_train < MIN_TRAIN_FILMS_WARN:
        notes.append(
            f"only {n_train} training films (< {MIN_TRAIN_FILMS_WARN}): expect the model to learn little more than the label prior"
        )
    if n_val < MIN_VAL_FILMS_WARN:
        notes.append(
            f"only {n_val} validation films (< {MIN_VAL_FILMS_WARN}): the checkpoint and early stopping follow noise"
        )
    if train_y is not None:
        pos = np.asarray(train_y).astype(int).sum(axis=0)
        few = [f"{g} ({p})" for g, p in zip(genres, pos) if p < MIN_GENRE_POSITIVES]
        if few:
            notes.append(f"genres with < {MIN_GENRE_POSITIVES} training films: {', '.join(few)}")
    for note in notes:
        warnings.warn(f"TOO LITTLE TRAINING DATA: {note}", TooLittleDataWarning, stacklevel=2)
    return notes
