"""Frames-stage throughput against the decode floor and against the paper's JPEG pipeline.

On the same trailers, in one run, side by side:

(a) the stage: ``lib.frames.stage.run_frames_stage`` end to end (one ffmpeg per
    trailer, select + scale in ffmpeg, parts, store, manifest), duration bounds off
    so that every trailer is decoded in full;
(b) the floor: the bundled ffmpeg decoding the video stream of each file to
    ``-f null -`` with one thread (``-threads 1 -an``), nothing else;
(c) the paper's method re-implemented: OpenCV ``VideoCapture`` reads every frame,
    every ``step``-th is written as a full-size JPEG, then every JPEG is read back
    and resized to 64x64 (the training-ready arrays).

Each runs with 1 worker and with the stage's parallelism (``--jobs``, default all
cores). Goals: (a) >= 0.8x (b) and (a) >= 10x (c).

    python benchmarks/bench_frames.py                 # every trailer in data/trailers
    python benchmarks/bench_frames.py --limit 20      # a subset (the first 20 by name)
    python benchmarks/bench_frames.py --make-clips 8  # generated clips instead (no corpus needed)

Times are wall-clock on a possibly shared machine: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.ffmpeg import ffmpeg_exe
from lib.core.params import FrameSettings
from lib.core.paths import TRAILERS
from lib.frames.stage import find_trailers, resolve_jobs, run_frames_stage


def make_clips(directory: Path, n: int, seconds: float, size: str) -> list[Path]:
    """Stand-ins for trailers: H.264 + AAC mp4 at 24 fps with moving content."""
    paths = []
    for i in range(n):
        path = directory / f"clip{i:03d}.mp4"
        subprocess.run(
            [
                ffmpeg_exe(),
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate=24:duration={seconds}",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={220 + 20 * i}:duration={seconds}",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
                str(path),
            ],
            check=True,
        )
        paths.append(path)
    return paths


def parallel(fn, items, jobs: int) -> list:
    if jobs == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(fn, items))


def stage(paths: list[Path], jobs: int, step: int, size: int, work: Path) -> int:
    labels = pd.DataFrame({"movieId": range(len(paths)), "youtubeId": [p.stem for p in paths]})
    settings = FrameSettings(step=step, size=size, min_seconds=None, max_seconds=None)
    result = run_frames_stage(
        labels, paths[0].parent, work / "out", work / "parts", settings, n_jobs=jobs, progress=False
    )
    bad = result.manifest[result.manifest["outcome"] != "ok"]
    if len(bad):
        print(f"note: {len(bad)} trailers not ok in (a): {bad['outcome'].value_counts().to_dict()}", file=sys.stderr)
    return int(result.store.frames.shape[0])


def floor(paths: list[Path], jobs: int) -> int:
    def decode(path: Path) -> int:
        subprocess.run(
            [
                ffmpeg_exe(),
                "-nostdin",
                "-v",
                "error",
                "-threads",
                "1",
                "-i",
                str(path),
                "-an",
                "-sn",
                "-dn",
                "-f",
                "null",
                "-",
            ],
            check=False,
        )
        return 0

    parallel(decode, paths, jobs)
    return 0


def paper(paths: list[Path], jobs: int, step: int, size: int, work: Path) -> int:
    import cv2

    def one(path: Path) -> int:
        folder = work / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        cap = cv2.VideoCapture(str(path))
        n, written = 0, []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n % step == 0:
                name = str(folder / f"{n:06d}.jpg")
                cv2.imwrite(name, frame)
                written.append(name)
            n += 1
        cap.release()
        arrays = [
            cv2.resize(cv2.imread(name), (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1] for name in written
        ]
        return len(np.stack(arrays)) if arrays else 0

    return sum(parallel(one, paths, jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trailers", type=Path, default=TRAILERS, help="folder of trailers (default data/trailers)")
    parser.add_argument("--limit", type=int, default=0, help="use the first N trailers by name (0 = all)")
    parser.add_argument("--make-clips", type=int, default=0, metavar="N", help="benchmark N generated clips instead")
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--clip-size", default="320x180")
    parser.add_argument("--jobs", type=int, default=0, help="the stage's parallelism (0 = all cores)")
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--skip-paper", action="store_true", help="leave out (c), the slowest")
    args = parser.parse_args()
    jobs = resolve_jobs(args.jobs)

    with tempfile.TemporaryDirectory(prefix="bench_frames_") as tmp:
        tmp = Path(tmp)
        if args.make_clips:
            (tmp / "clips").mkdir()
            paths = make_clips(tmp / "clips", args.make_clips, args.clip_seconds, args.clip_size)
        else:
            paths = sorted(p for p in find_trailers(args.trailers).values() if p.stat().st_size > 0)
            if not paths:
                sys.exit(f"no trailers in {args.trailers}; pass --make-clips N to benchmark generated clips")
        if args.limit:
            paths = paths[: args.limit]
        for p in paths:  # warm the page cache, so the first method does not pay for the disk
            p.read_bytes()
        print(
            f"{len(paths)} trailers ({sum(p.stat().st_size for p in paths) / 2**20:.1f} MiB), step {args.step}, "
            f"{args.size}x{args.size}, parallel jobs {jobs}, ffmpeg {Path(ffmpeg_exe()).name}"
        )

        rows = []
        for n_jobs in sorted({1, jobs}):
            methods = [
                (
                    "a",
                    "stage (ffmpeg select+scale -> store)",
                    lambda w, n_jobs=n_jobs: stage(paths, n_jobs, args.step, args.size, w),
                ),
                ("b", "floor (ffmpeg -threads 1 -f null)", lambda w, n_jobs=n_jobs: floor(paths, n_jobs)),
            ]
            if not args.skip_paper:
                methods.append(
                    (
                        "c",
                        "paper (OpenCV -> JPEG -> resize)",
                        lambda w, n_jobs=n_jobs: paper(paths, n_jobs, args.step, args.size, w),
                    )
                )
            for key, name, run in methods:
                work = tmp / f"{key}{n_jobs}"
                work.mkdir()
                t0 = time.perf_counter()
                frames = run(work)
                seconds = time.perf_counter() - t0
                rows.append(
                    {
                        "method": key,
                        "what": name,
                        "jobs": n_jobs,
                        "seconds": seconds,
                        "trailers/s": len(paths) / seconds,
                        "frames kept": frames if key != "b" else None,
                    }
                )

    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    rate = {(r["method"], r["jobs"]): r["trailers/s"] for r in rows}
    print()
    for n_jobs in sorted({1, jobs}):
        line = f"jobs={n_jobs}:  (a)/(b) = {rate['a', n_jobs] / rate['b', n_jobs]:.2f}  (goal >= 0.8)"
        if ("c", n_jobs) in rate:
            line += f"   (a)/(c) = {rate['a', n_jobs] / rate['c', n_jobs]:.1f}  (goal >= 10)"
        print(line)
    if jobs > 1:
        print(
            f"scaling 1 -> {jobs} jobs:  (a) x{rate['a', jobs] / rate['a', 1]:.2f}   (b) x{rate['b', jobs] / rate['b', 1]:.2f}"
        )


if __name__ == "__main__":
    main()
