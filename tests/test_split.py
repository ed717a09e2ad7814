"""The stratified split by film, and oversampling on the training split only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.prepare.split import SPLITS, oversample_copies, split_genre_counts, stratified_split

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def skewed_labels(n: int, seed: int = 0) -> np.ndarray:
    """Multi-label 0/1 matrix with MovieLens-like skew: one common, several middling, a few rare genres."""
    rng = np.random.default_rng(seed)
    rates = np.array([0.45, 0.3, 0.15, 0.12, 0.1, 0.08, 0.05, 0.03, 0.01])
    y = (rng.random((n, len(rates))) < rates).astype(np.int8)
    y[y.sum(axis=1) == 0, 0] = 1  # every film has a genre, as after the prepare stage's drop
    return y


def test_every_film_gets_exactly_one_split_with_the_requested_sizes():
    y = skewed_labels(3000)
    split = stratified_split(y, FRACTIONS, seed=1)
    assert split.shape == (3000,)
    assert set(split) == set(SPLITS)
    for name, share in FRACTIONS.items():
        assert abs((split == name).mean() - share) < 0.01, name


def test_each_genre_keeps_its_share_in_every_split():
    y = skewed_labels(3000)
    split = stratified_split(y, FRACTIONS, seed=1)
    for g in range(y.shape[1]):
        total = y[:, g].sum()
        for name, share in FRACTIONS.items():
            got = y[split == name, g].sum()
            # iterative stratification is off by at most a film or two per genre and split
            assert abs(got - share * total) <= max(2.0, 0.02 * total), (g, name, got, share * total)


def test_stratification_beats_a_random_split_on_rare_genres():
    y = skewed_labels(1500, seed=3)
    ours = stratified_split(y, FRACTIONS, seed=0)
    rng = np.random.default_rng(0)
    naive = rng.choice(np.array(SPLITS, dtype=object), size=len(y), p=list(FRACTIONS.values()))

    def error(split):
        return sum(abs(y[split == s].sum(axis=0) - f * y.sum(axis=0)).sum() for s, f in FRACTIONS.items())

    assert error(ours) < error(naive) / 3


def test_same_seed_same_split_other_seed_other_split():
    y = skewed_labels(500)
    a, b, c = (stratified_split(y, FRACTIONS, seed=s) for s in (7, 7, 8))
    assert (a == b).all()
    assert (a != c).any()


@pytest.mark.parametrize("seed", range(5))
def test_a_genre_with_three_films_reaches_every_split(seed):
    y = skewed_labels(120, seed=seed)
    y[:, -1] = 0
    rare = np.random.default_rng(seed).choice(len(y), size=3, replace=False)
    y[rare, -1] = 1
    split = stratified_split(y, FRACTIONS, seed=seed)
    for g in np.flatnonzero(y.sum(axis=0) >= 3):
        assert {split[i] for i in np.flatnonzero(y[:, g])} == set(SPLITS), g


def _rare_genre_corpus(seed: int, n: int = 120) -> np.ndarray:
    y = skewed_labels(n, seed=seed)
    y[:, -1] = 0
    y[np.random.default_rng(seed).choice(n, size=3, replace=False), -1] = 1
    return y


@pytest.mark.parametrize("case", ["three films only", "skewed corpus"])
@pytest.mark.parametrize("seed", [0, 473])
def test_only_the_repair_brings_a_three_film_genre_into_small_splits(case, seed):
    # With 0.8/0.1/0.1, stratification alone leaves a small split without the genre; the repair must fix that.
    from lib.prepare.split import _iterative_stratification, check_fractions

    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    y = np.ones((3, 1), dtype=np.int8) if case == "three films only" else _rare_genre_corpus(seed)
    rare = np.flatnonzero(y.sum(axis=0) >= 3)
    unrepaired = _iterative_stratification(y.astype(bool), check_fractions(fractions), np.random.default_rng(seed))
    assert any(len(set(unrepaired[y[:, g] == 1])) < 3 for g in rare), (
        "this case no longer needs the repair: pick another"
    )

    split = stratified_split(y, fractions, seed=seed)
    for g in rare:
        assert {split[i] for i in np.flatnonzero(y[:, g])} == set(SPLITS), g
    if case == "three films only":
        assert sorted(split) == sorted(SPLITS)


def test_a_genre_with_two_films_cannot_reach_three_splits_and_stays_whole():
    y = np.zeros((30, 2), dtype=np.int8)
    y[:, 0] = 1
    y[:2, 1] = 1
    split = stratified_split(y, FRACTIONS, seed=0)
    assert len(split) == 30 and set(split) == set(SPLITS)
    assert len({split[0], split[1]}) == 2  # two films of the genre, two different splits


def test_zero_fraction_split_gets_no_films():
    y = skewed_labels(200)
    split = stratified_split(y, {"train": 0.8, "val": 0.0, "test": 0.2}, seed=0)
    assert set(split) == {"train", "test"}


@pytest.mark.parametrize(
    "bad",
    [
        {"train": 0.6, "val": 0.2},
        {"train": 0.6, "val": 0.2, "test": 0.3},
        {"train": 0.0, "val": 0.5, "test": 0.5},
        {"train": 1.2, "val": -0.1, "test": -0.1},
        {"train": 0.6, "val": 0.2, "holdout": 0.2},
    ],
)
def test_bad_fractions_are_refused(bad):
    with pytest.raises(ValueError, match="prepare.split"):
        stratified_split(skewed_labels(50), bad, seed=0)


def test_oversampling_off_means_one_copy_each():
    y = skewed_labels(300)
    split = stratified_split(y, FRACTIONS, seed=0)
    assert (oversample_copies(y, split, below=0.0, max_copies=5) == 1).all()


def test_oversampling_copies_only_training_films_with_a_rare_genre():
    y = np.zeros((100, 3), dtype=np.int8)
    y[:, 0] = 1
    y[:10, 1] = 1  # 10% of train
    y[:4, 2] = 1  # 4% of train
    split = np.array(["train"] * 100 + ["test"] * 20, dtype=object)
    y = np.vstack([y, np.tile([1, 1, 1], (20, 1))])
    copies = oversample_copies(y, split, below=0.2, max_copies=10)
    assert (copies[split == "test"] == 1).all(), "a copy outside train would leak"
    assert (copies[:4] == 5).all()  # ceil(0.2 / 0.04) for the rarest genre
    assert (copies[4:10] == 2).all()  # ceil(0.2 / 0.10)
    assert (copies[10:100] == 1).all()
    capped = oversample_copies(y, split, below=0.2, max_copies=3)
    assert capped.max() == 3 and (capped[4:10] == 2).all()


def test_split_genre_counts_adds_up():
    y = skewed_labels(400)
    labels = pd.DataFrame(y, columns=[f"g{i}" for i in range(y.shape[1])])
    labels["split"] = stratified_split(y, FRACTIONS, seed=0)
    labels["copies"] = 1
    table = split_genre_counts(labels, list(labels.columns[: y.shape[1]]))
    assert (table[list(SPLITS)].sum(axis=1) == table["all"]).all()
    assert (table["all"].to_numpy() == y.sum(axis=0)).all()


def test_repair_moves_spare_films_into_a_split_missing_a_genre():
    from lib.prepare.split import _repair_coverage

    y = np.zeros((20, 2), dtype=bool)
    y[:, 0] = True
    y[:4, 1] = True
    fold = np.array([0] * 12 + [1] * 4 + [2] * 4)  # all four films of genre 1 sit in train
    fixed = _repair_coverage(y, fold, np.array([0.6, 0.2, 0.2]))
    assert set(fixed[:4]) == {0, 1, 2}
    assert (fixed[4:] == fold[4:]).all(), "only films of the missing genre move"
    for s in range(3):
        assert y[fixed == s, 0].any()


def test_repair_never_takes_a_donor_split_s_last_film_of_another_genre():
    from lib.prepare.split import _repair_coverage

    y = np.zeros((9, 4), dtype=bool)
    y[:, 0] = True
    y[[0, 1, 2], 1] = True  # genre 1: all three films in train
    y[[0, 1, 5, 8], 2] = True  # genre 2: two films in train, one each in val and test
    y[[2, 6, 7], 3] = True  # genre 3: film 2 is train's only one
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    fixed = _repair_coverage(y, fold, np.array([0.6, 0.2, 0.2]))
    assert fixed[0] == 1, "a film train can spare moves to val"
    assert fixed[1] == 0 and fixed[2] == 0, "train's last film of genre 2 or 3 stays"
    for g in (2, 3):
        assert {int(s) for s in fixed[y[:, g]]} == {0, 1, 2}, g
