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
from lib.core.native_stderr import import_keras
keras = import_keras()
from dataclasses import replace
from lib.core.params import TrainParams, load_section
from lib.encoders.presets import load_preset_encoder
from lib.loaders.segments import film_inputs
from lib.models.kinds import get_kind
from lib.train import fit as T

steps = int(sys.argv[1])
rng = np.random.default_rng(0)
out = {}
common = load_section(TrainParams, "train")

def configured(name, **changes):
    # (kind, its params.yaml section as typed params with `changes`, their Hyper)
    kind = get_kind(name)
    params = replace(kind.parse(common.section(name)), **changes)
    return kind, params, kind.hyper(params)

def per_call(fn, n):
    fn()  # warm-up: tracing and first allocations
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n

# params.yaml's own models: cnn3d in its current profile, tsn with the scratch encoder on raw frames
kind, params, hyper = configured("cnn3d")
m = kind.build(params, (64, 64, 3), None)
T.compile_model(m, hyper.lr, hyper.decay, common.jit_compile)
x = rng.integers(0, 256, (hyper.batch_size, params.slice_depth, 64, 64, 3), dtype=np.uint8)
y = (rng.random((hyper.batch_size, 18)) < 0.2).astype("float32")
out["cnn3d_step_s"] = per_call(lambda: m.train_on_batch(x, y), steps)

kind, params, hyper = configured("tsn", encoder="scratch")  # raw frames, no embedding cache
t = kind.build(params, (64, 64, 3), None)
T.compile_model(t, hyper.lr, hyper.decay, common.jit_compile)
films = film_inputs(rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8), params.n_segments)
batch = {k: np.repeat(v, hyper.batch_size, axis=0) for k, v in films.items()}
yb = (rng.random((hyper.batch_size, 18)) < 0.2).astype("float32")
out["tsn_step_s"] = per_call(lambda: t.train_on_batch(batch, yb), steps)

enc = load_preset_encoder("efficientnet_lite0_pypi", (64, 64, 3))
frames = rng.integers(0, 256, (32, 64, 64, 3), dtype=np.uint8)
out["effnet_ms_per_frame"] = 1000 * per_call(lambda: enc.predict_on_batch(frames), max(2, steps // 3)) / 32
print("RESULT " + json.dumps(out))
"""


def run(setting: str, steps: int) -> dict:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", WORKER, str(steps)], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"worker with TF_ENABLE_ONEDNN_OPTS={setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


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
