"""The embedded demo corpus: a small synthetic MovieLens catalog with real trailer files.

``python -m lib.demo_corpus --out data`` writes, in the layout the real sources have:

* ``movielens/movies.csv``: ``movieId,title,genres`` (genres joined by ``|``);
* ``movielens/ml-youtube.csv``: ``youtubeId,movieId,title``;
* ``trailers/<youtubeId>.mp4``: H.264, yuv420p, 24 fps, 96x54 pixels.

Everything is a pure function of the seed: the same seed gives byte-identical CSVs
and the same pictures. The corpus is written to a temporary sibling directory and
swapped into place at the end, so a reader never sees a half-written corpus.

The catalog, like MovieLens
---------------------------
* The 18 genres of the paper with the real skew: each genre is drawn
  independently with roughly its MovieLens 20M frequency (Drama about half of the
  films, Comedy a third, Film-Noir rare), except that the rare genres are lifted to
  a floor (``GENRE_FLOOR`` films each) so every genre keeps enough films for a
  per-genre AP on the test split after rebalancing.
* Titles carry a year, and some carry commas (``Matrix, The (1999)``), double
  quotes and non-ASCII characters; the CSVs use standard csv quoting, as the real
  files do.
* Special rows, so every later stage has work to do: films labelled
  ``(no genres listed)``; films whose genres include ``IMAX`` (a tag, not a
  genre); films that are exactly ``Drama`` or exactly ``Comedy|Drama`` (the
  paper's rebalancing drops them); two films sharing one youtubeId; rows of
  ``ml-youtube.csv`` whose trailer file is missing; one row whose movieId is not in
  ``movies.csv``; one zero-byte trailer; one trailer cut to ~40% of its bytes (its
  header, written first with ``+faststart``, still claims the full duration, but it
  decodes to far less); one cut so short that it cannot be opened.
* Trailer lengths: mostly 40-200 s, a few shorter than 40 s and a couple just
  longer than 200 s, so duration pruning has work too.

The pictures: genre cues that colour alone cannot separate
-----------------------------------------------------------
A trailer is a sequence of *shots* of 3-7 s. One distinct picture is rendered per
second and ffmpeg repeats it to 24 fps (the encoder stores the repeats as skipped
blocks, which keeps the files small). The frames stage keeps every 100th frame
(~4.2 s apart), so consecutive kept frames mostly fall in different shots and a
slice of 10 kept frames sees every genre of the film several times.

* **Layout**: the frame is divided into a 6 x 3 grid of home cells, one per genre
  in ``GENRES`` order, read row by row (Adventure top left ... Film-Noir bottom
  right). Each shot shows a random non-empty subset of the film's genres (each with
  probability ``SHOWN``) as rectangular panels, each in its genre's home cell,
  with a jittered size and position inside the cell; the shots mix a film's genres.
* **Texture, shape and orientation**: each panel is filled with its genre's
  two-tone pattern (``GENRE_CUES``): Drama horizontal stripes, Comedy vertical
  stripes, Adventure / Crime diagonal stripes one way / the other, Sci-Fi a thin
  grid, Romance a checkerboard, Children small dots, Animation big dots, War
  crosses, Musical waves, Horror zigzags, Fantasy rings, Mystery nested squares,
  Action a starburst, Thriller a triangle, Documentary a band, Western a horizon,
  Film-Noir a soft spot. Phase, scale and angle are jittered per shot.
* **Motion**: within a shot each panel's pattern drifts by a genre-specific
  velocity (``_VELOCITY``, 1 px per second).
* **Colour carries (almost) no genre information**: every tone is a muted random
  hue; a panel's pattern is always the lighter tone on a darker one, over a dark
  background gradient with uneven lighting (smooth noise). A film's mean colour
  depends on how many panels it shows, not on which genres they are.
* **Noise**: ``NEUTRAL`` (8%) of the shots show no panel at all, and not every
  genre is on screen in every shot.

Measured on the default corpus (seed 2018, 560 films; every 100th frame squashed to
64x64; 10-frame slices; 418 films left after rebalancing and pruning, split 60/20/20
at random; film score = mean of its slices): a small 3D CNN (Conv3D 16 stride (1,2,2)
-> pool (1,2,2) -> Conv3D 32 -> pool 2 -> Conv3D 32 -> pool 2 -> Dense 128 ->
dropout 0.3 -> 18 sigmoids; Adam 1e-3, batch 16) reached test macro-AP 0.71 after 3
epochs (32 s), 0.90 after 6 (63 s) and 0.96 after 34 (333 s) on a shared 2-core CPU;
a logistic regression on each film's mean RGB got 0.20, one on a 64-bin colour
histogram 0.25, the label prior 0.13.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lib.genres import GENRES, NO_GENRE_TAG

WIDTH, HEIGHT = 96, 54
FPS = 24
PICTURES_PER_SECOND = 1
CRF = 34
# No B-frames and CAVLC: a repeated frame then costs ~10 bytes instead of ~27, and
# repeated frames are most of a trailer (24 fps, one new picture per second).
X264_PARAMS = "keyint=480:min-keyint=24:bframes=0:ref=1:cabac=0:threads=1"

# Approximate MovieLens 20M genre frequencies (share of films having the genre).
GENRE_FREQUENCY = {
    "Drama": 0.49, "Comedy": 0.33, "Thriller": 0.15, "Romance": 0.15, "Action": 0.13,
    "Crime": 0.11, "Horror": 0.10, "Documentary": 0.09, "Adventure": 0.08, "Sci-Fi": 0.06,
    "Mystery": 0.06, "Fantasy": 0.05, "War": 0.04, "Children": 0.04, "Musical": 0.04,
    "Animation": 0.04, "Western": 0.03, "Film-Noir": 0.012,
}
# Rare genres are topped up to this many films (per 500), so that after the
# rebalancing and a 60/20/20 split each still has test films.
GENRE_FLOOR_PER_500 = 26
FILM_NOIR_PER_500 = 16  # rarest on purpose, but still learnable and testable

BOUNDS_S = (40.0, 200.0)  # the frames stage keeps trailers within these lengths


@dataclass(frozen=True)
class DemoConfig:
    n_films: int = 560
    seed: int = 2018
    # Scales every trailer's length (the tests render trailers at a tenth of it).
    duration_scale: float = 1.0
    width: int = WIDTH
    height: int = HEIGHT
    crf: int = CRF
    jobs: int = 0  # 0 = all cores


# --------------------------------------------------------------------------- catalog

_WORDS = (
    "Night Summer River Stone Ghost Silver Iron Last Broken Golden Silent Wild Dark Long Red "
    "Blue Little Lost Hidden Cold Bright Empty Distant Secret Burning Hollow Paper Glass "
    "Winter Crimson Forgotten Northern Velvet Electric Savage Quiet"
).split()
_NOUNS = (
    "City Road House Heart Garden Sky Man Woman Kingdom Island Mountain Letter Game Song "
    "Dream War Shadow Star Machine Horizon Mirror Harbour Frontier Promise Empire Storm "
    "Child Voyage Detective Wolf Ballroom Machine Country Station"
).split()
_ARTICLES = ("The", "A", "An")
_NON_ASCII = (
    "Amélie", "Léon", "Crème brûlée", "Smörgåsbord", "Niño", "Façade", "Über alles",
    "Señorita", "Déjà vu", "Mañana", "Götterdämmerung", "Brontë", "Þingvellir", "Straße",
    "Пётр", "東京物語", "Ça ira", "Øresund",
)


def _title(rng: np.random.Generator, i: int) -> str:
    year = int(rng.integers(1922, 2016))
    base = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)}"
    kind = i % 9
    if kind == 0:  # MovieLens moves a leading article to the end: "Matrix, The (1999)"
        title = f"{base}, {rng.choice(_ARTICLES)}"
    elif kind == 1:
        title = f"{rng.choice(_NON_ASCII)} {rng.choice(_NOUNS)}"
    elif kind == 2:
        title = f'"{base}" {rng.choice(_NOUNS)}'  # double quotes inside the title
    elif kind == 3:
        title = f"{base} ({rng.choice(_NON_ASCII)}, {rng.choice(_ARTICLES)})"  # aka title
    else:
        title = base
    return f"{title} ({year})"


_YT_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _youtube_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_YT_ALPHABET, size=11))


def _draw_genres(rng: np.random.Generator, n: int) -> list[list[str]]:
    """Independent draws at the MovieLens frequencies, then the rare genres topped up."""
    freq = np.array([GENRE_FREQUENCY[g] for g in GENRES])
    have = rng.random((n, len(GENRES))) < freq
    floor = max(1, round(GENRE_FLOOR_PER_500 * n / 500))
    noir_floor = max(1, round(FILM_NOIR_PER_500 * n / 500))
    for j, g in enumerate(GENRES):
        target = noir_floor if g == "Film-Noir" else floor
        missing = target - int(have[:, j].sum())
        if missing > 0:
            # Top up on films that have few genres, so the film keeps a readable mix.
            candidates = np.flatnonzero(~have[:, j] & (have.sum(1) < 3))
            have[rng.choice(candidates, size=missing, replace=False), j] = True
    empty = ~have.any(1)
    have[empty, GENRES.index("Drama")] = True  # every ordinary film has a genre
    return [[g for g, h in zip(GENRES, row) if h] for row in have]


def _nominal_duration(rng: np.random.Generator) -> float:
    """Most trailers 40-200 s, mostly at the short end: every second costs ~350 bytes of
    repeated frames alone, and the snapshot must stay small."""
    if rng.random() < 0.05:
        return float(rng.uniform(90.0, 195.0))
    return float(np.clip(41 + rng.gamma(1.3, 6.0), 41.0, 195.0))


# Kinds of special rows; "ok" is an ordinary film with a good trailer.
OK = "ok"
SHORT = "short"                # trailer shorter than 40 s
LONG = "long"                  # trailer just over 200 s
MISSING = "missing"            # ml-youtube row, no trailer file
ORPHAN = "orphan"              # ml-youtube row whose movieId is not in movies.csv
SHARED = "shared"              # second film re-using the previous film's youtubeId
EMPTY = "empty"                # zero-byte trailer
TRUNCATED = "truncated"        # opens, claims its full length, decodes far less
UNREADABLE = "unreadable"      # cut so short it cannot be opened
NO_TRAILER = "no_trailer"      # in movies.csv but not in ml-youtube.csv


def plan_corpus(config: DemoConfig = DemoConfig()) -> pd.DataFrame:
    """The whole catalog as one table, one row per film (plus the orphan trailer row).

    Columns: movieId, title, genres (the MovieLens string), genre_list, youtubeId,
    kind (see the constants above), duration (seconds the video is rendered to, after
    ``duration_scale``), in_movies (row appears in movies.csv), in_youtube.
    """
    rng = np.random.default_rng(config.seed)
    n = config.n_films
    genres = _draw_genres(rng, n)
    durations = [_nominal_duration(rng) for _ in range(n)]
    kinds = [OK] * n

    # Special rows sit at seeded positions, each on a distinct film.
    specials = [SHORT] * max(2, round(0.04 * n)) + [LONG] * 2 + [MISSING] * max(2, round(0.01 * n))
    specials += [SHARED, EMPTY, TRUNCATED, UNREADABLE, NO_TRAILER]
    special_at = rng.choice(np.arange(1, n), size=len(specials), replace=False)
    for pos, kind in zip(special_at, specials):
        kinds[pos] = kind
        if kind == SHORT:
            durations[pos] = float(rng.uniform(12.0, 38.0))
        elif kind == LONG:
            durations[pos] = float(rng.uniform(202.0, 212.0))
        elif kind == TRUNCATED:
            durations[pos] = float(rng.uniform(90.0, 150.0))
        elif kind == UNREADABLE:
            durations[pos] = 60.0

    # Catalog quirks that need no video defect: they go on ordinary films.
    ordinary = [i for i in range(n) if kinds[i] == OK]
    quirk_at = rng.choice(ordinary, size=3 + 4 + 4 + 3, replace=False)
    for i in quirk_at[:3]:
        genres[i] = []  # (no genres listed)
    for i in quirk_at[3:7]:
        genres[i] = sorted(set(genres[i]) | {"Action"}, key=GENRES.index) + ["IMAX"]
    for i in quirk_at[7:11]:
        genres[i] = ["Drama"]
    for i in quirk_at[11:14]:
        genres[i] = ["Comedy", "Drama"]

    rows = []
    for i in range(n):
        gl = genres[i]
        rows.append({
            "movieId": i + 1 + (i // 7) * 3,  # gaps in the ids, as in MovieLens
            "title": _title(rng, i),
            "genres": "|".join(gl) if gl else NO_GENRE_TAG,
            "genre_list": [g for g in gl if g in GENRES],
            "youtubeId": _youtube_id(rng),
            "kind": kinds[i],
            "duration": durations[i] * config.duration_scale,
            "in_movies": True,
            "in_youtube": kinds[i] != NO_TRAILER,
        })
    for i, row in enumerate(rows):
        if row["kind"] == SHARED:
            row["youtubeId"] = rows[i - 1]["youtubeId"]
            row["duration"] = rows[i - 1]["duration"]
    orphan_genres = ["Comedy", "Romance"]
    rows.append({
        "movieId": rows[-1]["movieId"] + 1000,
        "title": _title(rng, 4),
        "genres": "|".join(orphan_genres),
        "genre_list": orphan_genres,
        "youtubeId": _youtube_id(rng),
        "kind": ORPHAN,
        "duration": 50.0 * config.duration_scale,
        "in_movies": False,
        "in_youtube": True,
    })
    plan = pd.DataFrame(rows)
    assert plan["youtubeId"].duplicated().sum() == 1, "youtubeId collision in the demo plan"
    return plan


def _csv_text(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buf.getvalue()


def catalog_csvs(plan: pd.DataFrame) -> tuple[str, str]:
    """The text of movies.csv and ml-youtube.csv for a plan."""
    movies = plan.loc[plan["in_movies"], ["movieId", "title", "genres"]]
    youtube = plan.loc[plan["in_youtube"], ["youtubeId", "movieId", "title"]]
    return _csv_text(movies), _csv_text(youtube)


# --------------------------------------------------------------------------- pictures

def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _soft(d: np.ndarray, width: float = 1.2) -> np.ndarray:
    """Anti-aliased step: 1 inside (d < 0), 0 outside."""
    return np.clip(0.5 - d / width, 0.0, 1.0)


def _stripes(u: np.ndarray, period: float, duty: float = 0.5) -> np.ndarray:
    phase = np.mod(u, period) / period
    return _soft((np.abs(phase - 0.5) - duty / 2) * period)


@dataclass
class _Shot:
    genres: tuple[str, ...]  # () for a neutral shot
    start: int               # first picture
    stop: int
    rng_seed: int


def _coords(w: int, h: int, angle: float, scale: float, shift: tuple[float, float]):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x = (x - w / 2 - shift[0]) / scale
    y = (y - h / 2 - shift[1]) / scale
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s, -x * s + y * c


def _cx(p):
    return p["center"]


GENRE_CUES = {
    # stripes at four orientations
    "Drama": lambda u, v, p: _stripes(v, 11.0),
    "Comedy": lambda u, v, p: _stripes(u, 15.0),
    "Adventure": lambda u, v, p: _stripes((u + v) / np.sqrt(2), 14.0),
    "Crime": lambda u, v, p: _stripes((u - v) / np.sqrt(2), 14.0),
    # textures
    "Sci-Fi": lambda u, v, p: np.maximum(_stripes(u, 16.0, 0.2), _stripes(v, 16.0, 0.2)),
    "Romance": lambda u, v, p: ((_stripes(u, 20.0) - 0.5) * (_stripes(v, 20.0) - 0.5) * 4 + 1) / 2,
    "Children": lambda u, v, p: _soft(np.hypot(np.mod(u, 12) - 6, np.mod(v, 12) - 6) - 2.6),
    "Animation": lambda u, v, p: _soft(np.hypot(np.mod(u, 22) - 11, np.mod(v, 22) - 11) - 7.0),
    "War": lambda u, v, p: np.maximum(
        _soft(np.abs(np.mod(u, 16) - 8) - 1.3) * _soft(np.abs(np.mod(v, 16) - 8) - 5),
        _soft(np.abs(np.mod(v, 16) - 8) - 1.3) * _soft(np.abs(np.mod(u, 16) - 8) - 5)),
    "Musical": lambda u, v, p: _stripes(v + 3.5 * np.sin(u * 2 * np.pi / 20), 14.0, 0.35),
    "Horror": lambda u, v, p: _stripes(v + 8.0 * np.abs(np.mod(u, 12) / 6 - 1), 15.0, 0.35),
    # shapes and layouts
    "Fantasy": lambda u, v, p: _stripes(np.hypot(u - _cx(p)[0], v - _cx(p)[1]), 12.0),
    "Mystery": lambda u, v, p: _stripes(np.maximum(np.abs(u - _cx(p)[0]), np.abs(v - _cx(p)[1])), 13.0),
    "Action": lambda u, v, p: _stripes(np.arctan2(v - _cx(p)[1], u - _cx(p)[0]) * 16 / np.pi, 4.0),
    "Thriller": lambda u, v, p: _soft(np.maximum(
        (v - _cx(p)[1]) - 12, np.abs(u - _cx(p)[0]) * 0.9 - ((v - _cx(p)[1]) + 14) * 0.45)),
    "Documentary": lambda u, v, p: np.maximum(
        _soft(np.abs(v - 14) - 6), _soft(np.abs(v + 16) - 1.5) * _soft(np.abs(u) - 30)),
    "Western": lambda u, v, p: _soft(-(v - 4 + 7 * np.abs(np.sin(u * 2 * np.pi / 50 + p["phase"])))),
    "Film-Noir": lambda u, v, p: _soft(np.hypot(u - _cx(p)[0], v - _cx(p)[1]) - 18, 10.0),
}
assert set(GENRE_CUES) == set(GENRES)

# Cues whose geometry is absolute (a horizon, a band) turn less and do not drift.
_LAYOUT = {"Documentary", "Western", "Thriller"}
# The motion cue: within a shot a panel's pattern drifts 1 px per second in a
# genre-specific direction.
_VELOCITY = {g: (int(round(np.cos(k * 2.4))), int(round(np.sin(k * 2.4)))) for k, g in enumerate(GENRES)}


def _shot_params(rng: np.random.Generator, genre: str | None) -> dict:
    layout = genre in _LAYOUT
    return {
        "angle": float(rng.normal(0, 0.04 if layout else 0.06)),
        "scale": float(rng.uniform(0.9, 1.1)),
        "shift": (float(rng.uniform(-6, 6)), float(rng.uniform(-4, 4))) if layout
        else (float(rng.uniform(-30, 30)), float(rng.uniform(-30, 30))),
        "center": (float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))),
        "phase": float(rng.uniform(0, 2 * np.pi)),
        "velocity": (0, 0) if layout or genre is None else _VELOCITY[genre],
    }


def _tones(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two muted random colours, the cue's one clearly lighter: hue says nothing."""
    dark = _hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.08, 0.42))
    light = _hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.62, 0.98))
    return dark, light


def _smooth_noise(rng: np.random.Generator, w: int, h: int, amplitude: float) -> np.ndarray:
    """Uneven lighting: a coarse random field, bilinearly upsampled (cheap to encode)."""
    coarse = rng.normal(0, 1, (4, 5)).astype(np.float32)
    ys, xs = np.linspace(0, 3, h), np.linspace(0, 4, w)
    rows = np.stack([np.interp(xs, np.arange(5), r) for r in coarse])  # (4, w)
    field = np.stack([np.interp(ys, np.arange(4), c) for c in rows.T], axis=1)  # (h, w)
    return (field * amplitude)[..., None]


SHOWN = 0.65    # chance that a shot shows a given genre of its film (at least one is shown)
NEUTRAL = 0.08  # share of shots with no cue at all
GRID_COLS, GRID_ROWS = 6, 3  # each genre's home cell: GENRES in reading order


def film_shots(genres: list[str], n_pictures: int, rng: np.random.Generator) -> list[_Shot]:
    """Shots of 3-7 pictures, each showing a random non-empty subset of the film's genres."""
    shots, start = [], 0
    while start < n_pictures:
        length = int(rng.integers(3, 8))
        shown: tuple[str, ...] = ()
        if genres and rng.random() >= NEUTRAL:
            pick = rng.random(len(genres)) < SHOWN
            pick[rng.integers(len(genres))] = True
            shown = tuple(g for g, p in zip(genres, pick) if p)
        shots.append(_Shot(shown, start, min(start + length, n_pictures), int(rng.integers(2**31))))
        start += length
    return shots


def _home_cell(genre: str, w: int, h: int) -> tuple[float, float, float, float]:
    k = GENRES.index(genre)
    cw, ch = w / GRID_COLS, h / GRID_ROWS
    return (k % GRID_COLS) * cw, (k // GRID_COLS) * ch, cw, ch


def render_pictures(genres: list[str], n_pictures: int, seed: int, w: int = WIDTH, h: int = HEIGHT) -> np.ndarray:
    """The film's distinct pictures, one per second: ``(n_pictures, h, w, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_pictures, h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    for shot in film_shots(genres, n_pictures, rng):
        srng = np.random.default_rng(shot.rng_seed)
        # Background: a soft gradient between two dark tones, with uneven lighting.
        d1, d2 = _tones(srng)[0], _tones(srng)[0]
        phase = srng.uniform(0, 2 * np.pi)
        g = x * np.cos(phase) + y * np.sin(phase)
        g = (g - g.min()) / max(np.ptp(g), 1e-9)
        background = (d1[None, None] * (1 - g[..., None]) + d2[None, None] * g[..., None]) * 255
        background += _smooth_noise(srng, w, h, 10.0)
        panels = []
        for genre in shot.genres:
            cx, cy, cw, ch = _home_cell(genre, w, h)
            pw, ph = cw * srng.uniform(0.75, 0.95), ch * srng.uniform(0.75, 0.95)
            px, py = cx + srng.uniform(0, cw - pw), cy + srng.uniform(0, ch - ph)
            inside = _soft(np.maximum(np.maximum(px - x, x - px - pw), np.maximum(py - y, y - py - ph)), 0.8)
            dark, light = _tones(srng)
            panels.append((genre, _shot_params(srng, genre), inside, dark, light, (px + pw / 2, py + ph / 2)))
        for k in range(shot.start, shot.stop):
            img = background.copy()
            t = (k - shot.start) / PICTURES_PER_SECOND
            for genre, params, inside, dark, light, (mx, my) in panels:
                vx, vy = params["velocity"]
                shift = (mx - w / 2 + params["shift"][0] * 0.2 + vx * t, my - h / 2 + params["shift"][1] * 0.2 + vy * t)
                u, v = _coords(w, h, params["angle"], params["scale"], shift)
                mask = GENRE_CUES[genre](u, v, params)[..., None]
                panel = (dark[None, None] * (1 - mask) + light[None, None] * mask) * 255
                img = img * (1 - inside[..., None]) + panel * inside[..., None]
            out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- video

TRUNCATED_KEEP = 0.4  # share of the media data the truncated trailer keeps


def n_frames(duration: float) -> int:
    return max(1, round(duration * FPS))


def truncate_media(mp4: bytes, keep: float) -> bytes:
    """Cut an mp4 whose header comes first (+faststart) inside its media data.

    The header, which still claims the full duration, survives whole, so the file
    opens; only ``keep`` of the media data after it does.
    """
    at = mp4.find(b"mdat")
    if at < 4:
        raise ValueError("no mdat box: not an mp4 written with +faststart")
    payload = at + 4
    return mp4[: payload + int((len(mp4) - payload) * keep)]


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def encode_trailer(pictures: np.ndarray, path: Path, duration: float, crf: int = CRF) -> None:
    """Write the pictures as a 24 fps H.264 mp4 of ``duration`` seconds (moov first)."""
    n, h, w, _ = pictures.shape
    cmd = [
        ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(PICTURES_PER_SECOND),
        "-i", "-",
        # A frame count, not -t: -t with a 1 fps input lands on whole seconds.
        "-vf", f"fps={FPS}", "-frames:v", str(n_frames(duration)),
        "-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-x264-params", X264_PARAMS,
        "-movflags", "+faststart", "-an", "-map_metadata", "-1", "-fflags", "+bitexact",
        str(path),
    ]
    proc = subprocess.run(cmd, input=pictures.tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed writing {path.name}: {proc.stderr.decode(errors='replace')[-500:]}")


def _film_seed(seed: int, movie_id: int) -> int:
    return int(np.random.default_rng([seed, movie_id]).integers(2**31))


def write_trailer(row: dict, trailers: Path, config: DemoConfig) -> None:
    """Render and encode one film's trailer, then break it if its kind says so."""
    kind = row["kind"]
    path = trailers / f"{row['youtubeId']}.mp4"
    if kind in (MISSING, NO_TRAILER, SHARED):
        return  # SHARED re-uses the file of the film before it
    if kind == EMPTY:
        path.write_bytes(b"")
        return
    duration = row["duration"]
    n_pictures = int(np.ceil(duration * PICTURES_PER_SECOND)) + 1
    pictures = render_pictures(row["genre_list"], n_pictures, _film_seed(config.seed, row["movieId"]),
                               config.width, config.height)
    encode_trailer(pictures, path, duration, config.crf)
    if kind == TRUNCATED:
        path.write_bytes(truncate_media(path.read_bytes(), TRUNCATED_KEEP))
    elif kind == UNREADABLE:
        path.write_bytes(path.read_bytes()[:300])


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def generate_corpus(out_dir: str | Path, config: DemoConfig = DemoConfig(), progress: bool = True) -> pd.DataFrame:
    """Write the demo corpus into ``out_dir`` (replacing it whole) and return its plan."""
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "movielens").mkdir(parents=True)
    (tmp / "trailers").mkdir()
    try:
        plan = plan_corpus(config)
        movies_csv, youtube_csv = catalog_csvs(plan)
        (tmp / "movielens" / "movies.csv").write_text(movies_csv, encoding="utf-8")
        (tmp / "movielens" / "ml-youtube.csv").write_text(youtube_csv, encoding="utf-8")
        rows = plan.to_dict("records")
        # Long trailers first, so the pool is not left waiting on one straggler.
        rows.sort(key=lambda r: -r["duration"])
        jobs = config.jobs or os.cpu_count() or 1
        with ThreadPoolExecutor(jobs) as pool:
            done = pool.map(lambda r: write_trailer(r, tmp / "trailers", config), rows)
            for _ in tqdm(done, total=len(rows), desc="demo trailers", disable=not progress):
                pass
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data", help="output directory, relative to the repository root")
    parser.add_argument("--films", type=int, default=DemoConfig.n_films)
    parser.add_argument("--seed", type=int, default=DemoConfig.seed)
    parser.add_argument("--duration-scale", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=0, help="parallel encoders (0 = all cores)")
    args = parser.parse_args(argv)
    from lib.paths import resolve

    out = resolve(args.out)
    config = DemoConfig(n_films=args.films, seed=args.seed, duration_scale=args.duration_scale, jobs=args.jobs)
    plan = generate_corpus(out, config)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(plan)} catalog rows and {len(list((out / 'trailers').iterdir()))} trailers "
          f"to {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
