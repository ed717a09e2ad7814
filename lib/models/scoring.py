"""How a trained model scores films: slice by slice then aggregated, or a whole trailer at once.

Slice models (cnn3d, cnn_lstm) score every slice through the training loader
(``lib.loaders.slices.SliceDataset`` over ``lib.loaders.slicing``: same table, same
zero padding), gathered batch by batch out of the memory-mapped frame store, in one
``model.predict`` call (no Python loop over frames or films, and never the whole split
in memory at once); slice scores become film scores by ``aggregate_scores``. The
whole-trailer ``tsn`` model scores each film once from the centred frame of each of
its segments (``lib.loaders.films``). ``lib.models.kinds`` picks the path per kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lib.core.genres import GENRES
from lib.frames.store import FrameStore
from lib.loaders.films import FilmDataset
from lib.loaders.slices import SliceDataset

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
    dataset = SliceDataset(
        store, films, depth=depth, batch_size=batch_size, shuffle=False, use_copies=False, genres=tuple(genres)
    )
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


def film_scores(
    slices: pd.DataFrame, how: str = "mean", top_k: int = 3, genres: Sequence[str] = GENRES
) -> pd.DataFrame:
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


def predict_tsn(
    model,
    store: FrameStore,
    movie_ids: Sequence[int],
    n_segments: int,
    batch_size: int = 64,
    genres: Sequence[str] = GENRES,
    embeddings: np.ndarray | None = None,
    audio: tuple[np.ndarray, np.ndarray] | None = None,
    frames: bool = True,
) -> pd.DataFrame:
    """Whole-trailer scores: index movieId (in the given order), ``n_slices`` = frames the
    model saw (``min(kept frames, n_segments)``, centred in their segments), one column per genre.

    With ``embeddings`` (the frames stage's embedding cache, one row per store frame) ``model`` is the
    head alone and reads the cached rows of the same frames instead of running the encoder.
    ``audio``: the frames stage's sound windows, for a model that hears (``frames=False``: only hears)."""
    ids = [int(m) for m in movie_ids]
    films = pd.DataFrame(0, index=range(len(ids)), columns=list(genres))
    films.insert(0, "movieId", ids)
    if not ids:
        return pd.DataFrame(columns=["n_slices", *genres], index=pd.Index([], name="movieId"))
    ds = FilmDataset(
        store,
        films,
        n_segments=n_segments,
        batch_size=batch_size,
        training=False,
        shuffle=False,
        use_copies=False,
        embeddings=embeddings,
        genres=tuple(genres),
        audio=audio,
        frames=frames,
    )
    scores = np.asarray(model.predict(ds, verbose=0), dtype=float)
    if scores.shape != (len(ids), len(genres)):
        raise ValueError(f"model returned {scores.shape}, expected ({len(ids)}, {len(genres)})")
    out = pd.DataFrame(scores, columns=list(genres), index=pd.Index(ids, name="movieId"))
    out.insert(0, "n_slices", ds.frames_used())
    return out
