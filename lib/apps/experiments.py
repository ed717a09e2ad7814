"""Single-parameter experiments, each against the study it varies, on the same test films.

DVC runs and records the experiments; this module reads its records:

    dvc exp run --temp -n tsn-2-segments -S train.tsn.n_segments=2   # in a temporary copy: the workspace stays
    python -m lib.apps.experiments show     # every experiment: the knobs that differ, each run's macro-AP (make exps)
    python -m lib.apps.experiments table    # each experiment's runs against HEAD's study, paired, as markdown

``table`` reads every run's test film scores (``outputs/evaluate/tables/<run>/film_scores_test.csv``)
of HEAD and of each DVC experiment on it from DVC's cache (``dvc.api.DVCFileSystem`` at the
experiment's commit), and scores each run against the same run of the study: macro-AP with its
bootstrap interval, and the paired difference, both resampling the same test films, so that
"measurably different" means the paired interval excludes zero.

``save`` keeps an experiment's scores in git instead, under ``reports/experiments/<name>/``
(DVC's experiment refs live in the local repository unless pushed with ``dvc exp push``);
``table --saved`` compares those folders, against ``default``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.genres import GENRES
from lib.core.paths import ROOT
from lib.prepare.labels import read_labels
from lib.scoring import metrics as M

EXPERIMENTS_DIR = ROOT / "reports" / "experiments"
TABLES_DIR = ROOT / "outputs" / "evaluate" / "tables"
LABELS_CSV = ROOT / "outputs" / "prepare" / "labels.csv"
SCORES_NAME = "film_scores_test.csv"
BASELINE = "default"


def save(
    name: str,
    tables_dir: Path = TABLES_DIR,
    out_dir: Path = EXPERIMENTS_DIR,
    labels_csv: Path = LABELS_CSV,
    note: str = "",
) -> Path:
    """Copy every run's test film scores, the test labels and the evaluate metrics into ``out_dir/name``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"an experiment name must be a plain folder name, got {name!r}")
    runs = sorted(p.parent for p in Path(tables_dir).glob(f"*/{SCORES_NAME}"))
    if not runs:
        raise FileNotFoundError(f"no {SCORES_NAME} under {tables_dir}: run the evaluate stage first (dvc repro)")
    dest = Path(out_dir) / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for run in runs:
        (dest / run.name).mkdir()
        shutil.copy2(run / SCORES_NAME, dest / run.name / SCORES_NAME)
    labels = read_labels(labels_csv)
    labels[labels["split"] == "test"][["movieId", *GENRES]].to_csv(dest / "test_labels.csv", index=False)
    metrics = Path(tables_dir).parent / "metrics.json"
    if metrics.exists():
        shutil.copy2(metrics, dest / "metrics.json")
    if note:
        (dest / "note.txt").write_text(note.rstrip() + "\n")
    return dest


def load(source: Path | str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(test labels indexed by movieId, {run: film scores indexed by movieId}) of one experiment:
    a saved folder (a ``Path``), or a git revision (a ``str``: a commit, a branch, or a DVC
    experiment's commit) whose outputs are read from DVC's cache, as DVC recorded them."""
    if isinstance(source, str):
        return load_rev(source)
    folder = Path(source)
    labels = pd.read_csv(folder / "test_labels.csv").set_index("movieId")[list(GENRES)]
    runs = {
        p.parent.name: pd.read_csv(p).set_index("movieId")[list(GENRES)]
        for p in sorted(folder.glob(f"*/{SCORES_NAME}"))
    }
    return labels, runs


def load_rev(rev: str, repo: Path = ROOT) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """``load`` of a revision: its ``labels.csv`` and every run's test film scores, through
    ``dvc.api.DVCFileSystem`` (git for the pipeline files, the local DVC cache for outputs)."""
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(repo), rev=rev)
    with fs.open("outputs/prepare/labels.csv") as fh:
        labels = pd.read_csv(fh, dtype={"youtubeId": str})
    labels = labels[labels["split"] == "test"].set_index("movieId")[list(GENRES)]
    runs = {}
    for path in sorted(fs.glob(f"/outputs/evaluate/tables/*/{SCORES_NAME}")):
        with fs.open(path) as fh:
            runs[Path(path).parent.name] = pd.read_csv(fh).set_index("movieId")[list(GENRES)]
    if not runs:
        raise FileNotFoundError(f"revision {rev}: no {SCORES_NAME} under outputs/evaluate/tables (was it evaluated?)")
    return labels, runs


def exp_records(repo: Path = ROOT, commits: int = 20, extra: list[str] | None = None) -> list:
    """DVC's experiment records of the last ``commits`` commits (``dvc exp show --json -n``)."""
    import json
    import subprocess

    result = subprocess.run(
        ["dvc", "exp", "show", "--json", "-n", str(commits), *(extra or [])],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dvc exp show failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


def dvc_experiments(repo: Path = ROOT, commits: int = 20) -> dict[str, dict[str, str]]:
    """{baseline commit: {experiment name: its commit}} of the DVC experiments on the last
    ``commits`` commits: each is compared with the study it ran from."""
    found: dict[str, dict[str, str]] = {}
    for record in exp_records(repo, commits):
        for group in record.get("experiments") or []:
            for exp in group.get("revs") or []:
                if not exp.get("error"):
                    found.setdefault(record["rev"], {})[exp.get("name") or exp["rev"][:7]] = exp["rev"]
    return found


def compare(
    baseline: Path | str,
    experiments: Mapping[str, Path | str],
    against: Mapping[str, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    baseline_name: str = BASELINE,
) -> pd.DataFrame:
    """One row per (experiment, run): macro-AP [95% CI] and the paired difference to the
    baseline's run of the same name [95% CI], on the films both scored. A run that the
    baseline lacks (a model added by the experiment) is paired with the baseline run that
    ``against`` names for it (``{"cnn_lstm-seed42": "cnn3d-seed42"}``: the model it
    replaces), else with nothing."""
    against = dict(against or {})
    base_labels, base_runs = load(baseline)
    rows = []
    for exp_name, folder in {baseline_name: baseline, **experiments}.items():
        labels, runs = load(folder)
        for run, scores in runs.items():
            row = {"experiment": exp_name, "run": run}
            ref_name = run if run in base_runs else against.get(run)
            ref = base_runs.get(ref_name) if exp_name != baseline_name else None
            films = scores.index.intersection(labels.index)
            if ref is not None:
                films = films.intersection(ref.index).intersection(base_labels.index)
                if not labels.loc[films].equals(base_labels.loc[films]):
                    raise ValueError(
                        f"{exp_name}: its test labels differ from the baseline's; it changed the data, not one parameter"
                    )
            y = labels.loc[films].to_numpy()
            s = scores.loc[films].to_numpy(float)
            low, high = M.bootstrap_ci(y, s, n_boot=n_boot, seed=seed)
            row.update(n_films=len(films), macro_ap=M.macro_ap(y, s), low=low, high=high)
            if ref is not None:
                r = ref.loc[films].to_numpy(float)
                d_low, d_high = M.paired_bootstrap_ci(y, s, r, n_boot=n_boot, seed=seed)
                row.update(
                    against=ref_name,
                    identical=bool(np.array_equal(s, r)),
                    diff=M.macro_ap(y, s) - M.macro_ap(y, r),
                    diff_low=d_low,
                    diff_high=d_high,
                    verdict="higher" if d_low > 0 else "lower" if d_high < 0 else "no clear difference",
                )
            rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, show_identical: bool = False) -> str:
    """The comparison as a markdown table (3 decimals). A run whose scores an experiment left
    exactly as they were (``tsn`` when only the slice models changed) is left out unless
    ``show_identical``."""
    lines = [
        "| experiment | run | test films | macro-AP [95% CI] | − the study's run [95% CI] | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in table.itertuples():
        identical = getattr(r, "identical", False)  # NaN for the baseline's own rows
        if not show_identical and isinstance(identical, (bool, np.bool_)) and identical:
            continue
        paired = "diff" in table and np.isfinite(getattr(r, "diff", np.nan))
        ref = f" (vs {r.against})" if paired and r.against != r.run else ""
        diff = f"{r.diff:+.3f} [{r.diff_low:+.3f}, {r.diff_high:+.3f}]{ref}" if paired else "-"
        verdict = r.verdict if paired else "-"
        lines.append(
            f"| {r.experiment} | {r.run} | {r.n_films} | {r.macro_ap:.3f} [{r.low:.3f}, {r.high:.3f}] | {diff} | {verdict} |"
        )
    return "\n".join(lines)


HEADLINE_DIR = "outputs/evaluate/headline/"
ALWAYS = ("study.models", "study.seeds")  # which runs a row has


def _flat(tree: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, name + ".") if isinstance(value, Mapping) else {name: value})
    return out


def experiments_table(records: list, scorers: tuple[str, ...] = ("tsn", "cnn3d", "chance")) -> pd.DataFrame:
    """One row per commit and per DVC experiment (``dvc exp show --json``): the study's runs and
    every parameter that differs between rows, then each
    scorer's headline macro-AP with its 95% interval, for every run of a model (``tsn-seed42``)."""
    rows = []

    def add(record, label):
        data = record.get("data") or {}
        params = _flat((data.get("params") or {}).get("params.yaml", {}).get("data") or {})
        row = {"experiment": label, **{f"param:{k}": v for k, v in params.items()}}
        for path, metric in (data.get("metrics") or {}).items():
            if not path.startswith(HEADLINE_DIR):
                continue
            name, values = Path(path).stem, (metric or {}).get("data") or {}
            if name.split("-seed")[0] in scorers and "macro_ap" in values:
                row[name] = (
                    f"{values['macro_ap']:.3f} [{values.get('macro_ap_lo', float('nan')):.3f}, {values.get('macro_ap_hi', float('nan')):.3f}]"
                )
        rows.append(row)

    for i, record in enumerate(records):
        rev = str(record.get("rev", ""))
        if i > 1 and not record.get("experiments"):
            continue  # an older commit (dvc exp show -n) without experiments of its own
        add(record, record.get("name") or (rev if rev == "workspace" else rev[:7]))
        for group in record.get("experiments") or []:
            for exp in group.get("revs") or []:
                add(exp, exp.get("name") or str(exp.get("rev", ""))[:7])
    table = pd.DataFrame(rows).set_index("experiment")
    params = [c for c in table.columns if c.startswith("param:")]
    varying = [c for c in params if c[len("param:") :] in ALWAYS or table[c].astype(str).nunique() > 1]
    scores = sorted(c for c in table.columns if not c.startswith("param:"))
    table = table[varying + scores].rename(columns=lambda c: c.removeprefix("param:"))
    return table.fillna("-")


def show(argv_dvc: list[str] | None = None) -> str:
    """``dvc exp show --json`` as the study's compact table (``make exps``)."""
    return experiments_table(exp_records(extra=argv_dvc)).to_string()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.apps.experiments", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_save = sub.add_parser("save", help="keep the workspace's evaluate results as experiment NAME")
    p_save.add_argument("name")
    p_save.add_argument("--note", default="", help="what was changed, e.g. the -S flags")
    p_show = sub.add_parser("show", help="DVC's experiments (dvc exp show --json): knobs and headline macro-AP")
    p_show.add_argument("-A", "--all-commits", action="store_true", help="every commit, not only HEAD's")
    p_table = sub.add_parser(
        "table", help="every DVC experiment of HEAD against HEAD's study, as markdown (--saved: the saved folders)"
    )
    p_table.add_argument("--saved", action="store_true", help="the folders under reports/experiments/ instead")
    p_table.add_argument("--baseline", default=None, help="with --saved: the baseline folder (default: default)")
    p_table.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="RUN=BASELINE_RUN",
        help="pair a run the baseline lacks with one it has, e.g. cnn_lstm-seed42=cnn3d-seed42",
    )
    p_table.add_argument("--csv", type=Path, help="also write the table here")
    p_table.add_argument("--all", action="store_true", help="also list runs whose scores an experiment left unchanged")
    args = parser.parse_args(argv)
    if args.command == "save":
        print(f"saved {save(args.name, note=args.note)}")
        return 0
    if args.command == "show":
        try:
            print(show(["-A"] if args.all_commits else []))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.saved:
        name = args.baseline or BASELINE
        baseline = EXPERIMENTS_DIR / name
        if not (baseline / "test_labels.csv").exists():
            print(
                f"error: no saved baseline at {baseline}; run `python -m lib.apps.experiments save {name}` on the unchanged study",
                file=sys.stderr,
            )
            return 2
        others = {
            p.name: p
            for p in sorted(EXPERIMENTS_DIR.iterdir())
            if p.is_dir() and p.name != name and (p / "test_labels.csv").exists()
        }
    try:
        against = dict(pair.split("=", 1) for pair in args.against)
    except ValueError:
        parser.error(f"--against takes RUN=BASELINE_RUN, got {args.against}")
    if args.saved:
        table = compare(baseline, others, against, baseline_name=name)
    else:  # each DVC experiment against the study it ran from
        groups = dvc_experiments()
        if not groups:
            print("no DVC experiments: run one, e.g. `dvc exp run --temp -n NAME -S key=value`", file=sys.stderr)
            return 1
        parts = [compare(base, exps, against, baseline_name=f"study ({base[:7]})") for base, exps in groups.items()]
        table = pd.concat(parts, ignore_index=True)
        # the study's own rows once (several commits, one pipeline, same scores), named for what they are
        study = table["experiment"].str.startswith("study (")
        kept = ~study | ~table.duplicated(subset=["run", "n_films", "macro_ap", "low", "high"])
        table = table[kept].assign(experiment=lambda t: t["experiment"].where(~study[kept], "study"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(markdown(table, show_identical=args.all))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
