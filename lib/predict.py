"""Model scores per slice and per film.

Slices come from the training loader (``lib.loader.SliceDataset`` over
``lib.slicing``: same table, same zero padding), gathered batch by batch out of the
memory-mapped frame store, and go through one ``model.predict`` call: no Python loop
over frames or films, and never the whole split in memory at once.

``predict_run`` is the one entry point for any trained run: slice models (cnn3d,
cnn_lstm) through ``predict_films``, the whole-trailer ``tsn`` model through
``lib.film_loader`` (centred frame of each segment, one prediction per film).
``load_run`` loads a run folder's ``model.keras`` with what its classes need.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lib.frame_store import FrameStore
from lib.genres import GENRES
from lib.loader import SliceDataset
from lib import tsn as _tsn  # noqa: F401  (registers the tsn layers for load_model)

AGGREGATIONS = ("mean", "max", "topk")


def predict_slices(
    model,
    store: FrameStore,
    movie_ids: Sequence[int],
    depth: int,
    batch_size: int = 64,
    genres: Sequence[str] = GENRES,
    verbose: int = 0,
) -> pd.DataFrame:
    """Scores of every slice of ``movie_ids``: columns movieId, slice, start, stop, then one per genre.

    The batches come from the training loader, unshuffled and each film once, so the
    slices are exactly the ones training saw.
    """
    ids = [int(m) for m in movie_ids]
    # The loader wants label columns; prediction ignores them.
    films = pd.DataFrame(0, index=range(len(ids)), columns=list(genres))
    films.insert(0, "movieId", ids)
    dataset = SliceDataset(store, films, depth=depth, batch_size=batch_size, shuffle=False, use_copies=False, genres=tuple(genres))
    table = dataset.slices.reset_index(drop=True)
    if table.empty:
        return pd.DataFrame(columns=[*table.columns, *genres])
    scores = np.asarray(model.predict(dataset, verbose=verbose), dtype=float)
    if scores.shape != (len(table), len(genres)):
        raise ValueError(f"model returned {scores.shape}, expected ({len(table)}, {len(genres)})")
    return pd.concat([table, pd.DataFrame(scores, columns=list(genres))], axis=1)


def aggregate_scores(slice_scores: np.ndarray, how: str = "mean", top_k: int = 3) -> np.ndarray:
    """One film's slice scores ``(k, n_genres)`` to one score per genre.

    ``mean`` is what the paper's code did; ``max`` lets one telling slice decide;
    ``topk`` averages each genre's ``top_k`` highest slice scores (all if fewer).
    """
    s = np.asarray(slice_scores, dtype=float)
    if s.ndim != 2 or len(s) == 0:
        raise ValueError(f"expected (k >= 1, n_genres) slice scores, got {s.shape}")
    if how == "mean":
        return s.mean(axis=0)
    if how == "max":
        return s.max(axis=0)
    if how == "topk":
        k = max(1, min(int(top_k), len(s)))
        return np.sort(s, axis=0)[-k:].mean(axis=0)
    raise ValueError(f"unknown aggregation {how!r}; choose one of {AGGREGATIONS}")


def film_scores(slices: pd.DataFrame, how: str = "mean", top_k: int = 3, genres: Sequence[str] = GENRES) -> pd.DataFrame:
    """Per-slice scores to one row per film (index movieId, one column per genre, plus n_slices)."""
    genres = list(genres)
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; choose one of {AGGREGATIONS}")
    grouped = slices.groupby("movieId", sort=False)[genres]
    if how == "mean":
        out = grouped.mean()
    elif how == "max":
        out = grouped.max()
    else:
        k = max(1, int(top_k))
        out = grouped.apply(lambda g: pd.Series(aggregate_scores(g.to_numpy(), "topk", k), index=genres))
    out.insert(0, "n_slices", slices.groupby("movieId", sort=False).size())
    return out


def predict_films(
    model,
    store: FrameStore,
    movie_ids: Sequence[int],
    depth: int,
    how: str = "mean",
    top_k: int = 3,
    batch_size: int = 64,
    genres: Sequence[str] = GENRES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(film scores in the order of ``movie_ids``, slice scores)."""
    slices = predict_slices(model, store, movie_ids, depth, batch_size, genres)
    films = film_scores(slices, how, top_k, genres).reindex([int(m) for m in movie_ids])
    return films, slices


def load_run(run_dir) -> tuple[object, dict]:
    """(model, info) of a train-stage output folder: ``model.keras`` and
    ``model_info.json``. Imports what deserialising the model needs first (keras-hub
    for a tsn model on a preset encoder); a plain ``keras.saving.load_model`` works too
    once ``lib.predict`` (and, for presets, ``keras_hub``) has been imported."""
    import json

    import keras

    run_dir = Path(run_dir)
    info = json.loads((run_dir / "model_info.json").read_text(encoding="utf-8"))
    if info.get("model") == "tsn":
        _tsn.ensure_loadable(info)
    model = keras.saving.load_model(run_dir / "model.keras")
    if info.get("model") == "tsn":
        _tsn.restore_frozen(model, info)
    return model, info


def predict_tsn(model, store: FrameStore, movie_ids: Sequence[int], n_segments: int, batch_size: int = 64, genres: Sequence[str] = GENRES) -> pd.DataFrame:
    """Whole-trailer scores: index movieId (in the given order), ``n_slices`` = frames the
    model saw (``min(kept frames, n_segments)``, centred in their segments), one column per genre."""
    from lib.film_loader import FilmDataset

    ids = [int(m) for m in movie_ids]
    films = pd.DataFrame(0, index=range(len(ids)), columns=list(genres))
    films.insert(0, "movieId", ids)
    if not ids:
        return pd.DataFrame(columns=["n_slices", *genres], index=pd.Index([], name="movieId"))
    ds = FilmDataset(store, films, n_segments=n_segments, batch_size=batch_size, training=False, shuffle=False, use_copies=False, genres=tuple(genres))
    scores = np.asarray(model.predict(ds, verbose=0), dtype=float)
    if scores.shape != (len(ids), len(genres)):
        raise ValueError(f"model returned {scores.shape}, expected ({len(ids)}, {len(genres)})")
    out = pd.DataFrame(scores, columns=list(genres), index=pd.Index(ids, name="movieId"))
    out.insert(0, "n_slices", ds.frames_used())
    return out


# Models scored slice by slice, then aggregated per film (``model_info.json`` "model").
SLICE_MODELS = ("cnn3d", "cnn_lstm")
# Models that score a whole trailer at once (no slice scores).
FILM_MODELS = ("tsn",)


def predict_run(model, info: dict, store, movie_ids, *, how: str = "mean", top_k: int = 3, batch_size: int = 64) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(film scores: index movieId in the order of movie_ids, column n_slices then one column per genre;
    slice scores for slice models (as predict_films returns) or None for whole-trailer models).

    ``how``/``top_k`` aggregate slice scores; a whole-trailer model scores each film
    once, so they do not apply to it. For ``tsn``, ``n_slices`` is the number of frames
    the model saw.
    """
    kind = info.get("model")
    genres = list(info.get("genres", GENRES))
    if kind == "tsn":
        n_segments = int(info["tsn"]["n_segments"])
        return predict_tsn(model, store, movie_ids, n_segments, batch_size, genres), None
    if kind in SLICE_MODELS:
        return predict_films(model, store, movie_ids, int(info["slice_depth"]), how, top_k, batch_size, genres)
    raise ValueError(
        f"predict_run: unknown model kind {kind!r} in model_info.json; known: {', '.join(SLICE_MODELS + FILM_MODELS)}"
    )
