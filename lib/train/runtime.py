"""The training runtime: seeds, dtype policy and devices, said out loud.

Backend-agnostic on purpose (keras and numpy only), so ``KERAS_BACKEND=jax`` trains the
same code on a GPU machine without TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

import keras


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
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
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
    raise ValueError(
        f"mixed_precision must be false, true, 'mixed_float16' or 'mixed_bfloat16', got {mixed_precision!r}"
    )


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
            rt.distribution = (
                f"{len(devices)} devices found; Keras' data parallelism needs KERAS_BACKEND=jax, using {devices[0]}"
            )
    if verbose:
        print(rt.describe())
    return rt


def default_workers() -> int:
    """Loader threads when params say 0: enough to keep an accelerator fed, not more than the cores."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))
