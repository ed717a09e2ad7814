"""Slicing (lib.loaders.slicing) and the streaming loader (lib.loaders.slices) on small synthetic stores."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES
from lib.frames.store import FilmFrames, write_frame_store
from lib.loaders.slices import SliceDataset, films_of_split, make_split_datasets, write_synthetic_corpus
from lib.loaders.slicing import gather_slices, n_slices, slice_film, slice_table

DEPTH = 4


# -- slicing ----------------------------------------------------------------------------
@pytest.mark.parametrize("frames, expected", [(0, 1), (1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (9, 3), (25, 7)])
def test_slice_count_is_ceil_and_at_least_one(frames, expected):
    assert n_slices(frames, DEPTH) == expected


def test_slice_depth_must_be_positive():
    with pytest.raises(ValueError):
        n_slices(10, 0)


def _index(lengths):
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return pd.DataFrame({"movieId": np.arange(len(lengths)) + 1, "start": starts, "stop": starts + np.asarray(lengths)})


def test_slice_table_pads_only_the_last_slice_of_each_film():
    lengths = [9, 3, 8, 1, 13]
    table = slice_table(_index(lengths), DEPTH)
    assert table.groupby("movieId").size().tolist() == [n_slices(n, DEPTH) for n in lengths]
    for movie_id, film in table.groupby("movieId"):
        sizes = (film["stop"] - film["start"]).tolist()
        assert all(s == DEPTH for s in sizes[:-1]), (movie_id, sizes)
        assert 1 <= sizes[-1] <= DEPTH
        assert sum(sizes) == lengths[movie_id - 1]  # consecutive, nothing skipped or repeated
        assert film["slice"].tolist() == list(range(len(film)))


def test_slice_table_cap_keeps_a_seeded_ordered_subset():
    index = _index([40, 6])
    full = slice_table(index, DEPTH)
    capped = slice_table(index, DEPTH, max_slices_per_film=3, seed=7)
    assert capped.groupby("movieId").size().tolist() == [3, 2]  # the short film keeps both
    long_film = capped[capped["movieId"] == 1]
    assert long_film["slice"].is_monotonic_increasing
    assert set(long_film["slice"]) <= set(full.loc[full["movieId"] == 1, "slice"])
    assert capped.equals(slice_table(index, DEPTH, max_slices_per_film=3, seed=7))
    others = [slice_table(index, DEPTH, max_slices_per_film=3, seed=s)["slice"].tolist() for s in range(8)]
    assert len({tuple(o) for o in others}) > 1, "the sample should depend on the seed"


def test_slice_film_zero_pads_only_the_last_slice():
    frames = np.arange(1, 10 * 2 * 2 * 3 + 1, dtype=np.int64).reshape(10, 2, 2, 3).astype(np.uint8) | 1  # no zero pixel
    slices = slice_film(frames, DEPTH)
    assert slices.shape == (3, DEPTH, 2, 2, 3)
    assert (slices.reshape(-1, 2, 2, 3)[:10] == frames).all()
    assert (slices[:2] != 0).all(), "full slices carry no padding"
    assert (slices[2, :2] != 0).all() and (slices[2, 2:] == 0).all()


def test_gather_slices_matches_slice_film_in_any_order():
    rng = np.random.default_rng(1)
    lengths = [9, 3, 4, 1, 12]
    frames = rng.integers(1, 256, size=(sum(lengths), 2, 2, 3), dtype=np.uint8)
    index = _index(lengths)
    table = slice_table(index, DEPTH)
    expected = np.concatenate([slice_film(frames[s:e], DEPTH) for s, e in zip(index["start"], index["stop"])])
    order = np.random.default_rng(0).permutation(len(table))  # any order, as in a shuffled batch
    got = gather_slices(frames, table["start"].to_numpy()[order], table["stop"].to_numpy()[order], DEPTH)
    assert type(got) is np.ndarray and got.dtype == np.uint8
    assert (got == expected[order]).all()
    padded = (got.reshape(len(table), DEPTH, -1) == 0).all(axis=2)
    assert padded.sum() == sum(-n % DEPTH for n in lengths), "exactly the missing frames of last slices are zero"


# -- the loader -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    store, labels = write_synthetic_corpus(
        tmp_path_factory.mktemp("store"), n_films=20, frames_per_film=(2, 15), size=8, seed=3
    )
    return store, labels


def _train_films(corpus):
    store, labels = corpus
    return films_of_split(labels, store, "train").films


def test_batches_are_uint8_slices_with_their_films_labels(corpus):
    store, _ = corpus
    films = _train_films(corpus)
    ds = SliceDataset(store, films, depth=DEPTH, batch_size=5, shuffle=True, seed=1)
    labels_by_film = films.set_index("movieId")[list(GENRES)]
    seen = 0
    for i in range(len(ds)):
        x, y = ds[i]
        rows = ds.batch_indices(i)
        assert x.dtype == np.uint8 and x.shape == (len(rows), DEPTH, 8, 8, 3)
        assert y.dtype == np.float32 and y.shape == (len(rows), len(GENRES))
        for j, r in enumerate(rows):
            s = ds.slices.iloc[r]
            assert (y[j] == labels_by_film.loc[s["movieId"]].to_numpy()).all()
            assert (x[j] == slice_film(store.film(s["movieId"]), DEPTH)[s["slice"]]).all()
        seen += len(rows)
    assert seen == ds.n_visits == ds.n_slices


def test_copies_repeat_oversampled_films_within_an_epoch(corpus):
    store, _ = corpus
    films = _train_films(corpus).copy()
    films["copies"] = 1
    films.loc[0, "copies"] = 3
    ds = SliceDataset(store, films, depth=DEPTH, batch_size=4, shuffle=True, seed=0)
    first = films.loc[0, "movieId"]
    k = n_slices(store.n_frames(first), DEPTH)
    assert ds.n_visits == ds.n_slices + 2 * k
    visited = np.concatenate([ds.batch_indices(i) for i in range(len(ds))])
    counts = pd.Series(ds.slices["movieId"].to_numpy()[visited]).value_counts()
    assert counts[first] == 3 * k
    assert (counts.drop(first) == [n_slices(store.n_frames(m), DEPTH) for m in counts.drop(first).index]).all()
    no_copies = SliceDataset(store, films, depth=DEPTH, batch_size=4, use_copies=False)
    assert no_copies.n_visits == no_copies.n_slices


def _epoch_orders(ds, epochs):
    orders = []
    for _ in range(epochs):
        orders.append(np.concatenate([ds.batch_indices(i) for i in range(len(ds))]))
        ds.on_epoch_end()
    return orders


def test_shuffling_changes_every_epoch_and_repeats_for_the_same_seed(corpus):
    store, _ = corpus
    films = _train_films(corpus)
    make = lambda seed: SliceDataset(store, films, depth=DEPTH, batch_size=3, shuffle=True, seed=seed)  # noqa: E731
    a, b, c = _epoch_orders(make(5), 3), _epoch_orders(make(5), 3), _epoch_orders(make(6), 3)
    assert all((x == y).all() for x, y in zip(a, b)), "same seed, same orders"
    assert not (a[0] == a[1]).all() and not (a[1] == a[2]).all(), "a new order every epoch"
    assert not (a[0] == c[0]).all(), "another seed, another order"
    for order in a:  # a permutation: every slice exactly once per epoch
        assert sorted(order.tolist()) == list(range(make(5).n_slices))


def test_unshuffled_dataset_follows_the_slice_table(corpus):
    store, _ = corpus
    ds = SliceDataset(store, _train_films(corpus), depth=DEPTH, batch_size=4)
    order = np.concatenate([ds.batch_indices(i) for i in range(len(ds))])
    assert order.tolist() == list(range(ds.n_slices))
    ds.on_epoch_end()
    assert np.concatenate([ds.batch_indices(i) for i in range(len(ds))]).tolist() == order.tolist()
    assert (ds.slice_labels() == np.concatenate([ds[i][1] for i in range(len(ds))])).all()


def test_drop_remainder_keeps_only_full_batches(corpus):
    store, _ = corpus
    films = _train_films(corpus)
    full = SliceDataset(store, films, depth=DEPTH, batch_size=4, shuffle=True)
    dropped = SliceDataset(store, films, depth=DEPTH, batch_size=4, shuffle=True, drop_remainder=True)
    assert full.n_slices % 4, "the fixture should leave a short last batch"
    assert len(dropped) == full.n_slices // 4 and len(full) == len(dropped) + 1
    assert all(len(dropped[i][0]) == 4 for i in range(len(dropped)))
    with pytest.raises(IndexError):
        dropped[len(dropped)]


def test_loader_reads_from_disk_without_copying_the_store(tmp_path):
    rng = np.random.default_rng(0)
    films = [FilmFrames(i, f"y{i}", rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)) for i in range(40)]
    store = write_frame_store(tmp_path / "store", films)
    labels = pd.DataFrame({"movieId": range(40), **{g: 0 for g in GENRES}})
    del films
    assert isinstance(store.frames, np.memmap)
    tracemalloc.start()
    try:
        ds = SliceDataset(store, labels, depth=10, batch_size=8, shuffle=True, seed=0)
        for i in range(len(ds)):
            ds[i]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    store_bytes = store.frames.nbytes  # 7.4 MB; a batch is 8 x 10 frames = 0.25 MB
    assert ds.n_visits == 40 * 6
    assert peak < store_bytes / 10, f"peak {peak} bytes during an epoch over a {store_bytes}-byte store"
    assert isinstance(ds.frames, np.memmap)


def test_split_selection_reports_films_without_frames(corpus):
    store, labels = corpus
    extra = labels.iloc[[0]].assign(movieId=999_999, split="val")
    with_missing = pd.concat([labels, extra], ignore_index=True)
    val = films_of_split(with_missing, store, "val")
    assert val.missing == [999_999]
    assert set(val.films["movieId"]) == set(labels.loc[labels["split"] == "val", "movieId"])
    with pytest.raises(KeyError, match="no frames"):
        SliceDataset(store, with_missing[with_missing["split"] == "val"], depth=DEPTH, batch_size=2)
    with pytest.raises(KeyError, match="lacks columns"):
        films_of_split(labels.drop(columns=["Drama"]), store, "val")


def test_split_datasets_table_reconciles(corpus):
    store, labels = corpus
    datasets, table = make_split_datasets(
        store, labels, depth=DEPTH, batch_size=3, seed=0, splits=("train", "val", "test")
    )
    assert table.loc[:, "films listed"].tolist() == labels["split"].value_counts()[["train", "val", "test"]].tolist()
    assert datasets["train"].shuffle and datasets["train"].drop_remainder
    assert not datasets["val"].shuffle and not datasets["val"].drop_remainder
    assert table.loc["val", "batches"] == len(datasets["val"])
