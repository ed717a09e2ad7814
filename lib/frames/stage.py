"""The frames stage: every film of labels.csv through one decode, in parallel, into one store.

1. Each trailer is decoded once (``decode_trailer``: ``extract_trailer`` keeps the
   frames, and the same ffmpeg run measures the computable features as a second
   output; films sharing a youtubeId share it; a kept trailer's sound is then decoded
   by a video-free ffmpeg run, ``lib.frames.audio``), by
   ``n_jobs`` worker threads, each driving its own single-threaded ffmpeg process
   (0 = one per core). A tqdm bar (or, with ``progress="lines"``, a line per tenth of the
   trailers: ``lib.core.progress``) counts trailers kept, pruned and resumed.
2. Each result is written at once, atomically, as a *part* in ``parts_dir``:
   ``<youtubeId>.json`` (the outcome, written last: it marks the part complete) and,
   for kept trailers, ``<youtubeId>.npy`` (the frames) and ``<youtubeId>.mel.npy`` (the
   log-mel window of each kept frame). Parts live in a subfolder
   named after a hash of the extraction settings and of ``lib/frames/extract.py``, and
   each records the size and mtime of its source file; a part that no longer
   matches is redone. So an interrupted run resumes where it stopped, and a
   change of settings or code never reuses stale frames.
   Interrupted (Ctrl-C, SIGTERM, SIGHUP), the stage stops every running ffmpeg and
   records nothing for those trailers: only finished decodes leave parts, and a
   decode stopped from outside is never taken for a fault of its file (see
   ``lib.frames.extract``, "Interruption"). The resumed run's store and manifest are
   byte-identical to an uninterrupted run's.
3. The kept films are consolidated, in labels order, into a ``lib.frames.store``
   store (itself written atomically), with the sound beside the frames in its folder
   (``write_audio``: ``logmel.npy``, ``present.npy``, ``audio.json``), and
   ``manifest.csv`` gets one row per film (its ``audio`` column: ``ok``, ``no_audio``
   or ``unreadable``; a film without sound is kept, its windows masked).
   Then the parts are removed unless ``keep_parts``.

``parts_dir`` must lie outside the DVC output folder: ``dvc repro`` empties a
stage's outputs before it runs, which would throw the finished parts away.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm  # plain text: tqdm.auto wants ipywidgets in a notebook

from lib.core.atomic import STALE_GLOB, atomic_write
from lib.core.interrupt import terminate_as_interrupt
from lib.core.params import FrameSettings
from lib.core.paths import ROOT
from lib.core.progress import LineProgress
from lib.encoders.embeddings import DTYPE as EMBEDDINGS_DTYPE
from lib.encoders.embeddings import write_embeddings
from lib.frames import audio, extract, features
from lib.frames.store import FilmFrames, FrameStore, write_frame_store

if TYPE_CHECKING:  # its module loads Keras: a stage without an encoder never imports it
    from lib.encoders.native import NativeEncoder

MANIFEST_FILE = "manifest.csv"
EMBEDDINGS_SUFFIX = ".emb.npy"  # a part's encoder vectors, beside its frames
AUDIO_SUFFIX = ".mel.npy"  # a part's log-mel windows, one per kept frame
STORE_DIR = "store"
MANIFEST_COLUMNS = [
    "movieId",
    "youtubeId",
    "outcome",
    "reason",
    "duration",
    "frames_decoded",
    "frames_kept",
    "source",
    "audio",  # lib.frames.audio.AUDIO_OUTCOMES for a kept trailer, empty for a pruned one
    "audio_reason",
]
TRAILER_TIMEOUT = 900.0  # seconds; a hung ffmpeg makes its trailer unreadable, not the run stall

# Container extensions in order of preference when one youtubeId has several files.
VIDEO_EXTENSIONS = (
    ".mp4",
    ".webm",
    ".mkv",
    ".mov",
    ".m4v",
    ".avi",
    ".flv",
    ".3gp",
    ".ts",
    ".mpg",
    ".mpeg",
    ".ogv",
    ".gif",
)
# Leftovers of interrupted downloads (yt-dlp, browsers) and our own temporary files.
IGNORED_SUFFIXES = (".part", ".ytdl", ".tmp", ".temp", ".crdownload")


@dataclass
class StageResult:
    manifest: pd.DataFrame
    store: FrameStore
    extracted: int  # trailers decoded by this run
    resumed: int  # trailers taken from parts of an earlier, interrupted run


def resolve_jobs(n_jobs: int) -> int:
    """``n_jobs`` as a worker count: 0 (or less) means every core this process may use."""
    if n_jobs and n_jobs > 0:
        return int(n_jobs)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def find_trailers(trailers_dir: str | Path) -> dict[str, Path]:
    """youtubeId -> trailer file in ``trailers_dir`` (``<youtubeId>.<ext>``, any container)."""
    trailers_dir = Path(trailers_dir)
    if not trailers_dir.is_dir():
        return {}
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
    found: dict[str, Path] = {}
    for p in trailers_dir.iterdir():
        if p.name.startswith(".") or p.suffix.lower() in IGNORED_SUFFIXES or not p.suffix or p.is_dir():
            continue
        current = found.get(p.stem)
        if current is None or rank.get(p.suffix.lower(), len(rank)) < rank.get(current.suffix.lower(), len(rank)):
            found[p.stem] = p
    return found


def settings_key(settings: FrameSettings, encoder: NativeEncoder | None = None) -> str:
    """A short hash of what decides a part's content: the settings, the extraction code, the
    ffmpeg build, and the encoder whose embeddings the parts hold (if any)."""
    extras = [
        Path(extract.__file__).read_bytes(),
        Path(features.__file__).read_bytes(),
        Path(audio.__file__).read_bytes(),
        Path(extract.ffmpeg_exe()).name.encode(),
    ]
    if encoder is not None:
        extras += [Path(inspect.getfile(type(encoder))).read_bytes(), encoder.cache_key()]
    return settings.cache_key(*extras)


def _part_name(youtube_id: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", youtube_id):
        return youtube_id
    return "id-" + hashlib.sha1(youtube_id.encode()).hexdigest()[:16]


def _source_identity(path: Path | None) -> dict:
    if path is None:
        return {"source": "", "source_size": None, "source_mtime_ns": None}
    st = path.stat()
    try:
        shown = str(path.resolve().relative_to(ROOT))
    except ValueError:
        shown = str(path)
    return {"source": shown, "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


def write_part(
    part_dir: Path,
    youtube_id: str,
    row: dict,
    frames: np.ndarray | None,
    embeddings: np.ndarray | None = None,
    windows: np.ndarray | None = None,
) -> None:
    name = _part_name(youtube_id)
    if frames is not None and len(frames):
        atomic_write(part_dir / f"{name}.npy", lambda fh: np.save(fh, frames))
    if windows is not None and len(windows):
        atomic_write(part_dir / f"{name}{AUDIO_SUFFIX}", lambda fh: np.save(fh, windows))
    if embeddings is not None and len(embeddings):
        atomic_write(part_dir / f"{name}{EMBEDDINGS_SUFFIX}", lambda fh: np.save(fh, embeddings))
    atomic_write(part_dir / f"{name}.json", lambda fh: fh.write(json.dumps(row).encode()))


def read_part(part_dir: Path, youtube_id: str, source: dict, size: int, dim: int | None = None) -> dict | None:
    """The finished part of ``youtube_id``, or None when absent, damaged or made from another
    file; ``dim``: the width of the embeddings a kept trailer's part must hold too."""
    name = _part_name(youtube_id)
    try:
        row = json.loads((part_dir / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    if any(row.get(k) != v for k, v in source.items()) or row.get("youtubeId") != youtube_id:
        return None
    if row.get("frames_kept", 0):
        try:
            frames = np.load(part_dir / f"{name}.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        if frames.shape != (row["frames_kept"], size, size, 3) or frames.dtype != np.uint8:
            return None
        try:
            windows = np.load(part_dir / f"{name}{AUDIO_SUFFIX}", mmap_mode="r")
        except (OSError, ValueError):
            return None
        if windows.shape != (row["frames_kept"], audio.WINDOW_STEPS, audio.N_MELS) or windows.dtype != audio.DTYPE:
            return None
        if dim is not None:
            try:
                vectors = np.load(part_dir / f"{name}{EMBEDDINGS_SUFFIX}", mmap_mode="r")
            except (OSError, ValueError):
                return None
            if vectors.shape != (row["frames_kept"], dim) or vectors.dtype != np.dtype(EMBEDDINGS_DTYPE):
                return None
    return row


def load_part_frames(part_dir: Path, youtube_id: str) -> np.ndarray:
    return np.load(part_dir / f"{_part_name(youtube_id)}.npy", mmap_mode="r")


def load_part_embeddings(part_dir: Path, youtube_id: str) -> np.ndarray:
    return np.load(part_dir / f"{_part_name(youtube_id)}{EMBEDDINGS_SUFFIX}", mmap_mode="r")


def load_part_windows(part_dir: Path, youtube_id: str) -> np.ndarray:
    return np.load(part_dir / f"{_part_name(youtube_id)}{AUDIO_SUFFIX}", mmap_mode="r")


class Decoded(NamedTuple):
    extraction: extract.Extraction  # the kept frames at the store's size, and the outcome
    features: dict[str, float] | None  # the computable features of a kept trailer, else None
    native: np.ndarray | None  # the same kept frames at the encoder's size, when asked for
    audio: audio.AudioTrack | None = None  # the sound of a kept trailer (a decode of its own), else None


def decode_trailer(
    path: Path | None,
    settings: FrameSettings,
    *,
    timeout: float | None = TRAILER_TIMEOUT,
    stop: extract.StopSwitch | None = None,
    native_size: int | None = None,
    native_resize: str = "crop",
) -> Decoded:
    """One ffmpeg decode of a trailer: its kept frames, its computable features (a second
    output) and, with ``native_size``, the same frames at that size (a third output); then,
    for a kept trailer, its sound (``lib.frames.audio``: a second, video-free ffmpeg run)."""
    with tempfile.TemporaryDirectory(prefix="trailer-decode-") as tmp:
        measured = features.FeatureOutput(tmp)
        extra = list(measured.args)
        big = None
        if native_size:
            big = extract.FramesOutput(tmp, settings.step, settings.step_unit, native_size, native_resize)
            extra += big.args
        result = extract.extract_trailer(path, **settings.as_dict(), timeout=timeout, stop=stop, extra_output=extra)
        if not result.ok:
            return Decoded(result, None, None, None)
        sound = audio.decode_audio(path, timeout=timeout, stop=stop)
        return Decoded(result, measured.read(result.fps), big.read() if big else None, sound)


def sound_of(result: extract.Extraction, track: audio.AudioTrack | None, settings: FrameSettings):
    """(log-mel windows aligned with the kept frames, how many hold sound, the audio features)."""
    samples = track.samples if track is not None and track.ok else None
    times = audio.kept_frame_times(len(result.frames), settings.step, settings.step_unit, result.fps, result.duration)
    windows, present = audio.logmel_windows(samples, times)
    return windows, int(present.sum()), audio.audio_features(samples)


def _process(
    youtube_id: str,
    path: Path | None,
    part_dir: Path,
    settings: FrameSettings,
    stop: extract.StopSwitch | None = None,
    encoder: NativeEncoder | None = None,
) -> tuple[dict, bool]:
    source = _source_identity(path)
    dim = encoder.dim if encoder is not None else None
    if (row := read_part(part_dir, youtube_id, source, settings.size, dim)) is not None:
        return row, True
    # extract.Interrupted propagates: a decode stopped from outside leaves no part, so a rerun redoes it
    result, measured, big, track = decode_trailer(
        path,
        settings,
        stop=stop,
        native_size=encoder.size if encoder else None,
        native_resize=encoder.resize if encoder else "crop",
    )
    keep = result.outcome == "ok"
    vectors = None
    if keep and encoder is not None:
        if big is None or len(big) != len(result.frames):
            # never seen: both outputs select the same frames of the same decode. Recorded, not raised.
            got = 0 if big is None else len(big)
            result = extract.Extraction(
                "unreadable",
                f"the {encoder.size}x{encoder.size} output gave {got} frames for {len(result.frames)} kept",
                result.duration,
                result.frames_decoded,
                result.frames,
                result.fps,
            )
            keep = False
        else:
            vectors = encoder.encode(big)
    windows, heard, sound_features = sound_of(result, track, settings) if keep else (None, 0, {})
    row = {
        "youtubeId": youtube_id,
        "outcome": result.outcome,
        "reason": result.reason,
        "duration": result.duration,
        "frames_decoded": result.frames_decoded,
        "frames_kept": len(result.frames) if keep else 0,
        **source,
        "audio": track.outcome if keep and track is not None else "",
        "audio_reason": track.reason if keep and track is not None else "",
        "audio_windows": heard,  # windows that hold sound: the first ones (the rest run past its end)
        "features": {**measured, **sound_features} if measured is not None else None,
    }
    write_part(part_dir, youtube_id, row, result.frames if keep else None, vectors, windows)
    return row, False


def run_frames_stage(
    films: pd.DataFrame,
    trailers_dir: str | Path,
    out_dir: str | Path,
    parts_dir: str | Path,
    settings: FrameSettings = FrameSettings(),
    *,
    n_jobs: int = 0,
    keep_parts: bool = False,
    progress: bool | str = True,
    encoder: NativeEncoder | None = None,
    embed_dir: str | Path | None = None,
) -> StageResult:
    """Extract the trailer of every film of ``films`` (``labels.csv`` rows, read with
    ``lib.prepare.labels.read_labels``), write ``out_dir/store`` and ``out_dir/manifest.csv``.

    With an ``encoder`` (``lib.encoders.native``), the same decode gives each kept frame at
    the encoder's size too, and ``embed_dir`` gets their embeddings, row ``i`` for frame
    ``i`` of the store (``lib.encoders.embeddings``). The sound goes into the store's folder
    (``write_audio``): log-mel windows, row ``i`` for frame ``i`` of the store."""
    if encoder is not None and embed_dir is None:
        raise ValueError("an encoder needs an embed_dir to write its embeddings to")
    extract.check_settings(settings.step, settings.step_unit, settings.size, settings.resize)
    missing = [c for c in ("movieId", "youtubeId") if c not in films.columns]
    if missing:
        raise ValueError(f"the films table lacks column(s) {missing}")
    films = films.assign(youtubeId=films["youtubeId"].fillna("").astype(str).str.strip())
    out_dir, parts_root = Path(out_dir), Path(parts_dir)
    part_dir = parts_root / settings_key(settings, encoder)
    part_dir.mkdir(parents=True, exist_ok=True)
    for stale in part_dir.glob(STALE_GLOB):  # half-written parts of a killed run
        stale.unlink(missing_ok=True)

    trailers = find_trailers(trailers_dir)
    youtube_ids = list(dict.fromkeys(y for y in films["youtubeId"] if y))
    rows: dict[str, dict] = {}
    extracted = resumed = 0
    workers = resolve_jobs(n_jobs)
    stop = extract.StopSwitch()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="frames")
    if progress == "lines":  # a log or an executed notebook: a line per tenth, not a redrawn bar
        bar = LineProgress(len(youtube_ids), "frames", "trailer")
    else:
        bar = tqdm(total=len(youtube_ids), desc="frames", unit="trailer", disable=not progress, mininterval=1.0)
    try:
        with terminate_as_interrupt():  # SIGTERM and SIGHUP take the same way out as Ctrl-C
            try:
                futures = {
                    pool.submit(_process, y, trailers.get(y), part_dir, settings, stop, encoder): y for y in youtube_ids
                }
                for fut in as_completed(futures):
                    row, was_resumed = fut.result()
                    rows[futures[fut]] = row
                    resumed += was_resumed
                    extracted += not was_resumed
                    kept = sum(r["outcome"] == "ok" for r in rows.values())
                    bar.update()
                    bar.set_postfix(kept=kept, pruned=len(rows) - kept, resumed=resumed, refresh=False)
            except BaseException:
                # Interrupted (or an ffmpeg stopped from outside): drop the queue and stop the running decodes;
                # they raise extract.Interrupted and leave no part. Finished trailers keep theirs.
                stop.stop()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        bar.close()
    pool.shutdown()

    manifest = build_manifest(films, rows)
    kept = manifest[manifest["outcome"] == "ok"]
    store = write_frame_store(
        out_dir / STORE_DIR,
        [
            FilmFrames(int(m), y, load_part_frames(part_dir, y))
            for m, y in kept[["movieId", "youtubeId"]].itertuples(index=False)
        ],
        frame_shape=(settings.size, settings.size, 3),
        settings=settings,
    )
    atomic_write(out_dir / MANIFEST_FILE, lambda fh: fh.write(manifest.to_csv(index=False).encode()))
    measured = features_table(kept, rows)
    atomic_write(out_dir / features.FEATURES_FILE, lambda fh: fh.write(measured.to_csv(index=False).encode()))
    if encoder is not None:
        write_embeddings(
            embed_dir,
            [load_part_embeddings(part_dir, y) for y in kept["youtubeId"]],
            store,
            {
                **encoder.describe(),
                "frozen": True,
                "source": "video",
                "frames": {**settings.as_dict(), "size": encoder.size, "resize": encoder.resize},
            },
        )
    write_audio(out_dir / STORE_DIR, kept, rows, part_dir, store)
    if not keep_parts:
        for y in youtube_ids:
            for suffix in (".npy", ".json", EMBEDDINGS_SUFFIX, AUDIO_SUFFIX):
                (part_dir / f"{_part_name(y)}{suffix}").unlink(missing_ok=True)
        for d in (part_dir, parts_root):
            try:
                d.rmdir()  # only when empty: another run's parts stay
            except OSError:
                pass
    return StageResult(manifest, store, extracted, resumed)


def features_table(kept: pd.DataFrame, rows: dict[str, dict]) -> pd.DataFrame:
    """movieId, youtubeId and the computable features of every kept film, in store order."""
    records = []
    for movie_id, youtube_id in kept[["movieId", "youtubeId"]].itertuples(index=False):
        measured = rows.get(youtube_id, {}).get("features") or {}
        records.append(
            {
                "movieId": int(movie_id),
                "youtubeId": youtube_id,
                **{k: measured.get(k, float("nan")) for k in (*features.FEATURES, *audio.AUDIO_FEATURES)},
            }
        )
    return pd.DataFrame.from_records(
        records, columns=["movieId", "youtubeId", *features.FEATURES, *audio.AUDIO_FEATURES]
    )


def write_audio(audio_dir: str | Path, kept: pd.DataFrame, rows: dict[str, dict], part_dir: Path, store) -> dict:
    """``logmel.npy`` (``audio.LOGMEL_FILE``: float16 ``(store frames, WINDOW_STEPS, N_MELS)``, row ``i`` the window of
    frame ``i`` of the store), ``present.npy`` (bool per row: the window holds sound) and
    ``audio.json`` (the settings and the films per audio outcome), each written atomically."""
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    n = len(store.frames)
    windows = np.full((n, audio.WINDOW_STEPS, audio.N_MELS), audio.FLOOR_DB, audio.DTYPE)
    present = np.zeros(n, bool)
    index = store.index
    for movie_id, youtube_id in kept[["movieId", "youtubeId"]].itertuples(index=False):
        start, stop = (int(v) for v in index.loc[int(movie_id), ["start", "stop"]])
        windows[start:stop] = load_part_windows(part_dir, youtube_id)
        present[start : start + min(int(rows[youtube_id].get("audio_windows", 0)), stop - start)] = True
    outcomes = [rows[y].get("audio", "") for y in kept["youtubeId"]]
    meta = {
        **audio.DESCRIPTION,
        "rows": n,
        "films": {o: outcomes.count(o) for o in audio.AUDIO_OUTCOMES},
        "windows_with_sound": int(present.sum()),
    }
    atomic_write(audio_dir / audio.LOGMEL_FILE, lambda fh: np.save(fh, windows))
    atomic_write(audio_dir / audio.PRESENT_FILE, lambda fh: np.save(fh, present))
    atomic_write(audio_dir / audio.META_FILE, lambda fh: fh.write((json.dumps(meta, indent=1) + "\n").encode()))
    return meta


def build_manifest(films: pd.DataFrame, rows: dict[str, dict]) -> pd.DataFrame:
    """One row per film, in labels order; a film without a youtubeId counts as missing."""
    no_id = {
        "outcome": "missing",
        "reason": "no youtubeId",
        "duration": None,
        "frames_decoded": 0,
        "frames_kept": 0,
        "source": "",
        "audio": "",
        "audio_reason": "",
    }
    records = []
    for movie_id, youtube_id in films[["movieId", "youtubeId"]].itertuples(index=False):
        row = rows.get(youtube_id, no_id) if youtube_id else no_id
        records.append(
            {"movieId": int(movie_id), "youtubeId": youtube_id, **{k: row.get(k, "") for k in MANIFEST_COLUMNS[2:]}}
        )
    manifest = pd.DataFrame.from_records(records, columns=MANIFEST_COLUMNS)
    return manifest.astype({"frames_decoded": int, "frames_kept": int, "duration": float})


def read_manifest(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(
        path,
        dtype={"youtubeId": str, "reason": str, "source": str, "audio": str, "audio_reason": str},
        keep_default_na=False,
        na_values={"duration": [""]},
    )


def outcome_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Films per outcome (every outcome listed, zeros included) with a total row: films in = kept + pruned."""
    counts = manifest["outcome"].value_counts().reindex(list(extract.OUTCOMES), fill_value=0)
    table = counts.rename("films").to_frame()
    table.loc["total"] = int(counts.sum())
    return table


def split_counts_after_pruning(labels: pd.DataFrame, manifest: pd.DataFrame, genres) -> pd.DataFrame:
    """Films per genre and split before and after pruning (prepare splits first, this stage prunes later)."""
    kept_ids = set(manifest.loc[manifest["outcome"] == "ok", "movieId"])
    films = labels[labels["movieId"].isin(manifest["movieId"])]
    kept = films[films["movieId"].isin(kept_ids)]
    splits = [s for s in ("train", "val", "test") if s in set(films["split"])] or sorted(set(films["split"]))
    columns = {}
    for s in splits:
        before = films.loc[films["split"] == s, list(genres)].sum()
        after = kept.loc[kept["split"] == s, list(genres)].sum()
        columns[(s, "before")] = before
        columns[(s, "kept")] = after
        columns[(s, "kept share")] = (after / before.where(before > 0)).round(2)
    table = pd.DataFrame(columns)
    totals = {(s, "before"): (films["split"] == s).sum() for s in splits} | {
        (s, "kept"): (kept["split"] == s).sum() for s in splits
    }
    table.loc["films"] = pd.Series(
        {**totals, **{(s, "kept share"): round(totals[(s, "kept")] / max(totals[(s, "before")], 1), 2) for s in splits}}
    )
    table.index.name = "genre"
    return table


def films_per_genre(
    labels: pd.DataFrame, manifest: pd.DataFrame, genres, n: int = 3, seed: int = 0
) -> dict[str, list[int]]:
    """Up to ``n`` kept films of each genre (seeded choice), for a sample grid."""
    kept = labels[labels["movieId"].isin(manifest.loc[manifest["outcome"] == "ok", "movieId"])]
    rng = np.random.default_rng(seed)
    picks = {}
    for g in genres:
        ids = kept.loc[kept[g] == 1, "movieId"].to_numpy()
        if len(ids):
            picks[g] = sorted(int(i) for i in rng.choice(ids, size=min(n, len(ids)), replace=False))
    return picks
