"""Slice predictions from the frame store, and slice-to-film aggregation."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES
from lib.frames.store import FilmFrames, write_frame_store
from lib.loaders.slicing import slice_film
from lib.models.scoring import aggregate_scores, film_scores, predict_films, predict_slices

DEPTH = 4


def tiny_model(depth: int = DEPTH, size: int = 8) -> keras.Model:
    """Deterministic (depth, size, size, 3) uint8 -> 18 sigmoids, sensitive to frame order and padding."""
    inputs = keras.Input((depth, size, size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Reshape((depth, size * size * 3))(x)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Dense(5, activation="tanh")(x))
    return keras.Model(inputs, keras.layers.Dense(len(GENRES), activation="sigmoid")(x))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    lengths = {11: 9, 12: 4, 13: 1, 14: 6}  # 3, 1, 1 and 2 slices at depth 4
    films = [FilmFrames(m, f"yt{m}", rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)) for m, n in lengths.items()]
    store = write_frame_store(tmp_path_factory.mktemp("store"), films)
    return store, tiny_model(), lengths


def test_slices_match_the_inference_slicing(setup):
    store, model, lengths = setup
    slices = predict_slices(model, store, [11, 12, 13, 14], DEPTH, batch_size=3)
    assert list(slices.groupby("movieId", sort=False).size()) == [3, 1, 1, 2]
    assert list(slices.columns[-len(GENRES) :]) == list(GENRES)
    for movie_id in lengths:
        # The store path and the single-trailer path (lib.apps.infer) must score the same slices.
        expected = model.predict(slice_film(np.asarray(store.film(movie_id)), DEPTH), verbose=0)
        got = slices.loc[slices.movieId == movie_id, list(GENRES)].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_batch_size_does_not_change_scores(setup):
    store, model, _ = setup
    a = predict_slices(model, store, [11, 14], DEPTH, batch_size=1)
    b = predict_slices(model, store, [11, 14], DEPTH, batch_size=64)
    np.testing.assert_allclose(a[list(GENRES)].to_numpy(), b[list(GENRES)].to_numpy(), rtol=1e-5, atol=1e-6)


def test_predict_films_keeps_the_requested_order(setup):
    store, model, _ = setup
    films, slices = predict_films(model, store, [14, 11, 13], DEPTH, how="mean")
    assert list(films.index) == [14, 11, 13]
    assert list(films["n_slices"]) == [2, 3, 1]
    np.testing.assert_allclose(
        films.loc[11, list(GENRES)].to_numpy(dtype=float),
        slices.loc[slices.movieId == 11, list(GENRES)].mean().to_numpy(),
    )


def test_missing_film_is_named(setup):
    store, model, _ = setup
    with pytest.raises(KeyError, match="99"):
        predict_slices(model, store, [11, 99], DEPTH)


def test_aggregations_by_hand():
    s = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4]])
    np.testing.assert_allclose(aggregate_scores(s, "mean"), [0.3, 0.5])
    np.testing.assert_allclose(aggregate_scores(s, "max"), [0.5, 0.9])
    np.testing.assert_allclose(aggregate_scores(s, "topk", top_k=2), [0.4, 0.65])
    np.testing.assert_allclose(aggregate_scores(s, "topk", top_k=10), aggregate_scores(s, "mean"))
    with pytest.raises(ValueError, match="median"):
        aggregate_scores(s, "median")


@pytest.mark.parametrize("how", ["mean", "max", "topk"])
def test_film_scores_agree_with_aggregate_scores(how):
    rng = np.random.default_rng(1)
    slices = pd.DataFrame(rng.random((7, 2)), columns=["A", "B"])
    slices.insert(0, "movieId", [5, 5, 5, 6, 7, 7, 7])
    films = film_scores(slices, how, top_k=2, genres=["A", "B"])
    for movie_id, group in slices.groupby("movieId"):
        np.testing.assert_allclose(
            films.loc[movie_id, ["A", "B"]].to_numpy(dtype=float),
            aggregate_scores(group[["A", "B"]].to_numpy(), how, 2),
        )
    assert list(films["n_slices"]) == [3, 1, 3]
