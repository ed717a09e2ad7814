"""Genre report for one new trailer (the paper code's ``-f`` and ``-yt`` options).

    python -m lib.apps.infer MODEL TRAILER [--lower 0.25] [--upper 0.75] [--aggregate mean] [--json]
    trailer-genres MODEL TRAILER ...
    trailer-genres --version

MODEL is a train-stage run folder, or a trained ``.keras`` file with its
``model_info.json`` beside it (``lib.models.info``). TRAILER is a video file, a folder of
frame images, or an http(s) URL that yt-dlp can fetch (YouTube or a direct link).

The trailer goes through the pipeline's own code, with the settings the model was
trained with: ``lib.frames.extract`` decodes and resizes the frames exactly as the
frames stage did for the model's store (the frame settings recorded in
``model_info.json``; ``--step``, ``--step-unit`` and ``--resize`` override them), and
the model's kind (``lib.models.kinds``) scores them as in evaluation: slice models
slice by slice, then the ``--aggregate`` of the slices; the whole-trailer ``tsn`` model
once, from the centred frame of each of its segments. A ``tsn`` whose frozen encoder saw
frames decoded from the videos at its own size (224x224, cropped as its converter does)
records those settings, so its trailer is decoded at that size too; the report's
``frames:`` line says which extraction was used. A run that hears (``tsn_av``,
``tsn_audio``: ``audio`` in its ``model_info.json``) gets the trailer's soundtrack too, cut
into the same log-mel windows as the frames stage's (``lib.frames.audio``); a file without
sound, or a folder of images, is scored with its sound masked, and the report says so.

Bad input (missing or broken file, a URL that does not download) ends with one line
on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.core.ffmpeg import ffmpeg_exe
from lib.core.native_stderr import quiet_native_stderr  # TensorFlow's C++ runtime writes to fd 2 directly
from lib.core.params import FrameSettings, ParamsError, parse
from lib.frames import audio
from lib.frames.extract import extract_trailer, resize_frames
from lib.models.info import ModelInfo, ModelInfoError

PROG = "trailer-genres"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 1


class InferenceError(Exception):
    """A problem with the user's input, reported as one line."""


@dataclass
class Trailer:
    frames: np.ndarray  # (k, size, size, 3) uint8
    source: str
    note: str = ""
    sound: tuple[np.ndarray, np.ndarray] | None = None  # log-mel windows and presence, one per frame (models that hear)


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def locate_model(spec: str) -> tuple[Path, Path]:
    """(run folder, model file) of MODEL: a run folder or a ``.keras`` file in one. A file
    that is not a Keras archive is refused here, in milliseconds, before Keras loads."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "model.keras").is_file():
            raise InferenceError(f"{path} is a folder without model.keras: not a train-stage run folder")
        path = path / "model.keras"
    if not path.is_file():
        raise InferenceError(f"model file not found: {path}")
    check_keras_archive(path)
    return path.parent, path


def check_keras_archive(path: Path) -> None:
    """A ``.keras`` file is a zip holding ``config.json`` and ``model.weights.h5``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InferenceError(f"{path} is not a Keras model archive (.keras is a zip file): {exc}") from None
    missing = sorted({"config.json", "model.weights.h5"} - names)
    if missing:
        raise InferenceError(f"{path} is not a Keras model archive: it lacks {', '.join(missing)}")
    if damaged is not None:
        raise InferenceError(f"{path} is damaged: {damaged} fails its checksum")


def read_model_info(run_dir: Path) -> ModelInfo:
    try:
        return ModelInfo.read(run_dir)
    except ModelInfoError as exc:
        raise InferenceError(str(exc)) from None


def frame_settings(info: ModelInfo, args: argparse.Namespace) -> FrameSettings:
    """The extraction the model was trained on (``model_info.json``), with command-line
    overrides; a model trained on a store the frames stage did not make records none,
    and then the paper's settings apply at the model's frame size."""
    trained = info.frames or FrameSettings(size=info.size)
    overrides = {k: getattr(args, k) for k in ("step", "step_unit", "resize") if getattr(args, k) is not None}
    # the CLI applies no duration bounds unless asked: a user's trailer is scored whatever its length
    overrides.update(min_seconds=args.min_seconds, max_seconds=args.max_seconds, size=info.size)
    try:
        return parse(FrameSettings, {**trained.as_dict(), **overrides}, "frames", "the command line")
    except ParamsError as exc:
        raise InferenceError(str(exc)) from None


class _QuietLogger:
    """yt-dlp writes to stderr unless given a logger; errors reach us as exceptions."""

    def debug(self, msg):
        pass

    info = warning = error = debug


def fetch_url(url: str, directory: Path) -> Path:
    """Download ``url`` with yt-dlp into ``directory``; returns the video file."""
    import yt_dlp

    options = {
        "outtmpl": str(directory / "trailer.%(ext)s"),
        # Frames are all we need: small video, no audio, no merging.
        "format": "bv*[height<=?480]/b[height<=?480]/bv*/b",
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _QuietLogger(),
        "socket_timeout": 30,
        "retries": 1,
        "ffmpeg_location": ffmpeg_exe(),
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            ydl.download([url])
    except Exception as exc:  # yt-dlp's DownloadError wraps every network/extractor failure
        message = str(exc).replace("ERROR: ", "").strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InferenceError(f"cannot download {url}: {message}") from None
    files = [p for p in directory.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
    if not files:
        raise InferenceError(f"cannot download {url}: yt-dlp produced no file")
    return max(files, key=lambda p: p.stat().st_size)


def frames_from_video(path: Path, settings: FrameSettings, hear: bool = False) -> Trailer:
    if not path.exists():
        raise InferenceError(f"trailer not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise InferenceError(f"{path} is empty (0 bytes)")
    result = extract_trailer(path, **settings.as_dict())
    frames = result.frames
    if result.outcome not in ("ok", "partial") or frames is None or len(frames) == 0:
        reason = result.reason or "no frames decoded"
        raise InferenceError(f"{path}: {result.outcome}: {reason}")
    note = f"partial file: {result.reason}" if result.outcome == "partial" else ""
    duration = f", {result.duration:.1f} s" if result.duration else ""
    sound = None
    if hear:
        track = audio.decode_audio(path)
        times = audio.kept_frame_times(len(frames), settings.step, settings.step_unit, result.fps, result.duration)
        sound = audio.logmel_windows(track.samples if track.ok else None, times)
        if not track.ok:
            note = "; ".join(filter(None, [note, f"sound masked: {track.outcome} ({track.reason})"]))
    return Trailer(np.asarray(frames), f"{path} ({result.frames_decoded} frames decoded{duration})", note, sound)


def frames_from_folder(folder: Path, settings: FrameSettings) -> Trailer:
    """Every image in ``folder`` in name order, as already-extracted frames (no step applied)."""
    import cv2  # OpenCV takes a second to import; only a folder of images needs it

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InferenceError(f"{folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images, skipped = [], []
    for p in files:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            skipped.append(p.name)
        else:
            images.append(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV reads BGR
    if not images:
        raise InferenceError(f"{folder}: none of the {len(files)} images could be read")
    note = f"skipped unreadable images: {', '.join(skipped[:5])}" if skipped else ""
    frames = resize_frames(images, settings.size, settings.resize)  # images may differ in size
    return Trailer(frames, f"{folder} ({len(frames)} images)", note)


def load_trailer(spec: str, settings: FrameSettings, workdir: Path, hear: bool = False) -> Trailer:
    """``hear``: also cut the soundtrack into the model's log-mel windows."""
    if is_url(spec):
        path = fetch_url(spec, workdir)
        trailer = frames_from_video(path, settings, hear)
        trailer.source = f"{spec} -> {trailer.source}"
        return trailer
    path = Path(spec).expanduser()
    if path.is_dir():
        trailer = frames_from_folder(path, settings)
        if hear:
            trailer.sound = audio.logmel_windows(None, np.zeros(len(trailer.frames)))
            trailer.note = "; ".join(filter(None, [trailer.note, "sound masked: a folder of images has none"]))
        return trailer
    return frames_from_video(path, settings, hear)


def load_model(run_dir: Path, model_path: Path, info: ModelInfo):
    """The model through its kind: the study's one run loader (``lib.models.kinds.load_run``)."""
    # Imported here, not at the top: it loads Keras and TensorFlow (seconds), and a bad
    # trailer or model_info.json should fail before that.
    from lib.models.kinds import load_run

    try:
        return load_run(run_dir, info, model_file=model_path.name)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InferenceError(f"cannot load model {model_path}: {first}") from None


def describe_settings(settings: FrameSettings) -> str:
    """The extraction a trailer went through, in one line (the report's ``frames:``)."""
    unit = "frames" if settings.step_unit == "frames" else "s"
    return f"every {settings.step:g} {unit}, {settings.size}x{settings.size} {settings.resize}"


def format_report(
    genres: Sequence[str],
    scored,
    n_frames: int,
    lower: float,
    upper: float,
    trailer: Trailer,
    settings: FrameSettings | None = None,
    trained: FrameSettings | None = None,
) -> str:
    """The report of ``scored`` (a ``lib.models.kinds.FrameScores``); a kind without slice
    scores (a whole-trailer model) has no per-slice part. ``settings``: the extraction used,
    ``trained``: the model's own (``model_info.json``), to say whether they differ."""
    scores, per_slice, depth = scored.scores, scored.per_slice, scored.depth
    order = np.argsort(-scores, kind="stable")
    confident = [genres[j] for j in order if scores[j] > upper]
    undecided = [genres[j] for j in order if lower <= scores[j] <= upper]
    width = max(len(g) for g in genres)
    lines = [f"trailer: {trailer.source}"]
    if trailer.note:
        lines.append(f"note: {trailer.note}")
    if settings is not None:
        same = trained is not None and describe_settings(trained) == describe_settings(settings)
        origin = (
            "as the model was trained (model_info.json)"
            if same
            else f"overridden; the model was trained on {describe_settings(trained)}"
            if trained is not None
            else "the paper's settings (the model records none)"
        )
        lines.append(f"frames: {describe_settings(settings)}, {origin}")
    lines.append(scored.used)
    lines.append("")
    lines.append("scores (sorted):")
    for j in order:
        mark = "confident" if scores[j] > upper else ("not" if scores[j] < lower else "undecided")
        lines.append(f"  {genres[j]:<{width}}  {scores[j]:.3f}  {mark}")
    lines.append("")
    lines.append(f"confident (> {upper:g}): {', '.join(confident) or '(none)'}")
    lines.append(f"undecided ({lower:g}..{upper:g}): {', '.join(undecided) or '(none)'}")
    if per_slice is None:
        return "\n".join(lines)
    lines.append("")
    lines.append("per slice (top 3):")
    for i, row in enumerate(per_slice):
        top = np.argsort(-row, kind="stable")[:3]
        frames_in = min(depth, n_frames - i * depth)
        lines.append(
            f"  slice {i:>3} (frames {i * depth}-{i * depth + frames_in - 1}): "
            + ", ".join(f"{genres[j]} {row[j]:.2f}" for j in top)
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Score the 18 genres of one film trailer with a trained model.")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object instead of the report")
    p.add_argument("model", help="a train-stage run folder, or a trained .keras file with model_info.json beside it")
    p.add_argument("trailer", help="video file, folder of frame images, or http(s) URL")
    p.add_argument("--lower", type=float, default=0.25, help="below this a genre is confidently absent (default 0.25)")
    p.add_argument(
        "--upper",
        type=float,
        default=0.75,
        help="above this a genre is confidently present (default 0.75, as in the paper)",
    )
    p.add_argument(
        "--aggregate",
        choices=("mean", "max", "topk"),
        default="mean",
        help="slice scores to film score (default mean, as in the paper's code)",
    )
    p.add_argument("--top-k", type=int, default=3, help="slices averaged by --aggregate topk")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--step",
        type=float,
        default=None,
        help="keep every STEP-th frame (default: as the model was trained, from model_info.json)",
    )
    p.add_argument("--step-unit", choices=("frames", "seconds"), default=None)
    p.add_argument("--resize", choices=("squash", "crop"), default=None)
    p.add_argument("--min-seconds", type=float, default=None, help="reject shorter trailers (default: no bound)")
    p.add_argument("--max-seconds", type=float, default=None, help="reject longer trailers (default: no bound)")
    return p


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROG)
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "(not installed)"


def as_json(genres, scored, trailer: Trailer, settings: FrameSettings, info: ModelInfo, lower: float, upper: float):
    """The machine-readable result: what the report says, as numbers."""
    scores = {g: round(float(v), 6) for g, v in zip(genres, scored.scores)}
    return {
        "trailer": trailer.source,
        "note": trailer.note,
        "model": {"kind": info.model, "seed": info.seed, "profile": info.profile},
        "frames": {**settings.as_dict(), "as_trained": info.frames is not None and settings == info.frames},
        "used": scored.used,
        "scores": scores,
        "confident": [g for g in sorted(scores, key=scores.get, reverse=True) if scores[g] > upper],
        "undecided": [g for g in sorted(scores, key=scores.get, reverse=True) if lower <= scores[g] <= upper],
        "thresholds": {"lower": lower, "upper": upper},
        "per_slice": None
        if scored.per_slice is None
        else [[round(float(v), 6) for v in row] for row in scored.per_slice],
    }


def run(args: argparse.Namespace) -> str:
    if not 0.0 <= args.lower <= args.upper <= 1.0:
        raise InferenceError(f"need 0 <= --lower <= --upper <= 1, got {args.lower} and {args.upper}")
    run_dir, model_path = locate_model(args.model)
    info = read_model_info(run_dir)
    settings = frame_settings(info, args)
    # The input is checked before the model loads: a bad trailer fails in a second.
    with tempfile.TemporaryDirectory(prefix="trailer-genres-") as tmp:
        trailer = load_trailer(args.trailer, settings, Path(tmp), hear=bool((info.extra or {}).get("audio")))
    with quiet_native_stderr():
        loaded = load_model(run_dir, model_path, info)
        scored = loaded.kind.score_frames(
            loaded.model,
            info,
            trailer.frames,
            how=args.aggregate,
            top_k=args.top_k,
            batch_size=args.batch_size,
            sound=trailer.sound,
        )
    if len(scored.scores) != len(info.genres):
        raise InferenceError(
            f"model gives {len(scored.scores)} scores but model_info.json lists {len(info.genres)} genres"
        )
    if args.json:
        return json.dumps(as_json(info.genres, scored, trailer, settings, info, args.lower, args.upper), indent=1)
    return format_report(
        info.genres, scored, len(trailer.frames), args.lower, args.upper, trailer, settings, info.frames
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except InferenceError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else still ends in one line, with its type for a bug report
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{PROG}: error: {type(exc).__name__}: {first}", file=sys.stderr)
        return EXIT_UNEXPECTED
    try:
        print(report, flush=True)
    except BrokenPipeError:  # `trailer-genres ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
