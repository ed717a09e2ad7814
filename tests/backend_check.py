"""Train, save, reload and predict both models under the backend ``KERAS_BACKEND`` names.

The Keras backend is fixed when keras is first imported, so ``tests/test_backend_jax.py``
runs this file in a fresh interpreter:

    KERAS_BACKEND=jax python tests/backend_check.py OUT_DIR [--block-tensorflow]

``--block-tensorflow`` makes ``import tensorflow`` fail, as on the lent GPU machines
(JAX and PyTorch, no TensorFlow). On a tiny synthetic frame store, for ``cnn3d`` and
``cnn_lstm``: a real two-epoch fit through the model kind and ``lib.train.fit`` (which writes ``model.keras``),
a reload with a bare ``keras.saving.load_model``, and test-split predictions through
``lib.models.scoring`` from the trained model and from the reloaded one. It writes
``OUT_DIR/result.json`` and, per model, the reloaded model's slice scores
(``OUT_DIR/<model>/scores.npy``) for a cross-backend comparison. It asserts nothing
itself: the test reads the result.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY = {"slice_depth": 4, "max_slices_per_film": None, "epochs": 2, "patience": 2}
TRAIN = {  # params.yaml's `train:` shape, tiny
    "seed": 11,
    "mixed_precision": False,
    "jit_compile": "auto",  # the backend's own default (XLA under JAX), as the train stage runs it
    "workers": 1,
    "cnn3d": {
        "profile": "tiny",
        "profiles": {
            "tiny": {
                "widths": [2, 3],
                "blocks": [1, 1],
                "first_stride": 2,
                "dense": [8],
                "dropout": 0.0,
                "lr": 3e-3,
                "decay": 1e-6,
                "batch_size": 4,
                "batchnorm": "precise",
            }
        },
        **TINY,
    },
    "cnn_lstm": {
        "filters": [2],
        "rnn": "lstm",
        "units": 4,
        "dense": [8],
        "dropout": 0.0,
        "lr": 3e-3,
        "decay": 1e-6,
        "batch_size": 4,
        "batchnorm": "precise",
        **TINY,
    },
}
MODELS = ("cnn3d", "cnn_lstm")


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Python's path finder, blind to TensorFlow (and keras_hub, which imports it): both
    ``import tensorflow`` and ``importlib.util.find_spec("tensorflow")`` then behave as
    where it is not installed (the latter returns None; torch and keras probe that way)."""

    BLOCKED = ("tensorflow", "keras_hub", "tf_keras")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)

    def invalidate_caches(self):
        importlib.machinery.PathFinder.invalidate_caches()

    def find_distributions(self, *args, **kwargs):  # importlib.metadata: entry points, versions
        return importlib.machinery.PathFinder.find_distributions(*args, **kwargs)


def block_tensorflow() -> None:
    sys.meta_path[:] = [_NoTensorFlow() if f is importlib.machinery.PathFinder else f for f in sys.meta_path]


def run(out: Path) -> dict:
    import keras
    import numpy as np

    from lib.core.params import TrainParams
    from lib.loaders.slices import films_of_split, write_synthetic_corpus
    from lib.models.kinds import get_kind
    from lib.models.scoring import predict_slices
    from lib.train import fit as T
    from lib.train.runtime import setup_runtime

    store, labels = write_synthetic_corpus(out / "store", n_films=20, frames_per_film=(3, 14), size=8, seed=2)
    test_ids = films_of_split(labels, store, "test").films["movieId"].tolist()
    result = {"backend": keras.config.backend(), "keras": keras.__version__, "models": {}}
    for name in MODELS:
        t0 = time.perf_counter()
        model_dir = out / name
        common = TrainParams.from_section({**TRAIN, "model": name})
        kind = get_kind(common.model)
        params = kind.parse(common.section(name))
        hyper = kind.hyper(params)
        runtime = setup_runtime(common.seed, common.mixed_precision, verbose=False)
        data = kind.datasets(params, store, labels, seed=common.seed, workers=common.workers)
        model = kind.build(params, store.frame_shape, data)
        weights = T.present_genres(data.val.slice_labels())
        T.compile_model(model, hyper.lr, hyper.decay, common.jit_compile, weights)
        fit = T.fit(
            model,
            data.train,
            data.val,
            model_dir,
            epochs=hyper.epochs,
            patience=hyper.patience,
            verbose=0,
            batchnorm=hyper.batchnorm,
        )
        kind.finish(params, fit.model_path, store.frame_shape)
        T.model_info(kind, params, common, runtime, fit, store, model, extra=kind.info_extra(params, data)).write(
            model_dir
        )

        reloaded = keras.saving.load_model(fit.model_path)
        trained_scores = predict_slices(model, store, test_ids, params.slice_depth, batch_size=8)
        reloaded_scores = predict_slices(reloaded, store, test_ids, params.slice_depth, batch_size=8)
        genres = [c for c in reloaded_scores.columns if c not in ("movieId", "slice", "start", "stop")]
        s_trained, s_reloaded = trained_scores[genres].to_numpy(), reloaded_scores[genres].to_numpy()
        np.save(model_dir / "scores.npy", s_reloaded)
        val_scores = reloaded.predict(data.val, verbose=0)
        result["models"][name] = {
            "device": runtime.describe(),
            "epochs_run": int(len(fit.history)),
            "losses": fit.history[["loss", "val_loss"]].to_numpy().ravel().tolist(),
            "best_val_auc_pr": fit.best["val_auc_pr"],
            "reloaded_val_auc_pr": T.macro_auc_pr(data.val.slice_labels(), val_scores, weights),
            "test_slices": int(len(reloaded_scores)),
            "test_films": int(reloaded_scores["movieId"].nunique()),
            "scores_in_unit_range": bool(((s_reloaded >= 0) & (s_reloaded <= 1)).all()),
            "max_abs_diff_trained_vs_reloaded": float(np.abs(s_trained - s_reloaded).max()),
            "scores_std": float(s_reloaded.std()),
            "slice_depth": params.slice_depth,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    result["test_ids"] = test_ids
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--block-tensorflow", action="store_true")
    args = parser.parse_args(argv)
    if args.block_tensorflow:
        block_tensorflow()
    sys.path.insert(0, str(ROOT))  # this checkout's lib/, whatever is installed
    args.out.mkdir(parents=True, exist_ok=True)
    result = run(args.out)
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
