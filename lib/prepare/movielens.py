"""Reading the two MovieLens CSVs, with errors a person can act on.

``movies.csv`` (``movieId,title,genres``) and ``ml-youtube.csv``
(``youtubeId,movieId,title``) are read as text first and validated column by
column, so a bad file fails with its path, row and column named, never with a
pandas traceback. Rows are numbered as CSV records with the header as row 1
(the line number too, unless a quoted title spans lines).

Tolerated and noted: a UTF-8 byte-order mark and Windows (CRLF) line endings,
both common when a file has passed through a spreadsheet.
Skipped and counted (no data is invented by skipping them): exact repeats of a
row, and trailer rows whose youtubeId is blank or not a YouTube id.
Cleaned, counted and listed row by row: a youtubeId with unambiguous cruft around
it (see :func:`clean_youtube_id`): surrounding whitespace, a trailing slash, or a
full ``youtube.com/watch?v=`` or ``youtu.be/`` URL. What cannot be cleaned that way
is skipped, each row named.
Errors: a missing file, an empty file, a missing column, a malformed row, a
non-integer movieId, and one movieId listed with two different genre sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from lib.core.genres import NO_GENRE_TAG

MOVIES_COLUMNS = ("movieId", "title", "genres")
YOUTUBE_COLUMNS = ("youtubeId", "movieId", "title")
BOM = b"\xef\xbb\xbf"
# A youtubeId becomes a file name (data/trailers/<youtubeId>.mp4), so only YouTube's own alphabet is accepted.
_YOUTUBE_ID = r"[A-Za-z0-9_-]+"
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")  # what a URL must carry: YouTube's ids are 11 characters
_WATCH_HOSTS = ("youtube.com", "www.youtube.com", "m.youtube.com")
_SHORT_HOSTS = ("youtu.be", "www.youtu.be")
# How a youtubeId was cleaned, as listed in counts.json.
WHITESPACE, TRAILING_SLASH, WATCH_URL, SHORT_URL = (
    "surrounding whitespace",
    "trailing slash",
    "youtube.com/watch?v= URL",
    "youtu.be/ URL",
)
_INTEGER = r"\s*[+-]?\d+\s*"


class MovieLensError(ValueError):
    """A MovieLens CSV that cannot be read without guessing; the message names file, row and column."""


@dataclass
class CsvRead:
    """One validated CSV: the frame plus what was tolerated, cleaned or skipped on the way."""

    frame: pd.DataFrame
    path: Path
    rows_read: int
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # youtubeIds cleaned / refused: one {"row", "raw", ...} per CSV row (ml-youtube.csv only)
    cleaned: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


def clean_youtube_id(raw: str) -> tuple[str | None, list[str]]:
    """``(id, how)``: the YouTube id in ``raw`` and what had to be removed, or ``(None, [])`` if none is certain.

    Unambiguous cruft is removed: surrounding whitespace, a trailing slash, and a
    full ``[http[s]://][www.|m.]youtube.com/watch?v=<id>`` URL (other query
    parameters in any order, a fragment) or ``[http[s]://]youtu.be/<id>`` URL.
    A URL must carry exactly one 11-character id; anything else (another path, two
    different ``v=``, cruft inside the id, an id in running text) is refused.
    ``""`` gives ``("", [])``: a blank id is the caller's to count.
    """
    how = []
    text = raw.strip()
    if text != raw:
        how.append(WHITESPACE)
    if re.fullmatch(_YOUTUBE_ID, text) or not text:
        return text, how
    if re.fullmatch(_YOUTUBE_ID + "/", text):
        return text[:-1], how + [TRAILING_SLASH]
    found = _id_from_url(text)
    if found is None:
        return None, []
    return found[0], how + [found[1]]


def _id_from_url(text: str) -> tuple[str, str] | None:
    if re.search(r"\s", text):
        return None
    if not re.match(r"(?i)https?://", text):
        text = "https://" + text  # www.youtube.com/watch?v=... as pasted without its scheme
    try:
        url = urlsplit(text)
        host = (url.hostname or "").lower()
        port = url.port
    except ValueError:  # a malformed host or port
        return None
    if port is not None or url.username is not None or url.scheme.lower() not in ("http", "https"):
        return None
    if host in _WATCH_HOSTS and url.path.rstrip("/") == "/watch":
        values = set(parse_qs(url.query, keep_blank_values=True).get("v", []))
        if len(values) == 1 and _VIDEO_ID.fullmatch(video := values.pop()):
            return video, WATCH_URL
    elif host in _SHORT_HOSTS:
        video = url.path.removeprefix("/").removesuffix("/")
        if _VIDEO_ID.fullmatch(video):
            return video, SHORT_URL
    return None


def _row(i: int) -> int:
    """CSV record number of the i-th data row (0-based), with the header as row 1."""
    return int(i) + 2


def _read_text_csv(path: Path, columns: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    path = Path(path)
    if not path.is_file():
        raise MovieLensError(f"{path}: file not found (expected the MovieLens CSV with columns {', '.join(columns)})")
    raw = path.read_bytes()
    notes = []
    if raw.startswith(BOM):
        notes.append(f"{path.name}: starts with a UTF-8 byte-order mark (ignored)")
    if b"\r\n" in raw:
        notes.append(f"{path.name}: Windows (CRLF) line endings (read as plain newlines)")
    if not raw.removeprefix(BOM).strip():
        raise MovieLensError(f"{path}: the file is empty (expected a header row with columns {', '.join(columns)})")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise MovieLensError(
            f"{path}, line {line}: not valid UTF-8 (byte {raw[err.start]:#04x} at offset {err.start})"
        ) from None
    try:
        # All text, nothing turned into NaN: a film may well be called "NA" or "None".
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", on_bad_lines="error")
    except pd.errors.ParserError as err:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if match:
            want, row, saw = match.groups()
            raise MovieLensError(
                f"{path}, row {row}: expected {want} fields, saw {saw} (a comma in an unquoted title?)"
            ) from None
        raise MovieLensError(f"{path}: malformed CSV ({err})") from None
    except pd.errors.EmptyDataError:
        raise MovieLensError(
            f"{path}: the file is empty (expected a header row with columns {', '.join(columns)})"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MovieLensError(
            f"{path}, row 1 (header): missing column(s) {', '.join(repr(c) for c in missing)}; found {list(frame.columns)}"
        )
    if frame.empty:
        raise MovieLensError(f"{path}: the file has a header but no data rows")
    # A short row leaves NaN in its last fields; as text they are simply empty (and an empty movieId is reported).
    return frame[list(columns)].fillna("").astype(str), notes


def _integer_column(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    text = frame[column]
    bad = ~text.str.fullmatch(_INTEGER)
    if bad.any():
        where = np.flatnonzero(bad.to_numpy())
        first = where[0]
        more = f" ({len(where)} such rows; the first is shown)" if len(where) > 1 else ""
        raise MovieLensError(
            f"{path}, row {_row(first)}, column '{column}': {text.iloc[first]!r} is not an integer{more}"
        )
    return text.str.strip().astype("int64")


def _drop_exact_repeats(frame: pd.DataFrame, skipped: dict[str, int]) -> pd.DataFrame:
    repeats = frame.duplicated(keep="first")
    if repeats.any():
        skipped["exact repeats of a row"] = int(repeats.sum())
    return frame[~repeats]


def read_movies(path: str | Path) -> CsvRead:
    """``movies.csv``: one row per film, ``movieId`` (int64), ``title``, ``genres`` (``|``-joined)."""
    path = Path(path)
    frame, notes = _read_text_csv(path, MOVIES_COLUMNS)
    frame["movieId"] = _integer_column(frame, "movieId", path)
    frame["genres"] = frame["genres"].str.strip()
    rows_read, skipped = len(frame), {}
    frame = _drop_exact_repeats(frame, skipped)
    clash = frame["movieId"].duplicated(keep=False)
    if clash.any():
        where = np.flatnonzero(clash.to_numpy())
        first_id = frame["movieId"].iloc[where[0]]
        rows = [_row(frame.index[i]) for i in where if frame["movieId"].iloc[i] == first_id]
        raise MovieLensError(
            f"{path}, rows {', '.join(map(str, rows))}, column 'movieId': movie {first_id} is listed "
            f"{len(rows)} times with different titles or genres ({clash.sum()} rows involved in all)"
        )
    return CsvRead(frame.reset_index(drop=True), path, rows_read, skipped, notes)


def read_youtube(path: str | Path) -> CsvRead:
    """``ml-youtube.csv``: one row per trailer, ``youtubeId``, ``movieId`` (int64), ``title``."""
    path = Path(path)
    frame, notes = _read_text_csv(path, YOUTUBE_COLUMNS)
    frame["movieId"] = _integer_column(frame, "movieId", path)
    rows_read, skipped = len(frame), {}
    raw = frame["youtubeId"]
    plain = raw.str.fullmatch(_YOUTUBE_ID)  # the common case, checked in one vectorized pass
    cleaned, rejected = [], []
    ids = raw.where(plain, "")
    for i in np.flatnonzero(~plain.to_numpy()):
        value, how = clean_youtube_id(raw.iloc[i])
        if value is None:
            rejected.append({"row": _row(i), "raw": raw.iloc[i]})
            continue
        ids.iloc[i] = value
        if how and value:
            cleaned.append({"row": _row(i), "raw": raw.iloc[i], "youtubeId": value, "how": how})
    frame["youtubeId"] = ids
    invalid = pd.Series(False, index=frame.index)
    invalid.iloc[[r["row"] - 2 for r in rejected]] = True
    blank = ~invalid & (frame["youtubeId"] == "")
    if blank.any():
        skipped["blank youtubeId"] = int(blank.sum())
    if cleaned:
        kinds = pd.Series([k for c in cleaned for k in c["how"]]).value_counts()
        notes.append(
            f"{path.name}, column 'youtubeId': {len(cleaned)} ids cleaned ("
            + ", ".join(f"{k}: {n}" for k, n in kinds.items())
            + "); each row is listed in counts.json"
        )
    if rejected:
        skipped["youtubeId not a YouTube id"] = len(rejected)
        shown = "; ".join(f"row {r['row']}: {r['raw']!r}" for r in rejected[:10])
        more = f"; and {len(rejected) - 10} more (all in counts.json)" if len(rejected) > 10 else ""
        notes.append(f"{path.name}, column 'youtubeId': skipped, not a YouTube id: {shown}{more}")
    frame = _drop_exact_repeats(frame[~blank & ~invalid], skipped)
    return CsvRead(frame.reset_index(drop=True), path, rows_read, skipped, notes, cleaned, rejected)


# ---------------------------------------------------------------------------
# A synthetic catalog of the real MovieLens 20M size, for scale tests and benchmarks.

# Films per genre in MovieLens 20M's movies.csv (27,278 films): the real skew.
ML20M_GENRE_FILMS = {
    "Drama": 13344,
    "Comedy": 8374,
    "Thriller": 4178,
    "Romance": 4127,
    "Action": 3520,
    "Crime": 2939,
    "Horror": 2611,
    "Documentary": 2471,
    "Adventure": 2329,
    "Sci-Fi": 1743,
    "Mystery": 1514,
    "Fantasy": 1412,
    "War": 1194,
    "Children": 1139,
    "Musical": 1036,
    "Animation": 1027,
    "Western": 676,
    "Film-Noir": 330,
}
ML20M_FILMS = 27278
ML20M_TRAILERS = 25623


@dataclass
class SyntheticCatalog:
    """Where the synthetic CSVs are, and the ground truth a test can check the stage against."""

    movies_csv: Path
    youtube_csv: Path
    n_films: int
    n_trailer_rows: int
    unknown_movie_rows: int  # trailer rows whose movieId is not in movies.csv
    no_genre_films_with_trailer: int  # "(no genres listed)" or IMAX only
    shared_youtube_films: int  # films (with a genre) whose youtubeId is also another such film's: pairs x 2


def write_synthetic_catalog(
    directory: str | Path,
    n_films: int = ML20M_FILMS,
    n_trailers: int = ML20M_TRAILERS,
    seed: int = 0,
    n_unknown: int = 40,
    n_shared_pairs: int = 12,
) -> SyntheticCatalog:
    """Write ``movies.csv`` and ``ml-youtube.csv`` shaped like MovieLens 20M (vectorized: < 1 s at full size).

    Genre sets are drawn with the real per-genre frequencies (weighted sampling of
    1-5 genres without replacement); about 1% of films have ``(no genres listed)``,
    some carry ``IMAX``; titles hold commas, quotes and non-ASCII characters.
    ``n_trailers`` rows go to distinct films, plus ``n_unknown`` rows for films not
    in the catalog; ``n_shared_pairs`` pairs of labelled films share one youtubeId.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(ML20M_GENRE_FILMS)
    weights = np.array([ML20M_GENRE_FILMS[g] for g in names], dtype=float)

    # Gumbel top-k: k genres per film drawn without replacement, proportionally to the real counts.
    k = rng.choice([1, 2, 3, 4, 5], size=n_films, p=[0.36, 0.34, 0.2, 0.08, 0.02])
    keys = np.log(weights)[None, :] - np.log(-np.log(rng.random((n_films, len(names)))))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    chosen = rank < k[:, None]
    no_genre = rng.random(n_films) < 0.009
    imax = rng.random(n_films) < 0.007
    imax_only = imax & (rng.random(n_films) < 0.05)
    chosen[no_genre | imax_only] = False
    genre_text = pd.Series(["|".join(np.array(names)[row]) for row in chosen])  # one join per film: < 0.1 s
    genre_text[imax & ~no_genre] = (
        genre_text[imax & ~no_genre].str.cat(["IMAX"] * int((imax & ~no_genre).sum()), sep="|").str.lstrip("|")
    )
    genre_text[no_genre] = NO_GENRE_TAG

    movie_ids = np.sort(rng.choice(np.arange(1, 4 * n_films), size=n_films, replace=False))
    decor = np.array(["", ", The", ' (a.k.a. "Zoë")', ": Ça va, ça va", " - Ōkami", ", Part II"])
    titles = pd.Series([f"Film {i}" for i in range(n_films)]).str.cat(decor[rng.integers(0, len(decor), n_films)])
    titles = titles.str.cat(" (" + pd.Series(rng.integers(1920, 2016, n_films)).astype(str) + ")")
    movies = pd.DataFrame({"movieId": movie_ids, "title": titles, "genres": genre_text})
    movies.to_csv(directory / "movies.csv", index=False)

    with_trailer = np.sort(rng.choice(n_films, size=min(n_trailers, n_films), replace=False))
    ids = _youtube_ids(rng, len(with_trailer) + n_unknown)
    youtube_ids = ids[: len(with_trailer)].copy()
    labelled = np.flatnonzero(chosen[with_trailer].any(axis=1))
    pairs = rng.choice(labelled, size=(n_shared_pairs, 2), replace=False)
    youtube_ids[pairs[:, 1]] = youtube_ids[pairs[:, 0]]
    trailers = pd.DataFrame(
        {
            "youtubeId": youtube_ids,
            "movieId": movie_ids[with_trailer],
            "title": titles.to_numpy()[with_trailer],
        }
    )
    unknown = pd.DataFrame(
        {
            "youtubeId": ids[len(with_trailer) :],
            "movieId": 4 * n_films + np.arange(n_unknown),
            "title": "Lost film (1999)",
        }
    )
    trailers = pd.concat([trailers, unknown]).sample(frac=1.0, random_state=seed)
    trailers.to_csv(directory / "ml-youtube.csv", index=False)
    return SyntheticCatalog(
        directory / "movies.csv",
        directory / "ml-youtube.csv",
        n_films,
        len(trailers),
        n_unknown,
        int((~chosen[with_trailer].any(axis=1)).sum()),
        2 * n_shared_pairs,
    )


def _youtube_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))
    letters = alphabet[rng.integers(0, len(alphabet), size=(n, 11))]
    ids = np.ascontiguousarray(letters).view("<U11").ravel()
    ids = pd.unique(pd.Series(ids))
    if len(ids) < n:  # 64**11 ids: a collision is all but impossible, but never silently short
        raise RuntimeError("youtubeId collision in the synthetic catalog; use another seed")
    return np.asarray(ids, dtype=object)
