"""A fast proxy for calibrating the demo corpus (lib/sources/demo_corpus.py): no video files.

It renders, for every ordinary film of the plan, only the pictures the frames stage would keep
(every ``--step``-th frame at 24 fps), squashes them to 64x64, cuts 10-frame slices, trains the
demo ``cnn3d`` for a few epochs and prints validation macro-AP (films, mean of slice scores) beside
a mean-colour logistic regression and the label prior. The real corpus adds x264 compression, the
special rows and the pipeline's split; the final calibration is always ``dvc repro`` on it.

    python tools/corpus_proxy.py --epochs 12 [--films 560]
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression

from lib.core.genres import GENRES
from lib.scoring.metrics import macro_ap
from lib.sources import demo_corpus as dc


def kept_frames(row: dict, config: dc.DemoConfig, step: int) -> np.ndarray:
    n = dc.n_frames(row["duration"])
    pictures = [int(f * dc.PICTURES_PER_SECOND // dc.FPS) for f in range(0, n, step)]
    n_pictures = int(np.ceil(row["duration"] * dc.PICTURES_PER_SECOND)) + 1
    rendered = dc.render_pictures(
        row["genre_list"],
        n_pictures,
        dc._film_seed(config.seed, row["movieId"]),
        config.width,
        config.height,
        only=set(pictures),
    )
    return np.stack([np.asarray(Image.fromarray(rendered[p]).resize((64, 64), Image.BILINEAR)) for p in pictures])


def apply_overrides(items: list[str]) -> None:
    """``NAME=VALUE`` items (Python literals) replace module constants of lib/sources/demo_corpus.py."""
    for item in items:
        name, _, value = item.partition("=")
        if not hasattr(dc, name):
            sys.exit(f"lib/sources/demo_corpus.py has no {name}")
        try:
            setattr(dc, name, ast.literal_eval(value))
        except (ValueError, SyntaxError):
            sys.exit(f"{item}: the value is not a Python literal")
        print(f"{name} = {getattr(dc, name)!r}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", type=int, default=dc.DemoConfig.n_films)
    ap.add_argument("--seed", type=int, default=dc.DemoConfig.seed)
    ap.add_argument("--step", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--first-stride", type=int, default=2, help="cnn3d's first spatial stride (the paper's is 1)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--model",
        default="cnn3d",
        choices=["cnn3d", "cnn3d_t1", "effnet_lr"],
        help="cnn3d: the demo profile; cnn3d_t1: the same with a first convolution that sees one frame "
        "(1x3x3); effnet_lr: frozen efficientnet_lite0_pypi embeddings, averaged per film, logistic regression",
    )
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="override a module constant of lib/sources/demo_corpus.py, e.g. IMAGERY=0.9 OBJECT_RADIUS=(11,18)",
    )
    args = ap.parse_args(argv)
    apply_overrides(args.set)
    config = dc.DemoConfig(n_films=args.films, seed=args.seed)
    plan = dc.plan_corpus(config)
    rows = [r for r in plan.to_dict("records") if r["kind"] == dc.OK and r["genre_list"]]
    t = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        frames = list(pool.map(lambda r: kept_frames(r, config, args.step), rows))
    print(f"rendered {len(rows)} films ({sum(map(len, frames))} frames) in {time.perf_counter() - t:.0f} s")
    y = np.array([[g in r["genre_list"] for g in GENRES] for r in rows], dtype="float32")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    n_train = int(0.55 * len(rows))
    tr, va = order[:n_train], order[n_train:]

    colour = np.array([f.reshape(-1, 3).mean(0) / 255 for f in frames])
    colour_s = np.column_stack(
        [
            LogisticRegression(max_iter=1000).fit(colour[tr], y[tr, j]).predict_proba(colour[va])[:, 1]
            if 0 < y[tr, j].sum() < len(tr)
            else np.zeros(len(va))
            for j in range(len(GENRES))
        ]
    )
    print(
        f"label prior {macro_ap(y[va], np.tile(y[tr].mean(0), (len(va), 1))):.3f}  "
        f"mean colour LR {macro_ap(y[va], colour_s):.3f}"
    )

    # Keras (and TensorFlow) load only here, through import_keras, once the cheap baselines have printed
    from lib.core.native_stderr import import_keras

    keras = import_keras()
    from lib.models.slice_models import build_cnn3d
    from lib.train.fit import make_optimizer

    def slices(ids):
        xs, owner = [], []
        for i in ids:
            f = frames[i]
            n = int(np.ceil(len(f) / 10))
            pad = np.zeros((n * 10, 64, 64, 3), np.uint8)
            pad[: len(f)] = f
            xs.append(pad.reshape(n, 10, 64, 64, 3))
            owner += [i] * n
        return np.concatenate(xs), np.array(owner)

    if args.model == "effnet_lr":
        from lib.encoders.presets import load_preset_encoder  # after import_keras above, like every Keras module

        enc = load_preset_encoder("efficientnet_lite0_pypi", (64, 64, 3))  # the name resolves to its converted folder
        t = time.perf_counter()
        film_emb = np.stack([np.asarray(enc.predict(f, batch_size=32, verbose=0), np.float32).mean(0) for f in frames])
        print(f"encoded in {time.perf_counter() - t:.0f} s")
        s_va = np.column_stack(
            [
                LogisticRegression(max_iter=2000, C=1.0).fit(film_emb[tr], y[tr, j]).predict_proba(film_emb[va])[:, 1]
                if 0 < y[tr, j].sum() < len(tr)
                else np.zeros(len(va))
                for j in range(len(GENRES))
            ]
        )
        print(f"effnet mean-embedding LR: val macro-AP {macro_ap(y[va], s_va):.3f}")
        return

    xtr, otr = slices(tr)
    xva, ova = slices(va)
    keras.utils.set_random_seed(0)
    model = build_cnn3d(
        input_shape=(10, 64, 64, 3),
        widths=[16, 32, 32, 16, 16, 16],
        blocks=[1, 2, 3],
        first_stride=args.first_stride,
        dense=[128],
        dropout=0.3,
    )
    if args.model == "cnn3d_t1":
        conv = model.get_layer("block1_conv1")
        cfg = conv.get_config()
        cfg["kernel_size"] = (1, 3, 3)
        x = keras.layers.Conv3D.from_config(cfg)(model.get_layer("to_unit_range").output)
        for layer in model.layers[model.layers.index(conv) + 1 :]:
            x = layer(x)
        model = keras.Model(model.input, x)
    model.compile(optimizer=make_optimizer(args.lr, 1e-6), loss="binary_crossentropy")
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        h = model.fit(xtr, y[otr], batch_size=16, epochs=1, verbose=0, shuffle=True)
        s = model.predict(xva, batch_size=64, verbose=0)
        film = np.array([s[ova == i].mean(0) for i in va])
        print(
            f"epoch {epoch:2d}: loss {h.history['loss'][-1]:.3f}, val macro-AP {macro_ap(y[va], film):.3f} ({time.perf_counter() - t:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
