"""The README's commands on a fresh clone, as a newcomer runs them: pull, experiments, metrics, plots.

    python tools/fresh_clone.py [--keep]

Clones this repository (its committed state, ``git clone``) into a temporary folder and runs,
with this environment's dvc (the clone has no ``.venv``; ``make setup`` would build one):

* ``dvc pull data.dvc``: what ``make data`` runs; the demo snapshot from the in-repo remote
  (the pipeline's outputs are not in the remote: ``make study`` makes them);
* ``make exps``: DVC's experiment records (``dvc exp show --json``) as the study's table, the
  knobs beside each run's headline macro-AP, which must fit a 200-column terminal and show the
  committed numbers (plain ``dvc exp show`` lists every parameter and dependency: far wider);
* ``dvc metrics show``: the headline file, one line per scorer, within 200 columns;
* ``dvc plots show``: every plot of ``dvc.yaml`` from git alone (the curves, the comparison,
  per-genre AP of every run, the report's figures).

Prints what each step printed and exits non-zero at the first step that fails;
``tests/test_fresh_clone.py`` runs it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 200


class CloneCheckError(RuntimeError):
    pass


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise CloneCheckError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def check(workdir: Path, dvc_bin: Path | None = None) -> dict[str, str]:
    """Run the steps in a clone under ``workdir``; returns each step's output."""
    dvc_bin = dvc_bin or Path(sys.executable).parent
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    env = {**os.environ, "COLUMNS": str(WIDTH), "DVC_NO_ANALYTICS": "1", "PATH": f"{dvc_bin}:{os.environ['PATH']}"}
    out = {"pull": _run(["dvc", "pull", "--quiet", "data.dvc"], clone, env)}
    if not (clone / "data" / "movielens" / "movies.csv").is_file() or not any((clone / "data" / "trailers").iterdir()):
        raise CloneCheckError("dvc pull data.dvc did not materialize data/")
    out["exps"] = _run(["make", "-s", "exps", f"BIN={dvc_bin}"], clone, env)
    out["metrics"] = _run(["dvc", "metrics", "show"], clone, env)
    for step in ("exps", "metrics"):
        wide = [line for line in out[step].splitlines() if len(line) > WIDTH]
        if wide:
            raise CloneCheckError(f"{step}: {len(wide)} lines wider than {WIDTH} columns, e.g. {wide[0][:120]}...")
        if "…" in out[step]:
            raise CloneCheckError(f"{step}: columns collapsed to '…' at {WIDTH} columns:\n{out[step]}")
    if "tsn-seed42" not in out["exps"] or "study.models" not in out["exps"]:
        raise CloneCheckError(f"exps: the headline or the knobs are missing:\n{out['exps']}")
    out["plots"] = _run(["dvc", "plots", "show", "-o", str(workdir / "plots")], clone, env)
    page = (workdir / "plots" / "index.html").read_text(encoding="utf-8")
    for expected in ("curves/loss.csv", "per_genre_ap/tsn-seed42.csv", "comparison.csv", "figures/comparison.png"):
        # a plot's element id is its path with / and . as _ (its title may replace the path in the text)
        if expected not in page and expected.replace("/", "_").replace(".", "_") not in page:
            raise CloneCheckError(f"plots: {expected} is not drawn")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="fresh-clone-"))
    try:
        for step, text in check(workdir).items():
            print(f"== {step}\n{text}")
    except CloneCheckError as exc:
        print(f"fresh clone: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"clone kept at {workdir / 'clone'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
