"""The paper's threshold report (section 3.5) on crafted scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.evaluate.threshold_report import genre_sets, threshold_report, threshold_summary

GENRES = ["Action", "Comedy", "Drama", "Horror"]
SCORES = np.array(
    [
        [0.90, 0.10, 0.50, 0.80],  # confident: Action, Horror; not: Comedy; undecided: Drama
        [0.20, 0.30, 0.40, 0.05],  # nothing confident; not: Action, Horror
        [0.76, 0.75, 0.25, 0.24],  # 0.75 is not above upper, 0.25 is not below lower
    ]
)
Y = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1]])


def test_sets_use_strict_thresholds():
    confident, confident_not, undecided = genre_sets(SCORES, 0.25, 0.75)
    np.testing.assert_array_equal(confident[2], [True, False, False, False])
    np.testing.assert_array_equal(confident_not[2], [False, False, False, True])
    np.testing.assert_array_equal(undecided[2], [False, True, True, False])
    # The three sets partition every (film, genre) pair.
    assert ((confident.astype(int) + confident_not + undecided) == 1).all()


def test_report_rows():
    films = pd.DataFrame({"movieId": [1, 2, 3], "title": ["A", "B", "C"]})
    report = threshold_report(SCORES, Y, 0.25, 0.75, films=films, genres=GENRES)
    assert list(report["title"]) == ["A", "B", "C"]
    assert report.loc[0, "confident"] == "Action 0.90, Horror 0.80"  # sorted by score
    assert report.loc[0, "undecided"] == "Drama 0.50"
    assert report.loc[0, "true_genres"] == "Action"
    assert list(report["n_confident"]) == [2, 0, 1]
    assert list(report["n_confident_true"]) == [1, 0, 1]
    assert list(report["n_undecided"]) == [1, 2, 2]
    assert list(report["n_confident_not"]) == [1, 2, 1]
    assert list(report["n_confident_not_wrong"]) == [0, 0, 1]  # Horror 0.24 is a true genre of film 3
    assert report.loc[1, "confident"] == ""


def test_summary_by_hand():
    s = threshold_summary(SCORES, Y, 0.25, 0.75)
    assert s["n_confident"] == 3
    assert s["confident_precision"] == pytest.approx(2 / 3)
    assert s["confident_not_precision"] == pytest.approx(3 / 4)
    assert s["undecided_fraction"] == pytest.approx(5 / 12)
    assert s["films_without_confident_genre"] == 1
    assert s["films_without_confident_genre_fraction"] == pytest.approx(1 / 3)
    assert s["true_genre_recall"] == pytest.approx(2 / 5)


def test_summary_without_confident_genres_is_nan_not_zero():
    s = threshold_summary(np.full((2, 4), 0.5), Y[:2], 0.25, 0.75)
    assert np.isnan(s["confident_precision"]) and s["films_without_confident_genre"] == 2


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="lower"):
        threshold_summary(SCORES, Y, 0.8, 0.75)
    with pytest.raises(ValueError, match="shape"):
        threshold_report(SCORES, Y[:2], 0.25, 0.75, genres=GENRES)
