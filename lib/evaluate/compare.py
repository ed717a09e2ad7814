"""The study's comparison: every trained run (model x seed) and every baseline, scored on
the same test films, side by side with intervals, seed aggregates and data-size flags.

The `train` stage writes one folder per run, ``<train_dir>/<model>-seed<seed>``
(``run_name``), from params.yaml's ``study: {models, seeds}``; the evaluate notebook
loads them with ``load_runs`` and scores each through its kind (``lib.models.kinds``).
Baselines are one dict, ``lib.evaluate.baselines.BASELINES``: adding one is one line.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core.atomic import atomic_write
from lib.models.info import ModelInfo
from lib.models.kinds import LoadedRun, load_run
from lib.scoring import metrics as M
from lib.scoring.sufficiency import aggregate_flag


def run_name(model: str, seed: int) -> str:
    """A run's folder name under the train stage's output (dvc.yaml builds the same)."""
    return f"{model}-seed{int(seed)}"


def study_runs(study: Mapping) -> list[tuple[str, int]]:
    """(model, seed) of every run the study trains, models in the listed order, then seeds."""
    models, seeds = list(study["models"]), [int(s) for s in study["seeds"]]
    if not models or not seeds:
        raise ValueError(f"study needs at least one model and one seed, got models={models}, seeds={seeds}")
    if len(set(models)) < len(models) or len(set(seeds)) < len(seeds):
        raise ValueError(f"study lists a model or a seed twice: models={models}, seeds={seeds}")
    return [(m, s) for m in models for s in seeds]


@dataclass
class Run:
    name: str
    model_name: str  # the study's model name (``study.models``)
    seed: int
    path: Path
    info: ModelInfo = field(repr=False)

    def load(self) -> LoadedRun:
        """The trained model, through its kind (``lib.models.kinds.load_run``)."""
        return load_run(self.path, self.info)


def load_runs(train_dir: str | Path, study: Mapping) -> list[Run]:
    """Every run of ``study`` under ``train_dir``, with its ``model_info.json``. A missing
    run is an error that names what is there (a run not yet trained, or a study changed
    without `dvc repro`)."""
    train_dir = Path(train_dir)
    runs, missing = [], []
    for model, seed in study_runs(study):
        path = train_dir / run_name(model, seed)
        if not (path / "model.keras").is_file() or not (path / "model_info.json").is_file():
            missing.append(path.name)
            continue
        runs.append(Run(path.name, model, seed, path, ModelInfo.read(path)))
    if missing:
        present = (
            sorted(p.name for p in train_dir.glob("*") if (p / "model.keras").is_file()) if train_dir.is_dir() else []
        )
        raise FileNotFoundError(
            f"no trained run for {missing} under {train_dir} (model.keras + model_info.json); "
            f"runs there: {present or 'none'}. Run `dvc repro` (or the train notebook with model=/seed=)."
        )
    return runs


# --- Tables ------------------------------------------------------------------------------

# The comparison table's metrics: the peers' (trapezoid) µAP, mAP, wAP, sAP, scikit-learn's
# macro-AP (step), and macro-F1 at the validation-tuned thresholds.
TABLE_METRICS = ("uAP", "mAP", "wAP", "sAP", "macro_ap", "macro_f1_tuned")


def comparison_table(
    summaries: Mapping[str, Mapping[str, float]],
    y_test,
    kinds: Mapping[str, str] | None = None,
    metrics: Sequence[str] = TABLE_METRICS,
) -> pd.DataFrame:
    """One row per scorer (runs, seed means, baselines): each metric and, where there is
    one, its 95% interval (``<metric>_low``/``_high``), then a ``flag`` column that says
    when the test split is too small for the numbers to mean much (``lib.scoring.sufficiency``)."""
    rows = {}
    for name, s in summaries.items():
        row = {"kind": (kinds or {}).get(name, "")}
        for m in metrics:
            row[m] = s.get(m, np.nan)
            if f"{m}_ci95_low" in s:
                row[f"{m}_low"], row[f"{m}_high"] = s[f"{m}_ci95_low"], s[f"{m}_ci95_high"]
            elif f"{m}_std" in s:
                row[f"{m}_std"] = s[f"{m}_std"]
        rows[name] = row
    table = pd.DataFrame(rows).T
    for c in table.columns.drop("kind"):
        table[c] = pd.to_numeric(table[c])
    table["flag"] = aggregate_flag(y_test)
    table.index.name = "scorer"
    return table


def format_comparison(table: pd.DataFrame, metrics: Sequence[str] = TABLE_METRICS, digits: int = 3) -> pd.DataFrame:
    """``0.712 [0.650, 0.770]`` for a run or baseline, ``0.712 ± 0.013`` for a seed mean,
    and the flag beside them."""
    out = pd.DataFrame(index=table.index)
    out["kind"] = table["kind"]
    for m in metrics:

        def cell(r, m=m):
            v = r[m]
            if not np.isfinite(v):
                return "n/a"
            if f"{m}_std" in r and np.isfinite(r.get(f"{m}_std", np.nan)):
                return f"{v:.{digits}f} ± {r[f'{m}_std']:.{digits}f}"
            if f"{m}_low" in r and np.isfinite(r.get(f"{m}_low", np.nan)):
                return f"{v:.{digits}f} [{r[f'{m}_low']:.{digits}f}, {r[f'{m}_high']:.{digits}f}]"
            return f"{v:.{digits}f}"

        out[m] = table.apply(cell, axis=1)
    out["flag"] = table["flag"]
    return out


def seed_aggregate(summaries: Mapping[str, Mapping[str, float]], runs: Sequence[Run]) -> dict[str, dict[str, float]]:
    """Per study model with more than one seed: mean and sample std (ddof=1) of every
    metric over its seeds, plus ``n_seeds`` and ``model``. Keys ``<model> (mean of N seeds)``."""
    out = {}
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        by_model.setdefault(run.model_name, []).append(run)
    for model, model_runs in by_model.items():
        if len(model_runs) < 2:
            continue
        keys = [k for k in summaries[model_runs[0].name] if not k.endswith(("_ci95_low", "_ci95_high"))]
        values = pd.DataFrame([{k: summaries[r.name][k] for k in keys} for r in model_runs], dtype=float)
        agg = {k: float(values[k].mean()) for k in keys}
        agg.update({f"{k}_std": float(values[k].std(ddof=1)) for k in keys})
        agg["n_seeds"] = len(model_runs)
        agg["model"] = model
        out[f"{model} (mean of {len(model_runs)} seeds)"] = agg
    return out


def pairs_to_compare(runs: Sequence[Run], baselines: Sequence[str]) -> list[tuple[str, str]]:
    """Every pair of runs of different models trained with the same seed (same seed: the
    comparison is about the model, and the pairs stay few as seeds grow), then every run
    against every baseline."""
    pairs = [
        (a.name, b.name)
        for a, b in itertools.combinations(runs, 2)
        if a.seed == b.seed and a.model_name != b.model_name
    ]
    pairs += [(r.name, b) for r in runs for b in baselines]
    return pairs


PAIRED_METRICS = ("mAP", "macro_ap")


def paired_table(
    y_test,
    test_scores: Mapping[str, np.ndarray],
    pairs: Sequence[tuple[str, str]],
    n_boot: int = 1000,
    seed: int = 0,
    metrics: Sequence[str] = PAIRED_METRICS,
    expected: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """For each (a, b): ``metric(a) - metric(b)`` on the test films and its paired
    bootstrap 95% interval (both scorers on the same resampled films), and a verdict:
    ``a better``/``b better`` when the interval excludes 0, else ``no clear difference``.

    ``expected`` names scorers that are expectations rather than score matrices (chance:
    ``{"chance": lib.scoring.chance.random_rankings(...)}``): the point difference subtracts
    the reference's exact value, each resample its value on the same resampled films."""
    fns = {k: v for k, v in M.headline_metrics().items() if k in metrics}
    expected = expected or {}
    y = np.asarray(y_test)
    rows = []
    for a, b in pairs:
        sa = test_scores[a]
        against = expected[b] if b in expected else test_scores[b]
        cis = M.bootstrap_intervals(y_test, sa, fns, n_boot=n_boot, seed=seed, against=against)
        row = {"a": a, "b": b}
        for m in metrics:
            value_b = against.exact[m](y) if b in expected else fns[m](y, np.asarray(against, float))
            diff = fns[m](y, np.asarray(sa, float)) - value_b
            low, high = cis[m]
            row.update(
                {
                    f"{m}_diff": diff,
                    f"{m}_low": low,
                    f"{m}_high": high,
                    f"{m}_verdict": "a better" if low > 0 else "b better" if high < 0 else "no clear difference",
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


HEADLINE = {"macro_ap": "macro_ap", "mAP": "mAP", "f1": "macro_f1_tuned"}  # headline name -> metrics.json name


def headline(metrics: Mapping) -> dict:
    """The few numbers a person compares first, for ``dvc metrics show`` and ``dvc exp show``:
    per run and per baseline, macro-AP (scikit-learn's), the peers' trapezoid mAP and the
    macro-F1 at thresholds tuned on validation, each with its 95% interval (``_lo``, ``_hi``),
    rounded to 3 decimals. The full document (``metrics.json``) stays beside it."""
    out = {}
    for name, values in {**metrics["runs"], **metrics["baselines"]}.items():
        row = {}
        for short, key in HEADLINE.items():
            if values.get(key) is None:
                continue
            row[short] = round(float(values[key]), 3)
            for side, suffix in (("lo", "ci95_low"), ("hi", "ci95_high")):
                bound = values.get(f"{key}_{suffix}")
                if bound is not None:
                    row[f"{short}_{side}"] = round(float(bound), 3)
        out[name] = row
    return out


def write_headline(rows: Mapping[str, Mapping], folder: Path) -> None:
    """One small JSON per scorer in ``folder``, so ``dvc metrics show`` prints a row per scorer
    (its columns are the keys: nine, not one per scorer and metric)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        if old.stem not in rows:
            old.unlink()  # a run no longer in the study
    for name, row in rows.items():
        atomic_write(folder / f"{name}.json", json.dumps(dict(row), indent=1) + "\n")


def metrics_document(
    counts: Mapping,
    summaries: Mapping[str, Mapping],
    aggregates: Mapping[str, Mapping],
    paired: pd.DataFrame,
    runs: Sequence[Run],
    extra: Mapping[str, Mapping] | None = None,
) -> dict:
    """metrics.json: the counts a reader needs first, then one block per run, per seed
    aggregate and per baseline (``dvc metrics show`` flattens them to ``runs.<run>.mAP``
    etc.), then the paired differences keyed ``<a>_vs_<b>``. ``extra``: per-scorer
    additions (threshold report summary, correlations), merged into the blocks."""
    extra = extra or {}
    run_names = {r.name for r in runs}

    def block(name, values):
        return {**values, **extra.get(name, {})}

    paired_blocks = {
        f"{r['a']}_vs_{r['b']}": {k: r[k] for k in r.index if k not in ("a", "b")} for _, r in paired.iterrows()
    }
    return M.json_safe(
        {
            "data": dict(counts),
            "runs": {r.name: {"model": r.model_name, "seed": r.seed, **block(r.name, summaries[r.name])} for r in runs},
            # Keyed by model name, so `dvc metrics show` reads seed_mean.<model>.mAP.
            "seed_mean": {v["model"]: {k: x for k, x in v.items() if k != "model"} for v in aggregates.values()},
            "baselines": {n: block(n, v) for n, v in summaries.items() if n not in run_names},
            "paired": paired_blocks,
        }
    )


# The soundtrack ablation (issue 23): the same whole-trailer model seeing, hearing, or both.
ABLATION = {"frames only": "tsn", "sound only": "tsn_audio", "frames + sound": "tsn_av"}


def ablation_genres(
    y_test: np.ndarray,
    test_scores: Mapping[str, np.ndarray],
    runs: Sequence[Run],
    genres: Sequence[str],
    arms: Mapping[str, str] = ABLATION,
) -> pd.DataFrame:
    """Per genre (with a positive test film): each arm's test AP (mean over its seeds), then
    ``gain``, the fused arm's AP minus frames only's, averaged over the seeds both have, and
    ``seeds_gaining``, in how many of those seeds the gain is positive. Empty when the study
    lacks the frames-only or the fused arm."""
    by_arm = {label: [r for r in runs if r.model_name == model] for label, model in arms.items()}
    y = np.asarray(y_test)
    keep = y.sum(axis=0) > 0
    table = pd.DataFrame(index=pd.Index(np.asarray(genres)[keep], name="genre"))
    table["positives"] = y.sum(axis=0)[keep].astype(int)
    for label, arm_runs in by_arm.items():
        if arm_runs:
            table[label] = np.mean([M.ap_per_genre(y, test_scores[r.name])[keep] for r in arm_runs], axis=0)
    first, fused = list(arms)[0], list(arms)[-1]
    seeds = sorted({r.seed for r in by_arm[first]} & {r.seed for r in by_arm[fused]})
    if not seeds:
        return table.iloc[:0]
    name = {(r.model_name, r.seed): r.name for r in runs}
    gains = np.array(
        [
            M.ap_per_genre(y, test_scores[name[(arms[fused], s)]])[keep]
            - M.ap_per_genre(y, test_scores[name[(arms[first], s)]])[keep]
            for s in seeds
        ]
    )
    table["gain"] = gains.mean(axis=0)
    table["seeds_gaining"] = [f"{int((g > 0).sum())} of {len(seeds)}" for g in gains.T]
    return table.sort_values("gain", ascending=False)


# Late fusion, the ablation's other way to combine the arms: their scores, not their vectors.
LATE_WEIGHTS = tuple(i / 10 for i in range(11))  # the sound's weight: 0 (frames only) to 1 (sound only)


@dataclass
class LateFusion:
    seed: int
    weight: float  # the sound arm's weight, chosen on validation
    val: np.ndarray
    test: np.ndarray


def late_fusion_weight(
    y_val: np.ndarray, frames_val: np.ndarray, sound_val: np.ndarray, weights: Sequence[float] = LATE_WEIGHTS
) -> float:
    """The weight ``w`` of ``(1 - w) * frames + w * sound`` with the best validation macro-AP, the
    smallest on a tie. ``w = 0`` is frames only, so on validation it never does worse than that arm."""
    values = [M.macro_ap(y_val, (1 - w) * frames_val + w * sound_val) for w in weights]
    return float(weights[int(np.argmax(values))])  # argmax takes the first of equal maxima


def late_fusions(
    y: Mapping[str, np.ndarray],
    scores: Mapping[str, tuple[np.ndarray, np.ndarray]],
    runs: Sequence[Run],
    frames: str = ABLATION["frames only"],
    sound: str = ABLATION["sound only"],
) -> dict[str, LateFusion]:
    """``late_fusion-seed<s>``: for every seed with a frames-only and a sound-only run, their
    (validation, test) scores averaged with the weight ``late_fusion_weight`` picks on validation."""
    by = {(r.model_name, r.seed): r.name for r in runs}
    out = {}
    for (model, seed), name in by.items():
        if model != frames or (sound, seed) not in by:
            continue
        (fv, ft), (sv, st) = scores[name], scores[by[(sound, seed)]]
        w = late_fusion_weight(y["val"], fv, sv)
        out[f"late_fusion-seed{seed}"] = LateFusion(seed, w, (1 - w) * fv + w * sv, (1 - w) * ft + w * st)
    return out


def late_fusion_pairs(fusions: Mapping[str, LateFusion], runs: Sequence[Run]) -> list[tuple[str, str]]:
    """Each late fusion against its seed's frames-only and mid-fused runs, and against chance."""
    by = {(r.model_name, r.seed): r.name for r in runs}
    pairs = []
    for name, fusion in fusions.items():
        arms = (ABLATION["frames only"], ABLATION["frames + sound"])
        pairs += [(name, by[(m, fusion.seed)]) for m in arms if (m, fusion.seed) in by]
        pairs.append((name, "chance"))
    return pairs
