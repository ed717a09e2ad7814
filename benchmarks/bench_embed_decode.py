"""What a real-size trailer costs: the 64x64 store, frames at the encoder's 224, and the encoder.

Issue 21 asks the embed stage to encode each kept frame at the encoder's own input size from
the source video, and to choose between decoding the trailer once more at that size and adding
a second output to the frames stage's single decode. This script measures both, side by side
in one run, on a trailer of the size the downloader fetches (640x360 H.264, 24 fps, 150 s by
default; ffmpeg's ``testsrc2`` pattern with noise, so the encoder has real work), with the
frames stage's own filter chain (``lib.frames.extract.video_filter``: every 100th frame):

* ``store``: the frames stage's decode, 64x64 (``extract_trailer``, the paper's settings);
* ``second decode``: the same frames decoded again, squashed to 224x224;
* ``one decode, two outputs``: one ffmpeg run, the kept frames split to 64x64 and 224x224;
* ``encode``: EfficientNet-Lite0 (``efficientnet_lite0_pypi``, offline) on 224x224 frames;
* ``stage``: what the frames stage runs per trailer (``lib.frames.stage.decode_trailer``: the
  64x64 frames, the computable features, and, with the encoder, the 224x224 centre crops as a
  third output of the same decode), without and with that third output.

    python -m benchmarks.bench_embed_decode [--seconds 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from lib.core.ffmpeg import ffmpeg_exe
from lib.core.params import FrameSettings
from lib.frames.extract import extract_trailer, video_filter
from lib.frames.stage import decode_trailer

STEP = 100
SIZE, NATIVE = 64, 224


def make_trailer(path: Path, seconds: float, width: int = 640, height: int = 360) -> Path:
    # fmt: off
    cmd = [
        ffmpeg_exe(), "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=24:duration={seconds}",
        "-vf", "noise=alls=8:allf=t",  # texture that changes every frame, as footage does
        # about the bitrate of a 360p YouTube trailer (~10 MB for 2.5 minutes): decode cost follows the bitrate
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "550k", "-maxrate", "800k", "-bufsize", "1600k",
        "-pix_fmt", "yuv420p", str(path),
    ]
    # fmt: on
    subprocess.run(cmd, check=True)
    return path


def _raw_frames(cmd: list[str], size: int) -> int:
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    return len(out) // (size * size * 3)


def second_decode(path: Path) -> int:
    # fmt: off
    cmd = [
        ffmpeg_exe(), "-nostdin", "-v", "error", "-threads", "1", "-i", str(path), "-an",
        "-vf", video_filter(STEP, "frames", NATIVE, "squash"), "-fps_mode", "passthrough",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
    ]
    # fmt: on
    return _raw_frames(cmd, NATIVE)


def one_decode_two_outputs(path: Path, native_file: Path) -> tuple[int, int]:
    # the frames stage's own selection (its chain is select, scale, format; the select holds escaped commas)
    select = video_filter(STEP, "frames", SIZE, "squash").rsplit(",scale=", 1)[0]
    graph = (
        f"[0:v]{select},split=2[a][b];"
        f"[a]scale={SIZE}:{SIZE}:flags=area,format=rgb24[small];"
        f"[b]scale={NATIVE}:{NATIVE}:flags=area,format=rgb24[native]"
    )
    # fmt: off
    cmd = [
        ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", str(path), "-an",
        "-filter_complex", graph,
        "-map", "[small]", "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1",
        "-map", "[native]", "-fps_mode", "passthrough", "-f", "rawvideo", str(native_file),
    ]
    # fmt: on
    small = _raw_frames(cmd, SIZE)
    return small, native_file.stat().st_size // (NATIVE * NATIVE * 3)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def encoder_throughput(n_frames: int, batch: int = 32) -> float:
    from lib.core.native_stderr import import_keras

    import_keras()
    from lib.encoders.presets import load_preset_encoder

    encoder = load_preset_encoder("efficientnet_lite0_pypi", (NATIVE, NATIVE, 3), trainable=False)
    frames = np.random.default_rng(0).integers(0, 256, (n_frames, NATIVE, NATIVE, 3), dtype=np.uint8)
    encoder.predict(frames[:batch], batch_size=batch, verbose=0)  # build and trace once
    t0 = time.perf_counter()
    encoder.predict(frames, batch_size=batch, verbose=0)
    return n_frames / (time.perf_counter() - t0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encode-frames", type=int, default=1024)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        trailer = make_trailer(tmp / "trailer.mp4", args.seconds)
        print(f"made a {args.seconds:.0f} s 640x360 H.264 trailer ({trailer.stat().st_size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip

        store_s, extraction = timed(lambda: extract_trailer(trailer), args.repeats)
        kept = len(extraction.frames)
        second_s, n_second = timed(lambda: second_decode(trailer), args.repeats)
        both_s, (n_small, n_native) = timed(lambda: one_decode_two_outputs(trailer, tmp / "native.rgb"), args.repeats)
        if not kept == n_second == n_small == n_native:
            raise SystemExit(f"frame counts differ: store {kept}, second {n_second}, two outputs {n_small}/{n_native}")
        paper = FrameSettings()
        stage_s, _ = timed(lambda: decode_trailer(trailer, paper), args.repeats)
        stage_native_s, decoded = timed(
            lambda: decode_trailer(trailer, paper, native_size=NATIVE, native_resize="crop"), args.repeats
        )
        if decoded.native is None or len(decoded.native) != kept:
            raise SystemExit("the stage's third output did not give the kept frames")
    fps = encoder_throughput(args.encode_frames)
    encode_s = kept / fps

    rows = [
        ("store: the frames stage's decode, 64x64", store_s),
        ("224x224: a second decode of the same frames", second_s),
        ("64x64 + 224x224 from one decode", both_s),
        (f"encode {kept} frames at 224 (EfficientNet-Lite0, {fps:.0f} frames/s)", encode_s),
        ("stage decode: 64x64 + computable features", stage_s),
        ("stage decode: 64x64 + computable features + 224x224 crops", stage_native_s),
    ]
    print(f"\nper trailer ({args.seconds:.0f} s, {kept} kept frames, median of {args.repeats}):")
    for name, seconds in rows:
        print(f"  {name:<66} {seconds:6.2f} s")
    print(f"\nstore + second decode: {store_s + second_s:.2f} s; one decode with two outputs: {both_s:.2f} s "
          f"(ratio {(store_s + second_s) / both_s:.2f}x)")  # fmt: skip
    print(f"the stage's decode with the encoder's output costs {stage_native_s / stage_s:.2f}x the decode without it")
    bytes_store = kept * SIZE * SIZE * 3
    bytes_emb = kept * 1280 * 2
    print(f"bytes per film: 64x64 store {bytes_store / 1e3:.0f} kB, 1280-d float16 embeddings {bytes_emb / 1e3:.0f} kB, "
          f"a 224x224 pixel store would be {kept * NATIVE * NATIVE * 3 / 1e6:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
