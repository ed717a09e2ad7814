"""Decoding one trailer into its kept frames: one ffmpeg process, scaled in ffmpeg.

``extract_trailer`` runs the ffmpeg binary bundled with imageio-ffmpeg once per
trailer. ffmpeg decodes every frame (inter-frame codecs need them all), keeps
every ``step``-th one with a ``select`` filter, scales only the kept frames to
``size`` x ``size`` and writes them as raw RGB24 to a pipe, so Python never holds
a full-size frame. The same run's log (``-v verbose`` on stderr) gives the
container's claimed duration, the stream's frame rate and the exact number of
decoded frames, so no second probe process is needed.

What ``step`` means
-------------------
* ``step_unit="frames"`` (the paper's choice, default 100): frames number ``0, step,
  2*step, ...`` in *decoding order*, counted over the frames the decoder actually
  delivers. For a variable-frame-rate file this is every ``step``-th delivered
  frame, whatever its timestamp: the time between kept frames follows the local
  frame rate (a 10 fps stretch is sampled three times more sparsely in time than a
  30 fps one). Frames without timestamps are counted like any other.
* ``step_unit="seconds"``: the first frame in each ``step``-second bin of
  presentation time, the bins anchored at zero (``floor(t / step)`` changes). It is
  the same in time for every frame rate, including variable ones, and it does not
  drift. It relies on timestamps; ffmpeg fills in best-effort ones for frames that
  lack them (raw streams, AVI with packed B-frames).

How frames are resized
----------------------
* ``resize="squash"`` (default, as in the paper): the whole picture is scaled to
  ``size`` x ``size``, ignoring its aspect ratio. Nothing is cut off, shapes are
  stretched; a non-square-pixel (anamorphic) file is handled for free, since the
  stored pixel grid is mapped to the square as a whole.
* ``resize="crop"``: the largest centred square *of the displayed picture* (the
  sample aspect ratio taken into account) is cut out, then scaled. Shapes keep
  their proportions; the sides of wide frames are lost.

Both use area averaging (``flags=area`` in ffmpeg, ``BOX`` in Pillow for
``resize_frames``), which suits the strong downscaling and is the "detail fuzzing"
the paper describes (its Figure 2).

Outcomes
--------
``missing`` (no file), ``unreadable`` (empty, not a video, no video stream, no frame
decodes), ``too_short`` / ``too_long`` (the claimed duration is outside the bounds:
decided from ffmpeg's header, and ffmpeg is stopped before it decodes anything),
``partial`` (fewer decoded frames than ``partial_below`` times claimed duration x
average frame rate: a truncated file on which ffmpeg still exits 0), ``ok``.

Interruption
------------
Only a file's own fault may prune it. ffmpeg runs in a session of its own, so a
terminal's Ctrl-C (SIGINT to the whole foreground process group) reaches the
Python caller, not ffmpeg; the caller stops its decodes through a ``StopSwitch``.
A decode stopped that way, or an ffmpeg stopped by a signal from outside (SIGINT,
SIGTERM, SIGHUP, SIGQUIT, SIGKILL: a user, a scheduler, the OOM killer), raises
``Interrupted`` instead of returning an outcome, so the caller records nothing
for the trailer and a rerun decodes it again. A crash on a bad file (SIGSEGV,
SIGABRT, ...) is the file's fault and stays ``unreadable`` or ``partial``.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lib.core.ffmpeg import ffmpeg_exe
from lib.core.params import FrameSettings

OUTCOMES = ("ok", "missing", "unreadable", "too_short", "too_long", "partial")
PRUNED = tuple(o for o in OUTCOMES if o != "ok")
STEP_UNITS = ("frames", "seconds")
RESIZE_MODES = ("squash", "crop")
PAPER = FrameSettings()  # the one set of defaults: the paper's, defined in lib.core.params


class Interrupted(Exception):
    """A decode stopped from outside (Ctrl-C, SIGTERM, a stage shutting down): not the file's fault, no outcome."""


class StopSwitch:
    """Stops, at once and for good, every ffmpeg started under it (by ``extract_trailer(..., stop=...)``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            procs = list(self._procs)
        for proc in procs:
            _kill(proc)

    def _track(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)
            stopped = self._stopped
        if stopped:  # stopped between the check before Popen and now
            _kill(proc)

    def _forget(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)


def _kill(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
    except OSError:  # already reaped
        pass


# Signals by which something outside the file stops a process (a crash on bad input raises others).
_OUTSIDE_STOPS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGKILL}
# ffmpeg's "Exiting normally, received signal 2."
_RECEIVED_SIGNAL = re.compile(r"^Exiting normally, received signal (\d+)")


@dataclass
class Extraction:
    outcome: str
    reason: str
    duration: float | None  # seconds: the container's claim, else estimated from the decoded frames
    frames_decoded: int
    frames: np.ndarray  # (k, size, size, 3) uint8, the kept frames in trailer order
    fps: float | None = field(default=None)  # the video stream's average frame rate

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def check_settings(step: float, step_unit: str, size: int, resize: str) -> None:
    """Raise ValueError on settings no trailer could satisfy (a caller's mistake, not bad input)."""
    if step_unit not in STEP_UNITS:
        raise ValueError(f"step_unit must be one of {STEP_UNITS}, got {step_unit!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step!r}")
    if step_unit == "frames" and int(step) != step:
        raise ValueError(f"a step in frames must be a whole number, got {step!r}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def video_filter(step: float, step_unit: str, size: int, resize: str) -> str:
    """The ffmpeg filter chain: select first, so that only kept frames are scaled."""
    if step_unit == "frames":
        select = rf"select=not(mod(n\,{int(step)}))"
    else:
        s = repr(float(step))
        select = rf"select=isnan(prev_selected_t)+gte(floor(t/{s})-floor(prev_selected_t/{s})\,1)"
    chain = [select]
    if resize == "crop":
        # The centred square of the displayed picture, in stored pixels: sar = pixel width / height.
        chain.append(r"crop=w=min(iw\,ih/sar):h=min(ih\,iw*sar):exact=1")  # exact: no chroma-grid shift
    chain += [f"scale={int(size)}:{int(size)}:flags=area", "format=rgb24"]
    return ",".join(chain)


def ffmpeg_command(path: str | Path, vf: str, threads: int = 1, extra_output: list[str] | None = None) -> list[str]:
    """``extra_output``: arguments of a second output fed by the same decode (lib.frames.features)."""
    # options stay paired with their values
    # fmt: off
    return [
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-v", "verbose",
        "-threads", str(threads), "-i", str(path),
        "-an", "-sn", "-dn", "-vf", vf, "-filter_threads", str(threads),
        # passthrough: hand over exactly the selected frames, never duplicate or drop to a constant rate
        "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        *(extra_output or []),
    ]
    # fmt: on


# --- reading ffmpeg's log --------------------------------------------------------------

_DURATION = re.compile(r"^\s*Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)")
_STREAM = re.compile(r"^\s*Stream #(\d+:\d+)\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_RATE = r"(\d+(?:\.\d+)?)(k?) "
_FPS = re.compile(_RATE + "fps")
_TBR = re.compile(_RATE + "tbr")
_MAPPING = re.compile(r"^\s*Stream #(\d+:\d+) -> #\d+:\d+")
_GRAPH_RATE = re.compile(r"input from stream (\d+:\d+) .* fr:(\d+)/(\d+)")
_DECODED = re.compile(
    r"Input stream #(\d+:\d+) \(video\): \d+ packets read .*?; (\d+) frames decoded; (\d+) decode errors"
)
_NOT_ERRORS = re.compile(r"decode errors|Statistics:|Terminating thread|Exiting with exit code 0")
_ERROR = re.compile(r"error|invalid|no such file|does not contain|could not|failed|not found|unsupported|truncat", re.I)


def _rate(match: re.Match | None) -> float | None:
    if not match:
        return None
    value = float(match.group(1)) * (1000 if match.group(2) else 1)
    return value if value > 0 else None


@dataclass
class FfmpegLog:
    """What one ffmpeg run said about its input, gathered line by line."""

    duration: float | None = None  # the container's claim
    streams: dict = field(default_factory=dict)  # "0:1" -> (avg fps, tbr) for video streams
    mapped: str | None = None  # the input video stream ffmpeg chose
    graph_rate: float | None = None  # the frame rate the filter graph was configured with
    frames_decoded: int = 0
    decode_errors: int = 0
    received_signal: int | None = None  # ffmpeg caught a signal and stopped early (exit code 255)
    errors: list = field(default_factory=list)
    section: str = "start"  # start -> input -> mapping -> run

    def feed(self, line: str) -> None:
        if line.startswith("Input #"):
            self.section = "input"
        elif line.startswith("Stream mapping:"):
            self.section = "mapping"
        elif line.startswith("Output #") or line.startswith("Press [q]"):
            self.section = "run"
        if self.section == "input":
            if m := _DURATION.match(line):
                if m.group(1) is not None:
                    self.duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
            elif (m := _STREAM.match(line)) and m.group(2) == "Video":
                self.streams[m.group(1)] = (_rate(_FPS.search(m.group(3))), _rate(_TBR.search(m.group(3))))
        elif self.section == "mapping" and self.mapped is None:
            if m := _MAPPING.match(line):
                self.mapped = m.group(1)
        if m := _GRAPH_RATE.search(line):
            num, den = int(m.group(2)), int(m.group(3))
            if num > 0 and den > 0:
                self.graph_rate = num / den
        elif m := _DECODED.search(line):
            self.frames_decoded += int(m.group(2))
            self.decode_errors += int(m.group(3))
        elif m := _RECEIVED_SIGNAL.match(line):
            self.received_signal = int(m.group(1))
        elif _ERROR.search(line) and not _NOT_ERRORS.search(line):
            self.errors.append(line.strip())

    @property
    def header_done(self) -> bool:
        return self.section == "run" or (self.section == "mapping" and self.mapped is not None)

    @property
    def fps(self) -> float | None:
        """The chosen stream's average frame rate (right for variable rates), else its nominal one."""
        avg, tbr = self.streams.get(self.mapped, (None, None)) if self.mapped else (None, None)
        return avg or self.graph_rate or tbr

    def first_error(self) -> str:
        # ffmpeg prefixes lines with "[component @ 0x...]": an address is noise in a manifest
        return re.sub(r"^(\[[^\]]*\]\s*)+", "", self.errors[0]) if self.errors else ""


def _out_of_bounds(
    duration: float | None, min_seconds: float | None, max_seconds: float | None
) -> tuple[str, str] | None:
    if duration is None:
        return None
    if min_seconds is not None and duration < min_seconds:
        return "too_short", f"{duration:.1f} s < {min_seconds:g} s"
    if max_seconds is not None and duration > max_seconds:
        return "too_long", f"{duration:.1f} s > {max_seconds:g} s"
    return None


def _frames_from_bytes(data: bytes, size: int) -> np.ndarray:
    frame_bytes = size * size * 3
    k = len(data) // frame_bytes  # a killed ffmpeg may leave a trailing partial frame
    return np.frombuffer(data[: k * frame_bytes], dtype=np.uint8).reshape(k, size, size, 3).copy()


def _empty(size: int) -> np.ndarray:
    return np.zeros((0, size, size, 3), dtype=np.uint8)


def extract_trailer(
    path: str | Path | None,
    *,
    step: float = PAPER.step,
    step_unit: str = PAPER.step_unit,
    size: int = PAPER.size,
    resize: str = PAPER.resize,
    min_seconds: float | None = PAPER.min_seconds,
    max_seconds: float | None = PAPER.max_seconds,
    partial_below: float = PAPER.partial_below,
    threads: int = 1,
    timeout: float | None = None,
    stop: StopSwitch | None = None,
    extra_output: list[str] | None = None,
) -> Extraction:
    """Decode one trailer and keep every ``step``-th frame as ``size`` x ``size`` RGB.

    Bad input never raises: it comes back as an outcome with a reason. ``None``
    bounds disable the duration check. ``threads`` is ffmpeg's own per-process
    threading (1 when trailers run in parallel); ``timeout`` (seconds) stops a hung
    ffmpeg and reports the trailer as unreadable. ``stop`` lets a caller stop the
    decode from another thread; a stopped decode, or an ffmpeg stopped by a signal
    from outside, raises ``Interrupted`` (see the module's docstring).
    """
    check_settings(step, step_unit, size, resize)
    size = int(size)
    if path is None or not Path(path).exists():
        return Extraction("missing", "no trailer file", None, 0, _empty(size))
    path = Path(path)
    if not path.is_file():
        return Extraction("unreadable", "not a regular file", None, 0, _empty(size))
    if path.stat().st_size == 0:
        return Extraction("unreadable", "empty file (0 bytes)", None, 0, _empty(size))

    cmd = ffmpeg_command(path, video_filter(step, step_unit, size, resize), threads, extra_output)
    if stop is not None and stop.stopped:
        raise Interrupted(f"{path.name}: stopped before decoding")
    try:
        # A session of its own: a terminal's Ctrl-C must reach the caller, who decides, not ffmpeg
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:  # e.g. too many open processes: report, do not crash the run
        return Extraction("unreadable", f"could not start ffmpeg: {exc}", None, 0, _empty(size))
    if stop is not None:
        stop._track(proc)

    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    timer = None
    timed_out = threading.Event()
    if timeout is not None:

        def _kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, _kill)
        timer.start()

    log, early = FfmpegLog(), None
    try:
        for raw in iter(proc.stderr.readline, b""):
            for line in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                log.feed(line)
            if early is None and log.header_done:
                # Out-of-bounds trailers are pruned from the header alone: stop before decoding.
                early = bool(log.streams) and _out_of_bounds(log.duration, min_seconds, max_seconds) or False
                if early:
                    proc.kill()
        proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:  # interrupted: never leave an ffmpeg behind
            proc.kill()
            proc.wait()
        reader.join()
        proc.stdout.close()
        proc.stderr.close()
        if stop is not None:
            stop._forget(proc)

    if stop is not None and stop.stopped:
        raise Interrupted(f"{path.name}: decode stopped after {log.frames_decoded} frames; nothing recorded")
    if not early and not timed_out.is_set():
        by = -proc.returncode if proc.returncode < 0 else log.received_signal if proc.returncode == 255 else None
        if by in _OUTSIDE_STOPS:
            raise Interrupted(
                f"{path.name}: ffmpeg was stopped by {signal.Signals(by).name} from outside "
                f"after {log.frames_decoded} frames; nothing recorded"
            )
    fps = log.fps
    if early:
        return Extraction(early[0], f"claimed duration {early[1]}; not decoded", log.duration, 0, _empty(size), fps)
    frames = _frames_from_bytes(b"".join(chunks), size)
    if timed_out.is_set():
        return Extraction(
            "unreadable", f"ffmpeg timed out after {timeout:g} s", log.duration, log.frames_decoded, frames, fps
        )
    if log.frames_decoded == 0 or len(frames) == 0:
        if log.section == "start":  # ffmpeg could not even open it as a media file
            why = log.first_error() or f"ffmpeg exited with code {proc.returncode}"
        elif not log.streams:
            why = "no video stream"
        else:
            why = log.first_error() or "no frame decodes"
        return Extraction("unreadable", why, log.duration, log.frames_decoded, frames, fps)

    duration, estimated = log.duration, False
    if duration is None and (log.graph_rate or fps):
        # Raw streams carry no duration; their nominal rate is a better guess than the demuxer's average
        duration, estimated = log.frames_decoded / (log.graph_rate or fps), True
    if bounds := _out_of_bounds(duration, min_seconds, max_seconds):
        note = " (estimated from the decoded frames)" if estimated else ""
        return Extraction(bounds[0], f"duration {bounds[1]}{note}", duration, log.frames_decoded, frames, fps)
    if proc.returncode != 0:
        why = log.first_error() or f"ffmpeg exited with code {proc.returncode}"
        return Extraction(
            "partial", f"{why} (after {log.frames_decoded} frames)", duration, log.frames_decoded, frames, fps
        )
    if not estimated and duration and fps:
        expected = duration * fps
        if log.frames_decoded < partial_below * expected:
            why = f"decoded {log.frames_decoded} of ~{expected:.0f} frames claimed ({duration:.1f} s x {fps:g} fps)"
            return Extraction("partial", why, duration, log.frames_decoded, frames, fps)
    reason = ""
    if log.decode_errors:
        reason = f"{log.decode_errors} decode errors"
    elif estimated:
        reason = "no container duration; estimated from the decoded frames"
    return Extraction("ok", reason, duration, log.frames_decoded, frames, fps)


class FramesOutput:
    """The kept frames at a second size, as one more output of the same decode.

    ``args`` go after the frames output on ffmpeg's command line (``extract_trailer``'s
    ``extra_output``): ffmpeg decodes the trailer once and feeds this output's own filter
    chain, the same ``select`` (so the very same frames) then its own resize, written as
    raw RGB to a file in ``folder``. ``read`` gives them back as ``(k, size, size, 3)``.
    The frames stage uses it for the encoder's input size (``lib.encoders.native``).
    """

    def __init__(self, folder: str | Path, step: float, step_unit: str, size: int, resize: str, threads: int = 1):
        check_settings(step, step_unit, size, resize)
        self.size = int(size)
        self.path = Path(folder) / f"frames-{self.size}.rgb"
        # fmt: off
        self.args = [
            "-an", "-sn", "-dn", "-vf", video_filter(step, step_unit, self.size, resize),
            "-filter_threads", str(threads), "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", "rgb24", str(self.path),
        ]
        # fmt: on

    def read(self) -> np.ndarray:
        try:
            data = self.path.read_bytes()
        except OSError:
            return _empty(self.size)
        return _frames_from_bytes(data, self.size)


def resize_frames(frames: np.ndarray | Iterable[np.ndarray], size: int = 64, mode: str = "squash") -> np.ndarray:
    """Already-decoded images (a folder of frames, say) resized the way the stage does it.

    ``frames`` is an (n, H, W, C) array or any iterable of (H, W[, C]) arrays,
    possibly of different sizes; grey images are repeated to RGB, an alpha channel
    is dropped. Area averaging (Pillow's BOX), like ffmpeg's ``flags=area``.
    Square pixels are assumed.
    """
    from PIL import Image

    check_settings(1, "frames", size, mode)
    size = int(size)
    out = []
    for image in frames:
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        image = image[:, :, :3]
        if image.dtype != np.uint8:
            raise ValueError(f"expected uint8 images, got {image.dtype}")
        if mode == "crop":
            h, w = image.shape[:2]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            image = image[top : top + side, left : left + side]
        out.append(np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.BOX)))
    if not out:
        return _empty(size)
    return np.stack(out).astype(np.uint8, copy=False)


def expected_kept(frames_decoded: int, step: int) -> int:
    """How many frames a frame-unit step keeps out of ``frames_decoded``: 0, step, 2*step, ..."""
    return math.ceil(frames_decoded / step) if frames_decoded > 0 else 0
