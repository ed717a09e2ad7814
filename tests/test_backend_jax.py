"""The study's GPU route: Keras on JAX, with no TensorFlow installed.

The lent GPU machines have JAX (and PyTorch) but not TensorFlow, so the GPU route is
``KERAS_BACKEND=jax``. The backend is fixed when keras is imported, so everything here
runs in subprocesses with ``KERAS_BACKEND=jax`` and ``import tensorflow`` made to fail
(a ``sitecustomize`` on the subprocess's path installs the hook of
``tests/backend_check.py``):

* ``tests/backend_check.py`` trains ``cnn3d`` and ``cnn_lstm`` for two epochs on a tiny
  synthetic frame store through their kinds and ``lib.train.fit``, saves, reloads and predicts;
* ``notebooks/03_train.ipynb`` runs under papermill at its smoke-size defaults on a
  synthetic frame store written by ``lib.loaders.slices.write_synthetic_corpus`` (the test makes
  its own inputs: it does not depend on notebooks 01 and 02 having run).

The two subprocesses start together (CI has two cores; most of their time is XLA
compiling), and this process, on the default backend, reloads the models JAX saved.
The last test runs the same check on PyTorch where torch is installed (not in CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.core.paths import ROOT

TIMEOUT = 900  # seconds per subprocess; both take about a minute of CPU each on an idle machine
CHECK = ROOT / "tests" / "backend_check.py"
NOTEBOOK = ROOT / "notebooks" / "03_train.ipynb"

pytest.importorskip("jax", reason="jax is pinned in requirements.lock; without it the JAX route is untested")


def jax_env(tmp: Path) -> dict[str, str]:
    """The caller's environment with KERAS_BACKEND=jax, this checkout first on the path,
    and TensorFlow blocked in every Python process started under it (papermill's kernel too)."""
    site = tmp / "no_tensorflow"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(CHECK.parent)!r})\n"
        "import backend_check\n"
        "backend_check.block_tensorflow()\n"
        "sys.path.remove(sys.path[0])\n",
        encoding="utf-8",
    )
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), str(ROOT), env.get("PYTHONPATH")) if p)
    # papermill starts the notebook's `python3` kernel with its own interpreter; keep the venv first anyway.
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env.pop("JAX_PLATFORMS", None)
    return env


def _finish(proc: subprocess.Popen, what: str) -> str:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{what} did not finish in {TIMEOUT} s:\n{out[-4000:]}")
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{out[-6000:]}"
    return out


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    """Start the training check and the train notebook under JAX side by side; wait for both."""
    from lib.loaders.slices import write_synthetic_corpus

    tmp = tmp_path_factory.mktemp("jax")
    env = jax_env(tmp)
    check_out, nb_dir = tmp / "check", tmp / "notebook"
    store, labels = write_synthetic_corpus(nb_dir / "store", n_films=24, size=32, seed=5)
    labels.to_csv(nb_dir / "labels.csv", index=False)
    run = dict(env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check = subprocess.Popen([sys.executable, str(CHECK), str(check_out)], **run)
    notebook = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "papermill",
            str(NOTEBOOK),
            str(nb_dir / "03_train.ipynb"),
            "--no-progress-bar",
            "-k",
            "python3",
            "--cwd",
            str(tmp),
            "-p",
            "labels_csv",
            str(nb_dir / "labels.csv"),
            "-p",
            "store_dir",
            str(nb_dir / "store"),
            "-p",
            "out_dir",
            str(nb_dir / "train"),
        ],
        **run,
    )
    try:
        _finish(check, "tests/backend_check.py under KERAS_BACKEND=jax")
        _finish(notebook, "notebooks/03_train.ipynb under KERAS_BACKEND=jax")
    finally:
        for proc in (check, notebook):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"check": json.loads((check_out / "result.json").read_text()), "check_out": check_out, "nb_dir": nb_dir}


@pytest.mark.parametrize("model", ["cnn3d", "cnn_lstm"])
def test_model_trains_saves_reloads_and_predicts_under_jax(jax_runs, model):
    result = jax_runs["check"]
    assert result["backend"] == "jax"
    assert result["tensorflow_imported"] is False
    m = result["models"][model]
    assert "backend jax" in m["device"]
    assert m["epochs_run"] == 2 and np.isfinite(m["losses"]).all()
    assert m["test_films"] == len(result["test_ids"]) > 0 and m["test_slices"] >= m["test_films"]
    assert m["scores_in_unit_range"] and m["scores_std"] > 0, "scores are constant or outside [0, 1]"
    # model.keras is the model that trained, and it predicts exactly as it did before saving.
    assert m["max_abs_diff_trained_vs_reloaded"] <= 1e-6
    assert m["reloaded_val_auc_pr"] == pytest.approx(m["best_val_auc_pr"], abs=1e-4)


@pytest.mark.parametrize("model", ["cnn3d", "cnn_lstm"])
def test_a_model_saved_under_jax_predicts_the_same_here(jax_runs, model):
    """model.keras from the GPU route is read back on this process's backend (TensorFlow
    in CI): a model trained on a lent GPU can be evaluated anywhere."""
    import keras

    from lib.frames.store import FrameStore
    from lib.models.info import ModelInfo
    from lib.models.scoring import predict_slices

    out = jax_runs["check_out"]
    info = ModelInfo.read(out / model)
    assert info.runtime["backend"] == "jax" and info.model == model
    reloaded = keras.saving.load_model(out / model / "model.keras")
    scores = predict_slices(
        reloaded, FrameStore(out / "store"), jax_runs["check"]["test_ids"], info.settings["slice_depth"], batch_size=8
    )
    np.testing.assert_allclose(scores[info.genres].to_numpy(), np.load(out / model / "scores.npy"), atol=1e-5)


def test_train_notebook_runs_under_jax_at_smoke_size(jax_runs):
    from lib.models.info import ModelInfo

    train = jax_runs["nb_dir"] / "train"
    info = ModelInfo.read(train)
    assert info.runtime["backend"] == "jax" and info.model == "cnn3d" and info.profile == "smoke"
    history = pd.read_csv(train / "history.csv")
    assert 1 <= len(history) <= info.settings["epochs"] and np.isfinite(history["loss"]).all()
    for name in ("model.keras", "curves.png", "dvclive/metrics.json"):
        assert (train / name).is_file(), name
    nb = json.loads((jax_runs["nb_dir"] / "03_train.ipynb").read_text())
    text = "".join(
        "".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )
    assert "backend jax" in text, "the notebook's device line does not name the JAX backend"


def test_torch_backend_trains_saves_reloads_and_predicts(tmp_path):
    """The same check on PyTorch. torch is not in requirements.lock (several GB with its CUDA
    wheels, too big for CI), so this runs only where it is installed, e.g. a throwaway venv
    with the lock's packages and torch (see README, "Other Keras backends")."""
    pytest.importorskip("torch", reason="torch is not installed (not pinned: too big for CI)")
    env = {**jax_env(tmp_path), "KERAS_BACKEND": "torch"}
    proc = subprocess.Popen(
        [sys.executable, str(CHECK), str(tmp_path / "check")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _finish(proc, "tests/backend_check.py under KERAS_BACKEND=torch")
    result = json.loads((tmp_path / "check" / "result.json").read_text())
    assert result["backend"] == "torch" and result["tensorflow_imported"] is False
    for model in ("cnn3d", "cnn_lstm"):
        m = result["models"][model]
        assert m["epochs_run"] == 2 and np.isfinite(m["losses"]).all()
        assert m["scores_in_unit_range"] and m["scores_std"] > 0
        assert m["max_abs_diff_trained_vs_reloaded"] <= 1e-6
        assert m["reloaded_val_auc_pr"] == pytest.approx(m["best_val_auc_pr"], abs=1e-4)
