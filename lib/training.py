"""Training: configuration, runtime (seeds, device, precision), fit, and what the stage writes.

Backend-agnostic on purpose: keras, keras.ops and numpy only, so ``KERAS_BACKEND=jax``
trains the same code on a GPU machine without TensorFlow.

The model is selected and checkpointed by validation macro AUC-PR (Keras'
``AUC(curve="PR", multi_label=True)``, averaged over the genres present in the
validation split). Binary accuracy is logged too, but only to be shown beside its
all-negative baseline: on these labels predicting no genre at all scores ~0.9.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
import pandas as pd

from lib.genres import GENRES, N_GENRES
from lib.models import build_model, count_params, make_optimizer

# Keys of params.yaml's `train:` section (the notebook checks them with lib.config.require).
TRAIN_KEYS = [
    "model",
    "profile",
    "profiles",
    "cnn_lstm",
    "slice_depth",
    "max_slices_per_film",
    "epochs",
    "patience",
    "seed",
    "mixed_precision",
    "jit_compile",
    "workers",
]
PROFILE_KEYS = ["widths", "blocks", "first_stride", "dense", "dropout", "lr", "decay", "batch_size"]
CNN_LSTM_KEYS = ["filters", "rnn", "units"]

MONITOR = "val_auc_pr"


# -- configuration ----------------------------------------------------------------------
@dataclass
class TrainConfig:
    model: str
    model_kwargs: dict[str, Any]
    lr: float
    decay: float
    batch_size: int
    slice_depth: int
    max_slices_per_film: int | None
    epochs: int
    patience: int
    seed: int
    mixed_precision: bool | str
    jit_compile: bool | str
    workers: int
    profile: str
    tsn: dict[str, Any] | None = None  # params.yaml's train.tsn when model is tsn

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resolve_config(train: Mapping[str, Any]) -> TrainConfig:
    """params.yaml's `train:` section -> one flat configuration.

    ``profile`` picks a set of hyperparameters from ``profiles`` (``paper``: the
    paper's; ``demo``: what the demo corpus can learn within its CPU budget). The
    ``cnn_lstm`` model takes its recurrent part from ``cnn_lstm`` and its head and
    optimizer from the profile. The whole-trailer ``tsn`` model takes everything
    (architecture, lr, batch size, epochs, patience) from ``train.tsn``; the profile
    and slice settings do not apply to it.
    """
    missing = [k for k in TRAIN_KEYS if k not in train]
    if missing:
        raise KeyError(f"train params lack {missing}")
    if train["profile"] not in train["profiles"]:
        raise KeyError(f"train.profile {train['profile']!r} is not one of train.profiles {sorted(train['profiles'])}")
    prof = train["profiles"][train["profile"]]
    missing = [k for k in PROFILE_KEYS if k not in prof]
    if missing:
        raise KeyError(f"train.profiles.{train['profile']} lacks {missing}")
    tsn = None
    lr, decay, batch_size = float(prof["lr"]), float(prof["decay"]), int(prof["batch_size"])
    epochs, patience = int(train["epochs"]), int(train["patience"])
    if train["model"] == "tsn":
        if "tsn" not in train:
            raise KeyError("train params lack ['tsn'] (needed by model: tsn)")
        from lib.tsn import check_config

        tsn = check_config(train["tsn"])
        model_kwargs = {}
        lr, decay, batch_size = float(tsn["lr"]), 0.0, int(tsn["batch_size"])
        epochs, patience = int(tsn["epochs"]), int(tsn["patience"])
    elif train["model"] == "cnn3d":
        model_kwargs = {k: prof[k] for k in ("widths", "blocks", "first_stride", "dense", "dropout")}
    elif train["model"] == "cnn_lstm":
        rnn = train["cnn_lstm"]
        missing = [k for k in CNN_LSTM_KEYS if k not in rnn]
        if missing:
            raise KeyError(f"train.cnn_lstm lacks {missing}")
        model_kwargs = {**{k: rnn[k] for k in CNN_LSTM_KEYS}, "dense": prof["dense"], "dropout": prof["dropout"]}
    else:
        raise ValueError(f"train.model must be cnn3d or cnn_lstm (slice models) or tsn (whole trailer), got {train['model']!r}")
    return TrainConfig(
        model=train["model"],
        model_kwargs=model_kwargs,
        lr=lr,
        decay=decay,
        batch_size=batch_size,
        slice_depth=int(train["slice_depth"]),
        max_slices_per_film=None if train["max_slices_per_film"] is None else int(train["max_slices_per_film"]),
        epochs=epochs,
        patience=patience,
        seed=int(train["seed"]),
        mixed_precision=train["mixed_precision"],
        jit_compile=train["jit_compile"],
        workers=int(train["workers"]) or default_workers(),
        profile=str(train["profile"]),
        tsn=tsn,
    )


# -- runtime: seeds, device, precision, distribution -----------------------------------------
@dataclass
class Runtime:
    backend: str
    device_type: str  # "gpu", "tpu" or "cpu"
    devices: list[str]
    device_names: list[str] = field(default_factory=list)  # e.g. the GPU model, where known
    dtype_policy: str = "float32"
    distribution: str | None = None

    def describe(self) -> str:
        names = f" ({', '.join(self.device_names)})" if self.device_names else ""
        dist = f", {self.distribution}" if self.distribution else ""
        return f"backend {self.backend}: training on {len(self.devices)} {self.device_type.upper()} device(s) {self.devices}{names}, dtype policy {self.dtype_policy}{dist}"


def _gpu_names() -> list[str]:
    """GPU models from nvidia-smi when it exists: informative only, never required."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _list_devices() -> list[str]:
    """Keras' device list ("gpu:0", ...); the torch backend has no distribution library
    (``keras.distribution.list_devices`` fails there), so ask torch itself."""
    if keras.config.backend() == "torch":
        import torch

        return [f"gpu:{i}" for i in range(torch.cuda.device_count())] or ["cpu:0"]
    return keras.distribution.list_devices()


def _policy_name(mixed_precision: bool | str) -> str:
    if mixed_precision is True:
        return "mixed_float16"
    if mixed_precision in (False, None, "", "float32"):
        return "float32"
    if mixed_precision in ("mixed_float16", "mixed_bfloat16"):
        return str(mixed_precision)
    raise ValueError(f"mixed_precision must be false, true, 'mixed_float16' or 'mixed_bfloat16', got {mixed_precision!r}")


def setup_runtime(seed: int, mixed_precision: bool | str = False, verbose: bool = True) -> Runtime:
    """Seed every generator, set the dtype policy, pick the devices, and say which.

    Several accelerators are used through Keras 3's distribution API (data parallel),
    which Keras implements for the JAX backend; on TensorFlow a multi-GPU machine
    trains on its first GPU and says so.
    """
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend
    policy = _policy_name(mixed_precision)
    keras.config.set_dtype_policy(policy)
    devices = _list_devices()
    device_type = devices[0].split(":")[0] if devices else "cpu"
    rt = Runtime(backend=keras.config.backend(), device_type=device_type, devices=devices, dtype_policy=policy)
    if device_type == "gpu":
        rt.device_names = _gpu_names()
    keras.distribution.set_distribution(None)
    if len(devices) > 1 and device_type != "cpu":
        if rt.backend == "jax":
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            rt.distribution = f"DataParallel over {len(devices)} devices"
        else:
            rt.devices = devices[:1]
            rt.distribution = f"{len(devices)} devices found; Keras' data parallelism needs KERAS_BACKEND=jax, using {devices[0]}"
    if verbose:
        print(rt.describe())
    return rt


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


def compile_model(model: keras.Model, cfg: TrainConfig, label_weights: np.ndarray | None = None) -> keras.Model:
    model.compile(
        optimizer=make_optimizer(cfg.lr, cfg.decay),
        loss="binary_crossentropy",
        metrics=[auc_pr_metric(label_weights), keras.metrics.BinaryAccuracy(name="binary_accuracy")],
        jit_compile=cfg.jit_compile,
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
        from dvclive import Live

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
    cfg: TrainConfig,
    out_dir: str | Path,
    live_dir: str | Path | None = None,
    verbose: int | str = "auto",
) -> FitResult:
    """Train with checkpointing on val macro AUC-PR and early stopping; write
    ``model.keras`` (the best epoch's model, uncompiled) and ``history.csv`` into ``out_dir``.
    ``model`` itself ends with the best epoch's weights too."""
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
        keras.callbacks.ModelCheckpoint(checkpoint, monitor=MONITOR, mode="max", save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=cfg.patience, restore_best_weights=True),
    ]
    live = DvcLiveLogger(live_dir) if live_dir is not None else None
    if live is not None:
        callbacks.insert(1, live)
    t0 = time.perf_counter()
    # shuffle=False: the dataset shuffles itself per epoch from its seed; Keras' own
    # shuffling of batch order would draw from the global random state instead.
    h = model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, callbacks=callbacks, shuffle=False, verbose=verbose)
    seconds = time.perf_counter() - t0

    history = pd.DataFrame(h.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history.to_csv(out_dir / "history.csv", index=False)
    best_row = history.loc[history[MONITOR].idxmax()]
    best = {k: float(v) for k, v in best_row.items() if k != "epoch"}
    result = FitResult(history=history, best_epoch=int(best_row["epoch"]), best=best, seconds=seconds, model_path=model_path)
    save_inference_model(model, checkpoint, model_path)
    checkpoint.unlink()
    if live is not None:
        live.finish({"epoch": result.best_epoch, **{k: v for k, v in best.items() if k in ("loss", "val_loss", "auc_pr", "val_auc_pr")}})
    return result


def save_inference_model(model: keras.Model, weights: str | Path, path: str | Path) -> keras.Model:
    """The checkpointed weights in an uncompiled copy of ``model``, saved as ``path``:
    loadable with a bare ``keras.saving.load_model``, for prediction (compile it to train on)."""
    clone = model.__class__.from_config(model.get_config())  # same graph, never compiled
    clone.load_weights(weights)
    clone.save(path)
    return clone


def write_model_info(
    out_dir: str | Path,
    model: keras.Model,
    cfg: TrainConfig,
    runtime: Runtime,
    result: FitResult,
    frame_shape: tuple[int, int, int],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """model_info.json: what a reader of model.keras needs (slice depth, frame size,
    genre order) and how it was trained (backend, device, configuration, best epoch)."""
    info = {
        "model": cfg.model,
        "slice_depth": cfg.slice_depth,
        "size": int(frame_shape[0]),
        "frame_shape": [int(d) for d in frame_shape],
        "genres": list(GENRES),
        "backend": runtime.backend,
        "device": runtime.describe(),
        "devices": runtime.devices,
        "device_names": runtime.device_names,
        "keras_version": keras.__version__,
        "params": count_params(model),
        "config": cfg.as_dict(),
        "best_epoch": result.best_epoch,
        "best": result.best,
        "epochs_run": int(len(result.history)),
        "train_seconds": round(result.seconds, 1),
        **(dict(extra) if extra else {}),
    }
    Path(out_dir, "model_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return info


def build_configured_model(cfg: TrainConfig, frame_shape: tuple[int, int, int], embed_dim: int | None = None) -> keras.Model:
    """The model to fit. For ``tsn`` with a frozen preset that is the head alone, over
    cached ``embed_dim``-wide frame vectors (``finish_tsn`` puts the encoder back)."""
    if cfg.model == "tsn":
        from lib import tsn as tsn_lib

        if tsn_lib.uses_cache(cfg.tsn):
            if embed_dim is None:
                raise ValueError("a frozen-encoder tsn trains on cached embeddings: pass embed_dim")
            return tsn_lib.build_tsn_head(int(cfg.tsn["n_segments"]), int(embed_dim), **tsn_lib.head_kwargs(cfg.tsn))
        return tsn_lib.build_tsn(cfg.tsn, frame_shape)
    return build_model(cfg.model, input_shape=(cfg.slice_depth, *frame_shape), **cfg.model_kwargs)


def finish_tsn(cfg: TrainConfig, result: FitResult, frame_shape: tuple[int, int, int]) -> keras.Model:
    """The saved tsn model takes raw frames. When only the head was fitted (frozen
    preset, cached embeddings), rebuild the frozen encoder, put the checkpointed head
    behind it and overwrite ``model.keras`` with the whole model."""
    from lib import tsn as tsn_lib

    if not tsn_lib.uses_cache(cfg.tsn):
        return keras.saving.load_model(result.model_path)
    head = keras.saving.load_model(result.model_path)
    encoder = tsn_lib.load_preset_encoder(cfg.tsn["encoder"], frame_shape, trainable=False)
    full = tsn_lib.assemble(encoder, head, int(cfg.tsn["n_segments"]), frame_shape, round_float16=True)
    full.save(result.model_path)
    return full


def tsn_info(cfg: TrainConfig, embed_meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """model_info.json's ``tsn`` entry: what prediction needs (segments, encoder)."""
    from lib import tsn as tsn_lib

    t = cfg.tsn or {}
    return {
        "tsn": {
            "n_segments": int(t["n_segments"]),
            "pooling": t["pooling"],
            "encoder": str(t["encoder"]),
            "frozen": bool(t["frozen"]) if tsn_lib.is_preset(t["encoder"]) else False,
            "cached_embeddings": tsn_lib.uses_cache(t),
            "embeddings": dict(embed_meta) if embed_meta else None,
        }
    }


def default_workers() -> int:
    """Loader threads when params say 0: enough to keep an accelerator fed, not more than the cores."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))
