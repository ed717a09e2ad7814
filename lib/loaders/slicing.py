"""Slicing (paper, section 3.2): a film's kept frames cut into consecutive blocks.

A film of ``n`` frames gives ``ceil(n / depth)`` slices; only the last one is
zero-padded, and a film shorter than one slice gives a single padded slice.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SLICE_COLUMNS = ["movieId", "slice", "start", "stop"]


def n_slices(n_frames: int, depth: int) -> int:
    if depth < 1:
        raise ValueError(f"slice depth must be >= 1, got {depth}")
    return max(1, math.ceil(n_frames / depth))


def slice_table(index: pd.DataFrame, depth: int, max_slices_per_film: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per slice: ``movieId, slice, start, stop`` as absolute rows of the frame store.

    ``stop - start`` is below ``depth`` only for a film's last slice (the padded one).
    ``max_slices_per_film`` keeps a seeded random subset of each long film's slices,
    in trailer order, so long trailers do not dominate; ``None`` keeps them all.
    """
    rng = np.random.default_rng(seed)
    movie, number, starts, stops = [], [], [], []
    for movie_id, start, stop in index[["movieId", "start", "stop"]].itertuples(index=False):
        k = n_slices(int(stop - start), depth)
        chosen = np.arange(k)
        if max_slices_per_film is not None and k > max_slices_per_film:
            chosen = np.sort(rng.choice(k, size=max_slices_per_film, replace=False))
        for s in chosen:
            movie.append(int(movie_id))
            number.append(int(s))
            starts.append(int(start + s * depth))
            stops.append(int(min(start + (s + 1) * depth, stop)))
    return pd.DataFrame({"movieId": movie, "slice": number, "start": starts, "stop": stops}, columns=SLICE_COLUMNS)


def slice_film(frames: np.ndarray, depth: int) -> np.ndarray:
    """All slices of one film, ``(k, depth, H, W, C)``, the last one zero-padded."""
    n = len(frames)
    k = n_slices(n, depth)
    out = np.zeros((k * depth, *frames.shape[1:]), dtype=frames.dtype)
    out[:n] = frames
    return out.reshape(k, depth, *frames.shape[1:])


def gather_slices(frames: np.ndarray, starts: np.ndarray, stops: np.ndarray, depth: int) -> np.ndarray:
    """Slices ``frames[start:stop]`` zero-padded to ``depth``, as one ``(b, depth, H, W, C)`` array.

    One fancy-indexed read of the (memory-mapped) store: at 64x64 a Python loop over
    the slices would cost more than the copy itself.
    """
    starts = np.asarray(starts, dtype=np.int64)
    stops = np.asarray(stops, dtype=np.int64)
    rows = starts[:, None] + np.arange(depth, dtype=np.int64)
    np.minimum(rows, (stops - 1)[:, None], out=rows)  # past a film's end: repeat its last frame...
    out = frames[rows]
    lengths = stops - starts
    for i in np.flatnonzero(lengths < depth):  # ...then zero it (only last slices, a few per batch)
        out[i, lengths[i] :] = 0
    return out
