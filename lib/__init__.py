"""The study's code: one package per pipeline stage or concern (README, "Layout"), layered
from ``lib.core`` at the bottom to ``lib.apps`` on top.

Importing ``lib`` points Keras and matplotlib at the repository's ``.cache/``
(unless the caller already chose), so a notebook or test never writes to $HOME.
"""

import os as _os
import warnings as _warnings
from pathlib import Path as _Path

_CACHE = _Path(__file__).resolve().parents[1] / ".cache"
_os.environ.setdefault("KERAS_HOME", str(_CACHE / "keras"))
_os.environ.setdefault("MPLCONFIGDIR", str(_CACHE / "matplotlib"))
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# keras-hub fetches presets through kagglehub / huggingface_hub: their caches stay here too
_os.environ.setdefault("KAGGLEHUB_CACHE", str(_CACHE / "kagglehub"))
_os.environ.setdefault("HF_HOME", str(_CACHE / "huggingface"))
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX512_VNNI or newer;
# elsewhere (this project's 2-core Xeons, for one) Conv3D training runs ~6x slower without
# them (benchmarks/bench_onednn.py). They change float round-off, which training amplifies
# like a change of seed (README, "CPU speed: oneDNN").
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# A library imports tqdm.auto, which warns in every notebook kernel that ipywidgets is missing; the
# study's own progress is plain text (lib.core.progress), so that one warning says nothing.
_warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")
