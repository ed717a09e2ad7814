"""The embedded demo corpus: a small synthetic MovieLens catalog with real trailer files.

``python -m lib.sources.demo_corpus --out data`` writes, in the layout the real sources have:

* ``movielens/movies.csv``: ``movieId,title,genres`` (genres joined by ``|``);
* ``movielens/ml-youtube.csv``: ``youtubeId,movieId,title``;
* ``trailers/<youtubeId>.mp4``: H.264, yuv420p, 24 fps, 96x54 pixels, + Opus mono 2.5 kbit/s
  (16 kHz source; a few ordinary trailers have no audio stream, see ``plan_corpus``).

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
* Trailer lengths: mostly 40-150 s, a few shorter than 40 s and a couple just
  longer than 200 s, so duration pruning has work too.

The pictures: a trailer's editing, lighting and imagery, as genre tendencies
------------------------------------------------------------------------------
The cues follow what the film-classification literature measured in real trailers:
Rasheed, Sheikh & Shah, "On the use of computable features for film classification"
(IEEE TCSVT 2005) found that action films cut fast and move a lot, dramas and romances
cut slowly, horror and noir are lit low-key and comedies high-key; later work added
colour statistics and the objects and textures on screen. Each genre has a
``GenreStyle`` of *tendencies*, not rules (``GENRE_STYLES``):

* **shot length** (seconds; action 1.6, thriller 1.8, drama and romance 5.0): a film's
  shots are gamma-distributed around its mean, 1-``MAX_SHOT`` s;
* **motion** within a shot (pixels per second: action 3, drama 0.5): the camera pans
  the scene and each object drifts;
* **lighting key** (mean brightness: horror 0.22, noir 0.26, comedy 0.72) and
  **contrast** (spread of brightness within a picture);
* **colour**: saturation (noir 0.04, animation 0.85), and with it colour variance; a
  weak palette lean (a genre's hue is picked in up to ``HUE_PULL`` of the shots,
  otherwise the hue is random);
* **imagery**: each genre has a texture or shape (``GENRE_CUES``: drama horizontal
  stripes, comedy vertical ones, adventure and crime diagonals, sci-fi a grid, romance a
  checkerboard, children small dots, animation big dots, war crosses, musical waves,
  horror zigzags, fantasy rings, mystery nested squares, action a starburst, thriller a
  triangle, documentary a band, western a horizon, noir a soft spot) painted on an
  object (disc, square or ellipse, 8-15 px) placed **anywhere** in the frame, moving with
  the shot. In ``BACKDROP`` of the shots that show imagery, one of those genres' textures
  also covers the background, as a set or a landscape would, at a random scale, angle
  and offset. Genre-free objects (plain or shaded, ``DISTRACTORS`` per shot on average)
  share the screen with them.

A film mixes the tendencies of its genres: each style value is the neutral style
(``NEUTRAL_STYLE``) plus the mean, over the film's cued genres, of ``strength x (genre
value - neutral value)``, then per-film noise (log-normal on shot length and motion,
normal on key, contrast and saturation). So a drama-thriller cuts at a pace between
the two, and a weakly cued action film barely differs from a neutral one.

Every trailer also carries what real trailers carry and no genre explains:

* a **studio logo** intro (3 s, fading in from black) in ``LOGO_SHARE`` of the films,
  one of ``STUDIOS`` emblems, each shared by many films of every genre;
* a **title card** (letter-like blocks on black) somewhere in the middle third, and a
  **credits card** at the end (3-5 s);
* **black frames** between shots (8% of the gaps) and **fades** (dimmed first or last
  pictures of ~10% of the shots).

Noise, as in MovieLens labels:

* **cue strength** varies from film to film (``STRENGTH``, uniform 0.4-1.0, times
  0.6-1.0 per genre): it scales both how far the film's style moves towards the genre's
  and how often the genre's imagery appears (``IMAGERY x strength`` of its shots);
* ``SILENT`` (10%) of the labelled genres get **no cue at all** (the label is there,
  the trailer does not show it);
* **colour is weakly informative**: the lighting key and saturation reach a film's
  mean colour, and the palette leans, so a mean-colour classifier lands above chance,
  far below a model that sees the imagery.

One distinct picture is rendered per second and ffmpeg repeats it to 24 fps (x264
stores the repeats as skipped blocks, which keeps the files small), so shots last whole
seconds. The frames stage keeps every 100th frame (~4.2 s apart): the model sees the
imagery and lighting of a few shots per slice, while the cut rate and the motion within
shots are visible only to a measure of the full video (``lib/frames/features.py``).

The soundtrack: loudness, timbre, rhythm and sound events, as genre tendencies
--------------------------------------------------------------------------------
The cues follow what audio genre classification measured: Tzanetakis & Cook, "Musical genre
classification of audio signals" (IEEE TSAP 2002) separated genres by timbre (spectral centroid,
roll-off, flux, zero crossings) and rhythm; Rasheed & Shah, "Movie genre classification by exploiting
audio-visual features of previews" (ICPR 2002) used the audio energy of previews (action loud and busy,
horror quiet); Moncrieff, Dorai & Venkatesh, "Horror film genre typing and scene labeling via audio
analysis" (ICME 2003) found horror in sudden surprises of loudness; Mangolin et al., "A multimodal
approach for multi-label movie genre classification" (Multimedia Tools and Applications 2022) and
Deldjoo et al.'s MMTF-14K (ACM MMSys 2018) classify trailers' audio by MFCC-like spectral summaries. Each
genre has an ``AudioStyle`` of tendencies (``AUDIO_STYLES``), mixed per film like the pictures' (neutral
``NEUTRAL_AUDIO`` plus the mean of ``strength x (genre - neutral)``, then per-film noise):

* **onset density** of the music bed (action 4 events/s, drama 0.8, romance 0.7): notes or noise hits;
* **loudness** (action -15 dB, horror -31 dB) and **dynamic range** (horror's passages swing 10 dB);
* **brightness**, the bed's pitch centre (comedy 1100 Hz, children 1000, thriller 170);
* **tonal vs noisy**: the share of notes among the events (romance 0.95, action 0.25);
* **speech-like bursts** (syllables at 4-5 Hz: a voiced pulse train and breath noise through a random
  vowel's formants): documentary 55% of the time, action 10%;
* **silence share** (horror 22%, action 2%).

Like the pictures' imagery, each genre has a **sound motif** (``GENRE_MOTIFS``), heard ``MOTIF_RATE``
times a minute at full strength: action explosions and gunfire bursts, adventure a brass fanfare,
animation a boing (a pitch slide), children bells, comedy bouncy pizzicato, crime a walking bass,
documentary narration, drama slow piano-like notes, fantasy a harp arpeggio, noir a sax-like tone, horror
stingers (loud whatever the bed) and low beating drones, musical a sung-like melody, mystery a tremolo,
romance a slow string-like pad, sci-fi a synth sweep, thriller ticking pulses over a low drone, war a snare
roll or a fanfare, western a plucked twang. Every sound lies within 100-3800 Hz: the codec keeps ~4 kHz.

What carries no genre: the studio's **jingle** under its logo (the first 3 s, the same samples in every
film of that studio); **narration** in films of every genre (``NEUTRAL_AUDIO.speech``); silent **gaps**;
the passages' loudness swings. Noise, as in the pictures but drawn apart from them (the sound has its own
stream of draws, so the pictures are the same with or without it): the sound's **cue strength**
(``AUDIO_STRENGTH``, uniform 0.4-1.0, times 0.6-1.0 per genre), and ``AUDIO_SILENT`` (10%) of the labelled
genres whose sound carries **no cue**, independently of the pictures' silent genres, so the sound can tell
what the pictures do not; and ``NO_AUDIO`` (3%) of the ordinary trailers have no audio stream at all.

Measured on the default corpus (seed 2018: 561 catalog rows, 553 trailers, 24.9 MB; prepare's
55/20/25 split; 432 films kept after rebalancing and pruning, 107 of them in test, every genre
with at least 7 positive test films), test macro-AP with 95% bootstrap intervals, seed 42: label
prior 0.142 [0.131, 0.154], logistic regression on mean colour 0.201 [0.174, 0.233], on the
computable features of the picture 0.266 [0.229, 0.309], of the sound 0.340 [0.303, 0.377], of
both 0.362 [0.319, 0.406]; the whole-trailer model on a frozen ImageNet encoder 0.660 [0.611,
0.706], on the sound alone 0.295 [0.262, 0.335], on both 0.705 [0.656, 0.756]; the demo 3D CNN
0.212 [0.178, 0.254]. ``docs/corpus-calibration.md`` records how the constants were chosen (on
validation, or on a corpus of another seed), and what did not work.

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

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lib.core.ffmpeg import ffmpeg_exe
from lib.core.genres import GENRES, NO_GENRE_TAG
from lib.core.paths import resolve

WIDTH, HEIGHT = 96, 54
FPS = 24
PICTURES_PER_SECOND = 1
CRF = 34
# No B-frames and CAVLC: a repeated frame then costs ~10 bytes instead of ~27, and
# repeated frames are most of a trailer (24 fps, one new picture per second).
X264_PARAMS = "keyint=480:min-keyint=24:bframes=0:ref=1:cabac=0:threads=1"

# Approximate MovieLens 20M genre frequencies (share of films having the genre).
GENRE_FREQUENCY = {
    "Drama": 0.49,
    "Comedy": 0.33,
    "Thriller": 0.15,
    "Romance": 0.15,
    "Action": 0.13,
    "Crime": 0.11,
    "Horror": 0.10,
    "Documentary": 0.09,
    "Adventure": 0.08,
    "Sci-Fi": 0.06,
    "Mystery": 0.06,
    "Fantasy": 0.05,
    "War": 0.04,
    "Children": 0.04,
    "Musical": 0.04,
    "Animation": 0.04,
    "Western": 0.03,
    "Film-Noir": 0.012,
}
# Rare genres are topped up to this many films (per 500), so that after the
# rebalancing and a 60/20/20 split each still has test films.
GENRE_FLOOR_PER_500 = 34
FILM_NOIR_PER_500 = 24  # rarest on purpose, but with >= 5 test films

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
    "Amélie",
    "Léon",
    "Crème brûlée",
    "Smörgåsbord",
    "Niño",
    "Façade",
    "Über alles",
    "Señorita",
    "Déjà vu",
    "Mañana",
    "Götterdämmerung",
    "Brontë",
    "Þingvellir",
    "Straße",
    "Пётр",
    "東京物語",
    "Ça ira",
    "Øresund",
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
    """Most trailers 40-150 s, mostly at the short end: every second costs ~350 bytes of
    repeated frames alone and ~370 bytes of sound, and the snapshot must stay within 25 MB
    (the long tail reached 195 s before the soundtrack)."""
    if rng.random() < 0.05:
        return float(rng.uniform(90.0, 150.0))
    return float(np.clip(41 + rng.gamma(1.3, 6.0), 41.0, 195.0))


# Kinds of special rows; "ok" is an ordinary film with a good trailer.
OK = "ok"
SHORT = "short"  # trailer shorter than 40 s
LONG = "long"  # trailer just over 200 s
MISSING = "missing"  # ml-youtube row, no trailer file
ORPHAN = "orphan"  # ml-youtube row whose movieId is not in movies.csv
SHARED = "shared"  # second film re-using the previous film's youtubeId
EMPTY = "empty"  # zero-byte trailer
TRUNCATED = "truncated"  # opens, claims its full length, decodes far less
UNREADABLE = "unreadable"  # cut so short it cannot be opened
NO_TRAILER = "no_trailer"  # in movies.csv but not in ml-youtube.csv


def plan_corpus(config: DemoConfig = DemoConfig()) -> pd.DataFrame:
    """The whole catalog as one table, one row per film (plus the orphan trailer row).

    Columns: movieId, title, genres (the MovieLens string), genre_list, youtubeId,
    kind (see the constants above), duration (seconds the video is rendered to, after
    ``duration_scale``), in_movies (row appears in movies.csv), in_youtube, audio (the trailer
    file was encoded with a soundtrack: False where no file or an empty one is written, for the
    trailers pruned for their length (``short``, ``long``: never decoded), and for the
    ``NO_AUDIO`` share of ordinary films, at seeded positions, whose trailer has no audio
    stream at all; the truncated and unreadable files were encoded with sound).
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
        rows.append(
            {
                "movieId": i + 1 + (i // 7) * 3,  # gaps in the ids, as in MovieLens
                "title": _title(rng, i),
                "genres": "|".join(gl) if gl else NO_GENRE_TAG,
                "genre_list": [g for g in gl if g in GENRES],
                "youtubeId": _youtube_id(rng),
                "kind": kinds[i],
                "duration": durations[i] * config.duration_scale,
                "in_movies": True,
                "in_youtube": kinds[i] != NO_TRAILER,
            }
        )
    for i, row in enumerate(rows):
        if row["kind"] == SHARED:
            row["youtubeId"] = rows[i - 1]["youtubeId"]
            row["duration"] = rows[i - 1]["duration"]
    orphan_genres = ["Comedy", "Romance"]
    rows.append(
        {
            "movieId": rows[-1]["movieId"] + 1000,
            "title": _title(rng, 4),
            "genres": "|".join(orphan_genres),
            "genre_list": orphan_genres,
            "youtubeId": _youtube_id(rng),
            "kind": ORPHAN,
            "duration": 50.0 * config.duration_scale,
            "in_movies": False,
            "in_youtube": True,
        }
    )
    # A few ordinary trailers have no sound; their own stream of draws leaves the catalog as it was.
    ordinary = [i for i, row in enumerate(rows) if row["kind"] == OK]
    n_mute = max(1, round(NO_AUDIO * len(ordinary)))
    mute = set(np.random.default_rng([config.seed, 3]).choice(ordinary, size=n_mute, replace=False).tolist())
    for i, row in enumerate(rows):
        # Trailers pruned for their length are never decoded (the stage reads the length from the header), so
        # their sound would never be heard: they carry none, which keeps ~0.4 MB out of the snapshot.
        row["audio"] = row["kind"] not in (MISSING, NO_TRAILER, EMPTY, SHORT, LONG) and i not in mute
        if row["kind"] == SHARED:
            row["audio"] = rows[i - 1]["audio"]  # the same file
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


# Genre imagery: a texture or a shape, in pixels, in the object's own coordinates (u, v
# centred on the object, rotated and scaled with it); ``p["phase"]`` varies per object.
GENRE_CUES = {
    # stripes at four orientations
    "Drama": lambda u, v, p: _stripes(v + p["phase"] * 3, 8.0),
    "Comedy": lambda u, v, p: _stripes(u + p["phase"] * 3, 9.0),
    "Adventure": lambda u, v, p: _stripes((u + v) / np.sqrt(2), 9.0),
    "Crime": lambda u, v, p: _stripes((u - v) / np.sqrt(2), 9.0),
    # textures
    "Sci-Fi": lambda u, v, p: np.maximum(_stripes(u, 9.0, 0.22), _stripes(v, 9.0, 0.22)),
    "Romance": lambda u, v, p: ((_stripes(u, 10.0) - 0.5) * (_stripes(v, 10.0) - 0.5) * 4 + 1) / 2,
    "Children": lambda u, v, p: _soft(np.hypot(np.mod(u, 7) - 3.5, np.mod(v, 7) - 3.5) - 1.6),
    "Animation": lambda u, v, p: _soft(np.hypot(np.mod(u, 13) - 6.5, np.mod(v, 13) - 6.5) - 4.0),
    "War": lambda u, v, p: np.maximum(
        _soft(np.abs(np.mod(u, 11) - 5.5) - 1.0) * _soft(np.abs(np.mod(v, 11) - 5.5) - 3.5),
        _soft(np.abs(np.mod(v, 11) - 5.5) - 1.0) * _soft(np.abs(np.mod(u, 11) - 5.5) - 3.5),
    ),
    "Musical": lambda u, v, p: _stripes(v + 2.5 * np.sin(u * 2 * np.pi / 12 + p["phase"]), 8.0, 0.35),
    "Horror": lambda u, v, p: _stripes(v + 5.0 * np.abs(np.mod(u, 8) / 4 - 1), 9.0, 0.35),
    # shapes
    "Fantasy": lambda u, v, p: _stripes(np.hypot(u, v), 6.0),
    "Mystery": lambda u, v, p: _stripes(np.maximum(np.abs(u), np.abs(v)), 7.0),
    "Action": lambda u, v, p: _stripes(np.arctan2(v, u) * 12 / np.pi, 3.0),
    "Thriller": lambda u, v, p: _soft(np.maximum(v - 8, np.abs(u) * 0.9 - (v + 10) * 0.45)),
    "Documentary": lambda u, v, p: np.maximum(_soft(np.abs(v + 2) - 3.5), _soft(np.abs(v - 7) - 1.0)),
    "Western": lambda u, v, p: _soft(-(v - 1 + 4 * np.abs(np.sin(u * 2 * np.pi / 24 + p["phase"])))),
    "Film-Noir": lambda u, v, p: _soft(np.hypot(u + 3, v + 2) - 6, 6.0),
}
assert set(GENRE_CUES) == set(GENRES)


@dataclass(frozen=True)
class GenreStyle:
    """A genre's tendencies (Rasheed et al. 2005 and follow-ups), mixed per film."""

    shot: float  # mean shot length, seconds
    motion: float  # camera / object motion, pixels per second
    key: float  # lighting key: mean brightness, 0-1
    contrast: float  # spread of brightness within a picture, 0-1
    saturation: float  # colour saturation (and with it colour variance), 0-1
    hue: float  # a weak palette tendency (hue, 0-1)


GENRE_STYLES = {
    "Action": GenreStyle(1.6, 3.0, 0.50, 0.60, 0.50, 0.08),
    "Adventure": GenreStyle(2.4, 2.4, 0.60, 0.50, 0.60, 0.12),
    "Animation": GenreStyle(2.6, 2.0, 0.68, 0.50, 0.85, 0.55),
    "Children": GenreStyle(3.0, 1.6, 0.68, 0.40, 0.75, 0.20),
    "Comedy": GenreStyle(3.4, 1.0, 0.72, 0.35, 0.60, 0.14),
    "Crime": GenreStyle(2.6, 1.6, 0.36, 0.55, 0.30, 0.60),
    "Documentary": GenreStyle(4.8, 0.6, 0.55, 0.40, 0.40, 0.30),
    "Drama": GenreStyle(5.0, 0.5, 0.48, 0.40, 0.40, 0.10),
    "Fantasy": GenreStyle(3.4, 1.4, 0.55, 0.50, 0.70, 0.75),
    "Film-Noir": GenreStyle(4.4, 0.7, 0.26, 0.75, 0.04, 0.60),
    "Horror": GenreStyle(3.0, 1.0, 0.22, 0.65, 0.30, 0.98),
    "Musical": GenreStyle(3.4, 2.0, 0.68, 0.50, 0.80, 0.85),
    "Mystery": GenreStyle(4.0, 0.8, 0.32, 0.60, 0.30, 0.66),
    "Romance": GenreStyle(5.0, 0.6, 0.62, 0.30, 0.50, 0.92),
    "Sci-Fi": GenreStyle(2.4, 2.0, 0.40, 0.60, 0.50, 0.55),
    "Thriller": GenreStyle(1.8, 2.0, 0.34, 0.60, 0.35, 0.62),
    "War": GenreStyle(2.4, 2.2, 0.40, 0.50, 0.18, 0.25),
    "Western": GenreStyle(4.0, 1.0, 0.58, 0.50, 0.50, 0.09),
}
NEUTRAL_STYLE = GenreStyle(3.4, 1.2, 0.50, 0.48, 0.45, 0.0)
assert set(GENRE_STYLES) == set(GENRES)

SILENT = 0.10  # share of a film's labelled genres that get no cue at all
STRENGTH = (0.4, 1.0)  # a film's cue strength is drawn uniformly from this range
IMAGERY = 1.0  # chance that a shot shows a cued genre's imagery, at full strength
HUE_PULL = 0.45  # chance, at full strength, that a shot's palette leans to a genre's hue
DISTRACTORS = 1.4  # mean number of genre-free objects per shot
OBJECT_RADIUS = (8, 15)  # pixels, of the 96x54 picture
BACKDROP = 0.5  # chance that a shot showing imagery also lays one genre's texture over its background
BACKDROP_SCALE = (1.0, 1.6)  # the texture's scale there (1 = as on an object)
BACKDROP_CONTRAST = 0.8  # brightness swing of that texture, relative to the scene's own
STUDIOS = 6  # studio logos, each shared by many films
LOGO_SHARE = 0.75  # films that open on a studio logo
MAX_SHOT = 10  # seconds


@dataclass
class _Shot:
    kind: str  # "shot", "logo", "title", "credits" or "black"
    start: int  # first picture
    stop: int
    genres: tuple[str, ...] = ()  # genres whose imagery this shot shows
    rng_seed: int = 0
    fade_in: bool = False
    fade_out: bool = False


@dataclass(frozen=True)
class FilmStyle:
    """One film's mix of its genres' tendencies, with its own noise."""

    cued: tuple[str, ...]  # labelled genres that have a cue in this film
    strength: dict  # genre -> cue strength
    shot: float
    motion: float
    key: float
    contrast: float
    saturation: float
    hue_pull: tuple  # ((genre hue, probability), ...)
    studio: int | None


def cue_strengths(
    genres: list[str], rng: np.random.Generator, strength_range: tuple[float, float], silent_share: float
) -> tuple[tuple[str, ...], dict[str, float]]:
    """(the labelled genres that carry a cue, genre -> its strength): a film-wide strength drawn from
    ``strength_range`` times 0.6-1.0 per genre; each genre silent with probability ``silent_share``."""
    strength_film = float(rng.uniform(*strength_range))
    silent = rng.random(len(genres)) < silent_share
    cued = tuple(g for g, s in zip(genres, silent) if not s)
    return cued, {g: strength_film * float(rng.uniform(0.6, 1.0)) for g in cued}


def film_style(genres: list[str], rng: np.random.Generator) -> FilmStyle:
    """Draw which genres speak, how strongly, and the film's blend of their tendencies."""
    cued, strength = cue_strengths(genres, rng, STRENGTH, SILENT)
    mix = {}
    for name in ("shot", "motion", "key", "contrast", "saturation"):
        base = getattr(NEUTRAL_STYLE, name)
        shift = [strength[g] * (getattr(GENRE_STYLES[g], name) - base) for g in cued]
        mix[name] = base + (float(np.mean(shift)) if shift else 0.0)
    studio = int(rng.integers(STUDIOS)) if rng.random() < LOGO_SHARE else None
    return FilmStyle(
        cued=cued,
        strength=strength,
        shot=float(np.clip(mix["shot"] * np.exp(rng.normal(0, 0.2)), 1.2, 7.0)),
        motion=float(np.clip(mix["motion"] * np.exp(rng.normal(0, 0.3)), 0.2, 5.0)),
        key=float(np.clip(mix["key"] + rng.normal(0, 0.06), 0.12, 0.85)),
        contrast=float(np.clip(mix["contrast"] + rng.normal(0, 0.06), 0.15, 0.9)),
        saturation=float(np.clip(mix["saturation"] + rng.normal(0, 0.08), 0.0, 0.95)),
        hue_pull=tuple((GENRE_STYLES[g].hue, HUE_PULL * strength[g] / max(len(cued), 1)) for g in cued),
        studio=studio,
    )


def film_shots(
    genres: list[str], n_pictures: int, rng: np.random.Generator, style: FilmStyle | None = None
) -> list[_Shot]:
    """The trailer's timeline: logo, shots (with black frames, fades and a title card), credits."""
    style = style or film_style(genres, rng)
    shots: list[_Shot] = []
    start = 0

    def add(kind, length, **kw):
        nonlocal start
        length = max(1, min(int(length), n_pictures - start))
        if length > 0 and start < n_pictures:
            shots.append(_Shot(kind, start, start + length, rng_seed=int(rng.integers(2**31)), **kw))
            start += length

    if style.studio is not None and n_pictures > 12:
        add("logo", 3)
    credits = int(rng.integers(3, 6)) if n_pictures > 15 else 0
    title_at = int(rng.integers(n_pictures // 3, max(n_pictures // 3 + 1, 2 * n_pictures // 3)))
    titled = False
    while start < n_pictures - credits:
        if not titled and start >= title_at:
            add("title", rng.integers(2, 4), fade_in=True)
            titled = True
            continue
        if rng.random() < 0.08:
            add("black", 1)
            continue
        length = min(MAX_SHOT, max(1, round(rng.gamma(2.0, style.shot / 2.0))), n_pictures - credits - start)
        shown = tuple(g for g in style.cued if rng.random() < IMAGERY * style.strength[g])
        add("shot", length, genres=shown, fade_in=rng.random() < 0.08, fade_out=rng.random() < 0.1)
    while start < n_pictures:
        add("credits", n_pictures - start)
    return shots


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: tuple[int, int] = (4, 5)) -> np.ndarray:
    """A coarse random field in [-1, 1]-ish, bilinearly upsampled (cheap to encode)."""
    gy, gx = cells
    coarse = rng.normal(0, 1, (gy, gx))
    ys, xs = np.linspace(0, gy - 1, h), np.linspace(0, gx - 1, w)
    y0, x0 = np.minimum(ys.astype(int), gy - 2), np.minimum(xs.astype(int), gx - 2)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    c00, c01 = coarse[y0][:, x0], coarse[y0][:, x0 + 1]
    c10, c11 = coarse[y0 + 1][:, x0], coarse[y0 + 1][:, x0 + 1]
    return (c00 * (1 - fx) + c01 * fx) * (1 - fy) + (c10 * (1 - fx) + c11 * fx) * fy


def _palette_hue(rng: np.random.Generator, style: FilmStyle) -> float:
    for hue, p in style.hue_pull:
        if rng.random() < p:
            return float(np.mod(hue + rng.normal(0, 0.04), 1.0))
    return float(rng.random())


def _studio_logo(studio: int, w: int, h: int) -> np.ndarray:
    """A studio's emblem on black: the same picture in every film of that studio."""
    rng = np.random.default_rng([77, studio])
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x - w / 2, y - h / 2
    r, a = np.hypot(u, v), np.arctan2(v, u)
    kind = studio % 3
    if kind == 0:
        mask = _stripes(r, 6.0) * _soft(r - 20)
    elif kind == 1:
        mask = _soft(r - (10 + 6 * np.cos(a * (4 + studio))))
    else:
        mask = _soft(np.maximum(np.abs(u) - 26, np.abs(v) - 5)) * (1 - _stripes(u, 7.0, 0.25))
    colour = _hsv_to_rgb(rng.random(), rng.uniform(0.3, 0.8), 0.9)
    return mask[..., None] * colour[None, None] * 255


def _text_card(rng: np.random.Generator, w: int, h: int, lines: int) -> np.ndarray:
    """Title or credits: rows of letter-like blocks, light on black."""
    img = np.zeros((h, w))
    line_h = 5 if lines > 2 else 7
    top = (h - lines * (line_h + 3)) // 2
    for k in range(lines):
        y0 = top + k * (line_h + 3)
        n = int(rng.integers(5, 16))
        gap = 1
        letter = int(rng.integers(3, 5)) if lines > 2 else int(rng.integers(4, 7))
        width = n * (letter + gap)
        x = (w - width) // 2
        for _ in range(n):
            if rng.random() < 0.85:
                img[y0 : y0 + line_h, x : x + letter] = rng.uniform(0.7, 1.0)
            x += letter + gap
    tone = _hsv_to_rgb(rng.random(), rng.uniform(0, 0.3), 0.9)
    return img[..., None] * tone[None, None] * 255


def _object_support(kind: int, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """A genre-free outline: disc, square or ellipse."""
    if kind == 0:
        return _soft(np.hypot(u, v) - r, 1.0)
    if kind == 1:
        return _soft(np.maximum(np.abs(u), np.abs(v)) - r * 0.9, 1.0)
    return _soft(np.hypot(u / 1.4, v / 0.8) - r * 0.85, 1.0)


def render_pictures(
    genres: list[str], n_pictures: int, seed: int, w: int = WIDTH, h: int = HEIGHT, only: set[int] | None = None
) -> np.ndarray:
    """The film's distinct pictures, one per second: ``(n_pictures, h, w, 3)`` uint8.

    ``only``: render just these picture numbers (the others stay black), e.g. the ones a
    frame step would keep; the film's random draws, and so those pictures, are unchanged.
    """
    rng = np.random.default_rng(seed)
    style = film_style(genres, rng)
    out = np.zeros((n_pictures, h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    for shot in film_shots(genres, n_pictures, rng, style):
        srng = np.random.default_rng(shot.rng_seed)
        n = shot.stop - shot.start
        if shot.kind == "black":
            continue
        if shot.kind in ("logo", "title", "credits"):
            card = (
                _studio_logo(style.studio, w, h)
                if shot.kind == "logo"
                else _text_card(srng, w, h, 1 if shot.kind == "title" else int(srng.integers(4, 7)))
            )
            for k in range(n):
                if only is not None and shot.start + k not in only:
                    continue
                fade = min(1.0, (k + 1) / 2) if shot.kind == "logo" or shot.fade_in else 1.0
                out[shot.start + k] = np.clip(card * fade, 0, 255).astype(np.uint8)
            continue
        # A scene: lighting key and contrast, a palette, a textured background; camera pans.
        key = float(np.clip(style.key + srng.normal(0, 0.05), 0.05, 0.9))
        contrast = float(np.clip(style.contrast + srng.normal(0, 0.05), 0.1, 0.95))
        sat = float(np.clip(style.saturation + srng.normal(0, 0.08), 0.0, 1.0))
        hue = _palette_hue(srng, style)
        speed = style.motion * float(np.exp(srng.normal(0, 0.25)))
        angle = srng.uniform(0, 2 * np.pi)
        pan = np.array([np.cos(angle), np.sin(angle)]) * speed
        field = _smooth_noise(srng, w + 40, h + 40, (5, 7))
        field = field / max(np.abs(field).max(), 1e-9)
        tone_a = _hsv_to_rgb(hue, sat, 1.0)
        tone_b = _hsv_to_rgb(np.mod(hue + srng.normal(0, 0.08 + 0.2 * sat), 1.0), sat, 1.0)
        # A genre's setting: its texture over the whole background (a scene, not a prop), in
        # BACKDROP of the shots that show imagery, moving with the camera.
        backdrop = None
        if shot.genres and srng.random() < BACKDROP:
            backdrop = (
                shot.genres[int(srng.integers(len(shot.genres)))],
                np.array([srng.uniform(0, w), srng.uniform(0, h)]),
                {"phase": float(srng.uniform(0, 2 * np.pi))},
                float(srng.uniform(-0.4, 0.4)),
                float(srng.uniform(*BACKDROP_SCALE)),
            )
        objects = []
        n_distract = int(srng.poisson(DISTRACTORS))
        for kind in [None] * n_distract + list(shot.genres):
            r = srng.uniform(*OBJECT_RADIUS)
            cx, cy = srng.uniform(r * 0.5, w - r * 0.5), srng.uniform(r * 0.5, h - r * 0.5)
            own = srng.normal(0, 0.6, 2) * speed
            params = {
                "phase": float(srng.uniform(0, 2 * np.pi)),
                "angle": float(srng.uniform(-0.5, 0.5)),
                "scale": float(srng.uniform(0.85, 1.2)),
                "r": r,
                "support": int(srng.integers(3)),
            }
            o_hue = _palette_hue(srng, style) if srng.random() < 0.5 else hue
            lo = float(np.clip(key - contrast * srng.uniform(0.3, 0.6), 0.0, 1.0))
            hi = float(np.clip(key + contrast * srng.uniform(0.4, 0.8), 0.0, 1.0))
            dark = _hsv_to_rgb(o_hue, sat * srng.uniform(0.5, 1.0), lo)
            light = _hsv_to_rgb(np.mod(o_hue + srng.normal(0, 0.1), 1), sat * srng.uniform(0.3, 1.0), hi)
            flat = srng.random() < 0.5  # a genre-free object is plain or smoothly shaded
            objects.append((kind, np.array([cx, cy]), own, params, dark, light, flat))
        for k in range(n):
            if only is not None and shot.start + k not in only:
                continue
            t = k / PICTURES_PER_SECOND
            ox, oy = pan * t
            ix, iy = int(round(20 + ox)) % 40, int(round(20 + oy)) % 40
            f = field[iy : iy + h, ix : ix + w]
            g = (f + 1) / 2
            value = np.clip(key + contrast * 0.5 * f, 0.0, 1.0)[..., None]
            img = (tone_a[None, None] * (1 - g[..., None]) + tone_b[None, None] * g[..., None]) * value * 255
            if backdrop is not None:
                genre, origin, bparams, angle, scale = backdrop
                bx, by = origin + pan * t
                c, s = np.cos(angle), np.sin(angle)
                du, dv = (x - bx) / scale, (y - by) / scale
                m = GENRE_CUES[genre](du * c + dv * s, -du * s + dv * c, bparams)[..., None]
                img = img * (1 + BACKDROP_CONTRAST * (m - 0.5))
            for kind, centre, own, params, dark, light, flat in objects:
                cx, cy = centre + (pan * 0.5 + own) * t
                reach = params["r"] * 1.5 + 2  # the object's bounding box: only it is computed
                x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
                y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
                if x0 >= x1 or y0 >= y1:
                    continue
                c, s = np.cos(params["angle"]), np.sin(params["angle"])
                du, dv = (x[y0:y1, x0:x1] - cx) / params["scale"], (y[y0:y1, x0:x1] - cy) / params["scale"]
                u, v = du * c + dv * s, -du * s + dv * c
                support = _object_support(params["support"], u, v, params["r"] / params["scale"])[..., None]
                if kind is None:
                    mask = 0.5 + 0.5 * (v / params["r"]) * (0 if flat else 1)
                else:
                    mask = GENRE_CUES[kind](u, v, params)
                patch = (dark[None, None] * (1 - mask[..., None]) + light[None, None] * mask[..., None]) * 255
                img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - support) + patch * support
            if shot.fade_in and k == 0:
                img = img * 0.4
            if shot.fade_out and k == n - 1:
                img = img * 0.4
            out[shot.start + k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- sound

SOUND_RATE = 16000  # samples per second of the soundtrack (mono)
# Opus at this rate keeps about 4 kHz of bandwidth: every sound is made inside this band.
SOUND_BAND = (100.0, 3800.0)
# Opus's music mode (CELT, `-application lowdelay`) at 2.5 kbit/s, in 120 ms packets (fewer mp4 packets, less
# container overhead): ~0.3 kB a second. Measured on seed-7 soundtracks, 120 ms at a time against the source: it keeps
# every loud stretch, where its speech mode (SILK, the default at low rates) loses 17-99% of them at 3-4 kbit/s (a
# steady tone decodes to silence) and needs 5 kbit/s, which would put the corpus over its 25 MB budget; below
# 2.4 kbit/s CELT drops everything. The audio-only proxy (tools/audio_proxy.py) scores 0.455 through it, 0.409
# through SILK at 5 kbit/s (docs/corpus-calibration.md).
OPUS_ARGS = ("-c:a", "libopus", "-b:a", "2500", "-frame_duration", "120", "-ac", "1", "-application", "lowdelay")


@dataclass(frozen=True)
class AudioStyle:
    """A genre's sound tendencies (Tzanetakis & Cook 2002, Rasheed & Shah 2002 and follow-ups), mixed per film."""

    onset: float  # musical events (notes or hits) per second
    loudness: float  # level of the music bed, dB RMS (0 = full scale)
    dynamics: float  # spread of that level from one passage to the next, dB
    brightness: float  # pitch centre of the music, Hz (its noise hits sit two octaves above)
    tonality: float  # share of the events that are notes rather than noise hits
    speech: float  # share of the time under speech-like bursts
    silence: float  # share of the time in silent gaps


# fmt: off
AUDIO_STYLES = {
    #                         onset loud  dyn  bright tonal speech silence
    "Action":      AudioStyle(4.0, -15.0, 3.0,  520, 0.25, 0.10, 0.02),
    "Adventure":   AudioStyle(2.8, -18.0, 4.0,  560, 0.55, 0.15, 0.04),
    "Animation":   AudioStyle(2.6, -19.0, 4.0,  900, 0.70, 0.20, 0.04),
    "Children":    AudioStyle(2.2, -20.0, 3.0, 1000, 0.80, 0.20, 0.05),
    "Comedy":      AudioStyle(2.4, -20.0, 3.0, 1100, 0.65, 0.30, 0.05),
    "Crime":       AudioStyle(2.2, -21.0, 4.0,  260, 0.55, 0.25, 0.06),
    "Documentary": AudioStyle(1.0, -25.0, 3.0,  420, 0.75, 0.55, 0.06),
    "Drama":       AudioStyle(0.8, -25.0, 4.0,  380, 0.90, 0.30, 0.10),
    "Fantasy":     AudioStyle(1.6, -21.0, 5.0,  700, 0.85, 0.15, 0.06),
    "Film-Noir":   AudioStyle(1.2, -24.0, 5.0,  300, 0.75, 0.30, 0.10),
    "Horror":      AudioStyle(0.9, -31.0, 10.0, 220, 0.45, 0.10, 0.22),
    "Musical":     AudioStyle(2.4, -19.0, 3.0,  650, 0.90, 0.15, 0.04),
    "Mystery":     AudioStyle(1.2, -26.0, 6.0,  330, 0.70, 0.20, 0.12),
    "Romance":     AudioStyle(0.7, -25.0, 3.0,  480, 0.95, 0.25, 0.08),
    "Sci-Fi":      AudioStyle(2.0, -21.0, 5.0,  600, 0.55, 0.15, 0.06),
    "Thriller":    AudioStyle(2.6, -23.0, 6.0,  170, 0.45, 0.20, 0.08),
    "War":         AudioStyle(3.2, -17.0, 6.0,  300, 0.30, 0.15, 0.05),
    "Western":     AudioStyle(1.6, -22.0, 4.0,  360, 0.70, 0.20, 0.08),
}
NEUTRAL_AUDIO = AudioStyle(1.8, -22.0, 4.0, 440, 0.65, 0.20, 0.07)
# fmt: on
assert set(AUDIO_STYLES) == set(GENRES)

AUDIO_SILENT = 0.10  # share of a film's labelled genres whose sound carries no cue
AUDIO_STRENGTH = (0.4, 1.0)  # the sound's own cue strength per film, drawn apart from the pictures'
MOTIF_RATE = 12.0  # a cued genre's sound events per minute, at full strength
MOTIF_GAIN = 4.0  # dB above the film's music bed
STINGER_LEVEL = -8.0  # dB RMS: a horror stinger is loud whatever the bed
NARRATION_LEVEL = -20.0  # dB RMS of speech-like bursts (a voice-over sits above the music)
NO_AUDIO = 0.03  # share of ordinary films whose trailer has no audio stream
JINGLE_S = 3  # the studio jingle lasts as long as the logo


def _db(level: float) -> float:
    return 10 ** (level / 20)


def _ramp(n: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Linear attack, exponential decay: the envelope of a struck or plucked sound."""
    t = np.arange(n) / SOUND_RATE
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-t / max(decay_s, 1e-4))


def _tone(
    freq, seconds: float, partials=(1.0, 0.5, 0.25), attack: float = 0.01, decay: float = 0.5, vibrato: float = 0.0
) -> np.ndarray:
    """A harmonic tone; ``freq`` may be an array (a glide). Partials above the band are left out."""
    n = max(1, int(seconds * SOUND_RATE))
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    if vibrato:
        f = f * (1 + vibrato * np.sin(2 * np.pi * 5.5 * np.arange(n) / SOUND_RATE))
    phase = 2 * np.pi * np.cumsum(f) / SOUND_RATE
    # sin(k x) by the recurrence sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x): one sine and one cosine, not one
    # sine per partial (the soundtrack's rendering is mostly this).
    two_cos, prev, cur = 2 * np.cos(phase), np.zeros(n), np.sin(phase)
    out = np.zeros(n)
    for k, a in enumerate(partials, 1):
        if k * float(f.max()) >= SOUND_BAND[1]:
            break
        if a:
            out += a * cur
        prev, cur = cur, two_cos * cur - prev
    return out * _ramp(n, attack, decay)


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """White noise kept between ``lo`` and ``hi`` Hz (inside the codec's band), unit RMS."""
    lo, hi = max(lo, SOUND_BAND[0]), min(hi, SOUND_BAND[1])
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / SOUND_RATE)
    spec[(f < lo) | (f > hi)] = 0
    out = np.fft.irfft(spec, n)
    return out / max(float(np.sqrt(np.mean(out**2))), 1e-9)


def _formants(rng: np.random.Generator, f: np.ndarray) -> np.ndarray:
    """A random vowel: three resonances (F1, F2, F3) as a spectral envelope."""
    centres = (rng.uniform(300, 800), rng.uniform(900, 2300), rng.uniform(2400, 3200))
    return sum(np.exp(-0.5 * ((f - c) / w) ** 2) * a for c, w, a in zip(centres, (90, 140, 200), (1.0, 0.6, 0.3)))


def _speech(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Speech-like bursts: syllables at 4-5 per second, each a voiced pulse train plus breath noise shaped by
    a random vowel's formants, with an occasional pause between words. Unit RMS."""
    rate = rng.uniform(4.0, 5.0)
    f0 = rng.uniform(95, 230)
    out = []
    while sum(map(len, out)) < seconds * SOUND_RATE:
        n = int(SOUND_RATE / rate * np.exp(rng.normal(0, 0.2)))
        if rng.random() < 0.15:  # a pause between words
            out.append(np.zeros(n))
            continue
        source = rng.normal(0, 0.3, n)
        period = SOUND_RATE / (f0 * np.exp(rng.normal(0, 0.05)))
        source[np.arange(0, n, period).astype(int)] += 6.0
        spec = np.fft.rfft(source) * _formants(rng, np.fft.rfftfreq(n, 1 / SOUND_RATE))
        out.append(np.fft.irfft(spec, n) * np.sin(np.linspace(0, np.pi, n)) ** 2)
    sound = np.concatenate(out)[: int(seconds * SOUND_RATE)]
    return sound / max(float(np.sqrt(np.mean(sound**2))), 1e-9)


def _notes(freqs, gap: float, partials, decay: float, attack: float = 0.005, hold: float | None = None) -> np.ndarray:
    """A sequence of tones ``gap`` seconds apart, each ringing for ``hold`` seconds (default: 4 decays)."""
    hold = hold or 4 * decay
    out = np.zeros(int((gap * (len(freqs) - 1) + hold) * SOUND_RATE) + 1)
    for k, f in enumerate(freqs):
        tone = _tone(f, hold, partials, attack, decay)
        at = int(k * gap * SOUND_RATE)
        out[at : at + len(tone)] += tone
    return out


def _glide(f0: float, f1: float, seconds: float) -> np.ndarray:
    return f0 * (f1 / f0) ** np.linspace(0, 1, int(seconds * SOUND_RATE))


PENTATONIC = np.array([0, 2, 4, 7, 9, 12])
BRASS = (1.0, 0.8, 0.6, 0.45, 0.3, 0.2)
PLUCK = (1.0, 0.6, 0.35, 0.2)


def _scale(rng: np.random.Generator, root: float, k: int, up: bool = True) -> list[float]:
    steps = np.cumsum(rng.integers(1, 3, k)) - 1 if up else rng.integers(0, 6, k)
    return [root * 2 ** (PENTATONIC[s % 5] / 12 + s // 5) for s in steps]


def _explosion_or_gunfire(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        n = int(1.2 * SOUND_RATE)
        return _band_noise(rng, n, 100, 900) * _ramp(n, 0.005, 0.35)
    shot = int(0.06 * SOUND_RATE)
    out = np.zeros(int(0.9 * SOUND_RATE))
    for k in range(int(rng.integers(3, 7))):
        at = int(k * rng.uniform(0.1, 0.14) * SOUND_RATE)
        out[at : at + shot] += _band_noise(rng, shot, 600, 3500) * _ramp(shot, 0.001, 0.015)
    return out


def _stinger_or_drone(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.7:  # a sudden dissonant cluster over a noise burst
        f = rng.uniform(400, 900)
        n = int(0.9 * SOUND_RATE)
        cluster = sum(_tone(f * r, 0.9, BRASS, 0.003, 0.35) for r in (1.0, 1.06, 1.41))
        return cluster + 0.8 * _band_noise(rng, n, 800, 3500)[: len(cluster)] * _ramp(len(cluster), 0.002, 0.15)
    f = rng.uniform(100, 130)  # a low beating drone
    return (_tone(f, 3.0, BRASS, 0.6, 6.0) + _tone(f * 1.01, 3.0, BRASS, 0.6, 6.0)) * np.sin(
        np.linspace(0, np.pi, int(3.0 * SOUND_RATE))
    )


def _ticking_over_drone(rng: np.random.Generator) -> np.ndarray:
    n = int(3.0 * SOUND_RATE)
    out = 0.5 * _tone(rng.uniform(100, 130), 3.0, (1.0, 0.8, 0.6), 0.3, 10.0)
    click = int(0.01 * SOUND_RATE)
    rate = rng.uniform(2.0, 3.0)
    for at in np.arange(0, n - click, SOUND_RATE / rate).astype(int):
        out[at : at + click] += 1.5 * _band_noise(rng, click, 1500, 3200)
    return out


def _snare_or_fanfare(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:  # a snare roll: high noise beaten at 16-20 strokes a second
        n = int(1.2 * SOUND_RATE)
        t = np.arange(n) / SOUND_RATE
        strokes = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(16, 20) * t))
        return _band_noise(rng, n, 1000, 3600) * strokes * np.linspace(0.5, 1.0, n)
    f = rng.uniform(280, 360)
    return _notes([f, f, f, f * 4 / 3], 0.18, BRASS, 0.15, attack=0.02, hold=0.5)


def _sung_melody(rng: np.random.Generator) -> np.ndarray:
    """Sung-like notes: a harmonic voice through a vowel's formants, with vibrato."""
    freqs = _scale(rng, rng.uniform(250, 400), 5, up=False)
    n = int(0.35 * SOUND_RATE)
    f = np.fft.rfftfreq(n, 1 / SOUND_RATE)
    out = []
    for fk in freqs:
        voice = _tone(fk, 0.35, tuple(0.8**k for k in range(12)), 0.03, 1.0, vibrato=0.015)
        out.append(np.fft.irfft(np.fft.rfft(voice) * (0.3 + _formants(rng, f)), n))
    return np.concatenate(out)


def _string_pad(rng: np.random.Generator) -> np.ndarray:
    """A slow major chord, each note doubled a little sharp, as a string section's."""
    root = rng.uniform(260, 400)
    return sum(
        _tone(root * r * d, 3.0, (1.0, 0.5, 0.35, 0.2), 0.8, 3.0) for r in (1.0, 1.25, 1.5) for d in (1.0, 1.004)
    )


def _twang(rng: np.random.Generator) -> np.ndarray:
    """A plucked string whose pitch sags."""
    f = rng.uniform(150, 300)
    return _tone(_glide(f, f * 0.97, 1.0), 1.0, BRASS, 0.002, 0.25)


def _narration(rng: np.random.Generator) -> np.ndarray:
    return _speech(rng, rng.uniform(2.0, 4.0))


# Each genre's characteristic sound event, as the pictures have their imagery: ``rng -> samples``.
GENRE_MOTIFS = {
    "Action": _explosion_or_gunfire,
    "Adventure": lambda rng: _notes(_scale(rng, rng.uniform(350, 470), 4), 0.22, BRASS, 0.2, 0.02, 0.7),
    "Animation": lambda rng: _tone(
        _glide(rng.uniform(160, 220), rng.uniform(650, 800), 0.4), 0.4, (1.0, 0.3), 0.005, 0.3, vibrato=0.06
    ),
    "Children": lambda rng: _notes([rng.uniform(900, 1300) for _ in range(3)], 0.3, (1.0, 0, 0.4), 0.4),
    "Comedy": lambda rng: _notes(_scale(rng, rng.uniform(450, 650), 5, up=False), 0.14, PLUCK, 0.05, hold=0.2),
    "Crime": lambda rng: _notes(_scale(rng, rng.uniform(100, 140), 6), 0.45, (1.0, 0.6, 0.4, 0.25), 0.25),
    "Documentary": _narration,
    "Drama": lambda rng: _notes(_scale(rng, rng.uniform(220, 330), 3, up=False), 1.2, (1.0, 0.4, 0.2, 0.1), 0.5),
    "Fantasy": lambda rng: _notes(_scale(rng, rng.uniform(300, 450), 8), 0.07, PLUCK, 0.3),
    "Film-Noir": lambda rng: (
        _tone(rng.uniform(180, 320), 1.6, (1.0, 0.7, 0.55, 0.4, 0.3, 0.2), 0.08, 2.0, 0.02)
        + 0.2 * _band_noise(rng, int(1.6 * SOUND_RATE), 1500, 3500) * _ramp(int(1.6 * SOUND_RATE), 0.08, 2.0)
    ),
    "Horror": _stinger_or_drone,
    "Musical": _sung_melody,
    "Mystery": lambda rng: (
        _tone(rng.uniform(500, 900), 2.0, (1.0, 0.3), 0.1, 4.0)
        * (0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(9, 12) * np.arange(int(2.0 * SOUND_RATE)) / SOUND_RATE))
    ),
    "Romance": _string_pad,
    "Sci-Fi": lambda rng: _tone(
        _glide(*((200.0, 2400.0) if rng.random() < 0.5 else (2400.0, 200.0)), 1.2),
        1.2,
        (1.0, 0.5, 0.33, 0.25),
        0.02,
        2.0,
    ),
    "Thriller": _ticking_over_drone,
    "War": _snare_or_fanfare,
    "Western": _twang,
}
assert set(GENRE_MOTIFS) == set(GENRES)


@dataclass(frozen=True)
class FilmSound:
    """One film's mix of its genres' sound tendencies, drawn apart from its pictures."""

    cued: tuple[str, ...]  # labelled genres that have a sound cue in this film
    strength: dict  # genre -> sound cue strength
    style: AudioStyle


def film_sound(genres: list[str], rng: np.random.Generator) -> FilmSound:
    """Like ``film_style``: which genres are heard, how strongly, and the blend of their tendencies."""
    cued, strength = cue_strengths(genres, rng, AUDIO_STRENGTH, AUDIO_SILENT)
    mix = {}
    for name in AudioStyle.__dataclass_fields__:
        base = getattr(NEUTRAL_AUDIO, name)
        shift = [strength[g] * (getattr(AUDIO_STYLES[g], name) - base) for g in cued]
        mix[name] = base + (float(np.mean(shift)) if shift else 0.0)
    style = AudioStyle(
        onset=float(np.clip(mix["onset"] * np.exp(rng.normal(0, 0.25)), 0.3, 6.0)),
        loudness=float(np.clip(mix["loudness"] + rng.normal(0, 2.5), -36.0, -12.0)),
        dynamics=float(np.clip(mix["dynamics"] * np.exp(rng.normal(0, 0.25)), 1.0, 14.0)),
        brightness=float(np.clip(mix["brightness"] * np.exp(rng.normal(0, 0.2)), 140.0, 1400.0)),
        tonality=float(np.clip(mix["tonality"] + rng.normal(0, 0.1), 0.05, 1.0)),
        speech=float(np.clip(mix["speech"] + rng.normal(0, 0.06), 0.0, 0.8)),
        silence=float(np.clip(mix["silence"] + rng.normal(0, 0.02), 0.0, 0.35)),
    )
    return FilmSound(cued, strength, style)


def studio_jingle(studio: int) -> np.ndarray:
    """A studio's jingle over its logo: the same samples in every film of that studio, whatever its genres."""
    rng = np.random.default_rng([78, studio])
    root = rng.uniform(300, 600)
    chord = [root * 2 ** (s / 12) for s in (0, 4, 7, 12)]
    sound = _notes(chord, 0.25, (1.0, 0.0, 0.5, 0.0, 0.25), 0.8, hold=JINGLE_S - 0.75)
    sound = sound[: JINGLE_S * SOUND_RATE] * np.linspace(1.0, 0.0, JINGLE_S * SOUND_RATE) ** 0.5
    return sound * _db(-18.0) / float(np.sqrt(np.mean(sound**2)))


def _place(out: np.ndarray, sound: np.ndarray, at: int) -> None:
    end = min(len(out), at + len(sound))
    if end > at:
        out[at:end] += sound[: end - at]


def _music_bed(rng: np.random.Generator, style: AudioStyle, n: int) -> np.ndarray:
    """Notes and noise hits at the film's onset rate, centred on its pitch, at its level."""
    bed = np.zeros(n)
    hits = _band_noise(rng, SOUND_RATE, style.brightness * 2, style.brightness * 8)
    note_s = float(np.clip(1.6 / style.onset, 0.15, 2.5))
    for at in np.sort(rng.integers(0, n, rng.poisson(style.onset * n / SOUND_RATE))):
        if rng.random() < style.tonality:
            root = style.brightness * 2 ** (rng.choice(PENTATONIC) / 12 - rng.integers(0, 2))
            sound = _tone(root, note_s, (1.0, 0.5, 0.25), 0.01, note_s / 3)
        else:
            length = int(rng.uniform(0.08, 0.25) * SOUND_RATE)
            start = int(rng.integers(0, SOUND_RATE - length))
            sound = 1.5 * hits[start : start + length] * _ramp(length, 0.002, length / SOUND_RATE / 3)
        _place(bed, sound * rng.uniform(0.5, 1.0), int(at))
    rms = float(np.sqrt(np.mean(bed**2)))
    return bed * (_db(style.loudness) / rms) if rms > 0 else bed


def _passages(rng: np.random.Generator, dynamics: float, n: int) -> np.ndarray:
    """A gain per passage of 2-6 s, spread ``dynamics`` dB, with 50 ms ramps between passages."""
    edges = np.cumsum(rng.uniform(2, 6, int(n / SOUND_RATE / 2) + 2) * SOUND_RATE)
    gains = _db(rng.normal(0, dynamics, len(edges)))
    ramp = 0.05 * SOUND_RATE
    x = np.concatenate([[0.0], np.repeat(edges[:-1], 2) + np.tile([0.0, ramp], len(edges) - 1)])
    y = np.concatenate([[gains[0]], np.column_stack([gains[:-1], gains[1:]]).ravel()])
    return np.interp(np.arange(n), x, y)


def _gaps(rng: np.random.Generator, share: float, n: int) -> np.ndarray:
    """A mask that is 0 inside silent gaps of 0.3-1.5 s covering about ``share`` of the time."""
    mask = np.ones(n)
    left = share * n
    while left > 0.3 * SOUND_RATE:
        length = int(rng.uniform(0.3, 1.5) * SOUND_RATE)
        at = int(rng.integers(0, max(1, n - length)))
        mask[at : at + length] = 0
        left -= length
    return mask


def render_soundtrack(genres: list[str], duration: float, seed: int) -> np.ndarray:
    """The film's soundtrack: ``round(duration x SOUND_RATE)`` float32 mono samples in [-1, 1].

    A pure function of its inputs. Its draws come from a stream of their own (``[seed, 1]``), so the
    pictures, drawn from ``seed``, are the same with or without sound; the studio is read from the
    pictures' style, so the jingle plays under the logo.
    """
    n = round(duration * SOUND_RATE)
    out = np.zeros(n)
    studio = film_style(genres, np.random.default_rng(seed)).studio
    start = 0
    if studio is not None and int(np.ceil(duration * PICTURES_PER_SECOND)) + 1 > 12:  # as film_shots shows a logo
        _place(out, studio_jingle(studio), 0)
        start = min(n, JINGLE_S * SOUND_RATE)
    rng = np.random.default_rng([seed, 1])
    sound = film_sound(genres, rng)
    style, m = sound.style, n - start
    body = _music_bed(rng, style, m)
    # Narration of every genre: ``speech`` of the time, in utterances of 1-4 s.
    left = style.speech * m
    while left > 0.5 * SOUND_RATE:
        words = _speech(rng, rng.uniform(1.0, 4.0)) * _db(NARRATION_LEVEL + rng.normal(0, 2))
        _place(body, words, int(rng.integers(0, max(1, m - len(words)))))
        left -= len(words)
    for g in sound.cued:
        for _ in range(rng.poisson(MOTIF_RATE / 60 * m / SOUND_RATE * sound.strength[g])):
            motif = GENRE_MOTIFS[g](rng)
            # A horror stinger (under 2 s; the drone is 3 s) is a surprise: loud whatever the bed's level.
            level = STINGER_LEVEL if g == "Horror" and len(motif) < 2 * SOUND_RATE else style.loudness + MOTIF_GAIN
            motif = motif * _db(level) / max(float(np.sqrt(np.mean(motif**2))), 1e-9)
            _place(body, motif, int(rng.integers(0, max(1, m - len(motif)))))
    body *= _passages(rng, style.dynamics, m) * _gaps(rng, style.silence, m)
    body *= np.minimum(1.0, (m - np.arange(m)) / (0.5 * SOUND_RATE))  # fade out under the credits
    out[start:] += body
    return np.tanh(out).astype(np.float32)


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


def encode_trailer(
    pictures: np.ndarray, path: Path, duration: float, crf: int = CRF, sound: np.ndarray | None = None
) -> None:
    """Write the pictures as a 24 fps H.264 mp4 of ``duration`` seconds (moov first), with ``sound``
    (mono float32 at ``SOUND_RATE``) as an Opus track, or with no audio stream when it is None.

    One ffmpeg process composes picture and sound: it already encodes the pictures from a raw pipe, and the
    sound is one more raw input (a temporary file beside the output, removed afterwards). moviepy would add a
    second encode path, and a dependency, for a mux that is two ffmpeg arguments.
    """
    n, h, w, _ = pictures.shape
    raw_sound = path.with_name(f".{path.stem}.f32")
    # options stay paired with their values
    # fmt: off
    cmd = [
        ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(PICTURES_PER_SECOND),
        "-i", "-",
    ]
    if sound is not None:
        cmd += ["-f", "f32le", "-ar", str(SOUND_RATE), "-ac", "1", "-i", str(raw_sound), "-map", "0:v", "-map", "1:a"]
    cmd += [
        # A frame count, not -t: -t with a 1 fps input lands on whole seconds.
        "-vf", f"fps={FPS}", "-frames:v", str(n_frames(duration)),
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-x264-params", X264_PARAMS,
        *(OPUS_ARGS if sound is not None else ["-an"]),
        "-movflags", "+faststart", "-map_metadata", "-1", "-fflags", "+bitexact",
        str(path),
    ]
    # fmt: on
    try:
        if sound is not None:
            raw_sound.write_bytes(np.asarray(sound, dtype="<f4").tobytes())
        proc = subprocess.run(cmd, input=pictures.tobytes(), capture_output=True)
    finally:
        raw_sound.unlink(missing_ok=True)
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
    seed = _film_seed(config.seed, row["movieId"])
    pictures = render_pictures(row["genre_list"], n_pictures, seed, config.width, config.height)
    sound = render_soundtrack(row["genre_list"], duration, seed) if row["audio"] else None
    encode_trailer(pictures, path, duration, config.crf, sound)
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
    out = resolve(args.out)
    config = DemoConfig(n_films=args.films, seed=args.seed, duration_scale=args.duration_scale, jobs=args.jobs)
    plan = generate_corpus(out, config)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"wrote {len(plan)} catalog rows and {len(list((out / 'trailers').iterdir()))} trailers "
        f"to {out} ({size / 1e6:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
