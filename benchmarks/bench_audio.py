"""What the soundtrack adds to a real-size trailer's decode, measured side by side in one run.

A trailer of the size the downloader fetches (640x360 H.264 at 24 fps with stereo AAC at
128 kbit/s, 44.1 kHz, as YouTube's format 18 carries; 150 s by default; ffmpeg's
``testsrc2`` with noise for the picture, a chord over pink noise for the sound), and:

* ``frames``: the frames stage's picture decode (``extract_trailer``: the 64x64 kept frames
  and the computable features' output of the same run);
* ``sound decode``: ``lib.frames.audio.decode_audio`` (its own ffmpeg run: mono, 16 kHz);
* ``log-mel windows``: ``logmel_windows`` for the kept frames;
* ``audio features``: ``audio_features`` (librosa: energy, timbre, onsets, tempo).

    python -m benchmarks.bench_audio [--seconds 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from benchmarks.bench_embed_decode import timed  # median of repeats, and the last result
from lib.core.ffmpeg import ffmpeg_exe
from lib.core.params import FrameSettings
from lib.frames import audio, features
from lib.frames.extract import extract_trailer


def make_trailer(path: Path, seconds: float) -> None:
    sound = (
        f"sine=frequency=220:duration={seconds}[a];sine=frequency=330:duration={seconds}[b];"
        f"anoisesrc=color=pink:amplitude=0.1:duration={seconds}[c];[a][b][c]amix=inputs=3,aformat=channel_layouts=stereo"
    )
    # fmt: off
    subprocess.run(
        [
            ffmpeg_exe(), "-y", "-v", "error",
            "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=24:duration={seconds},noise=alls=20:allf=t",
            "-f", "lavfi", "-i", sound,
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", "500k", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-ar", "44100", "-shortest", str(path),
        ],
        check=True,
    )
    # fmt: on


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    settings = FrameSettings()
    with tempfile.TemporaryDirectory() as tmp:
        trailer = Path(tmp) / "trailer.mp4"
        make_trailer(trailer, args.seconds)
        audio.audio_features(audio.decode_audio(trailer).samples)  # librosa's first call compiles (numba): not timed

        def frames():
            with tempfile.TemporaryDirectory() as out:
                return extract_trailer(trailer, **settings.as_dict(), extra_output=features.FeatureOutput(out).args)

        frames_s, result = timed(frames, args.repeats)
        decode_s, track = timed(lambda: audio.decode_audio(trailer), args.repeats)
        times = audio.kept_frame_times(
            len(result.frames), settings.step, settings.step_unit, result.fps, result.duration
        )
        windows_s, (windows, present) = timed(lambda: audio.logmel_windows(track.samples, times), args.repeats)
        features_s, _ = timed(lambda: audio.audio_features(track.samples), args.repeats)
    sound_s = decode_s + windows_s + features_s
    print(
        f"{args.seconds:g} s trailer, 640x360 H.264 + stereo AAC 128k; {len(result.frames)} kept frames; median of {args.repeats}"
    )
    print(f"{'frames (64x64 + computable features)':44s} {frames_s:7.3f} s")
    print(f"{'sound decode (mono, 16 kHz)':44s} {decode_s:7.3f} s")
    print(f"{'log-mel windows':44s} {windows_s:7.3f} s   {windows.nbytes / 1e3:.0f} kB float16")
    print(f"{'audio features (librosa)':44s} {features_s:7.3f} s")
    print(f"{'the soundtrack in all':44s} {sound_s:7.3f} s = {sound_s / frames_s:.2f}x the frames decode")


if __name__ == "__main__":
    main()
