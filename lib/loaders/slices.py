"""Streaming training batches out of the memory-mapped frame store.

This replaces the paper's Keras generator, which listed a folder and decoded and
resized ten JPEGs for every slice of every batch. Here a slice is ``depth`` consecutive
rows of ``frames.npy``: a batch is one copy out of the page cache, uint8, and the model
scales it to [0, 1] itself.

* Slices come from ``lib.loaders.slicing.slice_table`` (only a film's last slice is
  zero-padded); every slice carries its film's 18 labels. A batch is gathered with one
  fancy-indexed read of the memmap (``lib.loaders.slicing.gather_slices``).
* An epoch visits each slice ``copies`` times (the prepare stage's oversampling of
  rare-genre training films), by repeating indices, never data.
* Shuffling is a permutation drawn from ``seed + epoch``: different every epoch, the
  same for the same seed, and independent of any global random state.
* Nothing but the slice table and the label matrix lives in memory; frames stay on
  disk until a batch needs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from lib.core.genres import GENRES
from lib.frames.store import FilmFrames, FrameStore, write_frame_store
from lib.loaders.slicing import gather_slices, slice_table

SPLITS = ("train", "val", "test")


@dataclass
class SplitFilms:
    """The films of one split that have frames, and those that do not."""

    films: pd.DataFrame  # labels.csv rows (movieId, genres, copies) with frames in the store
    missing: list[int]  # movieIds listed in labels.csv for the split but absent from the store


def films_of_split(labels: pd.DataFrame, store: FrameStore, split: str) -> SplitFilms:
    """labels.csv rows of ``split`` whose trailer made it into the frame store."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    lacking = [c for c in ("movieId", "split", *GENRES) if c not in labels.columns]
    if lacking:
        raise KeyError(f"labels table lacks columns {lacking}; expected the prepare stage's labels.csv")
    rows = labels[labels["split"] == split]
    in_store = rows["movieId"].isin(store.movie_ids)
    return SplitFilms(
        films=rows[in_store].reset_index(drop=True), missing=rows.loc[~in_store, "movieId"].astype(int).tolist()
    )


def film_copies(films: pd.DataFrame, use_copies: bool = True) -> np.ndarray:
    """Visits of each film in one epoch: its ``copies`` (training-split oversampling) or 1."""
    copies = (
        films["copies"].to_numpy(dtype=np.int64)
        if use_copies and "copies" in films.columns
        else np.ones(len(films), np.int64)
    )
    if (copies < 1).any():
        raise ValueError("every film needs copies >= 1")
    return copies


def n_batches(n_examples: int, batch_size: int, drop_remainder: bool) -> int:
    """Batches per epoch; a non-empty epoch has at least one, even with ``drop_remainder``."""
    batches = n_examples // batch_size if drop_remainder else math.ceil(n_examples / batch_size)
    return max(batches, 1 if n_examples else 0)


class SliceDataset(keras.utils.PyDataset):
    """``(x, y)`` batches: x ``(b, depth, H, W, 3)`` uint8 slices, y ``(b, 18)`` float32 labels.

    ``films`` holds one row per film (``movieId``, the GENRES columns and, optionally,
    ``copies``); every film must be in ``store``. ``shuffle=False`` keeps the slice
    table's order (film by film, slice by slice) so predictions line up with ``slices``.
    ``drop_remainder`` drops the last short batch (training: BatchNorm on a batch of one
    is noise, and data-parallel training needs equal batches).
    """

    def __init__(
        self,
        store: FrameStore,
        films: pd.DataFrame,
        *,
        depth: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        max_slices_per_film: int | None = None,
        use_copies: bool = True,
        drop_remainder: bool = False,
        genres: tuple[str, ...] = GENRES,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        films = films.reset_index(drop=True)
        absent = sorted(set(films["movieId"].astype(int)) - set(store.movie_ids.tolist()))
        if absent:
            raise KeyError(
                f"{len(absent)} films have no frames in the store, e.g. {absent[:5]}; filter with films_of_split"
            )
        self.store, self.frames = store, store.frames  # the memmap itself, never a copy
        self._frames = store.frames.view(np.ndarray)  # same pages; batches come out as plain arrays
        self.depth, self.batch_size = int(depth), int(batch_size)
        self.shuffle, self.seed, self.drop_remainder = bool(shuffle), int(seed), bool(drop_remainder)
        self.genres = tuple(genres)

        self.slices = slice_table(
            store.index.loc[films["movieId"].to_numpy()], self.depth, max_slices_per_film, self.seed
        )
        film_row = pd.Index(films["movieId"]).get_indexer(self.slices["movieId"])
        self._film_labels = films[list(self.genres)].to_numpy(dtype=np.float32)
        self._slice_film = film_row.astype(np.int64)
        self._starts = self.slices["start"].to_numpy(np.int64)
        self._stops = self.slices["stop"].to_numpy(np.int64)
        copies = film_copies(films, use_copies)
        # One entry per visit of a slice in an epoch: oversampled films repeat indices, not frames.
        self._visits = np.repeat(np.arange(len(self.slices), dtype=np.int64), copies[self._slice_film])
        self.epoch = 0
        self._order = self._epoch_order(0)

    # -- epoch bookkeeping ------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return self._visits
        return np.random.default_rng(self.seed + epoch).permutation(self._visits)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._order = self._epoch_order(self.epoch)

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    # -- the PyDataset protocol --------------------------------------------------------
    def __len__(self) -> int:
        return n_batches(len(self._visits), self.batch_size, self.drop_remainder)

    def batch_indices(self, i: int) -> np.ndarray:
        """Slice-table rows of batch ``i`` in the current epoch."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range for {len(self)} batches")
        return self._order[i * self.batch_size : (i + 1) * self.batch_size]

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.batch_indices(i)
        x = gather_slices(self._frames, self._starts[rows], self._stops[rows], self.depth)
        return x, self._film_labels[self._slice_film[rows]]

    # -- what the notebook reports -----------------------------------------------------
    @property
    def n_films(self) -> int:
        return len(self._film_labels)

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    @property
    def n_visits(self) -> int:
        """Slices per epoch, oversampled copies included."""
        return len(self._visits)

    def slice_labels(self) -> np.ndarray:
        """Labels of every slice visit in the unshuffled order, ``(n_visits, 18)``."""
        return self._film_labels[self._slice_film[self._visits]]

    def film_labels(self) -> np.ndarray:
        return self._film_labels


def make_split_datasets(
    store: FrameStore,
    labels: pd.DataFrame,
    *,
    depth: int,
    batch_size: int,
    seed: int,
    max_slices_per_film: int | None = None,
    splits: tuple[str, ...] = ("train", "val"),
    **kwargs,
) -> tuple[dict[str, SliceDataset], pd.DataFrame]:
    """One dataset per split (train shuffled with oversampling, the others in order,
    each film once) and a table of films listed / with frames / slices per split."""
    datasets, rows = {}, []
    for split in splits:
        part = films_of_split(labels, store, split)
        training = split == "train"
        ds = SliceDataset(
            store,
            part.films,
            depth=depth,
            batch_size=batch_size,
            shuffle=training,
            seed=seed,
            max_slices_per_film=max_slices_per_film,
            use_copies=training,
            drop_remainder=training,
            **kwargs,
        )
        datasets[split] = ds
        rows.append(
            {
                "split": split,
                "films listed": len(part.films) + len(part.missing),
                "films without frames": len(part.missing),
                "films": ds.n_films,
                "slices": ds.n_slices,
                "slices per epoch": ds.n_visits,
                "batches": len(ds),
            }
        )
    return datasets, pd.DataFrame(rows).set_index("split")


def write_synthetic_corpus(
    directory,
    n_films: int = 24,
    frames_per_film: tuple[int, int] = (5, 35),
    size: int = 16,
    seed: int = 0,
    signal: float = 0.6,
) -> tuple[FrameStore, pd.DataFrame]:
    """A small store and labels table in the prepare/frames contracts, for tests, the
    benchmark and trying the notebook before the upstream stages have run.

    Each genre owns a colour; a film's frames are noise tinted towards the mean colour of
    its genres (``signal`` sets how strongly), so a model can learn something. Film
    lengths vary, so padded last slices and multi-slice films both occur.
    """
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(len(GENRES), 3))
    films, rows = [], []
    for k in range(n_films):
        movie_id = 1000 + k
        genres = rng.choice(len(GENRES), size=rng.integers(1, 4), replace=False)
        n = int(rng.integers(frames_per_film[0], frames_per_film[1] + 1))
        noise = rng.integers(0, 256, size=(n, size, size, 3))
        tint = palette[genres].mean(axis=0)
        frames = ((1 - signal) * noise + signal * tint).clip(0, 255).astype(np.uint8)
        films.append(FilmFrames(movie_id, f"yt{movie_id}", frames))
        row = {"movieId": movie_id, "youtubeId": f"yt{movie_id}", "title": f"Film {k}"}
        row.update({g: int(i in genres) for i, g in enumerate(GENRES)})
        rows.append(row)
    labels = pd.DataFrame(rows)
    # 3 train : 1 val : 1 test, interleaved so every split gets short and long films.
    split = np.where(np.arange(n_films) % 5 < 3, "train", np.where(np.arange(n_films) % 5 == 3, "val", "test"))
    labels["split"] = split
    labels["copies"] = 1
    return write_frame_store(directory, films), labels
