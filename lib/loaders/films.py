"""Whole-trailer batches for the ``tsn`` model: one example per film, not per slice.

Like ``lib.loaders.slices.SliceDataset`` (and reusing its split helper): a
``keras.utils.PyDataset`` over the memory-mapped frame store, a permutation drawn
from ``seed + epoch`` per epoch, and oversampled films (``copies``) visited ``copies``
times per epoch by repeating indices. Each visit draws its own random frame per
segment (a copied film is seen through different frames); evaluation takes the
centred frame of each segment, the same every time.

An example is ``{"frames": (N, H, W, 3) uint8, "mask": (N,) bool}`` (padded slots of
a short film zeroed), or with ``embeddings`` (a frozen encoder's cache, rows aligned
with the store's frames) ``{"embeddings": (N, D) float32, "mask"}``: the same rows,
read from the cache instead of the frames.

With ``audio`` (the frames stage's log-mel windows, ``lib.frames.audio``, one per store
frame, and ``present`` per row) each example also has ``"audio": (N, steps, bands)``
float32, the windows that start at the same sampled frames, and ``"audio_mask": (N,)``:
the real positions whose window holds sound. ``frames=False`` leaves the frames (and
their ``mask``) out: a model that hears only.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from lib.core.genres import GENRES
from lib.frames.store import FrameStore
from lib.loaders.segments import segment_plan
from lib.loaders.slices import film_copies, films_of_split, n_batches


class FilmDataset(keras.utils.PyDataset):
    """``(inputs, y)`` batches of whole films; see the module docstring.

    ``training=True`` samples a random frame per segment (seeded by ``seed``, the epoch
    and the visit), otherwise the centred one. ``shuffle=False`` keeps ``films``' order,
    so predictions line up with it.
    """

    def __init__(
        self,
        store: FrameStore,
        films: pd.DataFrame,
        *,
        n_segments: int,
        batch_size: int,
        training: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        use_copies: bool = True,
        drop_remainder: bool = False,
        embeddings: np.ndarray | None = None,
        genres: tuple[str, ...] = GENRES,
        audio: tuple[np.ndarray, np.ndarray] | None = None,
        frames: bool = True,
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
        if embeddings is not None and len(embeddings) != len(store.frames):
            raise ValueError(
                f"embedding cache has {len(embeddings)} rows but the store has {len(store.frames)} frames; re-run the frames stage"
            )
        if audio is not None and (len(audio[0]) != len(store.frames) or len(audio[1]) != len(store.frames)):
            raise ValueError(
                f"the sound cache has {len(audio[0])} windows but the store has {len(store.frames)} frames; re-run the frames stage"
            )
        if not frames and audio is None:
            raise ValueError("an example needs frames or sound")
        self.store = store
        self._audio = audio
        self._use_frames = bool(frames)
        self._frames = store.frames.view(np.ndarray)
        self._embeddings = embeddings
        self.n_segments, self.batch_size = int(n_segments), int(batch_size)
        self.training, self.shuffle, self.seed = bool(training), bool(shuffle), int(seed)
        self.drop_remainder, self.genres = bool(drop_remainder), tuple(genres)
        self.movie_ids = films["movieId"].astype(int).to_numpy()
        self._labels = films[list(self.genres)].to_numpy(dtype=np.float32)

        index = store.index.loc[self.movie_ids]
        plans = [
            segment_plan(int(stop - start), self.n_segments)
            for start, stop in index[["start", "stop"]].itertuples(index=False)
        ]
        offset = index["start"].to_numpy(np.int64)[:, None]
        self._starts = offset + np.stack([p.starts for p in plans])  # absolute store rows
        self._lengths = np.stack([p.lengths for p in plans])
        self._mask = np.stack([p.mask for p in plans])
        self.n_frames = (index["stop"] - index["start"]).to_numpy(np.int64)

        self._visits = np.repeat(np.arange(len(films), dtype=np.int64), film_copies(films, use_copies))
        self.epoch = 0
        self._order, self._rows = self._epoch_plan(0)

    # -- epoch bookkeeping ------------------------------------------------------------
    def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(film per position of the epoch, store rows ``(n_visits, N)`` per position)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self._visits) if self.shuffle else self._visits
        if self.training:
            u = rng.random((len(order), self.n_segments))
            rows = self._starts[order] + np.floor(u * self._lengths[order]).astype(np.int64)
        else:
            rows = self._starts[order] + (self._lengths[order] - 1) // 2
        return order, rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._order, self._rows = self._epoch_plan(self.epoch)

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    # -- the PyDataset protocol --------------------------------------------------------
    def __len__(self) -> int:
        return n_batches(len(self._visits), self.batch_size, self.drop_remainder)

    def batch_positions(self, i: int) -> slice:
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range for {len(self)} batches")
        return slice(i * self.batch_size, (i + 1) * self.batch_size)

    def batch_rows(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(films, store rows ``(b, N)``, mask ``(b, N)``) of batch ``i`` this epoch."""
        pos = self.batch_positions(i)
        films = self._order[pos]
        return films, self._rows[pos], self._mask[films]

    def __getitem__(self, i: int):
        films, rows, mask = self.batch_rows(i)
        inputs = {}
        if self._use_frames:
            source = self._frames if self._embeddings is None else self._embeddings
            x = np.asarray(source[rows])  # one fancy-indexed read of the memmap
            if self._embeddings is not None:
                x = x.astype(np.float32)
            x[~mask] = 0
            inputs = {"frames" if self._embeddings is None else "embeddings": x, "mask": mask.copy()}
        if self._audio is not None:
            windows, present = self._audio
            heard = mask & present[rows]
            inputs["audio"] = np.asarray(windows[rows], dtype=np.float32)
            inputs["audio_mask"] = heard
        return inputs, self._labels[films]

    # -- what the notebook reports -----------------------------------------------------
    @property
    def n_films(self) -> int:
        return len(self._labels)

    @property
    def n_slices(self) -> int:
        """One example per film (the slice loader's counterpart)."""
        return len(self._labels)

    @property
    def n_visits(self) -> int:
        return len(self._visits)

    def slice_labels(self) -> np.ndarray:
        """Labels of every visit in the unshuffled order (here: per film example), ``(n_visits, 18)``."""
        return self._labels[self._visits]

    def film_labels(self) -> np.ndarray:
        return self._labels

    def frames_used(self) -> np.ndarray:
        """Real (unpadded) frames per film in one example."""
        return self._mask.sum(axis=1)

    def on_frames(self) -> FilmDataset:
        """The same films and sampling, read as raw frames (for the saved raw-frame model)."""
        films = pd.DataFrame(self._labels, columns=list(self.genres))
        films.insert(0, "movieId", self.movie_ids)
        return FilmDataset(
            self.store,
            films,
            n_segments=self.n_segments,
            batch_size=self.batch_size,
            training=self.training,
            shuffle=self.shuffle,
            seed=self.seed,
            use_copies=False,
            drop_remainder=self.drop_remainder,
            genres=self.genres,
            audio=self._audio,
            frames=self._use_frames,
        )


def make_film_datasets(
    store: FrameStore,
    labels: pd.DataFrame,
    *,
    n_segments: int,
    batch_size: int,
    seed: int,
    embeddings: np.ndarray | None = None,
    splits: tuple[str, ...] = ("train", "val"),
    **kwargs,
) -> tuple[dict[str, FilmDataset], pd.DataFrame]:
    """One dataset per split (train: shuffled, random offsets, oversampled, last short
    batch dropped; the others: in order, centred frames, each film once) and the table
    the notebook shows (same columns as ``lib.loaders.slices.make_split_datasets``')."""
    datasets, rows = {}, []
    for split in splits:
        part = films_of_split(labels, store, split)
        training = split == "train"
        ds = FilmDataset(
            store,
            part.films,
            n_segments=n_segments,
            batch_size=batch_size,
            training=training,
            shuffle=training,
            seed=seed,
            use_copies=training,
            drop_remainder=training,
            embeddings=embeddings,
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
                "short films (padded)": int((ds.frames_used() < n_segments).sum()),
            }
        )
    return datasets, pd.DataFrame(rows).set_index("split")
