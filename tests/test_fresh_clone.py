"""The README's commands on a fresh clone of the committed state (tools/fresh_clone.py)."""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from lib.core.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from fresh_clone import check  # noqa: E402


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make")
def test_pull_experiments_metrics_and_plots_work_from_a_clone(tmp_path):
    out = check(tmp_path)
    header = out["exps"].splitlines()[0]
    assert "tsn-seed42" in header and "study.models" in header
    main_row = next(line for line in out["exps"].splitlines() if line.startswith("main"))
    assert re.search(r"\b0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", main_row), (
        main_row
    )  # the committed headline, with its interval
    assert "headline/tsn-seed42.json" in out["metrics"]
