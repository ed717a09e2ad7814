import numpy as np
import pandas as pd

from lib.evaluate.plots import frame_strips, most_confident_strips

GENRES = ["Action", "Comedy", "Drama"]


def test_most_confident_strips_picks_each_films_strongest_slice():
    frames = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((7, 2, 2, 3), np.uint8)
    films = pd.DataFrame(
        {"movieId": [1, 2], "title": ["One (2000)", "Two (2001)"], "Action": [1, 0], "Comedy": [0, 1], "Drama": [1, 1]}
    )
    slices = pd.DataFrame(
        {
            "movieId": [1, 1, 2],
            "slice": [0, 1, 0],
            "start": [0, 3, 5],
            "stop": [3, 5, 7],
            "Action": [0.2, 0.9, 0.1],
            "Comedy": [0.1, 0.3, 0.8],
            "Drama": [0.5, 0.4, 0.6],
        }
    )
    strips = most_confident_strips(films, slices, frames, GENRES, n_top=2)
    assert [s["title"] for s in strips] == ["One (2000) (slice 1)", "Two (2001) (slice 0)"]
    assert (strips[0]["frames"][:, 0, 0, 0] == [3, 4]).all()  # frames 3..4 of the store
    assert strips[0]["top"] == [("Action", 0.9), ("Drama", 0.4)]
    assert strips[1]["true"] == ["Comedy", "Drama"]
    fig = frame_strips(strips, max_frames=3)
    assert len(fig.axes) == 2 * (2 + 1)  # two films x (widest strip + the text panel)


def test_comparison_plot_draws_intervals_std_and_the_flag():
    from lib.evaluate.plots import comparison_plot

    table = pd.DataFrame(
        {
            "kind": ["model", "seed mean", "baseline"],
            "mAP": [0.6, 0.55, 0.2],
            "mAP_low": [0.5, np.nan, 0.1],
            "mAP_high": [0.7, np.nan, 0.3],
            "mAP_std": [np.nan, 0.05, np.nan],
            "macro_ap": [0.5, 0.45, np.nan],
            "flag": ["too few films (3 < 30)"] * 3,
        },
        index=["cnn3d-seed1", "cnn3d (mean of 2 seeds)", "label_prior"],
    )
    fig = comparison_plot(table, ("mAP", "macro_ap"))
    left, right = fig.axes
    assert [t.get_text() for t in left.get_yticklabels()] == list(table.index)
    # Error bars: +-0.1 interval for the run, +-0.05 std for the seed mean, none missing on the right panel's NaN.
    segments = [c for c in left.collections if hasattr(c, "get_segments")]
    widths = sorted(round(float(s[1][0] - s[0][0]), 3) for c in segments for s in c.get_segments())
    assert widths == [0.1, 0.2, 0.2]
    assert len(right.lines) < len(left.lines)  # the baseline's NaN macro_ap is not drawn
    assert "WARNING: too few films" in fig._suptitle.get_text()
