"""The compact frame store that replaces the paper's 30 GiB of JPEGs.

Layout of a store directory:

* ``frames.npy``: every kept frame of every film, ``(N, H, W, 3)`` uint8, opened
  memory-mapped, so a 64x64 frame costs exactly 12,288 bytes and reading a slice
  touches only its own pages;
* ``index.csv``: one row per film, ``movieId, youtubeId, start, stop``: the film's
  frames are ``frames[start:stop]``, in trailer order;
* ``settings.json`` (stores the frames stage writes): the extraction settings
  (``lib.core.params.FrameSettings``) the frames were made with, so a model trained on
  the store records them and scores a new trailer the same way.

Both files are written under a temporary name and renamed into place, index last,
so a reader never sees a half-written store: no ``index.csv`` means no store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.atomic import atomic_write, replace_synced
from lib.core.params import FrameSettings, parse

FRAMES_FILE = "frames.npy"
INDEX_FILE = "index.csv"
INDEX_COLUMNS = ["movieId", "youtubeId", "start", "stop"]
SETTINGS_FILE = "settings.json"


@dataclass
class FilmFrames:
    movie_id: int
    youtube_id: str
    frames: np.ndarray  # (n, H, W, 3) uint8


class FrameStore:
    """Read side of a store: ``store.film(movie_id)`` is a zero-copy view."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index_path = self.directory / INDEX_FILE
        if not index_path.exists():
            raise FileNotFoundError(
                f"no frame store at {self.directory} (missing {INDEX_FILE}); run the frames stage first"
            )
        self.index = pd.read_csv(index_path, dtype={"youtubeId": str}).set_index("movieId", drop=False)
        self.frames: np.ndarray = np.load(self.directory / FRAMES_FILE, mmap_mode="r")
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4:
            raise ValueError(
                f"{self.directory / FRAMES_FILE}: expected (N, H, W, 3) uint8, got {self.frames.dtype} {self.frames.shape}"
            )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def movie_ids(self) -> np.ndarray:
        return self.index["movieId"].to_numpy()

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return tuple(self.frames.shape[1:])  # type: ignore[return-value]

    def n_frames(self, movie_id: int) -> int:
        row = self.index.loc[movie_id]
        return int(row["stop"] - row["start"])

    def film(self, movie_id: int) -> np.ndarray:
        row = self.index.loc[movie_id]
        return self.frames[int(row["start"]) : int(row["stop"])]

    @property
    def settings(self) -> FrameSettings | None:
        """The extraction settings of a frames-stage store; None for a store made otherwise (tests, benchmarks)."""
        path = self.directory / SETTINGS_FILE
        if not path.is_file():
            return None
        return parse(FrameSettings, json.loads(path.read_text(encoding="utf-8")), "frames", str(path))

    def nbytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())


def write_frame_store(
    directory: str | Path,
    films: Iterable[FilmFrames],
    frame_shape: tuple[int, int, int] | None = None,
    settings: FrameSettings | None = None,
) -> FrameStore:
    """Write ``films`` (an iterable that may be consumed twice, e.g. a list) as one store.

    Films with zero frames are skipped. The previous store, if any, stays readable
    until the new index is renamed into place.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    films = [f for f in films if len(f.frames)]
    if frame_shape is None:
        if not films:
            raise ValueError("cannot infer the frame shape of an empty store; pass frame_shape")
        frame_shape = tuple(films[0].frames.shape[1:])  # type: ignore[assignment]
    total = sum(len(f.frames) for f in films)

    tmp_frames = directory / (FRAMES_FILE + ".tmp")
    out = np.lib.format.open_memmap(tmp_frames, mode="w+", dtype=np.uint8, shape=(total, *frame_shape))
    rows, start = [], 0
    for f in films:
        if f.frames.shape[1:] != tuple(frame_shape) or f.frames.dtype != np.uint8:
            raise ValueError(
                f"film {f.movie_id}: frames {f.frames.dtype} {f.frames.shape[1:]} do not match the store's uint8 {frame_shape}"
            )
        stop = start + len(f.frames)
        out[start:stop] = f.frames
        rows.append((int(f.movie_id), str(f.youtube_id), start, stop))
        start = stop
    out.flush()
    del out

    tmp_index = directory / (INDEX_FILE + ".tmp")
    pd.DataFrame(rows, columns=INDEX_COLUMNS).to_csv(tmp_index, index=False)
    # Drop the old index first: between the two renames there is no store, never a mismatched one.
    (directory / INDEX_FILE).unlink(missing_ok=True)
    (directory / SETTINGS_FILE).unlink(missing_ok=True)
    if settings is not None:
        atomic_write(directory / SETTINGS_FILE, json.dumps(settings.as_dict(), indent=1) + "\n")
    replace_synced(tmp_frames, directory / FRAMES_FILE)
    replace_synced(tmp_index, directory / INDEX_FILE)
    return FrameStore(directory)
