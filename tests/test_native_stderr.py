"""TensorFlow's CUDA-probe lines stay out of the executed notebooks; real warnings and errors do not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import nbformat
import papermill
import pytest

from lib.core.native_stderr import is_probe_line
from lib.core.paths import ROOT

# As they appear in an executed report on a machine without a GPU driver.
PROBES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795522401.729389   22961 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
    "E0000 00:00:1795522405.376634   22961 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "E0000 00:00:1732000000.123456    123 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN when one has already been registered",
    "I0000 00:00:1796088362.561237   32304 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "E0000 00:00:1796088375.635441   32304 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. Falling back to the default Eigen-based implementation if present.",
    "E0000 00:00:1796089490.681818    9486 util.cc:131] oneDNN supports DT_HALF only on platforms with AVX-512. Falling back to the default Eigen-based implementation if present.",
    "E0000 00:00:1796094020.772077   13259 util.cc:131] oneDNN supports DT_UINT8 only on platforms with AVX-512. Falling back to the default Eigen-based implementation if present.",
]
REAL = [
    "E0000 00:00:1795522405.376634   22961 op_kernel.cc:1830] OP_REQUIRES failed at conv_ops.cc:1234 : RESOURCE_EXHAUSTED: OOM",
    "W0000 00:00:1795522405.376634   22961 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used. And more.",
    "UserWarning: Could not find cuda drivers on your machine, GPU will not be used.",
    "E0000 00:00:1796094020.772077   13259 util.cc:131] oneDNN supports DT_UINT8 only on platforms with AVX-512. Then it crashed.",
    "Traceback (most recent call last):",
    "",
]


@pytest.mark.parametrize("line", PROBES)
def test_probe_lines_are_recognized(line):
    assert is_probe_line(line) and is_probe_line(line + "\n")


@pytest.mark.parametrize("line", REAL)
def test_other_lines_are_not(line):
    assert not is_probe_line(line)


WRITER = """
import os, sys, warnings
from lib.core.native_stderr import filter_native_stderr
probes = sys.argv[1].encode()
with filter_native_stderr():
    os.write(2, probes + b"native: a real error\\n" + probes)
    print("python: to stderr", file=sys.stderr)
    warnings.warn("python: a real warning")
os.write(2, b"after the block\\n" + probes)
"""


def test_the_filter_drops_exactly_the_probe_lines_of_fd_2():
    probes = "".join(line + "\n" for line in PROBES)
    result = subprocess.run(
        [sys.executable, "-c", WRITER, probes],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "native: a real error" in lines and "python: to stderr" in lines
    assert any("UserWarning: python: a real warning" in line for line in lines)
    inside = lines[: lines.index("after the block")]
    assert not [line for line in inside if is_probe_line(line)], "a probe line got through inside the block"
    assert lines[lines.index("after the block") + 1 :] == PROBES, "outside the block nothing is filtered"


CRASHER = """
import os, sys
from lib.core.native_stderr import filter_native_stderr, quiet_native_stderr
probes = sys.argv[1].encode()
block = quiet_native_stderr() if sys.argv[3] == "quiet" else filter_native_stderr()
with block:
    os.write(2, probes + b"native: the last words before " + sys.argv[2].encode() + b"\\n" + probes)
    if sys.argv[3] == "quiet":
        os.write(2, b"F0000 00:00:1.0 1 op_kernel.cc:1] Check failed: a fatal native line\\n")
    if sys.argv[2] == "abort":
        os.abort()  # what a native CHECK failure does: no Python cleanup, no finally
    os._exit(3)
"""


@pytest.mark.parametrize("how, mode", [("abort", "filter"), ("exit", "filter"), ("abort", "quiet")])
def test_a_crash_inside_the_filter_keeps_its_last_words(how, mode):
    probes = "".join(line + "\n" for line in PROBES)
    result = subprocess.run(
        [sys.executable, "-c", CRASHER, probes, how, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == (-signal.SIGABRT if how == "abort" else 3), result
    lines = result.stderr.splitlines()
    assert not [line for line in lines if is_probe_line(line)], lines  # still filtered
    if mode == "filter":
        assert f"native: the last words before {how}" in lines, lines
    else:  # quiet drops everything but how a process says it is dying
        assert lines == ["F0000 00:00:1.0 1 op_kernel.cc:1] Check failed: a fatal native line"], lines


def test_an_executed_notebook_shows_no_probe_line_but_every_real_warning(tmp_path, monkeypatch):
    # ipykernel copies fd 2 into the notebook, as it does under papermill or dvc, only outside pytest
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from lib.core.native_stderr import import_keras\n\nkeras = import_keras()"),
        nbformat.v4.new_code_cell(
            "import os, sys, warnings\n"
            "x = keras.ops.sum(keras.ops.ones((2, 3)))\n"
            "warnings.warn('a real warning')\n"
            "print('a real message on stderr', file=sys.stderr)\n"
            "os.write(2, b'a native error line\\n')"
        ),
        # a probe-like line written long after the import (oneDNN's boolean fallback comes during training)
        nbformat.v4.new_code_cell(f"os.write(2, {(PROBES[-1] + chr(10)).encode()!r})"),
    ]
    source, executed = tmp_path / "tiny.ipynb", tmp_path / "tiny.out.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(executed), cwd=str(ROOT), progress_bar=False, kernel_name="python3")
    out = nbformat.read(executed, as_version=4)
    stderr = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []) if o.get("name") == "stderr")
    assert not [line for line in stderr.splitlines() if is_probe_line(line)], stderr
    assert "cuda" not in stderr.lower(), stderr
    for real in ("a real warning", "a real message on stderr", "a native error line"):
        assert real in stderr, f"{real!r} missing from the notebook's stderr:\n{stderr}"


INTERRUPTED = """
import os, signal, time
from lib.core.native_stderr import filter_native_stderr
with filter_native_stderr():
    os.write(2, b"before the interrupt\\n")
    try:
        os.killpg(0, signal.SIGINT)  # a terminal's Ctrl-C, or a kernel shutdown: the whole process group
        time.sleep(1)
    except KeyboardInterrupt:
        pass
    os.write(2, b"after the interrupt\\n")
"""


def test_an_interrupt_of_the_process_group_does_not_kill_the_copier():
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        start_new_session=True,  # the group signalled is this test's child's own
    )
    assert result.stderr.splitlines() == ["before the interrupt", "after the interrupt"], result.stderr
