"""What native code writes straight to file descriptor 2, filtered line by line.

TensorFlow (Keras' default backend) probes for CUDA when it is imported and when
it first places a tensor. On a machine without a GPU driver its C++ runtime then
writes, to fd 2 and before absl's logging is set up (so ``TF_CPP_MIN_LOG_LEVEL``
does not stop them)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795522401.729389   22961 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 00:00:1795522405.376634   22961 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

A notebook kernel shows them as red error boxes, so every executed report seemed
to hold errors. With oneDNN on (``lib/__init__.py``), TensorFlow adds a banner saying
so when it loads and, at the first op of a graph on a type oneDNN lacks (bool,
float16, uint8), a line saying it falls back to its default kernels for that type:
both describe a setting the study chose. ``import_keras()`` imports Keras, initializes
its backend and from then on, for the rest of the process (the fallback lines come
during training), drops exactly those lines (``is_probe_line``); every other line,
Python warnings and real native errors included, goes through unchanged, and so do the
last words of a crash (the copier is a process of its own, which outlives an abort). The study's
notebooks call it in their import cell; which devices a stage uses is printed by the
stage itself (``lib.train.fit.setup_runtime``).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator

# The CUDA probe of a TensorFlow build without a usable GPU, and absl's banner before it.
_PROBE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+\s+\d+ (?:"
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\."
    r"|cuda_platform\.cc:\d+\] failed call to cuInit: .*"
    r"|cuda_(?:dnn|fft|blas)\.cc:\d+\] Unable to register cu(?:DNN|FFT|BLAS) factory: .*"
    r"|computation_placer\.cc:\d+\] computation placer already registered\..*"
    # oneDNN, which lib/__init__.py turns on: its banner, and its fallback for the tensor types it lacks (bool, float16, uint8)
    r"|port\.cc:\d+\] oneDNN custom operations are on\. You may see slightly different numerical results .*"
    r"|util\.cc:\d+\] oneDNN supports DT_[A-Z0-9]+ only on platforms with AVX-512\. "
    r"Falling back to the default Eigen-based implementation if present\."
    r")"
)


def is_probe_line(line: str) -> bool:
    """True for one of TensorFlow's known CUDA-probe or oneDNN lines (nothing else)."""
    return _PROBE.fullmatch(line.rstrip("\r\n")) is not None


# The copier runs in a process of its own: a thread would die with a crashing process (abort,
# segfault, os._exit) and take the crash's last words, still in the pipe, with it. The child
# outlives its parent, drains the pipe and exits when the last writer is gone.
_COPIER = r"""
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt is for the parent: drain until the pipe closes
drop = re.compile(sys.argv[1]) if sys.argv[1] else None
keep = re.compile(sys.argv[2])
out = os.fdopen(int(sys.argv[3]), "wb")
for raw in sys.stdin.buffer:
    line = raw.decode("utf-8", "replace").rstrip("\r\n")
    if drop is None or not drop.fullmatch(line) or keep.search(line):
        out.write(raw)
        out.flush()
"""
# Never dropped, whatever the mode: how native code and the runtime say they are dying.
_LAST_WORDS = re.compile(
    r"^F\d{4} |Check failed|terminate called|Fatal Python error|Segmentation fault|Aborted|core dumped"
)
_EVERYTHING = re.compile(r".*", re.S)


@contextlib.contextmanager
def filter_native_stderr(drop: re.Pattern | None = _PROBE) -> Iterator[None]:
    """Within the block, lines written to fd 2 (by native code or by Python) that ``drop``
    matches whole vanish, except a dying process's last words (``_LAST_WORDS``).

    fd 2 is pointed at a pipe; a child process copies each line it reads to the real fd 2
    unless it is dropped. It outlives a crash of this process, so a native abort's message
    still reaches the terminal and the report. Python exceptions propagate; the original
    fd 2 is back on exit. A child process that inherited the pipe and outlives the block
    keeps being filtered until it exits.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    copier = subprocess.Popen(
        [
            sys.executable,
            "-S",
            "-c",
            _COPIER,
            drop.pattern if drop is not None else "",
            _LAST_WORDS.pattern,
            str(saved),
        ],
        stdin=read_end,
        pass_fds=(saved,),
        close_fds=True,
        start_new_session=True,  # a terminal's Ctrl-C or a kernel shutdown signals the parent's group, not the copier
    )
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer in this process is gone: the copier drains it and ends
        os.close(saved)
        try:
            copier.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a child process still holds the pipe: it keeps being filtered
            pass


def quiet_native_stderr():
    """Everything written to fd 2 within the block vanishes (a command whose stderr must hold
    only its own lines), except a dying process's last words."""
    return filter_native_stderr(_EVERYTHING)


_kept_filter: contextlib.AbstractContextManager | None = None  # entered once, never left


def import_keras():
    """``keras``, imported and its backend initialized, with TensorFlow's probe lines kept off stderr
    from now on (for a notebook kernel: the whole run)."""
    global _kept_filter
    if _kept_filter is None:
        _kept_filter = filter_native_stderr()
        _kept_filter.__enter__()
    import keras

    keras.ops.convert_to_numpy(keras.ops.zeros((1,)))  # TensorFlow probes the GPU at its first tensor
    return keras
