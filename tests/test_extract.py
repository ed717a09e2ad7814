"""extract_trailer on small clips made with the bundled ffmpeg: formats, outcomes, step and resize semantics."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import numpy as np
import psutil
import pytest

from lib.frames import extract
from lib.frames.extract import (
    Interrupted,
    StopSwitch,
    expected_kept,
    extract_trailer,
    ffmpeg_exe,
    resize_frames,
    video_filter,
)

FPS = 24
SECONDS = 2  # 48 frames: tiny, so the whole file stays fast
STEP = 5
NO_BOUNDS = dict(min_seconds=None, max_seconds=None)


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def src_args(size: str = "96x54", seconds: float = SECONDS, fps: int = FPS) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}:duration={seconds}"]


def sine(seconds: float = SECONDS, freq: int = 440) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
VPX = ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"]

# name -> (file name, ffmpeg arguments after -y, expected decoded frames)
FORMATS = {
    "mp4_h264_aac": ("a.mp4", [*src_args(), *sine(), *H264, "-c:a", "aac", "-shortest"], 48),
    "webm_vp8": ("a.webm", [*src_args(), "-c:v", "libvpx", *VPX], 48),
    "webm_vp9_odd_size": ("b.webm", [*src_args("97x55"), "-c:v", "libvpx-vp9", *VPX], 48),
    "avi_mpeg4": ("a.avi", [*src_args(), "-c:v", "mpeg4"], 48),
    # packed B-frames: the AVI stores frames without their own presentation timestamps
    "avi_mpeg4_packed_bframes": ("b.avi", [*src_args(), "-c:v", "mpeg4", "-bf", "2", "-vtag", "XVID"], 48),
    "mkv_two_audio_tracks": (
        "a.mkv",
        [*src_args(), *sine(), *sine(freq=880), "-map", "0", "-map", "1", "-map", "2", *H264, "-c:a", "libvorbis"],
        48,
    ),
    "gif": ("a.gif", [*src_args(), "-c:v", "gif"], 48),
    "mp4_odd_size": (
        "odd.mp4",
        [*src_args("97x55"), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p"],
        48,
    ),
    "mp4_non_square_pixels": ("sar.mp4", [*src_args(), "-vf", "setsar=4/3", *H264], 48),
    "mp4_no_audio": ("silent.mp4", [*src_args(), *H264, "-an"], 48),
    # variable frame rate: of every 10 frames at 30 fps only 3 survive in the first second
    "mp4_vfr": (
        "vfr.mp4",
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=96x54:rate=30:duration=2",
            "-vf",
            r"select=lt(mod(n\,10)\,3)+gte(t\,1)",
            "-fps_mode",
            "vfr",
            *H264,
        ],
        39,
    ),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    made = {}
    for name, (filename, args, _) in FORMATS.items():
        ffmpeg(*args, str(root / filename))
        made[name] = root / filename
    return made


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_decodes_to_kept_frames(clips, name):
    result = extract_trailer(clips[name], step=STEP, **NO_BOUNDS)
    assert result.outcome == "ok", result.reason
    assert result.frames_decoded == FORMATS[name][2]
    assert result.frames.dtype == np.uint8
    assert result.frames.shape == (expected_kept(result.frames_decoded, STEP), 64, 64, 3)
    assert result.duration == pytest.approx(SECONDS, abs=0.1)
    assert result.frames.std() > 10, "testsrc is colourful; flat frames mean a broken decode"


def test_duration_bounds_apply_to_every_format(clips):
    result = extract_trailer(
        clips["webm_vp9_odd_size"], step=STEP, min_seconds=1.0, max_seconds=3.0, size=32, resize="crop"
    )
    assert result.outcome == "ok" and result.frames.shape[1:] == (32, 32, 3)


# --- which frames are kept -------------------------------------------------------------


@pytest.fixture(scope="module")
def ramp(tmp_path_factory):
    """Lossless clip whose frame n is grey level 5n: a kept frame tells its own number."""
    path = tmp_path_factory.mktemp("ramp") / "ramp.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"color=black:size=32x32:rate={FPS}:duration=2",
        "-vf",
        "format=gbrp,geq=r='5*N':g='5*N':b='5*N'",
        "-c:v",
        "ffv1",
        str(path),
    )
    return path


def frame_numbers(frames: np.ndarray) -> list[int]:
    return [int(round(f.mean() / 5)) for f in frames]


def test_step_in_frames_keeps_every_nth_decoded_frame(ramp):
    result = extract_trailer(ramp, step=STEP, size=8, **NO_BOUNDS)
    assert frame_numbers(result.frames) == list(range(0, 48, STEP))


def test_step_in_seconds_keeps_the_first_frame_of_each_bin(ramp):
    result = extract_trailer(ramp, step=0.5, step_unit="seconds", size=8, **NO_BOUNDS)
    assert frame_numbers(result.frames) == [0, 12, 24, 36]


def test_step_in_seconds_follows_time_on_variable_frame_rate(tmp_path):
    # Frames 0-2 at 0, 1/30, 2/30 s, then the rest from 1 s on: 1-second bins keep frame 0 and the frame at 1 s.
    path = tmp_path / "vfr_ramp.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=black:size=32x32:rate=30:duration=2",
        "-vf",
        r"format=gbrp,geq=r='4*N':g='4*N':b='4*N',select=lt(n\,3)+gte(t\,1)",
        "-fps_mode",
        "vfr",
        "-c:v",
        "ffv1",
        str(path),
    )
    by_time = extract_trailer(path, step=1, step_unit="seconds", size=8, **NO_BOUNDS)
    assert [int(round(f.mean() / 4)) for f in by_time.frames] == [0, 30]
    by_count = extract_trailer(path, step=3, size=8, **NO_BOUNDS)  # every 3rd delivered frame, whatever its time
    assert [int(round(f.mean() / 4)) for f in by_count.frames][:3] == [0, 30, 33]


# --- resizing -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boxed(tmp_path_factory):
    """Red frame with a green centre that is square as displayed: square pixels, and 2:1 pixels."""
    root = tmp_path_factory.mktemp("boxed")
    square, wide = root / "square.mkv", root / "wide_pixels.mkv"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=red:size=160x90:rate=24:duration=1,drawbox=x=35:y=0:w=90:h=90:color=green:t=fill",
        "-c:v",
        "ffv1",
        str(square),
    )
    # 160x90 stored at SAR 2:1 shows as 320x90: its displayed centre square is 45 stored pixels wide
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=red:size=160x90:rate=24:duration=1,drawbox=x=57:y=0:w=46:h=90:color=green:t=fill,setsar=2/1",
        "-c:v",
        "ffv1",
        str(wide),
    )
    return {"square": square, "wide_pixels": wide}


@pytest.mark.parametrize("which", ["square", "wide_pixels"])
def test_crop_keeps_the_displayed_centre_square_and_squash_keeps_everything(boxed, which):
    crop = extract_trailer(boxed[which], step=STEP, resize="crop", **NO_BOUNDS).frames[0].astype(int)
    squash = extract_trailer(boxed[which], step=STEP, resize="squash", **NO_BOUNDS).frames[0].astype(int)
    assert crop[..., 0].max() < 40, "red sides leaked into the crop"
    assert (crop[..., 1] > 100).all()
    assert squash[:, 0, 0].min() > 200 and squash[:, -1, 0].min() > 200, "squash must keep the red sides"


def test_resize_frames_matches_what_ffmpeg_produces(tmp_path):
    # Smooth colourful content: the two resamplers (ffmpeg's area, Pillow's box) differ only at sharp edges.
    # Every gradients option is fixed (its colours and end points default to random): a random pair of end
    # points close together makes a sharp edge, where the difference reached a 99th percentile of 24. With the
    # gradient spanning the frame corner to corner, 160 random colour pairs never exceeded a mean of 1.07 and a
    # 99th percentile of 4, half the tolerance below.
    path = tmp_path / "gradients.mp4"
    gradient = "gradients=size=192x108:rate=24:duration=1:c0=0xd0402a:c1=0x2a70d0:x0=0:y0=0:x1=191:y1=107:seed=1"
    ffmpeg("-f", "lavfi", "-i", gradient, *H264, str(path))
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        check=True,
        capture_output=True,
    ).stdout
    full = np.frombuffer(raw, np.uint8).reshape(-1, 108, 192, 3)[::STEP]
    for mode in ("squash", "crop"):
        ours = extract_trailer(path, step=STEP, resize=mode, **NO_BOUNDS).frames
        theirs = resize_frames(full, 64, mode)
        assert theirs.shape == ours.shape
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        assert diff.mean() < 2 and np.percentile(diff, 99) < 8, mode


def test_resize_frames_takes_mixed_sizes_grey_and_alpha():
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (50, 80, 3), dtype=np.uint8),
        rng.integers(0, 256, (30, 30), dtype=np.uint8),
        rng.integers(0, 256, (64, 40, 4), dtype=np.uint8),
    ]
    out = resize_frames(images, 16, "squash")
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8
    assert (out[1, ..., 0] == out[1, ..., 1]).all(), "grey stays grey"
    assert resize_frames([], 16).shape == (0, 16, 16, 3)


def test_resize_frames_crop_takes_the_centre():
    image = np.zeros((40, 100, 3), np.uint8)
    image[:, :30] = (255, 0, 0)
    image[:, 30:70] = (0, 255, 0)
    image[:, 70:] = (0, 0, 255)
    out = resize_frames(image[None], 8, "crop")[0]
    assert (out == (0, 255, 0)).all()
    squashed = resize_frames(image[None], 10, "squash")[0]
    assert tuple(squashed[5, 0]) == (255, 0, 0) and tuple(squashed[5, -1]) == (0, 0, 255)


def test_filter_selects_before_scaling():
    vf = video_filter(100, "frames", 64, "crop")
    assert vf.index("select") < vf.index("crop") < vf.index("scale")


# --- outcomes -------------------------------------------------------------------------------


def test_missing(tmp_path):
    assert extract_trailer(tmp_path / "nope.mp4").outcome == "missing"
    assert extract_trailer(None).outcome == "missing"


@pytest.mark.parametrize("kind", ["zero_bytes", "text", "audio_only", "truncated_header"])
def test_unreadable(tmp_path, clips, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("<html>This video is unavailable</html>")
    elif kind == "audio_only":
        path = tmp_path / "audio.m4a"
        ffmpeg(*sine(), str(path))
    else:  # moov atom at the end, cut off: nothing to index the frames with
        path.write_bytes(clips["mp4_no_audio"].read_bytes()[:2000])
    # bounds the 2 s audio would fail: a file without pictures is unreadable, whatever its length
    result = extract_trailer(path, step=STEP, min_seconds=5.0, max_seconds=None)
    assert result.outcome == "unreadable"
    assert result.reason, "a pruned trailer needs its reason"
    assert result.frames.shape == (0, 64, 64, 3)
    if kind == "audio_only":
        assert "no video stream" in result.reason


def test_too_short_and_too_long_are_pruned_from_the_header_without_decoding(clips):
    short = extract_trailer(clips["mp4_h264_aac"], step=STEP, min_seconds=5.0, max_seconds=None)
    long = extract_trailer(clips["mp4_h264_aac"], step=STEP, min_seconds=None, max_seconds=1.0)
    assert (short.outcome, long.outcome) == ("too_short", "too_long")
    assert short.duration == pytest.approx(SECONDS, abs=0.1)
    assert short.frames_decoded == 0 and long.frames_decoded == 0
    assert "2.0 s < 5 s" in short.reason


@pytest.mark.parametrize("name", ["mp4_no_audio", "raw_h264"])
def test_duration_bounds_are_inclusive_at_both_edges(clips, tmp_path, name):
    # Pruned means *outside* [min_seconds, max_seconds]: a trailer exactly as long as a bound is kept.
    if name == "raw_h264":  # no container duration: the bound applies to the duration estimated after decoding
        path = tmp_path / "raw.h264"
        ffmpeg(*src_args(), *H264, "-f", "h264", str(path))
    else:
        path = clips[name]
    duration = extract_trailer(path, step=STEP, **NO_BOUNDS).duration
    assert duration == pytest.approx(SECONDS, abs=0.1)
    at_both = extract_trailer(path, step=STEP, min_seconds=duration, max_seconds=duration)
    assert at_both.outcome == "ok", at_both.reason
    assert at_both.frames.shape[0] == expected_kept(at_both.frames_decoded, STEP) > 0
    assert extract_trailer(path, step=STEP, min_seconds=duration + 0.01, max_seconds=None).outcome == "too_short"
    assert extract_trailer(path, step=STEP, min_seconds=None, max_seconds=duration - 0.01).outcome == "too_long"


def test_partial_when_fewer_frames_decode_than_claimed(tmp_path):
    full = tmp_path / "full.mp4"
    ffmpeg(*src_args(seconds=4), *H264, "-movflags", "+faststart", str(full))  # index first, so a cut file still opens
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert extract_trailer(full, step=STEP, **NO_BOUNDS).outcome == "ok"
    result = extract_trailer(cut, step=STEP, min_seconds=1.0, max_seconds=10.0)
    assert result.outcome == "partial", result.reason
    assert result.duration == pytest.approx(4, abs=0.1)
    assert 0 < result.frames_decoded < 0.9 * 4 * FPS
    assert len(result.frames) == expected_kept(result.frames_decoded, STEP)


def test_raw_stream_without_container_duration_is_estimated_and_bounded(tmp_path):
    path = tmp_path / "raw.h264"
    ffmpeg(*src_args(), *H264, "-f", "h264", str(path))
    ok = extract_trailer(path, step=STEP, min_seconds=1.0, max_seconds=10.0)
    assert ok.outcome == "ok" and ok.duration == pytest.approx(SECONDS, abs=0.1)
    assert "estimated" in ok.reason
    assert extract_trailer(path, step=STEP, min_seconds=5.0, max_seconds=None).outcome == "too_short"


def test_a_hung_ffmpeg_is_stopped_and_reported(clips):
    result = extract_trailer(clips["mp4_h264_aac"], step=STEP, timeout=0.001, **NO_BOUNDS)
    assert result.outcome == "unreadable" and "timed out" in result.reason


@pytest.mark.parametrize(
    "bad", [dict(step=0), dict(step=2.5), dict(step_unit="minutes"), dict(resize="pad"), dict(size=0)]
)
def test_bad_settings_raise(clips, bad):
    with pytest.raises(ValueError):
        extract_trailer(clips["mp4_h264_aac"], **bad)


# --- interruption: only a file's own fault may prune it ----------------------------------


def _slow(monkeypatch):
    """ffmpeg reads its input in real time (-re), so a 2 s clip takes 2 s to decode: time to stop it midway."""
    real = extract.ffmpeg_command

    def command(path, vf, threads=1, extra_output=None):
        cmd = real(path, vf, threads, extra_output)
        return [*cmd[:1], "-re", *cmd[1:]]

    monkeypatch.setattr(extract, "ffmpeg_command", command)


def _decode_in_thread(path, **kw):
    box = {}

    def run():
        try:
            box["result"] = extract_trailer(path, step=STEP, **NO_BOUNDS, **kw)
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ffmpegs = [c for c in psutil.Process().children() if "ffmpeg" in c.name()]
        if ffmpegs:
            time.sleep(0.3)  # well into the decode
            return thread, box, ffmpegs[0]
        time.sleep(0.01)
    raise AssertionError("ffmpeg never started")


def test_ffmpeg_runs_in_its_own_session_so_a_terminal_ctrl_c_does_not_reach_it(clips, monkeypatch):
    _slow(monkeypatch)
    thread, box, ffmpeg_proc = _decode_in_thread(clips["mp4_h264_aac"])
    assert os.getsid(ffmpeg_proc.pid) != os.getsid(0) and os.getpgid(ffmpeg_proc.pid) != os.getpgid(0)
    thread.join(10)
    assert box["result"].outcome == "ok"


def test_a_stop_switch_stops_the_decode_and_gives_no_outcome(clips, monkeypatch):
    _slow(monkeypatch)
    stop = StopSwitch()
    thread, box, ffmpeg_proc = _decode_in_thread(clips["mp4_h264_aac"], stop=stop)
    started = time.monotonic()
    stop.stop()
    thread.join(10)
    assert time.monotonic() - started < 1.5, "the decode must stop at once, not run to its end"
    assert isinstance(box.get("error"), Interrupted), box
    assert not ffmpeg_proc.is_running() or ffmpeg_proc.status() == psutil.STATUS_ZOMBIE
    with pytest.raises(Interrupted):  # a stopped switch starts nothing more
        extract_trailer(clips["mp4_h264_aac"], step=STEP, stop=stop, **NO_BOUNDS)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_an_ffmpeg_stopped_from_outside_is_interrupted_not_partial(clips, monkeypatch, sig):
    _slow(monkeypatch)
    thread, box, ffmpeg_proc = _decode_in_thread(clips["mp4_h264_aac"])
    ffmpeg_proc.send_signal(sig)  # a user or a scheduler, not the file
    thread.join(10)
    assert isinstance(box.get("error"), Interrupted), box
    assert sig.name in str(box["error"])


def test_an_ffmpeg_crash_is_still_the_files_fault(clips, monkeypatch):
    _slow(monkeypatch)
    thread, box, ffmpeg_proc = _decode_in_thread(clips["mp4_h264_aac"])
    ffmpeg_proc.send_signal(signal.SIGSEGV)  # what a decoder bug on a corrupt file looks like
    thread.join(10)
    assert "error" not in box, box
    assert box["result"].outcome in ("partial", "unreadable"), box["result"]
