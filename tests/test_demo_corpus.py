"""The demo corpus generator: layout, catalog features, broken files, durations, determinism.

A tiny corpus (30 films, trailers scaled to a tenth of their length) is generated once per
module; the catalog statistics are checked on the full-size plan, which needs no video.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES, IGNORED_TAGS, NO_GENRE_TAG
from lib.sources import demo_corpus as dc

TINY = dc.DemoConfig(n_films=30, seed=7, duration_scale=0.1, jobs=2)
FULL = dc.DemoConfig()


def _ffmpeg(path, *args):
    return subprocess.run([dc.ffmpeg_exe(), "-hide_banner", "-i", str(path), *args], capture_output=True)


def claimed_duration(path) -> float | None:
    """The duration the container header claims, from `ffmpeg -i`."""
    found = re.search(r"Duration: (\d+):(\d+):([\d.]+)", _ffmpeg(path).stderr.decode(errors="replace"))
    if not found:
        return None
    h, m, s = found.groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


def decoded_frames(path) -> int:
    """How many frames really decode (0 when the file cannot be opened)."""
    proc = _ffmpeg(path, "-f", "rawvideo", "-pix_fmt", "gray", "-s", "8x8", "-")
    return len(proc.stdout) // 64


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "data"
    plan = dc.generate_corpus(out, TINY, progress=False)
    return out, plan


@pytest.fixture(scope="module")
def catalog(tiny):
    out, _ = tiny
    movies = pd.read_csv(out / "movielens" / "movies.csv")
    youtube = pd.read_csv(out / "movielens" / "ml-youtube.csv")
    return movies, youtube


@pytest.fixture(scope="module")
def full_plan():
    return dc.plan_corpus(FULL)


def _kind(plan, kind):
    return plan[plan["kind"] == kind]


def test_layout_and_columns(tiny, catalog):
    out, plan = tiny
    movies, youtube = catalog
    assert sorted(p.name for p in out.iterdir()) == ["movielens", "trailers"]
    assert list(movies.columns) == ["movieId", "title", "genres"]
    assert list(youtube.columns) == ["youtubeId", "movieId", "title"]
    assert movies["movieId"].is_unique
    assert all(p.suffix == ".mp4" for p in (out / "trailers").iterdir())
    assert not list(out.parent.glob(".data.*")), "temporary or old directory left behind"


def test_titles_round_trip_with_quotes_commas_and_non_ascii(tiny, catalog):
    _, plan = tiny
    movies, _ = catalog
    assert movies["title"].tolist() == plan.loc[plan["in_movies"], "title"].tolist()
    titles = movies["title"]
    assert titles.str.fullmatch(r".+ \(\d{4}\)").all(), "every title ends with its year"
    assert titles.str.contains(",").any()
    assert titles.str.contains('"').any()
    assert titles.map(lambda t: not t.isascii()).any()


def test_genre_vocabulary_and_special_labels(catalog):
    movies, _ = catalog
    tokens = movies["genres"].str.split("|")
    allowed = set(GENRES) | IGNORED_TAGS | {NO_GENRE_TAG}
    assert set().union(*tokens) <= allowed
    assert (movies["genres"] == NO_GENRE_TAG).any()
    assert tokens.map(lambda g: "IMAX" in g).any()
    assert (movies["genres"] == "Drama").any()
    assert (movies["genres"] == "Comedy|Drama").any()


def test_youtube_rows_shared_missing_and_orphan(tiny, catalog):
    out, _ = tiny
    movies, youtube = catalog
    shared = youtube[youtube["youtubeId"].duplicated(keep=False)]
    assert len(shared) == 2 and shared["movieId"].nunique() == 2
    present = {p.stem for p in (out / "trailers").iterdir()}
    assert (~youtube["youtubeId"].isin(present)).sum() >= 1, "no row with a missing trailer"
    orphans = youtube[~youtube["movieId"].isin(movies["movieId"])]
    assert len(orphans) == 1
    assert (~movies["movieId"].isin(youtube["movieId"])).any(), "some film has no trailer row"


def test_broken_trailers(tiny):
    out, plan = tiny
    path = {
        k: out / "trailers" / f"{_kind(plan, k)['youtubeId'].iloc[0]}.mp4"
        for k in (dc.EMPTY, dc.TRUNCATED, dc.UNREADABLE)
    }
    assert path[dc.EMPTY].stat().st_size == 0
    assert decoded_frames(path[dc.UNREADABLE]) == 0
    claimed = claimed_duration(path[dc.TRUNCATED])
    planned = _kind(plan, dc.TRUNCATED)["duration"].iloc[0]
    assert claimed == pytest.approx(planned, abs=0.1), "the header still claims the full length"
    n = decoded_frames(path[dc.TRUNCATED])
    assert 0 < n < 0.6 * planned * dc.FPS, f"truncated trailer decoded {n} frames"


def test_good_trailers_decode_to_their_planned_length(tiny):
    out, plan = tiny
    good = plan[plan["kind"].isin([dc.OK, dc.SHORT, dc.LONG])]
    for row in good.sample(6, random_state=0).itertuples():
        frames = decoded_frames(out / "trailers" / f"{row.youtubeId}.mp4")
        assert frames == pytest.approx(row.duration * dc.FPS, abs=1.5), row.youtubeId


def test_video_format(tiny):
    out, plan = tiny
    first = _kind(plan, dc.OK)["youtubeId"].iloc[0]
    info = _ffmpeg(out / "trailers" / f"{first}.mp4").stderr.decode(errors="replace")
    assert re.search(r"Video: h264.*yuv420p.*96x54.*24 fps", info), info


def test_same_seed_same_corpus(tiny, tmp_path):
    out, plan = tiny
    again = dc.generate_corpus(tmp_path / "again", TINY, progress=False)
    for name in ("movies.csv", "ml-youtube.csv"):
        assert (out / "movielens" / name).read_bytes() == (tmp_path / "again" / "movielens" / name).read_bytes()
    first = _kind(plan, dc.OK)["youtubeId"].iloc[0]
    assert (out / "trailers" / f"{first}.mp4").read_bytes() == (
        tmp_path / "again" / "trailers" / f"{first}.mp4"
    ).read_bytes()
    other = dc.catalog_csvs(dc.plan_corpus(dc.DemoConfig(n_films=30, seed=8)))
    assert other != dc.catalog_csvs(again)


def test_regenerating_replaces_the_directory(tmp_path):
    out = tmp_path / "data"
    (out / "trailers").mkdir(parents=True)
    (out / "trailers" / "stale.mp4").write_bytes(b"old")
    config = dc.DemoConfig(n_films=30, seed=1, duration_scale=0.02, jobs=2)
    dc.generate_corpus(out, config, progress=False)
    assert not (out / "trailers" / "stale.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_full_catalog_has_the_movielens_skew(full_plan):
    films = full_plan[full_plan["in_movies"]]
    share = {g: films["genre_list"].map(lambda gl, g=g: g in gl).mean() for g in GENRES}
    assert 0.40 <= share["Drama"] <= 0.60
    assert 0.25 <= share["Comedy"] <= 0.42
    assert share["Film-Noir"] == min(share.values()) and share["Film-Noir"] < 0.05
    assert 450 <= len(films) <= 600


def test_every_genre_keeps_films_after_rebalancing_and_pruning(full_plan):
    usable = full_plan[full_plan["kind"].isin([dc.OK]) & full_plan["in_movies"]]
    usable = usable[~usable["genres"].isin(["Drama", "Comedy|Drama", NO_GENRE_TAG])]
    counts = {g: usable["genre_list"].map(lambda gl, g=g: g in gl).sum() for g in GENRES}
    assert min(counts.values()) >= 25, counts  # >= 5 in a 25% test split


def test_full_catalog_trailer_lengths(full_plan):
    rendered = full_plan[full_plan["kind"].isin([dc.OK, dc.SHORT, dc.LONG])]["duration"]
    low, high = dc.BOUNDS_S
    inside = rendered.between(low, high)
    assert inside.mean() > 0.9
    assert (rendered < low).sum() >= 5
    assert 1 <= (rendered > high).sum() <= 3 and rendered.max() < high + 15


def _styles(genres, n=400, seed=0):
    rng = np.random.default_rng(seed)
    return [dc.film_style(genres, rng) for _ in range(n)]


def test_genre_tendencies_shot_length_motion_and_lighting_key():
    """Tendencies, not rules: the genres' means differ, their films overlap."""
    action, drama = _styles(["Action"]), _styles(["Drama"])
    horror, comedy = _styles(["Horror"]), _styles(["Comedy"])

    def mean(styles, k):
        return np.mean([getattr(s, k) for s in styles])

    assert mean(action, "shot") < 0.75 * mean(drama, "shot")
    assert mean(action, "motion") > 2 * mean(drama, "motion")
    assert mean(horror, "key") < mean(comedy, "key") - 0.15
    # ... and overlap: some horror film is lit brighter than some comedy.
    assert max(s.key for s in horror) > min(s.key for s in comedy)


def test_cue_strength_varies_and_some_labelled_genres_are_silent():
    styles = _styles(["Action", "Drama", "War"], n=600)
    silent = np.mean([3 - len(s.cued) for s in styles]) / 3
    assert 0.06 <= silent <= 0.14
    strengths = [v for s in styles for v in s.strength.values()]
    assert min(strengths) < 0.3 and max(strengths) > 0.9


def test_timeline_has_logo_shots_title_black_frames_and_credits():
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(20):
        shots = dc.film_shots(["Action", "Comedy"], 60, rng)
        assert shots[0].start == 0 and shots[-1].stop == 60
        assert all(a.stop == b.start for a, b in zip(shots, shots[1:])), "the shots tile the trailer"
        assert shots[-1].kind == "credits"
        kinds |= {s.kind for s in shots}
        assert all(1 <= s.stop - s.start <= dc.MAX_SHOT for s in shots if s.kind == "shot")
    assert kinds == {"logo", "shot", "title", "black", "credits"}


def test_cut_rate_follows_the_genres():
    rng = np.random.default_rng(1)

    def shots_per_minute(genres):
        n = [sum(s.kind == "shot" for s in dc.film_shots(genres, 120, rng)) for _ in range(40)]
        return np.mean(n) / 2

    assert shots_per_minute(["Action", "Thriller"]) > 1.5 * shots_per_minute(["Drama", "Romance"])


def test_studio_logo_is_shared_and_genre_free():
    seeds = {}
    for i in range(60):  # films of two genres that open on the same studio's logo
        style = dc.film_style(["Horror"] if i % 2 else ["Comedy"], np.random.default_rng(i))
        if style.studio == 0:
            seeds.setdefault("Horror" if i % 2 else "Comedy", i)
    assert len(seeds) == 2
    first = [dc.render_pictures(["Horror"] if g == "Horror" else ["Comedy"], 30, seed=s)[2] for g, s in seeds.items()]
    np.testing.assert_array_equal(first[0], first[1])


def test_genre_imagery_appears_anywhere_in_the_frame():
    """No positional cue: a genre's object lands in many cells of a 6x3 grid."""
    h, w = dc.HEIGHT, dc.WIDTH
    cells = set()
    for seed in range(12):
        pictures = dc.render_pictures(["War"], 40, seed=seed).astype(float).mean(axis=3)
        grid = pictures.reshape(-1, 3, h // 3, 6, w // 6).std(axis=(2, 4))  # (pictures, 3, 6)
        cells |= {int(np.argmax(g)) for g in grid if g.max() > 20}
    assert len(cells) >= 10, cells


def test_mean_colour_is_weakly_tied_to_genre():
    """Lighting key moves a film's mean brightness; the palette only leans."""

    def mean_brightness(genres):
        return np.mean([dc.render_pictures(genres, 30, seed=s).mean() for s in range(8)])

    assert mean_brightness(["Film-Noir", "Horror"]) < mean_brightness(["Comedy", "Children"])


# --------------------------------------------------------------------------- sound


def decoded_sound(path) -> np.ndarray:
    """The audio track decoded to mono float at the soundtrack's rate (empty when there is none)."""
    proc = _ffmpeg(path, "-map", "0:a?", "-f", "f32le", "-ar", str(dc.SOUND_RATE), "-ac", "1", "-")
    return np.frombuffer(proc.stdout, dtype="<f4")


def test_ordinary_trailers_carry_one_mono_opus_track_as_long_as_the_video(tiny):
    out, plan = tiny
    heard = plan[(plan["kind"] == dc.OK) & plan["audio"]]
    for row in heard.sample(4, random_state=0).itertuples():
        path = out / "trailers" / f"{row.youtubeId}.mp4"
        info = _ffmpeg(path).stderr.decode(errors="replace")
        assert len(re.findall(r"Stream #0:\d.*Audio:", info)) == 1, info
        assert re.search(r"Audio: opus.*mono", info), info
        video_s = decoded_frames(path) / dc.FPS
        assert len(decoded_sound(path)) / dc.SOUND_RATE == pytest.approx(video_s, abs=0.2), row.youtubeId


def test_a_few_ordinary_trailers_have_no_audio_stream(tiny, full_plan):
    out, plan = tiny
    mute = plan[(plan["kind"] == dc.OK) & ~plan["audio"]]
    assert len(mute) >= 1
    for row in mute.itertuples():
        path = out / "trailers" / f"{row.youtubeId}.mp4"
        assert "Audio:" not in _ffmpeg(path).stderr.decode(errors="replace")
        assert decoded_frames(path) > 0, "the pictures are still there"
    ok = full_plan[full_plan["kind"] == dc.OK]
    assert 0.01 <= (~ok["audio"]).mean() <= 0.05
    assert not full_plan.loc[full_plan["kind"].isin([dc.MISSING, dc.NO_TRAILER, dc.EMPTY]), "audio"].any()


def test_soundtrack_is_deterministic_and_in_range():
    a = dc.render_soundtrack(["Action", "Comedy"], 7.3, seed=11)
    assert a.dtype == np.float32 and len(a) == round(7.3 * dc.SOUND_RATE)
    assert np.abs(a).max() <= 1.0 and np.abs(a).max() > 0.01
    np.testing.assert_array_equal(a, dc.render_soundtrack(["Action", "Comedy"], 7.3, seed=11))
    assert not np.array_equal(a, dc.render_soundtrack(["Action", "Comedy"], 7.3, seed=12))


def test_sound_leaves_the_pictures_unchanged(tmp_path):
    """The soundtrack draws from its own stream, and the video stream decodes the same with or without it."""
    pictures = dc.render_pictures(["War"], 9, seed=3)
    np.testing.assert_array_equal(pictures, dc.render_pictures(["War"], 9, seed=3))
    dc.render_soundtrack(["War"], 8.0, seed=3)
    np.testing.assert_array_equal(pictures, dc.render_pictures(["War"], 9, seed=3))
    dc.encode_trailer(pictures, tmp_path / "with.mp4", 8.0, sound=dc.render_soundtrack(["War"], 8.0, seed=3))
    dc.encode_trailer(pictures, tmp_path / "without.mp4", 8.0)
    md5 = [_ffmpeg(tmp_path / f"{k}.mp4", "-map", "0:v", "-f", "md5", "-").stdout for k in ("with", "without")]
    assert md5[0] == md5[1] and md5[0].startswith(b"MD5=")
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".mp4"] == [], "the raw sound file is left behind"


def _frames(sound: np.ndarray, size: int = 512) -> np.ndarray:
    return sound[: len(sound) // size * size].reshape(-1, size).astype(np.float64)


def onsets_per_second(sound: np.ndarray) -> float:
    """Rises of the 32 ms frame level by more than 8 dB over the frame before: a crude onset count."""
    level = 10 * np.log10((_frames(sound) ** 2).mean(1) + 1e-9)
    return float((np.diff(level) > 8).sum() / (len(sound) / dc.SOUND_RATE))


def loudness_range(sound: np.ndarray) -> float:
    """Spread (95th - 10th percentile, dB) of the 0.5 s level, over passages that are not silent."""
    level = 10 * np.log10((_frames(sound, dc.SOUND_RATE // 2) ** 2).mean(1) + 1e-12)
    level = level[level > -60]
    return float(np.percentile(level, 95) - np.percentile(level, 10))


def centroid_hz(sound: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(_frames(sound, 1024) * np.hanning(1024), axis=1)) ** 2
    f = np.fft.rfftfreq(1024, 1 / dc.SOUND_RATE)
    return float((power.sum(0) * f).sum() / power.sum())


def _measure(genres, measure, n=10, seconds=40.0):
    """The median of a measure over ``n`` seeded films (after the studio jingle's 3 s)."""
    return np.median([measure(dc.render_soundtrack(genres, seconds, seed)[3 * dc.SOUND_RATE :]) for seed in range(n)])


def test_sound_genre_tendencies_onsets_loudness_range_brightness():
    """Tendencies, measured on rendered soundtracks: action dense, horror dynamic, comedy bright, thriller dark."""
    assert _measure(["Action"], onsets_per_second) > 1.5 * _measure(["Drama"], onsets_per_second)
    assert _measure(["Horror"], loudness_range) > _measure(["Comedy"], loudness_range) + 6
    assert _measure(["Comedy"], centroid_hz) > 1.5 * _measure(["Thriller"], centroid_hz)


def test_studio_jingle_is_shared_and_genre_free():
    seeds = {}
    for i in range(60):  # films of two genres that open on the same studio's logo
        genres = ["Horror"] if i % 2 else ["Comedy"]
        if dc.film_style(genres, np.random.default_rng(i)).studio == 1:
            seeds.setdefault(genres[0], i)
    assert len(seeds) == 2
    openings = [dc.render_soundtrack([g], 30.0, seed=s)[: dc.JINGLE_S * dc.SOUND_RATE] for g, s in seeds.items()]
    np.testing.assert_array_equal(openings[0], openings[1])
    assert np.abs(openings[0]).max() > 0.05
    assert not np.array_equal(dc.studio_jingle(1), dc.studio_jingle(2))
