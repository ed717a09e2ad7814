"""TensorFlow's oneDNN kernels on and off, side by side: training-step and encoding time.

TensorFlow enables oneDNN by itself only on CPUs with AVX512_VNNI or newer; ``lib/__init__.py`` turns it
on everywhere (``TF_ENABLE_ONEDNN_OPTS=1`` unless the caller set it). The variable is read once, when
TensorFlow loads, so each setting runs in a fresh interpreter, one after the other, on the same inputs:

* ``cnn3d`` demo profile: one training step on a batch of 16 slices (10x64x64x3);
* ``tsn`` scratch encoder, attention pooling: one training step on a batch of 8 films (8 frames each);
* ``efficientnet_lite0_pypi``: encoding frames (converter + backbone + pooling), batch 32 of 64x64 frames.

    python benchmarks/bench_onednn.py [--steps 10]

Wall-clock seconds on a possibly shared machine: compare the rows of one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
import numpy as np
import lib  # noqa: F401  (sets the environment before Keras loads)
from lib.native_stderr import import_keras
keras = import_keras()
from lib.models import build_model, make_optimizer
from lib import tsn

steps = int(sys.argv[1])
rng = np.random.default_rng(0)
out = {}

def per_call(fn, n):
    fn()  # warm-up: tracing and first allocations
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n

m = build_model("cnn3d", input_shape=(10, 64, 64, 3), widths=[16, 32, 32, 16, 16, 16], blocks=[1, 2, 3],
                first_stride=2, dense=[128], dropout=0.3)
m.compile(optimizer=make_optimizer(1e-3, 1e-6), loss="binary_crossentropy")
x = rng.integers(0, 256, (16, 10, 64, 64, 3), dtype=np.uint8)
y = (rng.random((16, 18)) < 0.2).astype("float32")
out["cnn3d_step_s"] = per_call(lambda: m.train_on_batch(x, y), steps)

cfg = {"n_segments": 8, "pooling": "attention", "encoder": "scratch", "frozen": True,
       "scratch_filters": [16, 32, 64], "dim": 64, "heads": 4, "layers": 1, "dense": [64], "dropout": 0.3}
t = tsn.build_tsn(cfg, (64, 64, 3))
t.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
films = tsn.film_inputs(rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8), 8)
batch = {k: np.repeat(v, 8, axis=0) for k, v in films.items()}
out["tsn_step_s"] = per_call(lambda: t.train_on_batch(batch, y[:8]), steps)

from lib.pretrained import resolve_preset
enc = tsn.load_preset_encoder(resolve_preset("efficientnet_lite0_pypi"), (64, 64, 3))
frames = rng.integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
out["effnet_ms_per_frame"] = 1000 * per_call(lambda: enc.predict_on_batch(frames), max(2, steps // 3)) / 32
print("RESULT " + json.dumps(out))
"""


def run(setting: str, steps: int) -> dict:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", WORKER, str(steps)], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"worker with TF_ENABLE_ONEDNN_OPTS={setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="timed calls per measurement, after one warm-up")
    args = ap.parse_args(argv)
    off, on = run("0", args.steps), run("1", args.steps)
    print(f"{'measurement':28s} {'oneDNN off':>11s} {'oneDNN on':>11s} {'speed-up':>9s}")
    for key in ("cnn3d_step_s", "tsn_step_s", "effnet_ms_per_frame"):
        print(f"{key:28s} {off[key]:11.3f} {on[key]:11.3f} {off[key] / on[key]:8.1f}x")


if __name__ == "__main__":
    main()
