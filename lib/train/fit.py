"""Training: the optimizer, the metric the checkpoint is chosen by, callbacks and the fit.

Backend-agnostic on purpose: keras, keras.ops and numpy only, so ``KERAS_BACKEND=jax``
trains the same code on a GPU machine without TensorFlow. What differs between model
kinds (inputs, model, what is saved) comes from ``lib.models.kinds``; this module is the
one training loop they share.

The model is selected and checkpointed by validation macro AUC-PR (Keras'
``AUC(curve="PR", multi_label=True)``, averaged over the genres present in the
validation split). Binary accuracy is logged too, but only to be shown beside its
all-negative baseline: on these labels predicting no genre at all scores ~0.9.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from dvclive import Live

from lib.core.genres import GENRES, N_GENRES
from lib.core.params import to_dict
from lib.models.info import ModelInfo
from lib.models.slice_models import PAPER_DECAY, PAPER_LR
from lib.train.batchnorm import BATCHNORM_MODES, PreciseBatchNorm

MONITOR = "val_auc_pr"


def make_optimizer(lr: float = PAPER_LR, decay: float = PAPER_DECAY) -> keras.optimizers.Optimizer:
    """Adam with the legacy Keras ``decay`` argument, which Keras 3 dropped:
    ``lr / (1 + decay * step)`` is exactly an inverse-time schedule with decay_steps=1."""
    schedule = keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=decay) if decay else lr
    return keras.optimizers.Adam(learning_rate=schedule)


def count_params(model: keras.Model) -> dict[str, int]:
    trainable = sum(_size(w.shape) for w in model.trainable_weights)
    total = int(model.count_params())
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


# -- metrics ----------------------------------------------------------------------------
def present_genres(y: np.ndarray) -> np.ndarray:
    """1.0 for genres with at least one positive slice, else 0.0: AUC-PR is undefined
    without positives, so those genres are left out of the macro average."""
    return (np.asarray(y).sum(axis=0) > 0).astype("float32")


def auc_pr_metric(label_weights: np.ndarray | None = None, name: str = "auc_pr") -> keras.metrics.AUC:
    return keras.metrics.AUC(curve="PR", multi_label=True, num_labels=N_GENRES, label_weights=label_weights, name=name)


def macro_auc_pr(y_true: np.ndarray, scores: np.ndarray, label_weights: np.ndarray | None = None) -> float:
    """The training metric computed on given scores (e.g. a baseline's), for a fair comparison."""
    m = auc_pr_metric(label_weights)
    # A fresh metric per call makes TensorFlow warn about retracing; harmless here.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        m.update_state(np.asarray(y_true, "float32"), np.asarray(scores, "float32"))
        return float(keras.ops.convert_to_numpy(m.result()))
    finally:
        tf_logger.setLevel(level)


def compile_model(
    model: keras.Model,
    lr: float,
    decay: float,
    jit_compile: bool | str = "auto",
    label_weights: np.ndarray | None = None,
) -> keras.Model:
    model.compile(
        optimizer=make_optimizer(lr, decay),
        loss="binary_crossentropy",
        metrics=[auc_pr_metric(label_weights), keras.metrics.BinaryAccuracy(name="binary_accuracy")],
        jit_compile=jit_compile,
    )
    return model


# -- callbacks --------------------------------------------------------------------------
class EpochTimer(keras.callbacks.Callback):
    """Adds seconds per epoch to the logs (history.csv shows the training budget)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._t0


class DvcLiveLogger(keras.callbacks.Callback):
    """Per-epoch train/val loss and AUC-PR to dvclive, one step per epoch.

    dvclive's own ``DVCLiveCallback`` imports TensorFlow, which would tie this module to
    one backend, so the few lines it needs are here. The pipeline's dvc.yaml declares the
    files (``metrics.json``, ``plots/metrics``), so dvclive writes no dvc.yaml of its own.
    """

    LOGGED = {"loss": "loss", "auc_pr": "auc_pr", "binary_accuracy": "binary_accuracy"}

    def __init__(self, live_dir: str | Path):
        super().__init__()
        self.live = Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, name in self.LOGGED.items():
            for prefix, split in (("", "train"), ("val_", "val")):
                if prefix + key in logs:
                    self.live.log_metric(f"{split}/{name}", float(logs[prefix + key]))
        self.live.next_step()

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Record the checkpointed (best) epoch beside the last one, then close."""
        self.live.summary["best"] = dict(summary)
        self.live.end()


# -- fit ----------------------------------------------------------------------------------
@dataclass
class FitResult:
    history: pd.DataFrame
    best_epoch: int  # 1-based, as in the history table
    best: dict[str, float]
    seconds: float
    model_path: Path


def fit(
    model: keras.Model,
    train_ds,
    val_ds,
    out_dir: str | Path,
    *,
    epochs: int,
    patience: int,
    live_dir: str | Path | None = None,
    verbose: int | str = "auto",
    batchnorm: str = "moving",
    batchnorm_batches: int | None = 200,
) -> FitResult:
    """Train with checkpointing on val macro AUC-PR and early stopping; write
    ``model.keras`` (the best epoch's model, uncompiled) and ``history.csv`` into ``out_dir``.
    ``model`` itself ends with the best epoch's weights too.

    ``batchnorm="precise"`` recomputes BatchNorm statistics on (at most
    ``batchnorm_batches``) training batches before every validation
    (``lib.train.batchnorm``); ``"moving"`` keeps Keras' running averages."""
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"nothing to train on: {len(train_ds)} training and {len(val_ds)} validation batches")
    model_path = out_dir / "model.keras"
    # Weights only while training: a compiled model with per-genre AUC weights does not
    # reload in Keras 3.15 (the weights serialise as a tensor its AUC cannot read back).
    checkpoint = out_dir / "checkpoint.weights.h5"
    callbacks: list[keras.callbacks.Callback] = [
        EpochTimer(),
        keras.callbacks.ModelCheckpoint(
            checkpoint, monitor=MONITOR, mode="max", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=patience, restore_best_weights=True),
    ]
    live = DvcLiveLogger(live_dir) if live_dir is not None else None
    if live is not None:
        callbacks.insert(1, live)
    if batchnorm == "precise":
        callbacks.insert(0, PreciseBatchNorm(train_ds, batchnorm_batches))
    t0 = time.perf_counter()
    # shuffle=False: the dataset shuffles itself per epoch from its seed; Keras' own
    # shuffling of batch order would draw from the global random state instead.
    h = model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, shuffle=False, verbose=verbose)
    seconds = time.perf_counter() - t0

    history = pd.DataFrame(h.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history.to_csv(out_dir / "history.csv", index=False)
    write_curves(history, out_dir / CURVES_DIR)
    best_row = history.loc[history[MONITOR].idxmax()]
    best = {k: float(v) for k, v in best_row.items() if k != "epoch"}
    result = FitResult(
        history=history, best_epoch=int(best_row["epoch"]), best=best, seconds=seconds, model_path=model_path
    )
    save_inference_model(model, checkpoint, model_path)
    checkpoint.unlink()
    if live is not None:
        live.finish(
            {
                "epoch": result.best_epoch,
                **{k: v for k, v in best.items() if k in ("loss", "val_loss", "auc_pr", "val_auc_pr")},
            }
        )
    return result


CURVES_DIR = "curves"


def write_curves(history: pd.DataFrame, folder: Path) -> None:
    """``loss.csv`` and ``auc_pr.csv``: each metric per epoch for the training and the validation
    split, one row per (epoch, split), so ``dvc plots show`` overlays the two (the custom
    template ``.dvc/plots/train_val.json`` colours by ``split``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for metric in ("loss", "auc_pr"):
        long = pd.concat(
            [
                pd.DataFrame({"epoch": history["epoch"], "split": split, "value": history[prefix + metric]})
                for split, prefix in (("train", ""), ("val", "val_"))
            ]
        )
        long.round(5).to_csv(folder / f"{metric}.csv", index=False)


def save_inference_model(model: keras.Model, weights: str | Path, path: str | Path) -> keras.Model:
    """The checkpointed weights in an uncompiled copy of ``model``, saved as ``path``:
    loadable with a bare ``keras.saving.load_model``, for prediction (compile it to train on)."""
    clone = model.__class__.from_config(model.get_config())  # same graph, never compiled
    clone.load_weights(weights)
    clone.save(path)
    return clone


def model_info(
    kind,
    params,
    common,
    runtime,
    result: FitResult,
    store,
    model: keras.Model,
    extra: Mapping[str, Any] | None = None,
    data=None,
) -> ModelInfo:
    """What the train stage records in ``model_info.json`` (``lib.models.info``): the frames
    the saved model takes (``kind.model_frames`` of ``data``; the store's without it: their
    shape and extraction settings), its kind's section as trained, and how it went."""
    if data is not None:
        frame_shape, frames = kind.model_frames(params, store, data)
    else:
        frame_shape, frames = [int(d) for d in store.frame_shape], store.settings
    return ModelInfo(
        model=kind.name,
        genres=list(GENRES),
        frame_shape=list(frame_shape),
        frames=frames,
        settings=to_dict(params),
        seed=int(common.seed),
        profile=kind.profile(params),
        runtime={
            "backend": runtime.backend,
            "device": runtime.describe(),
            "devices": runtime.devices,
            "device_names": runtime.device_names,
            "dtype_policy": runtime.dtype_policy,
            "keras_version": keras.__version__,
            "mixed_precision": common.mixed_precision,
            "jit_compile": common.jit_compile,
        },
        n_params=count_params(model),
        best_epoch=result.best_epoch,
        best=result.best,
        epochs_run=int(len(result.history)),
        train_seconds=round(result.seconds, 1),
        extra=dict(extra or {}),
    )
