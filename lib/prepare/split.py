"""A leak-free, multi-label stratified split by film, and oversampling on the training split only.

The split is Sechidis et al.'s iterative stratification (ECML PKDD 2011): the
rarest genre's films are placed first, each into the split that still wants the
most films of that genre. Two changes for small corpora: a genre with at least
one film per split asks every split for at least one film, and a repair pass
moves a film into any split still missing such a genre when another split can
spare one. Each film is one row, so no film (and no copy of one) can be in two
splits; oversampling only sets a ``copies`` count on training films.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def check_fractions(fractions: Mapping[str, float]) -> np.ndarray:
    """The split sizes as an array in SPLITS order; they must be >= 0, sum to 1, and train > 0."""
    if set(fractions) != set(SPLITS):
        raise ValueError(f"prepare.split needs exactly the keys {list(SPLITS)}, got {sorted(fractions)}")
    r = np.array([float(fractions[s]) for s in SPLITS])
    if (r < 0).any() or abs(r.sum() - 1.0) > 1e-6 or r[0] <= 0:
        raise ValueError(f"prepare.split fractions must be >= 0 with train > 0 and sum to 1, got {dict(fractions)}")
    return r


def stratified_split(y: np.ndarray, fractions: Mapping[str, float], seed: int) -> np.ndarray:
    """Assign each film (row of the 0/1 matrix ``y``) to 'train', 'val' or 'test'."""
    r = check_fractions(fractions)
    y = np.asarray(y).astype(bool)
    rng = np.random.default_rng(seed)
    fold = _iterative_stratification(y, r, rng)
    fold = _repair_coverage(y, fold, r)
    return np.array(SPLITS, dtype=object)[fold]


def _iterative_stratification(y: np.ndarray, r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, n_labels = y.shape
    k = len(r)
    counts = y.sum(axis=0)
    want_label = r[:, None] * counts[None, :]
    covered = (counts >= (r > 0).sum())[None, :] & (r[:, None] > 0)
    want_label = np.where(covered, np.maximum(want_label, 1.0), want_label)
    want_label[r == 0] = -np.inf
    want_total = np.where(r > 0, r * n, -np.inf)

    # Plain Python lists: the loop below is inherently sequential (each placement changes
    # what the splits want), and list indexing is several times faster than numpy scalars.
    wl = want_label.tolist()
    wt = want_total.tolist()
    order = rng.permutation(n)
    noise = rng.random((n, k)).tolist()
    rows, cols = np.nonzero(y)
    labels_of = np.split(cols, np.cumsum(y.sum(axis=1))[:-1])
    labels_of = [a.tolist() for a in labels_of]
    left = counts.astype(np.int64).tolist()  # unplaced films per label
    by_label = [order[y[order, g]].tolist() for g in range(n_labels)]
    fold = [-1] * n
    splits = range(k)

    def place(i: int, key_label: int | None) -> None:
        if key_label is None:
            j = max(splits, key=lambda s: (wt[s], noise[i][s]))
        else:
            j = max(splits, key=lambda s: (wl[s][key_label], wt[s], noise[i][s]))
        fold[i] = j
        wt[j] -= 1
        for m in labels_of[i]:
            wl[j][m] -= 1
            left[m] -= 1

    while True:
        open_labels = [g for g in range(n_labels) if left[g] > 0]
        if not open_labels:
            break
        label = min(open_labels, key=lambda g: (left[g], g))
        for i in by_label[label]:
            if fold[i] < 0:
                place(i, label)
    for i in order.tolist():  # films with no label at all, if any
        if fold[i] < 0:
            place(i, None)
    return np.array(fold, dtype=np.int64)


def _repair_coverage(y: np.ndarray, fold: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Move single films so that every genre with >= one film per split reaches every split, when possible."""
    active = np.flatnonzero(r > 0)
    fold = fold.copy()
    totals = y.sum(axis=0)
    for label in np.flatnonzero(totals >= len(active)):
        for target in active:
            per_split = np.array([(y[fold == s, label]).sum() for s in range(len(r))])
            if per_split[target] > 0:
                continue
            donor = int(np.argmax(np.where(r > 0, per_split, -1)))
            if per_split[donor] < 2:
                continue
            donor_counts = y[fold == donor].sum(axis=0)
            candidates = np.flatnonzero((fold == donor) & y[:, label])
            # Move the film whose genres the donor can best spare, so no new gap opens.
            spare = np.array([(donor_counts[y[i]] >= 2).all() for i in candidates])
            if not spare.any():
                continue
            fewest_labels = candidates[spare][np.argmin(y[candidates[spare]].sum(axis=1))]
            fold[fewest_labels] = target
    return fold


def oversample_copies(y: np.ndarray, split: np.ndarray, below: float, max_copies: int) -> np.ndarray:
    """How many times each film is used per epoch: > 1 only for training films with a rare genre.

    A genre is rare when its share of the training films is below ``below``; a film
    with rare genres gets ``ceil(below / share)`` copies for its rarest one, at most
    ``max_copies``. ``below = 0`` turns oversampling off.
    """
    y = np.asarray(y).astype(bool)
    copies = np.ones(len(y), dtype=np.int64)
    if below <= 0:
        return copies
    if max_copies < 1:
        raise ValueError(f"prepare.oversample_max_copies must be >= 1, got {max_copies}")
    train = np.asarray(split) == "train"
    if not train.any():
        return copies
    share = y[train].mean(axis=0)
    rare = (share > 0) & (share < below)
    per_genre = np.ones(y.shape[1], dtype=np.int64)
    per_genre[rare] = np.minimum(np.ceil(below / share[rare]), max_copies).astype(np.int64)
    film_copies = np.where(y, per_genre[None, :], 1).max(axis=1)
    copies[train] = film_copies[train]
    return copies


def split_genre_counts(labels: pd.DataFrame, genres: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Films per genre in each split (and overall), plus each split's share of the genre's films."""
    table = labels.groupby("split")[list(genres)].sum().T.reindex(columns=list(SPLITS), fill_value=0)
    table["all"] = table.sum(axis=1)
    for s in SPLITS:
        table[f"{s} share"] = (table[s] / table["all"].where(table["all"] > 0)).round(2)
    if "copies" in labels and (labels["copies"] > 1).any():
        train = labels[labels["split"] == "train"]
        table["train with copies"] = (train[list(genres)].to_numpy() * train["copies"].to_numpy()[:, None]).sum(axis=0)
    table.index.name = "genre"
    return table
