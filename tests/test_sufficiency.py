"""Numbers from too little data say so: flags next to test metrics, and a train split too small stops or warns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES
from lib.scoring import sufficiency as S


def labels(n_films: int, positives: dict[str, int]) -> np.ndarray:
    y = np.zeros((n_films, len(GENRES)), int)
    for g, k in positives.items():
        y[:k, GENRES.index(g)] = 1
    return y


def test_one_test_film_is_flagged_and_warned():
    y = labels(1, {"Drama": 1})
    assert S.TOO_FEW_FILMS in S.aggregate_flag(y)
    with pytest.warns(S.TooLittleDataWarning, match="too few films"):
        assert S.warn_if_too_little_test_data(y)
    counts = S.evaluation_counts(y)
    assert counts["n_test_films"] == 1 and counts["too_few_films"]
    assert counts["positives_per_genre"]["Drama"] == 1 and counts["genres_unreliable"] == ["Drama"]


def test_enough_films_and_positives_raise_no_flag(recwarn):
    y = labels(S.MIN_TEST_FILMS, {g: S.MIN_GENRE_POSITIVES for g in GENRES})
    assert S.aggregate_flag(y) == ""
    assert S.warn_if_too_little_test_data(y) == ""
    assert not [w for w in recwarn if issubclass(w.category, S.TooLittleDataWarning)]


def test_a_genre_under_the_positive_threshold_is_unreliable_and_counted():
    y = labels(40, {"Drama": 10, "Horror": S.MIN_GENRE_POSITIVES - 1})
    flags = S.genre_flags(y)
    assert flags["Drama"] == "" and flags["Horror"].startswith(S.UNRELIABLE) and flags["Action"] == "no positive"
    assert "1 of 2 genres" in S.aggregate_flag(y) and S.TOO_FEW_FILMS not in S.aggregate_flag(y)


def split_table(n_train: int, n_val: int) -> pd.DataFrame:
    return pd.DataFrame({"films": [n_train, n_val]}, index=pd.Index(["train", "val"], name="split"))


def test_a_training_split_too_small_to_train_on_stops_with_a_clear_message():
    with pytest.raises(S.TooLittleData, match="too little data to train: 3 training and 10 validation"):
        S.check_training_split(split_table(3, 10))
    with pytest.raises(S.TooLittleData, match="1 validation"):
        S.check_training_split(split_table(200, 1))


def test_a_small_training_split_warns_loudly_and_names_rare_genres():
    y = labels(20, {"Drama": 20, "Horror": 2})
    with pytest.warns(S.TooLittleDataWarning) as caught:
        notes = S.check_training_split(split_table(20, 8), y)
    text = " ".join(str(w.message) for w in caught)
    assert "only 20 training films" in text and "only 8 validation films" in text and "Horror (2)" in text
    assert len(notes) == 3


def test_a_big_enough_training_split_passes_silently(recwarn):
    y = labels(S.MIN_TRAIN_FILMS_WARN, {g: S.MIN_GENRE_POSITIVES for g in GENRES})
    assert S.check_training_split(split_table(S.MIN_TRAIN_FILMS_WARN, S.MIN_VAL_FILMS_WARN), y) == []
    assert not [w for w in recwarn if issubclass(w.category, S.TooLittleDataWarning)]
