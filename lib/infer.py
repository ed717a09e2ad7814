"""Genre report for one new trailer (the paper code's ``-f`` and ``-yt`` options).

    python -m lib.infer MODEL TRAILER [--lower 0.25] [--upper 0.75] [--aggregate mean]
    trailer-genres MODEL TRAILER ...

MODEL is a trained ``.keras`` file with its ``model_info.json`` beside it (slice depth,
frame size, genres; for the whole-trailer ``tsn`` model its number of segments). TRAILER is a video file, a folder of frame images, or an
http(s) URL that yt-dlp can fetch (YouTube or a direct link to a video file).

The trailer goes through the pipeline's own code: ``lib.extract`` decodes and resizes
the frames as the frames stage does, ``lib.slicing.slice_film`` cuts them into slices
as in training, ``lib.predict.aggregate_scores`` turns slice scores into film scores.
A ``tsn`` model instead scores the whole trailer at once from the centred frame of
each of its segments (``lib.tsn.film_inputs``), as in evaluation.

Bad input (missing or broken file, a URL that does not download) ends with one line
on stderr and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from lib.native_stderr import quiet_native_stderr  # TensorFlow's C++ runtime writes to fd 2 directly

PROG = "trailer-genres"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
FRAME_DEFAULTS = {"step": 100, "step_unit": "frames", "resize": "squash"}
EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 1


class InferenceError(Exception):
    """A problem with the user's input, reported as one line."""


@dataclass
class Trailer:
    frames: np.ndarray  # (k, size, size, 3) uint8
    source: str
    note: str = ""


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def read_model_info(model_path: Path) -> dict:
    if not model_path.is_file():
        raise InferenceError(f"model file not found: {model_path}")
    info_path = model_path.parent / "model_info.json"
    if not info_path.is_file():
        raise InferenceError(f"{info_path} not found: the train stage writes it next to the model")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InferenceError(f"cannot read {info_path}: {exc}") from None
    missing = [k for k in ("slice_depth", "size", "genres") if k not in info]
    if missing:
        raise InferenceError(f"{info_path} lacks {missing}")
    return info


def frame_settings(info: dict, args: argparse.Namespace) -> dict:
    """Extraction settings: command line, else model_info.json, else params.yaml's frames section."""
    try:
        from lib.config import load_params

        params = load_params("frames")
    except Exception:  # params.yaml is optional for a packaged model
        params = {}
    out = {}
    for key in FRAME_DEFAULTS:
        cli = getattr(args, key)
        out[key] = cli if cli is not None else info.get(key, params.get(key, FRAME_DEFAULTS[key]))
    return out


class _QuietLogger:
    """yt-dlp writes to stderr unless given a logger; errors reach us as exceptions."""

    def debug(self, msg):
        pass

    info = warning = error = debug


def fetch_url(url: str, directory: Path) -> Path:
    """Download ``url`` with yt-dlp into ``directory``; returns the video file."""
    import imageio_ffmpeg
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
        "ffmpeg_location": imageio_ffmpeg.get_ffmpeg_exe(),
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


def frames_from_video(path: Path, size: int, settings: dict, min_seconds, max_seconds) -> Trailer:
    from lib.extract import extract_trailer

    if not path.exists():
        raise InferenceError(f"trailer not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise InferenceError(f"{path} is empty (0 bytes)")
    result = extract_trailer(
        path,
        step=settings["step"],
        step_unit=settings["step_unit"],
        size=size,
        resize=settings["resize"],
        min_seconds=min_seconds,
        max_seconds=max_seconds,
    )
    frames = result.frames
    if result.outcome not in ("ok", "partial") or frames is None or len(frames) == 0:
        reason = result.reason or "no frames decoded"
        raise InferenceError(f"{path}: {result.outcome}: {reason}")
    note = f"partial file: {result.reason}" if result.outcome == "partial" else ""
    duration = f", {result.duration:.1f} s" if result.duration else ""
    return Trailer(np.asarray(frames), f"{path} ({result.frames_decoded} frames decoded{duration})", note)


def frames_from_folder(folder: Path, size: int, settings: dict) -> Trailer:
    """Every image in ``folder`` in name order, as already-extracted frames (no step applied)."""
    import cv2

    from lib.extract import resize_frames

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
    frames = resize_frames(images, size, settings["resize"])  # images may differ in size
    return Trailer(frames, f"{folder} ({len(frames)} images)", note)


def load_trailer(spec: str, size: int, settings: dict, min_seconds, max_seconds, workdir: Path) -> Trailer:
    if is_url(spec):
        path = fetch_url(spec, workdir)
        trailer = frames_from_video(path, size, settings, min_seconds, max_seconds)
        trailer.source = f"{spec} -> {trailer.source}"
        return trailer
    path = Path(spec).expanduser()
    if path.is_dir():
        return frames_from_folder(path, size, settings)
    return frames_from_video(path, size, settings, min_seconds, max_seconds)


def load_model(model_path: Path, info: dict | None = None):
    import keras

    # The study's custom layers register themselves when their modules are imported.
    from lib import models as _models  # noqa: F401
    from lib import tsn

    try:
        if info and info.get("model") == "tsn":
            tsn.ensure_loadable(info)  # a preset encoder's classes live in keras-hub
            return tsn.restore_frozen(keras.saving.load_model(model_path), info)
        return keras.saving.load_model(model_path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InferenceError(f"cannot load model {model_path}: {first}") from None


def score_trailer_tsn(model, frames: np.ndarray, n_segments: int) -> tuple[np.ndarray, int]:
    """(film scores, frames used): the whole-trailer model on the centred frame of each segment."""
    from lib.tsn import film_inputs

    inputs = film_inputs(frames, n_segments)
    return np.asarray(model.predict(inputs, verbose=0), dtype=float)[0], int(inputs["mask"].sum())


def score_trailer(model, frames: np.ndarray, depth: int, how: str, top_k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(film scores, slice scores) through the pipeline's slicing and aggregation."""
    from lib.predict import aggregate_scores
    from lib.slicing import slice_film

    slices = slice_film(frames, depth)
    per_slice = np.asarray(model.predict(slices, batch_size=batch_size, verbose=0), dtype=float)
    return aggregate_scores(per_slice, how, top_k), per_slice


def format_report(genres: Sequence[str], scores: np.ndarray, per_slice: np.ndarray | None, n_frames: int, depth: int, lower: float, upper: float, trailer: Trailer, how: str, used_line: str | None = None) -> str:
    """The report; ``per_slice`` None (a whole-trailer model) drops the per-slice part,
    and ``used_line`` then says which frames the model saw."""
    order = np.argsort(-scores, kind="stable")
    confident = [genres[j] for j in order if scores[j] > upper]
    undecided = [genres[j] for j in order if lower <= scores[j] <= upper]
    width = max(len(g) for g in genres)
    lines = [f"trailer: {trailer.source}"]
    if trailer.note:
        lines.append(f"note: {trailer.note}")
    if per_slice is None:
        lines.append(used_line or "whole-trailer model")
    else:
        padded = len(per_slice) * depth - n_frames
        lines.append(f"slices used: {len(per_slice)} of {depth} frames from {n_frames} kept frames ({padded} zero-padded in the last slice); film score = {how} over slices")
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
        lines.append(f"  slice {i:>3} (frames {i * depth}-{i * depth + frames_in - 1}): " + ", ".join(f"{genres[j]} {row[j]:.2f}" for j in top))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Score the 18 genres of one film trailer with a trained model.")
    p.add_argument("model", help="trained .keras file (model_info.json must sit beside it)")
    p.add_argument("trailer", help="video file, folder of frame images, or http(s) URL")
    p.add_argument("--lower", type=float, default=0.25, help="below this a genre is confidently absent (default 0.25)")
    p.add_argument("--upper", type=float, default=0.75, help="above this a genre is confidently present (default 0.75, as in the paper)")
    p.add_argument("--aggregate", choices=("mean", "max", "topk"), default="mean", help="slice scores to film score (default mean, as in the paper's code)")
    p.add_argument("--top-k", type=int, default=3, help="slices averaged by --aggregate topk")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--step", type=float, default=None, help="keep every STEP-th frame (default: model_info.json, else params.yaml)")
    p.add_argument("--step-unit", choices=("frames", "seconds"), default=None)
    p.add_argument("--resize", choices=("squash", "crop"), default=None)
    p.add_argument("--min-seconds", type=float, default=None, help="reject shorter trailers (default: no bound)")
    p.add_argument("--max-seconds", type=float, default=None, help="reject longer trailers (default: no bound)")
    return p


def run(args: argparse.Namespace) -> str:
    if not 0.0 <= args.lower <= args.upper <= 1.0:
        raise InferenceError(f"need 0 <= --lower <= --upper <= 1, got {args.lower} and {args.upper}")
    model_path = Path(args.model).expanduser()
    info = read_model_info(model_path)
    genres, depth, size = list(info["genres"]), int(info["slice_depth"]), int(info["size"])
    settings = frame_settings(info, args)
    if settings["step_unit"] == "frames":
        settings["step"] = int(settings["step"])
    # The input is checked before the model loads: a bad trailer fails in a second.
    with tempfile.TemporaryDirectory(prefix="trailer-genres-") as tmp:
        trailer = load_trailer(args.trailer, size, settings, args.min_seconds, args.max_seconds, Path(tmp))
    with quiet_native_stderr():
        model = load_model(model_path, info)
        if info.get("model") == "tsn":
            n_segments = int(info["tsn"]["n_segments"])
            scores, used = score_trailer_tsn(model, trailer.frames, n_segments)
            per_slice = None
            used_line = (f"frames used: {used} of {len(trailer.frames)} kept frames, the centred one of each of {n_segments} segments"
                         + (f" ({n_segments - used} padded and masked)" if used < n_segments else "") + "; one whole-trailer score")
        else:
            scores, per_slice = score_trailer(model, trailer.frames, depth, args.aggregate, args.top_k, args.batch_size)
            used_line = None
    if len(scores) != len(genres):
        raise InferenceError(f"model gives {len(scores)} scores but model_info.json lists {len(genres)} genres")
    return format_report(genres, scores, per_slice, len(trailer.frames), depth, args.lower, args.upper, trailer, args.aggregate, used_line)


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
