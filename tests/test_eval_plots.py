import numpy as np
import pandas as pd

from lib.eval_plots import frame_strips, most_confident_strips

GENRES = ["Action", "Comedy", "Drama"]


def test_most_confident_strips_picks_each_films_strongest_slice():
    frames = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((7, 2, 2, 3), np.uint8)
    films = pd.DataFrame({"movieId": [1, 2], "title": ["One (2000)", "Two (2001)"], "Action": [1, 0], "Comedy": [0, 1], "Drama": [1, 1]})
    slices = pd.DataFrame({
        "movieId": [1, 1, 2], "slice": [0, 1, 0], "start": [0, 3, 5], "stop": [3, 5, 7],
        "Action": [0.2, 0.9, 0.1], "Comedy": [0.1, 0.3, 0.8], "Drama": [0.5, 0.4, 0.6],
    })
    strips = most_confident_strips(films, slices, frames, GENRES, n_top=2)
    assert [s["title"] for s in strips] == ["One (2000) (slice 1)", "Two (2001) (slice 0)"]
    assert (strips[0]["frames"][:, 0, 0, 0] == [3, 4]).all()  # frames 3..4 of the store
    assert strips[0]["top"] == [("Action", 0.9), ("Drama", 0.4)]
    assert strips[1]["true"] == ["Comedy", "Drama"]
    fig = frame_strips(strips, max_frames=3)
    assert len(fig.axes) == 2 * (2 + 1)  # two films x (widest strip + the text panel)
