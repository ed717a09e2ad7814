"""Fetching the real sources into the data snapshot: MovieLens 20M CSVs and the trailers.

One command does it all (see docs/real-data.md)::

    python -m lib.sources.download                     # movies.csv, ml-youtube.csv, every trailer
    python -m lib.sources.download --per-genre 20      # a first, small subset
    python -m lib.sources.download --only-kept outputs/prepare/labels.csv

Trailer availability changes over time, so the snapshot is versioned with
``dvc add data`` rather than recomputed by ``dvc repro``. The command is
resumable: files already present are skipped, and every file is written under a
temporary name and renamed into place, so an interrupted run (Ctrl-C, SIGTERM or
SIGHUP) never leaves a half-written file under its final name. Per-video outcomes
go to a manifest CSV (ok / unavailable / error / throttled, with the reason); a
download stopped by the interruption is not an outcome: it gets no row (an
earlier run's row stays) and the next run fetches it again.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.client import IncompleteRead
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm import tqdm

from lib.core.atomic import atomic_write
from lib.core.ffmpeg import ffmpeg_exe
from lib.core.genres import GENRES
from lib.core.interrupt import terminate_as_interrupt
from lib.core.params import DownloadParams, parse, to_dict
from lib.core.paths import CACHE, DATA, PARAMS, resolve
from lib.prepare.movielens import clean_youtube_id

# The built-in settings; params.yaml's `download:` section overrides them, CLI flags override both.
DEFAULTS: dict[str, Any] = {
    "movies_zip_url": "https://files.grouplens.org/datasets/movielens/ml-20m.zip",
    "youtube_zip_url": "https://files.grouplens.org/datasets/movielens/ml-20m-youtube.zip",
    "trailer_url": "https://www.youtube.com/watch?v={youtubeId}",
    "format": "worst[ext=mp4]/worst",  # the paper kept the smallest mp4; frames are squashed to 64x64 anyway
    "jobs": 4,
    "pause": 1.0,  # seconds between the starts of two requests, shared by all workers
    "retries": 3,
    "backoff": 10.0,  # seconds before the first retry, doubled at each further one
    "socket_timeout": 30.0,
    "stop_after_throttled": 25,  # consecutive throttled videos before the batch stops; 0 = never
    "ytdlp_options": {},  # passed to yt_dlp.YoutubeDL as is, e.g. {cookiefile: cookies.txt}
}

MOVIES_HEADER = ("movieId", "title", "genres")
YOUTUBE_HEADER = ("youtubeId", "movieId", "title")
MANIFEST_COLUMNS = ["youtubeId", "status", "reason", "bytes", "path", "attempts", "finished_at"]
STATUSES = ("ok", "unavailable", "error", "throttled")
INTERRUPTED = "interrupted"  # a worker's answer when the batch was stopped: never written to the manifest
MANIFEST_NAME = "download_manifest.csv"
SOURCES_NAME = "download_sources.json"
PARTIAL = ".partial"  # staging folder for files in flight; emptied at the start and end of every run
USER_AGENT = "trailer-genres-study/1.0 (+https://grouplens.org/datasets/movielens/)"

# Checked in this order: YouTube words some rate limits as "unavailable, try again later".
_THROTTLED = (
    "http error 429",
    "too many requests",
    "not a bot",
    "rate-limited",
    "rate limit",
    "try again later",
    "captcha",
)
_UNAVAILABLE = (
    "http error 404",
    "http error 410",
    "http error 403",
    "video unavailable",
    "is unavailable",
    "not available",
    "no longer available",
    "private video",
    "has been removed",
    "terminated",
    "copyright",
    "confirm your age",
    "age-restricted",
    "members-only",
    "join this channel",
    "does not exist",
    "unsupported url",
)


class DownloadError(RuntimeError):
    """A source file could not be fetched or did not look like the expected one."""


class ChecksumError(DownloadError):
    """A zip's md5 differs from the one published next to it."""


class _Throttled(DownloadError):
    """An HTTP answer asking us to slow down (429); retried after a back-off."""


# --------------------------------------------------------------------------- settings


def settings(overrides: Mapping[str, Any] | None = None, params_file: Path | None = PARAMS) -> dict[str, Any]:
    """DEFAULTS, updated by params.yaml's `download:` section, updated by non-None overrides."""
    cfg = dict(DEFAULTS)
    if params_file is not None and Path(params_file).exists():
        with open(params_file, encoding="utf-8") as fh:
            cfg.update((yaml.safe_load(fh) or {}).get("download") or {})
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    where = Path(params_file).name if params_file is not None else "download settings"
    return to_dict(parse(DownloadParams, cfg, "download", where))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sleep(seconds: float, stop: threading.Event | None = None) -> None:
    if seconds > 0:
        (stop or threading.Event()).wait(seconds)


# --------------------------------------------------------------------------- MovieLens zips


@dataclass(frozen=True)
class ZipSource:
    """One CSV taken out of one published zip."""

    url: str
    member: str  # the CSV's file name inside the zip, at any depth
    header: tuple[str, ...]
    target: Path


def movielens_sources(out: Path, cfg: Mapping[str, Any]) -> list[ZipSource]:
    return [
        ZipSource(cfg["movies_zip_url"], "movies.csv", MOVIES_HEADER, out / "movielens" / "movies.csv"),
        ZipSource(cfg["youtube_zip_url"], "ml-youtube.csv", YOUTUBE_HEADER, out / "movielens" / "ml-youtube.csv"),
    ]


def _http_download(url: str, dest: Path, *, timeout: float, progress: bool = True) -> int:
    """GET url into dest; the caller owns dest (a temporary name). Returns the byte count."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(dest, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0) or None
            written = 0
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=Path(url).name, leave=False, disable=not progress
            ) as bar:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 429:
            raise _Throttled(f"{url}: HTTP 429 Too Many Requests") from exc
        raise
    except IncompleteRead as exc:
        raise DownloadError(f"{url}: connection closed early (truncated download)") from exc
    if total is not None and written != total:
        raise DownloadError(f"{url}: truncated download ({written} of {total} bytes)")
    return written


def _with_retries(fn, *, retries: int, backoff: float, what: str):
    """Call fn(); on a transient failure (429, 5xx, network) wait backoff * 2**k and try again."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == retries:
                raise DownloadError(f"{what}: HTTP {exc.code} {exc.reason}") from exc
        except (_Throttled, urllib.error.URLError, TimeoutError, ConnectionError, DownloadError) as exc:
            if attempt == retries:
                raise DownloadError(f"{what}: {exc}") from exc
        _sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def fetch_md5(zip_url: str, *, timeout: float) -> str | None:
    """The md5 published at <zip_url>.md5 (MovieLens' layout), or None if there is none."""
    request = urllib.request.Request(zip_url + ".md5", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            text = resp.read(4096).decode("ascii", "replace")
    except urllib.error.HTTPError as exc:
        if exc.code in (403, 404, 410):
            return None
        raise DownloadError(f"{zip_url}.md5: HTTP {exc.code} {exc.reason}") from exc
    # GNU style "<hex>  name" and BSD style "MD5 (name) = <hex>" both hold one 32-hex token.
    match = re.search(r"\b([0-9a-fA-F]{32})\b", text)
    if not match:
        raise DownloadError(f"{zip_url}.md5 holds no md5 checksum: {text[:80]!r}")
    return match.group(1).lower()


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _csv_header(path: Path) -> tuple[str, ...]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return tuple(next(csv.reader(fh), []))


def _extract_member(zip_path: Path, source: ZipSource, dest: Path) -> None:
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{source.url} is not a zip archive") from exc
    with archive:
        names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == source.member]
        if len(names) != 1:
            found = "none" if not names else f"{len(names)}: {names}"
            raise DownloadError(
                f"{source.url}: expected exactly one '{source.member}' in the zip, found {found} "
                f"(members: {archive.namelist()[:10]})"
            )
        with archive.open(names[0]) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _read_sources(out: Path) -> dict[str, Any]:
    path = out / SOURCES_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def fetch_csv_from_zip(
    source: ZipSource,
    out: Path,
    *,
    force: bool = False,
    retries: int = 3,
    backoff: float = 10.0,
    timeout: float = 30.0,
    progress: bool = True,
) -> str:
    """Put source.member from the zip at source.url into source.target. Returns what happened.

    The zip is verified against its published md5 when there is one, the CSV's
    header is checked, and only then is the CSV renamed into place; the zip itself
    is deleted (the snapshot keeps the CSVs, not 190 MB of ratings).
    """
    key = source.target.relative_to(out).as_posix()
    recorded = _read_sources(out).get(key)
    if source.target.exists() and not force:
        if recorded and recorded["url"] == source.url and recorded["bytes"] == source.target.stat().st_size:
            return "present"
        raise DownloadError(
            f"{source.target} exists but was not fetched from {source.url} by this command "
            f"(the demo snapshot?). Move it away, pass --force to replace it, or choose another --out."
        )
    staging = out / PARTIAL
    staging.mkdir(parents=True, exist_ok=True)
    zip_part = staging / (source.url.rstrip("/").rsplit("/", 1)[-1] + ".part")
    csv_part = source.target.with_name(source.target.name + ".part")
    try:
        md5 = _with_retries(
            lambda: fetch_md5(source.url, timeout=timeout), retries=retries, backoff=backoff, what=f"{source.url}.md5"
        )
        size = _with_retries(
            lambda: _http_download(source.url, zip_part, timeout=timeout, progress=progress),
            retries=retries,
            backoff=backoff,
            what=source.url,
        )
        if md5 is not None:
            got = _md5(zip_part)
            if got != md5:
                raise ChecksumError(
                    f"{source.url}: md5 {got} differs from the published {md5} ({source.url}.md5); "
                    f"the download is corrupt or the file changed upstream. Nothing was extracted."
                )
        else:
            print(f"note: {source.url}.md5 not found; the zip is not verified", file=sys.stderr)
        source.target.parent.mkdir(parents=True, exist_ok=True)
        _extract_member(zip_part, source, csv_part)
        header = _csv_header(csv_part)
        if header != source.header:
            raise DownloadError(
                f"{source.member} in {source.url} has header {list(header)}, expected {list(source.header)}"
            )
        os.replace(csv_part, source.target)
    finally:
        for leftover in (zip_part, csv_part):
            leftover.unlink(missing_ok=True)
    sources = _read_sources(out)
    sources[key] = {
        "url": source.url,
        "member": source.member,
        "zip_bytes": size,
        "zip_md5": md5,
        "md5_verified": md5 is not None,
        "bytes": source.target.stat().st_size,
        "fetched_at": _now(),
    }
    atomic_write(out / SOURCES_NAME, json.dumps(sources, indent=2) + "\n")
    return "fetched"


def fetch_movielens(out: Path, cfg: Mapping[str, Any], *, force: bool = False, progress: bool = True) -> dict[str, str]:
    """Fetch both CSVs; a failure of one is reported after the other was tried (it is kept)."""
    done, errors = {}, []
    try:
        for source in movielens_sources(out, cfg):
            try:
                done[source.member] = fetch_csv_from_zip(
                    source,
                    out,
                    force=force,
                    retries=int(cfg["retries"]),
                    backoff=float(cfg["backoff"]),
                    timeout=float(cfg["socket_timeout"]),
                    progress=progress,
                )
            except DownloadError as exc:
                errors.append(str(exc))
    finally:
        shutil.rmtree(out / PARTIAL, ignore_errors=True)
    if errors:
        raise DownloadError("\n".join(errors))
    return done


# --------------------------------------------------------------------------- choosing trailers


def select_videos(
    youtube_csv: Path,
    movies_csv: Path | None = None,
    *,
    only_kept: Path | None = None,
    per_genre: int | None = None,
    limit: int | None = None,
) -> list[str]:
    """The youtubeIds to fetch, in ml-youtube.csv's order, each once.

    only_kept: a CSV with a youtubeId column (prepare's labels.csv): keep those.
    per_genre: then keep the first N films (by movieId) of each of the 18 genres.
    limit: then keep the first N.
    """
    if not Path(youtube_csv).is_file():
        raise DownloadError(f"{youtube_csv} does not exist: fetch the MovieLens CSVs first (without --no-movielens)")
    if only_kept is not None and not Path(only_kept).is_file():
        raise DownloadError(f"--only-kept: {only_kept} does not exist (run `dvc repro prepare` first)")
    table = pd.read_csv(youtube_csv, dtype={"youtubeId": str})
    if tuple(table.columns) != YOUTUBE_HEADER:
        raise DownloadError(f"{youtube_csv} has columns {list(table.columns)}, expected {list(YOUTUBE_HEADER)}")
    table = table.dropna(subset=["youtubeId"])
    # Cleaned as prepare cleans them (a trailing slash, a full URL...), so the file gets the name prepare looks for.
    # An id becomes a file name, so what cannot be cleaned (a path, say) is refused.
    cleaned = table["youtubeId"].map(lambda raw: clean_youtube_id(raw)[0])
    odd = table.loc[cleaned.isna(), "youtubeId"]
    if len(odd):
        print(f"note: skipping {len(odd)} youtubeIds that are not YouTube ids: {odd.tolist()[:5]}", file=sys.stderr)
    table = table.assign(youtubeId=cleaned)[cleaned.notna() & (cleaned != "")]
    if only_kept is not None:
        kept = pd.read_csv(only_kept, dtype={"youtubeId": str})
        if "youtubeId" not in kept.columns:
            raise DownloadError(f"{only_kept} has no youtubeId column")
        table = table[table["youtubeId"].isin(set(kept["youtubeId"].dropna()))]
    if per_genre is not None:
        if movies_csv is None or not Path(movies_csv).exists():
            raise DownloadError("--per-genre needs movies.csv (run without --no-movielens first)")
        movies = pd.read_csv(movies_csv)
        films = table.merge(movies[["movieId", "genres"]], on="movieId", how="inner").sort_values(
            "movieId", kind="stable"
        )
        tags = films["genres"].fillna("").str.split("|")
        chosen: set[str] = set()
        for genre in GENRES:
            having = films.loc[tags.map(lambda ts, g=genre: g in ts), "youtubeId"]
            chosen.update(having.drop_duplicates().head(per_genre))
        table = table[table["youtubeId"].isin(chosen)]
    ids = table["youtubeId"].drop_duplicates().tolist()
    return ids[:limit] if limit is not None else ids


# --------------------------------------------------------------------------- trailers


@dataclass
class TrailerResult:
    youtubeId: str
    status: str
    reason: str = ""
    bytes: int = 0
    path: str = ""
    attempts: int = 0
    finished_at: str = ""


def classify_failure(message: str) -> tuple[str, str]:
    """(status, reason) for a yt-dlp error message: throttled, unavailable, or error."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(message)).replace("\u2019", "'").strip()
    text = re.sub(r"^(ERROR:\s*)+", "", text)
    reason = " ".join(text.split())[:300] or "unknown error"
    lowered = reason.lower()
    if any(p in lowered for p in _THROTTLED):
        return "throttled", reason
    if "requested format is not available" in lowered:
        return "unavailable", reason
    if any(p in lowered for p in _UNAVAILABLE):
        return "unavailable", reason
    return "error", reason


class Pacer:
    """Spaces request starts by `pause` seconds across all workers, and holds them all
    back after a throttled answer, so one worker's 429 slows the whole batch."""

    def __init__(self, pause: float):
        self.pause = float(pause)
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self, stop: threading.Event) -> None:
        with self._lock:
            start = max(time.monotonic(), self._next)
            self._next = start + self.pause
        _sleep(start - time.monotonic(), stop)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


class _QuietLogger:
    """yt-dlp's messages would tear the progress bar; its errors reach us as exceptions."""

    def debug(self, msg: str) -> None: ...
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...
    def error(self, msg: str) -> None: ...


class _Stopped(Exception):
    pass


def ytdlp_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """yt_dlp.YoutubeDL options shared by every video (outtmpl and hooks are added per video)."""

    return {
        "format": cfg["format"],
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "socket_timeout": float(cfg["socket_timeout"]),
        "retries": 0,  # retries are ours (with back-off and a throttled/unavailable distinction)
        "fragment_retries": 0,
        "overwrites": True,
        "continuedl": False,
        "cachedir": str(CACHE / "yt-dlp"),  # never $HOME
        "ffmpeg_location": ffmpeg_exe(),  # the bundled one, never a system ffmpeg
        "logger": _QuietLogger(),
        **dict(cfg.get("ytdlp_options") or {}),
    }


def _verbose(params: dict[str, Any]) -> dict[str, Any]:
    """yt-dlp's own messages on stderr (to see warnings such as a missing JavaScript runtime)."""
    params = {**params, "quiet": False, "no_warnings": False}
    params.pop("logger", None)
    return params


def _fetch_video(url: str, staging: Path, youtube_id: str, params: Mapping[str, Any], stop: threading.Event) -> Path:
    import yt_dlp

    def abort_if_stopped(_status: dict) -> None:
        if stop.is_set():
            raise _Stopped("interrupted")

    opts = {
        **params,
        "outtmpl": {"default": str(staging / f"{youtube_id}.%(ext)s")},
        "progress_hooks": [abort_if_stopped],
    }
    with yt_dlp.YoutubeDL(opts) as ydl:
        info = ydl.extract_info(url, download=True)
    written = [Path(d["filepath"]) for d in (info or {}).get("requested_downloads") or [] if d.get("filepath")]
    written = [p for p in written if p.is_file()] or [
        p for p in staging.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl", ".temp"))
    ]
    if not written:
        raise DownloadError("yt-dlp finished but wrote no file")
    path = max(written, key=lambda p: p.stat().st_size)
    if path.stat().st_size == 0:
        raise DownloadError("yt-dlp wrote an empty file")
    return path


def download_one(
    youtube_id: str,
    cfg: Mapping[str, Any],
    trailers: Path,
    params: Mapping[str, Any],
    pacer: Pacer,
    stop: threading.Event,
) -> TrailerResult:
    """Fetch one trailer into trailers/<youtubeId>.<ext>; never raises, the result says what happened."""
    url = cfg["trailer_url"].format(youtubeId=youtube_id)
    staging = trailers / PARTIAL / youtube_id
    retries, backoff = int(cfg["retries"]), float(cfg["backoff"])
    status, reason = "error", "not attempted"
    attempt = 0
    for attempt in range(1, retries + 2):
        if stop.is_set():
            return TrailerResult(youtube_id, INTERRUPTED, attempts=attempt - 1, finished_at=_now())
        pacer.wait(stop)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            path = _fetch_video(url, staging, youtube_id, params, stop)
            if stop.is_set():  # the file may be cut short by the interruption: never put it in place
                return TrailerResult(youtube_id, INTERRUPTED, attempts=attempt, finished_at=_now())
            final = trailers / f"{youtube_id}{path.suffix}"
            os.replace(path, final)  # same folder tree, so the rename is atomic
            return TrailerResult(
                youtube_id,
                "ok",
                "",
                final.stat().st_size,
                final.relative_to(trailers.parent).as_posix(),
                attempt,
                _now(),
            )
        except Exception as exc:  # one video's failure must never stop the batch
            if stop.is_set():  # a failure caused by the interruption is not the video's
                return TrailerResult(youtube_id, INTERRUPTED, attempts=attempt, finished_at=_now())
            status, reason = classify_failure(str(exc) or type(exc).__name__)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if status == "unavailable" or attempt > retries:
            break
        delay = backoff * 2 ** (attempt - 1)
        if status == "throttled":
            pacer.hold(delay)
        _sleep(delay, stop)
    return TrailerResult(youtube_id, status, reason, attempts=attempt, finished_at=_now())


def present_trailers(trailers: Path) -> dict[str, Path]:
    """youtubeId -> file for every finished trailer (staging files are never under trailers/ itself)."""
    if not trailers.is_dir():
        return {}
    return {
        p.stem: p
        for p in trailers.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix not in (".part", ".tmp", ".ytdl")
        and p.stat().st_size > 0
    }


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    table = pd.read_csv(path, dtype={"youtubeId": str, "reason": str, "path": str}, keep_default_na=False)
    return {row["youtubeId"]: row for row in table.to_dict("records")}


def write_manifest(path: Path, rows: Mapping[str, Mapping[str, Any]]) -> None:
    table = pd.DataFrame(
        [{c: row.get(c, "") for c in MANIFEST_COLUMNS} for row in rows.values()], columns=MANIFEST_COLUMNS
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, table.to_csv(index=False))


@dataclass
class BatchSummary:
    counts: dict[str, int]
    skipped: int
    attempted: int
    halted: str = ""  # why the batch stopped early, if it did

    def line(self) -> str:
        parts = ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATUSES)
        return f"trailers: {parts} ({self.skipped} already present or known unavailable, {self.attempted} attempted)"


def download_trailers(
    ids: Iterable[str],
    out: Path,
    cfg: Mapping[str, Any],
    *,
    manifest: Path | None = None,
    retry_unavailable: bool = False,
    progress: bool = True,
    verbose: bool = False,
    checkpoint_every: int = 50,
) -> BatchSummary:
    """Fetch the trailers for ids into out/trailers/, recording each in the manifest.

    Already present files are skipped without a request; videos the manifest
    already knows to be unavailable are skipped unless retry_unavailable. The
    manifest keeps rows of videos outside `ids` from earlier runs.
    """
    trailers = out / "trailers"
    manifest = manifest or out / MANIFEST_NAME
    try:
        cfg["trailer_url"].format(youtubeId="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise DownloadError(f"trailer_url {cfg['trailer_url']!r} must use {{youtubeId}} and no other field") from exc
    shutil.rmtree(trailers / PARTIAL, ignore_errors=True)  # leftovers of a killed run
    trailers.mkdir(parents=True, exist_ok=True)
    rows = read_manifest(manifest)
    present = present_trailers(trailers)
    todo, skipped = [], 0
    for yid in dict.fromkeys(ids):
        if yid in present:
            relpath = present[yid].relative_to(out).as_posix()
            old = rows.get(yid)
            if not (old and old["status"] == "ok" and old["path"] == relpath):
                rows[yid] = asdict(
                    TrailerResult(yid, "ok", "already present", present[yid].stat().st_size, relpath, 0, _now())
                )
            skipped += 1
        elif rows.get(yid, {}).get("status") == "unavailable" and not retry_unavailable:
            skipped += 1
        else:
            todo.append(yid)
    params = _verbose(ytdlp_params(cfg)) if verbose else ytdlp_params(cfg)
    pacer, stop, halt = Pacer(cfg["pause"]), threading.Event(), threading.Event()
    counts = {s: 0 for s in STATUSES}
    summary = BatchSummary(counts, skipped, 0)
    limit = int(cfg["stop_after_throttled"] or 0)
    streak = {"throttled": 0}
    streak_lock = threading.Lock()

    def work(yid: str) -> TrailerResult | None:
        # Checked by the worker itself, so a halt takes effect before the next video starts.
        if halt.is_set() or stop.is_set():
            return None
        result = download_one(yid, cfg, trailers, params, pacer, stop)
        with streak_lock:
            streak["throttled"] = streak["throttled"] + 1 if result.status == "throttled" else 0
            if limit and streak["throttled"] >= limit and not halt.is_set():
                halt.set()
                summary.halted = (
                    f"stopped after {limit} throttled videos in a row: wait (an hour or more), "
                    f"raise `pause`, or pass cookies, then run the same command again"
                )
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, int(cfg["jobs"])), thread_name_prefix="trailer")
    futures = {pool.submit(work, yid): yid for yid in todo}
    collected: set[str] = set()

    def record(result: TrailerResult | None) -> None:
        if result is None or result.status == INTERRUPTED or result.youtubeId in collected:
            return
        rows[result.youtubeId] = asdict(result)
        counts[result.status] += 1
        collected.add(result.youtubeId)
        summary.attempted += 1

    try:
        with (
            terminate_as_interrupt(),
            tqdm(total=len(todo), unit="trailer", desc="trailers", disable=not progress) as bar,
        ):
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                record(future.result())
                bar.update(1)
                bar.set_postfix({s: n for s, n in counts.items() if n}, refresh=False)
                if len(collected) % checkpoint_every == 0:
                    write_manifest(manifest, rows)
    except BaseException:
        stop.set()  # Ctrl-C: in-flight downloads abort at their next chunk, pending ones never start
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is None:
                result = future.result()
                # After an interruption only finished files count: a failure seen in that moment may be the
                # signal's doing (it reaches yt-dlp's own child processes too), so it is tried again next run.
                if not stop.is_set() or (result is not None and result.status == "ok"):
                    record(result)
        write_manifest(manifest, rows)
        shutil.rmtree(trailers / PARTIAL, ignore_errors=True)
    return summary


# --------------------------------------------------------------------------- command line


def dvc_add(out: Path) -> int:
    """Record the snapshot: `dvc add <out>` with the venv's dvc, run from out's parent."""
    return subprocess.call([sys.executable, "-m", "dvc", "add", out.name], cwd=out.parent)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lib.sources.download",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 done (per-video failures are in the manifest), 1 a MovieLens "
        "file failed, 3 halted by throttling, 130 interrupted.",
    )
    p.add_argument("--out", type=Path, default=DATA, help="data snapshot folder (default: the repository's data/)")
    p.add_argument("--manifest", type=Path, help="manifest CSV (default: <out>/download_manifest.csv)")
    p.add_argument("--params", type=Path, default=PARAMS, help="params.yaml whose download: section to read")
    what = p.add_argument_group("what to fetch")
    what.add_argument("--no-movielens", action="store_true", help="skip the two MovieLens CSVs")
    what.add_argument("--no-trailers", action="store_true", help="fetch only the MovieLens CSVs")
    what.add_argument("--force", action="store_true", help="replace MovieLens CSVs not fetched by this command")
    what.add_argument("--only-kept", type=Path, help="CSV with a youtubeId column (outputs/prepare/labels.csv)")
    what.add_argument("--per-genre", type=int, help="only the first N films (by movieId) of each genre")
    what.add_argument("--limit", type=int, help="only the first N trailers of the selection")
    what.add_argument(
        "--retry-unavailable", action="store_true", help="try again videos the manifest marks unavailable"
    )
    src = p.add_argument_group("sources and pacing (default: params.yaml download:, else built in)")
    src.add_argument("--movies-zip-url")
    src.add_argument("--youtube-zip-url")
    src.add_argument("--trailer-url", help="template with {youtubeId}")
    src.add_argument("--format", help="yt-dlp format selector")
    src.add_argument("--jobs", type=int, help="concurrent downloads")
    src.add_argument("--pause", type=float, help="seconds between request starts, over all workers")
    src.add_argument("--retries", type=int)
    src.add_argument("--backoff", type=float, help="first retry delay in seconds, doubled each time")
    src.add_argument("--socket-timeout", type=float)
    src.add_argument("--stop-after-throttled", type=int, help="stop after N throttled videos in a row (0: never)")
    src.add_argument("--cookies", type=Path, help="cookies.txt for yt-dlp (when YouTube asks to sign in)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--verbose", action="store_true", help="show yt-dlp's own messages and warnings")
    p.add_argument("--dvc-add", action="store_true", help="run `dvc add <out>` when done")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    keys = (
        "movies_zip_url",
        "youtube_zip_url",
        "trailer_url",
        "format",
        "jobs",
        "pause",
        "retries",
        "backoff",
        "socket_timeout",
        "stop_after_throttled",
    )
    cfg = settings({k: getattr(args, k) for k in keys}, args.params)
    if args.cookies:
        cfg["ytdlp_options"] = {**cfg["ytdlp_options"], "cookiefile": str(resolve(args.cookies))}
    out = resolve(args.out)
    manifest = resolve(args.manifest) if args.manifest else out / MANIFEST_NAME
    progress = not args.no_progress
    try:
        with terminate_as_interrupt():  # SIGTERM and SIGHUP end the run as Ctrl-C does, cleanly
            if not args.no_movielens:
                for member, what in fetch_movielens(out, cfg, force=args.force, progress=progress).items():
                    print(f"{member}: {what}")
            summary = None
            if not args.no_trailers:
                ids = select_videos(
                    out / "movielens" / "ml-youtube.csv",
                    out / "movielens" / "movies.csv",
                    only_kept=resolve(args.only_kept) if args.only_kept else None,
                    per_genre=args.per_genre,
                    limit=args.limit,
                )
                summary = download_trailers(
                    ids,
                    out,
                    cfg,
                    manifest=manifest,
                    retry_unavailable=args.retry_unavailable,
                    progress=progress,
                    verbose=args.verbose,
                )
                print(summary.line())
                print(f"manifest: {manifest}")
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "\ninterrupted: no partial file is left under a final name; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    if summary is not None and summary.halted:
        print(f"halted: {summary.halted}", file=sys.stderr)
        return 3
    target = "data" if out == DATA else str(out)
    if args.dvc_add:
        status = dvc_add(out)
        if status == 0:
            print(f"recorded: dvc add {target}; next step: git add {target}.dvc, then dvc push (see docs/real-data.md)")
        return status
    print(f"next step: dvc add {target}   (then dvc push; see docs/real-data.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
