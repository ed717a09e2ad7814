"""TensorFlow's oneDNN kernels on and off, side by side: training-step and encoding time.

TensorFlow enables oneDNN by itself only on CPUs with AVX512_VNNI or newer; ``lib/__init__.py`` turns it
on everywhere (``TF_ENABLE_ONEDNN_OPTS=1`` unless the caller set it). The variable is read once, when
TensorFlow loads, so each setting runs in a fresh interpreter, one after the other, on the same inputs:

* ``cnn3d`` as params.yaml configures it (the demo profile: a batch of 16 slices of 10x64x64x3): one training step;
* ``tsn`` as params.yaml configures it, but with the scratch encoder on raw frames (8 films of 8 frames): one step;
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
from lib import training as T
from lib import tsn
from lib.config import load_params

steps = int(sys.argv[1])
rng = np.random.default_rng(0)
out = {}
train = load_params("train")

def per_call(fn, n):
    fn()  # warm-up: tracing and first allocations
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n

# params.yaml's own models: cnn3d in its current profile, tsn with the scratch encoder on raw frames
cfg = T.resolve_config({**train, "model": "cnn3d"})
m = T.build_configured_model(cfg, (64, 64, 3))
T.compile_model(m, cfg)
x = rng.integers(0, 256, (cfg.batch_size, cfg.slice_depth, 64, 64, 3), dtype=np.uint8)
y = (rng.random((cfg.batch_size, 18)) < 0.2).astype("float32")
out["cnn3d_step_s"] = per_call(lambda: m.train_on_batch(x, y), steps)

cfg = T.resolve_config({**train, "model": "tsn", "tsn": {**train["tsn"], "encoder": "scratch"}})
t = T.build_configured_model(cfg, (64, 64, 3))
T.compile_model(t, cfg)
films = tsn.film_inputs(rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8), int(cfg.tsn["n_segments"]))
batch = {k: np.repeat(v, cfg.batch_size, axis=0) for k, v in films.items()}
yb = (rng.random((cfg.batch_size, 18)) < 0.2).astype("float32")
out["tsn_step_s"] = per_call(lambda: t.train_on_batch(batch, yb), steps)

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
