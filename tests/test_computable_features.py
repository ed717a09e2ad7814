"""Computable film features: measured in the frames stage's single decode, summarized per trailer,
cached with the parts, and the logistic-regression baseline built on them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES
from lib.core.params import FrameSettings
from lib.evaluate.baselines.features import feature_matrix, features_baseline_scores
from lib.frames import extract
from lib.frames import features as cf
from lib.frames import stage as stage
from lib.sources import demo_corpus as dc

UNBOUNDED = FrameSettings(step=100, size=16, min_seconds=None, max_seconds=None)


def _flat(n: int, value: int, colour=(1.0, 1.0, 1.0)) -> np.ndarray:
    return np.broadcast_to((np.array(colour) * value).astype(np.uint8), (n, dc.HEIGHT, dc.WIDTH, 3)).copy()


def _video(path, pictures: np.ndarray) -> None:
    dc.encode_trailer(pictures, path, duration=len(pictures) - 1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Four 20 s videos: cut every second or never; dark or bright; still or moving."""
    d = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    # A new flat grey every second: 19 cuts in 20 s.
    cuts = np.concatenate([_flat(1, int(v)) for v in rng.permutation(np.linspace(20, 235, 21))])
    still_dark = _flat(21, 35)
    still_bright = _flat(21, 210)
    # One shot that pans a smooth gradient: changes every second, never a cut.
    x = np.arange(dc.WIDTH + 40)
    ramp = (100 + 60 * np.sin(x / 9.0)).astype(np.uint8)
    moving = np.stack(
        [np.broadcast_to(ramp[k : k + dc.WIDTH][None, :, None], (dc.HEIGHT, dc.WIDTH, 3)) for k in range(21)]
    )
    paths = {}
    for name, pics in {"cuts": cuts, "dark": still_dark, "bright": still_bright, "moving": moving}.items():
        paths[name] = d / f"{name}.mp4"
        _video(paths[name], np.ascontiguousarray(pics))
    return paths


@pytest.fixture(scope="module")
def decoded(videos):
    """(Extraction, features) of each video, from the frames stage's one decode."""
    return {k: stage.decode_trailer(p, UNBOUNDED)[:2] for k, p in videos.items()}


@pytest.fixture(scope="module")
def measured(decoded):
    return {k: features for k, (_, features) in decoded.items()}


def test_features_come_from_the_same_decode_and_leave_the_frames_alone(videos, decoded):
    plain = extract.extract_trailer(videos["cuts"], step=100, size=16, min_seconds=None, max_seconds=None)
    with_features, features = decoded["cuts"]
    assert with_features.ok and set(features) == set(cf.FEATURES)
    np.testing.assert_array_equal(plain.frames, with_features.frames)
    assert plain.frames_decoded == with_features.frames_decoded == 20 * dc.FPS
    cmd = extract.ffmpeg_command("x.mp4", "null", 1, cf.output_args("a.txt", "b.txt"))
    assert cmd.count("-i") == 1, "one input, decoded once, feeding two outputs"


def test_shot_length_and_cut_rate(measured):
    cuts, still = measured["cuts"], measured["dark"]
    assert cuts["cut_rate"] == pytest.approx(19 * 3, rel=0.15)  # 19 cuts in 20 s
    assert cuts["shot_length_mean"] == pytest.approx(1.0, rel=0.15)
    assert still["cut_rate"] == 0 and still["shot_length_mean"] == pytest.approx(20.0, rel=0.05)
    assert measured["moving"]["cut_rate"] == 0, "a pan is not a cut"


def test_motion_and_lighting_key(measured):
    f = measured
    assert f["moving"]["motion_mean"] > 5 * max(f["dark"]["motion_mean"], 1e-3)
    assert f["moving"]["motion_active"] > f["dark"]["motion_active"]
    assert f["dark"]["key_mean"] < 0.2 < 0.7 < f["bright"]["key_mean"]
    assert f["dark"]["dark_share"] == 1.0 and f["bright"]["dark_share"] == 0.0
    assert f["cuts"]["key_std"] > f["bright"]["key_std"]
    assert f["moving"]["contrast_mean"] > f["bright"]["contrast_mean"]


def test_pruned_or_broken_trailers_get_no_features(tmp_path, videos):
    short, features, *_ = stage.decode_trailer(videos["dark"], FrameSettings(step=100, size=16, min_seconds=40))
    assert short.outcome == "too_short" and features is None
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    result, features, *_ = stage.decode_trailer(bad, FrameSettings(step=100, size=16))
    assert result.outcome == "unreadable" and features is None


def test_summary_of_known_measurements():
    n = 240  # 10 s at 24 fps, cuts at frames 48 and 144
    scene = pd.DataFrame({"t": np.arange(n) / 24, "score": 0.0, "mafd": 1.0})
    scene.loc[[48, 144], ["score", "mafd"]] = [60.0, 40.0]
    stats = pd.DataFrame(
        {
            "t": np.arange(0, n, 6) / 24,
            "yavg": 51.0,
            "ylow": 40.0,
            "yhigh": 91.0,
            "ymax": 120.0,
            "sat": 25.5,
            "uavg": 128.0,
            "vavg": 128.0,
            "ulow": 120.0,
            "uhigh": 130.0,
            "vlow": 125.0,
            "vhigh": 135.0,
        }
    )
    f = cf.summarize(scene, stats, fps=24)
    assert f["cut_rate"] == pytest.approx(12.0) and f["shot_length_mean"] == pytest.approx(10 / 3)
    assert f["motion_mean"] == pytest.approx(1.0), "cut frames do not count as motion"
    assert f["key_mean"] == pytest.approx(0.2) and f["contrast_mean"] == pytest.approx(0.2)
    assert f["saturation_mean"] == pytest.approx(0.1) and f["chroma_var"] == 0.0
    empty = cf.summarize(scene.iloc[:0], stats.iloc[:0])
    assert all(math.isnan(v) for v in empty.values())


def test_metadata_parser_reads_ffmpeg_print_format():
    text = (
        "frame:0    pts:0       pts_time:0\nlavfi.scd.mafd=0.000\nlavfi.scd.score=0.000\n"
        "frame:1    pts:512     pts_time:0.0416667\nlavfi.scd.mafd=3.5\nlavfi.scd.score=12.25\nlavfi.other=x\n"
    )
    table = cf.parse_metadata(text)
    assert table["t"].tolist() == pytest.approx([0.0, 0.0416667])
    assert table["score"].tolist() == [0.0, 12.25] and table["mafd"].tolist() == [0.0, 3.5]
    assert cf.parse_metadata("").empty


def test_measurement_files_in_an_awkward_directory(tmp_path, videos, monkeypatch):
    """Filter-graph syntax characters in the temporary directory's path are escaped."""
    import tempfile

    awkward = tmp_path / "a:b'c [d],e;f"
    awkward.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(awkward))
    result, features, *_ = stage.decode_trailer(videos["cuts"], UNBOUNDED)
    assert result.ok and features["cut_rate"] > 30
    assert not any(awkward.iterdir()), "the measurement files are removed"


def test_frames_stage_writes_and_resumes_the_features(tmp_path, videos, monkeypatch):
    trailers = tmp_path / "trailers"
    trailers.mkdir()
    for name in ("cuts", "bright"):
        (trailers / f"{name}.mp4").write_bytes(videos[name].read_bytes())
    labels = pd.DataFrame({"movieId": [1, 2, 3], "youtubeId": ["cuts", "bright", "gone"]})
    kw = dict(settings=UNBOUNDED, n_jobs=1, progress=False, keep_parts=True)
    stage.run_frames_stage(labels, trailers, tmp_path / "out", tmp_path / "parts", **kw)
    table = cf.read_features(tmp_path / "out" / cf.FEATURES_FILE)
    assert table["movieId"].tolist() == [1, 2] and table["youtubeId"].tolist() == ["cuts", "bright"]
    assert table.loc[0, "cut_rate"] > 30 and table.loc[1, "cut_rate"] == 0
    # Resumed from the parts: no decode, the same table.
    monkeypatch.setattr(stage.extract, "extract_trailer", lambda *a, **k: pytest.fail("decoded again"))
    result = stage.run_frames_stage(labels, trailers, tmp_path / "out2", tmp_path / "parts", **kw)
    assert result.resumed == 3
    pd.testing.assert_frame_equal(cf.read_features(tmp_path / "out2" / cf.FEATURES_FILE), table)


def _features(n: int, rng) -> tuple[pd.DataFrame, np.ndarray]:
    y = (rng.random((n, len(GENRES))) < 0.3).astype(int)
    X = rng.normal(size=(n, len(cf.FEATURES)))
    X[:, 0] += 2.5 * y[:, 0]  # one feature tells the first genre
    table = pd.DataFrame(X, columns=cf.FEATURES)
    table.insert(0, "movieId", np.arange(100, 100 + n))
    table.insert(1, "youtubeId", [f"y{i}" for i in range(n)])
    return table, y


def test_features_baseline_learns_a_feature_that_tells_a_genre():
    rng = np.random.default_rng(1)
    table, y = _features(300, rng)
    table.iloc[5, 3] = np.nan  # a failed measurement is filled, not fatal
    ids = table["movieId"].tolist()
    scores = features_baseline_scores(table, ids[:200], y[:200], {"test": ids[200:]}, seed=0)["test"]
    assert scores.shape == (100, len(GENRES)) and np.isfinite(scores).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[200:, 0], scores[:, 0]) > 0.85
    assert roc_auc_score(y[200:, 1], scores[:, 1]) < 0.75


def test_features_baseline_needs_every_film():
    table, _ = _features(10, np.random.default_rng(0))
    with pytest.raises(KeyError, match="no computable features"):
        feature_matrix(table, [100, 999])


def test_genre_profile_is_each_genres_mean_z_score_over_the_measured_films():
    from lib.frames.features import genre_profile

    features = pd.DataFrame({"movieId": [1, 2, 3, 4], "a": [0.0, 2.0, 4.0, np.nan], "b": [1.0, 1.0, 1.0, np.nan]})
    films = pd.DataFrame({"movieId": [1, 2, 3, 4], "X": [1, 1, 0, 1], "Y": [0, 0, 1, 0], "Z": [0, 0, 0, 0]})
    profile = genre_profile(features, films, ["a", "b"], ["X", "Y", "Z"])
    assert list(profile.index) == ["X", "Y"]  # Z has no film; film 4 (measured in neither column) is left out
    assert profile.loc["X", "a"] == pytest.approx(-0.5) and profile.loc["Y", "a"] == pytest.approx(1.0)
    assert (profile["b"] == 0).all()  # a constant column is not divided by zero
