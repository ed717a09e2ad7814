"""Training-input throughput: the streaming loader against the paper's JPEG generator and
against what the model consumes.

On the same frames and the same slices, in one run, side by side (slices per second):

(a) the loader: ``lib.loaders.slices.SliceDataset`` batches (shuffled, uint8) out of the
    memory-mapped frame store;
(b) the paper's generator re-implemented: for every slice, ``os.listdir`` of the film's
    frame folder, then ``cv2.imread`` + ``cv2.resize`` to 64x64 (nearest) of its 10 JPEG
    files, stacked with ``np.array``. The JPEGs are written first to a temporary folder,
    once at the store's own frame size (b, the same pixels) and once upscaled to
    ``--full-size`` (b', the full-size frames the paper's code actually read back);
(c) the model's training step on CPU: the paper's ``cnn3d`` (3.3 M parameters) at batch 16,
    ``train_on_batch`` on loader batches.

Goals: (a) >= 50x (b) and (a) >= 10x (c), so that on a GPU the loader is not the
bottleneck (on a GPU, compare (a) with the measured training rate instead of (c)).

    python benchmarks/bench_loader.py                  # outputs/frames/store (else the smoke store)
    python benchmarks/bench_loader.py --synthetic 200  # a generated store of 200 films
    python benchmarks/bench_loader.py --films 100 --train-steps 5 --full-size 0

Times are wall-clock on a possibly shared machine: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from lib.core.genres import GENRES
from lib.core.paths import OUTPUTS, SMOKE
from lib.frames.store import FrameStore
from lib.loaders.slices import SliceDataset, write_synthetic_corpus
from lib.loaders.slicing import slice_table


def pick_store(args, tmp: Path) -> FrameStore:
    if args.synthetic:
        store, _ = write_synthetic_corpus(
            tmp / "store", n_films=args.synthetic, frames_per_film=(20, 45), size=64, seed=0
        )
        return store
    for candidate in [Path(args.store)] if args.store else [OUTPUTS / "frames" / "store", SMOKE / "frames" / "store"]:
        if (candidate / "index.csv").exists():
            return FrameStore(candidate)
    sys.exit("no frame store found: run the frames stage, pass --store DIR, or use --synthetic N")


def write_jpegs(store: FrameStore, movie_ids, directory: Path, size: tuple[int, int] | None) -> None:
    """The paper's layout: one folder per film, one JPEG per kept frame, in order."""
    for m in movie_ids:
        film_dir = directory / str(m)
        film_dir.mkdir(parents=True)
        for k, frame in enumerate(store.film(m)):
            img = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if size is not None:
                img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            cv2.imwrite(str(film_dir / f"frame{k:05d}.jpg"), img)


def paper_generator_batches(directory: Path, table: pd.DataFrame, order: np.ndarray, depth: int, batch: int):
    """The paper's ``data_generator.__getitem__``, per slice instead of per film's first 10 frames."""
    movie = table["movieId"].to_numpy()
    number = table["slice"].to_numpy()
    for i in range(0, len(order), batch):
        batch_data = []
        for r in order[i : i + batch]:
            film_dir = f"{directory}/{movie[r]}"
            names = sorted(os.listdir(film_dir))[number[r] * depth : (number[r] + 1) * depth]
            frames = []
            for name in names:
                img = cv2.imread(f"{film_dir}/{name}")
                frames.append(cv2.resize(img, dsize=(64, 64), interpolation=cv2.INTER_NEAREST))
            while len(frames) < depth:  # the paper padded the last slice with zero frames
                frames.append(np.zeros_like(frames[0]))
            batch_data.append(frames)
        yield np.array(batch_data)


def rate(n_slices: int, seconds: float) -> float:
    return n_slices / seconds if seconds > 0 else float("inf")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="frame store folder (default: outputs/frames/store, else the smoke store)")
    p.add_argument("--synthetic", type=int, default=0, help="generate a store of N films instead")
    p.add_argument("--films", type=int, default=150, help="films used (the first N of the store)")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument(
        "--seconds", type=float, default=2.0, help="time (a), (b) and (b') over whole epochs for at least this long"
    )
    p.add_argument("--full-size", default="640x360", help="WxH of the full-size JPEGs for (b'); 0 to skip")
    p.add_argument("--train-steps", type=int, default=5, help="timed training steps for (c), after 2 warm-up steps")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp_name:
        tmp = Path(tmp_name)
        store = pick_store(args, tmp)
        if store.frame_shape[:2] != (64, 64):
            print(f"note: store frames are {store.frame_shape}, the paper's are 64x64")
        movie_ids = store.movie_ids[: args.films]
        films = pd.DataFrame({"movieId": movie_ids, **{g: 0 for g in GENRES}})
        ds = SliceDataset(store, films, depth=args.depth, batch_size=args.batch, shuffle=True, seed=0)
        table = slice_table(store.index.loc[movie_ids], args.depth)
        print(
            f"{len(movie_ids)} films, {ds.n_slices} slices of {args.depth} x {store.frame_shape} from {store.directory}"
        )

        # (a) the loader; one untimed epoch first, so both sides read from the page cache.
        for i in range(len(ds)):
            ds[i]
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:  # whole epochs, each reshuffled
            ds.on_epoch_end()
            for i in range(len(ds)):
                n += len(ds[i][0])
        rows = [("(a) loader: memory-mapped store", rate(n, time.perf_counter() - t0))]

        # (b) and (b'): the paper's generator over the same slices in the same order.
        order = ds._epoch_order(0)
        sizes = [("(b) paper generator, same 64x64 frames as JPEG", None)]
        if args.full_size not in ("0", "", "none"):
            w, h = (int(v) for v in args.full_size.lower().split("x"))
            sizes.append((f"(b') paper generator, {w}x{h} JPEGs resized on read", (w, h)))
        for label, size in sizes:
            jpeg_dir = tmp / f"jpegs_{size}"
            write_jpegs(store, movie_ids, jpeg_dir, size)
            for _ in paper_generator_batches(jpeg_dir, table, order[: 4 * args.batch], args.depth, args.batch):
                pass  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                n += sum(len(b) for b in paper_generator_batches(jpeg_dir, table, order, args.depth, args.batch))
            rows.append((label, rate(n, time.perf_counter() - t0)))

        # (c) the paper's model: one optimizer step per loader batch on this CPU.
        if args.train_steps > 0:
            # Keras loads only when the training-step comparison is asked for
            import keras

            from lib.models.slice_models import build_cnn3d
            from lib.train.fit import make_optimizer

            keras.utils.set_random_seed(0)
            model = build_cnn3d(input_shape=(args.depth, *store.frame_shape))
            model.compile(optimizer=make_optimizer(), loss="binary_crossentropy")
            x, _ = ds[0]
            y = (np.random.default_rng(0).random((len(x), len(GENRES))) < 0.2).astype("float32")
            for _ in range(2):
                model.train_on_batch(x, y)
            t0 = time.perf_counter()
            for _ in range(args.train_steps):
                model.train_on_batch(x, y)
            rows.append(
                (
                    f"(c) paper cnn3d training step, batch {len(x)}, {keras.config.backend()} CPU",
                    rate(args.train_steps * len(x), time.perf_counter() - t0),
                )
            )

    result = pd.DataFrame(rows, columns=["method", "slices/s"]).set_index("method")
    a = result["slices/s"].iloc[0]
    result["(a) / this"] = a / result["slices/s"]
    with pd.option_context("display.float_format", "{:,.1f}".format, "display.width", 140):
        print(result.to_string())
    b = result["slices/s"].iloc[1]
    print(f"goal (a) >= 50x (b): {a / b:,.1f}x -> {'met' if a / b >= 50 else 'NOT met'}")
    if len(result) > 2 and result.index[2].startswith("(b')"):
        print(f"     (a) vs (b'), the paper's actual full-size read path: {a / result['slices/s'].iloc[2]:,.1f}x")
    if args.train_steps > 0:
        c = result["slices/s"].iloc[-1]
        print(f"goal (a) >= 10x (c): {a / c:,.1f}x -> {'met' if a / c >= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
