"""The committed reports read cleanly: no progress-bar spam, no warning boxes that say nothing,
no machine paths, only the stage's own parameters injected, numbers rounded for reading."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from lib.core.paths import ROOT

REPORTS = sorted((ROOT / "reports").glob("*.ipynb")) + sorted((ROOT / "reports" / "03_train").glob("*.ipynb"))
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/home/|/root/|/tmp/|/Users/|/private/var/|[A-Z]:\\\\)")
PROGRESS_BAR = re.compile(r"\r|\d+%\|")
LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{8,}")
NOTEBOOK_OF = {"01_prepare": "01_prepare", "02_frames": "02_frames", "04_evaluate": "04_evaluate"}


def _outputs(nb: dict):
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) if "text" in out else ""
            data = out.get("data", {})
            text += "".join(data.get("text/plain", "")) + "".join(data.get("text/html", ""))
            yield out, text


def problems(nb: dict, source_cell_names: set[str]) -> list[str]:
    found = []
    for out, text in _outputs(nb):
        if out.get("name") == "stderr" and (PROGRESS_BAR.search(text) or "TqdmWarning" in text):
            found.append(f"progress bar or tqdm warning on stderr: {text[:80]!r}")
        if m := MACHINE_PATH.search(text):
            found.append(f"machine path: {text[max(m.start() - 40, 0) : m.end() + 40]!r}")
        if m := LONG_FLOAT.search(text):
            found.append(f"unrounded number: {m.group(0)}")
    injected = [c for c in nb["cells"] if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    for cell in injected:
        names = {n.targets[0].id for n in ast.parse("".join(cell["source"])).body if isinstance(n, ast.Assign)}
        if extra := sorted(names - source_cell_names):
            found.append(f"injected parameters the notebook does not take: {extra}")
    return found


def _source_names(report: Path) -> set[str]:
    stem = "03_train" if report.parent.name == "03_train" else report.stem
    nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    return {n.targets[0].id for n in ast.parse("".join(cell["source"])).body if isinstance(n, ast.Assign)}


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_report_is_clean(report):
    assert not problems(json.loads(report.read_text()), _source_names(report))


def test_the_check_finds_what_it_names():
    dirty = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "download = {}\nframes = {}"},
            {"cell_type": "code", "metadata": {}, "source": "", "outputs": [
                {"output_type": "stream", "name": "stderr", "text": "frames:  10%|█         | 46/459\r"},
                {"output_type": "stream", "name": "stdout", "text": "written to /work/main/outputs/x 0.6939791554446721\n"},
            ]},
        ]
    }  # fmt: skip
    found = problems(dirty, {"frames"})
    assert len(found) == 4, found
    assert not problems({"cells": [dirty["cells"][0] | {"source": "frames = {}"}]}, {"frames"})
