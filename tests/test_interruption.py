"""The real frames stage, interrupted mid-extraction the way a terminal does it, loses nothing.

A Ctrl-C reaches every process of the terminal's foreground process group, the
stage and its ffmpeg children alike. Here the stage runs in a session of its own
(as a terminal would start it) on real demo trailers; once some trailers are done
and ffmpeg processes are running, the whole group gets SIGINT (or SIGTERM, as a
CI runner or scheduler sends it). The rerun must resume from the finished parts
and write a store and manifest byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from lib.core.paths import ROOT
from lib.frames import stage as stage

TRAILERS = ROOT / "data" / "trailers"
N_TRAILERS = 24
SETTINGS = dict(
    step=100, step_unit="frames", size=32, resize="squash", min_seconds=40, max_seconds=200, partial_below=0.9
)

STAGE = """
import json, signal, sys
# As a terminal starts it: a shell that runs pytest in the background hands down SIGINT ignored
signal.signal(signal.SIGINT, signal.default_int_handler)
from lib.core.params import FrameSettings
from lib.frames.stage import run_frames_stage
from lib.prepare.labels import read_labels

labels, trailers, out, parts, settings = sys.argv[1:6]
result = run_frames_stage(read_labels(labels), trailers, out, parts, FrameSettings(**json.loads(settings)), n_jobs=2,
                          progress=False)
print(json.dumps({"extracted": result.extracted, "resumed": result.resumed}))
"""


def _trailer_files() -> list[Path]:
    files = sorted(p for p in TRAILERS.glob("*.mp4") if p.stat().st_size > 0) if TRAILERS.is_dir() else []
    if len(files) < N_TRAILERS:
        pytest.skip(f"needs the demo trailers in {TRAILERS} (make data)")
    return files[:N_TRAILERS]


def _stage(tmp: Path, name: str, **popen) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-c",
        STAGE,
        str(tmp / "labels.csv"),
        str(TRAILERS),
        str(tmp / name / "out"),
        str(tmp / name / "parts"),
        json.dumps(SETTINGS),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _ffmpeg_children(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "ffmpeg" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def _outputs(out: Path) -> dict[str, bytes]:
    files = [out / stage.MANIFEST_FILE, *sorted((out / stage.STORE_DIR).iterdir())]
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """labels for a handful of real demo trailers, and the uninterrupted run's store and manifest."""
    tmp = tmp_path_factory.mktemp("interruption")
    files = _trailer_files()
    pd.DataFrame({"movieId": range(1, len(files) + 1), "youtubeId": [p.stem for p in files]}).to_csv(
        tmp / "labels.csv", index=False
    )
    counts = _finish(_stage(tmp, "reference"))
    assert counts == {"extracted": len(files), "resumed": 0}
    outputs = _outputs(tmp / "reference" / "out")
    manifest = stage.read_manifest(tmp / "reference" / "out" / stage.MANIFEST_FILE)
    assert (manifest["outcome"] == "ok").sum() >= N_TRAILERS // 2, "the subset must be mostly decodable trailers"
    return tmp, outputs, manifest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_stage_resumes_to_the_same_bytes(reference, sig):
    tmp, expected, manifest = reference
    name = f"run-{sig.name}"
    proc = _stage(tmp, name, start_new_session=True)  # its own process group, as a terminal starts a job
    pgid = os.getpgid(proc.pid)
    parts = tmp / name / "parts"
    deadline = time.monotonic() + 60
    running: list[psutil.Process] = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = len(list(parts.glob("*/*.json")))
        running = _ffmpeg_children(proc.pid)
        if done >= 3 and running:
            break
        time.sleep(0.005)
    assert proc.poll() is None and running, "the stage finished before it could be interrupted"
    os.killpg(pgid, sig)  # what the terminal does: every process of the group gets the signal
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the interrupted stage must not report success"
    assert "KeyboardInterrupt" in err, err[-3000:]
    assert not (tmp / name / "out" / stage.MANIFEST_FILE).exists()
    time.sleep(0.2)
    assert not [p for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "ffmpeg left behind"

    # Every part left behind is what the uninterrupted run decided for that trailer: nothing invented by the stop.
    truth = manifest.set_index("youtubeId")
    left = [json.loads(p.read_text()) for p in parts.glob("*/*.json")]
    assert len(left) >= 3
    wrong = {
        r["youtubeId"]: (r["outcome"], r["reason"])
        for r in left
        if (r["outcome"], r["reason"] or "")
        != (truth.loc[r["youtubeId"], "outcome"], truth.loc[r["youtubeId"], "reason"])
    }
    assert not wrong, f"parts recorded from decodes the interruption stopped: {wrong}"

    counts = _finish(_stage(tmp, name))
    assert counts["resumed"] == len(left) and counts["extracted"] == N_TRAILERS - len(left)
    assert _outputs(tmp / name / "out") == expected, "the resumed store or manifest differs from an uninterrupted run"


def test_sigterm_raises_keyboard_interrupt_inside_the_block_only():
    from lib.core.interrupt import terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    assert before == signal.SIG_DFL
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs between two bytecodes; it must not get this far
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_ignored_sighup_stays_ignored_under_nohup():
    from lib.core.interrupt import terminate_as_interrupt

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with terminate_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
