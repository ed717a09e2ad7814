"""The evaluate stage's pictures. Each function returns a matplotlib Figure; ``save`` writes it as PNG.

Scores always come as a dict ``{scorer name: (n_films, n_genres) scores}`` so the model
and the baselines are drawn by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve

from lib.core.genres import GENRES


def save(fig, out_dir: str | Path, name: str) -> Path:
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def ap_bars(per_genre_ap: pd.DataFrame) -> plt.Figure:
    """Horizontal bars of AP per genre; ``per_genre_ap`` has a ``genre`` column and one column per scorer."""
    long = per_genre_ap.melt(id_vars="genre", var_name="scorer", value_name="AP").dropna()
    fig, ax = plt.subplots(figsize=(7, 0.35 * per_genre_ap["genre"].nunique() + 1.5))
    sns.barplot(data=long, y="genre", x="AP", hue="scorer", ax=ax, orient="h")
    ax.set_xlim(0, 1)
    ax.set_title("Average precision per genre (test films; genres without a positive film left out)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_curves(
    y: np.ndarray, scores: Mapping[str, np.ndarray], genres: Sequence[str] = GENRES, ncols: int = 6
) -> plt.Figure:
    """Precision-recall curve per genre in a grid; the dotted line is the genre's positive rate (a random ranking's
    expected precision at any recall; its expected AP is higher on few films, see lib.scoring.chance)."""
    y = np.asarray(y)
    nrows = int(np.ceil(len(genres) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.4 * nrows), sharex=True, sharey=True)
    colours = dict(zip(scores, sns.color_palette(n_colors=len(scores))))
    for j, (ax, genre) in enumerate(zip(axes.flat, genres)):
        n_pos = int(y[:, j].sum())
        ax.set_title(f"{genre} (n+={n_pos})", fontsize=9)
        if n_pos == 0:
            ax.text(0.5, 0.5, "no positive\ntest film", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            continue
        for name, s in scores.items():
            precision, recall, _ = precision_recall_curve(y[:, j], np.asarray(s)[:, j])
            ax.step(recall, precision, where="post", color=colours[name], label=name, lw=1.2)
        ax.axhline(n_pos / len(y), color="grey", ls=":", lw=1)
    for ax in list(axes.flat)[len(genres) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("recall")
    for ax in axes[:, 0]:
        ax.set_ylabel("precision")
    axes.flat[0].set_xlim(0, 1)
    axes.flat[0].set_ylim(0, 1.05)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(scores), bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def frequency_table(
    y_test: np.ndarray, train_freq: np.ndarray, scores: Mapping[str, np.ndarray], genres: Sequence[str] = GENRES
) -> pd.DataFrame:
    """Per genre: training frequency, true test frequency, and each scorer's mean score and share predicted at 0.5."""
    table = pd.DataFrame(
        {
            "genre": list(genres),
            "train frequency": np.asarray(train_freq, dtype=float),
            "test frequency": np.asarray(y_test).mean(axis=0),
        }
    )
    for name, s in scores.items():
        table[f"{name} mean score"] = np.asarray(s).mean(axis=0)
        table[f"{name} predicted at 0.5"] = (np.asarray(s) >= 0.5).mean(axis=0)
    return table


def score_frequency_correlation(scores: np.ndarray, train_freq: np.ndarray) -> float:
    """Pearson r between a scorer's mean score per genre and the genre's training frequency.

    The paper (section 5) saw its confidences 'closely resemble' the class distribution:
    r near 1 means the scores carry little beyond the prior. NaN for constant scores.
    """
    mean_score = np.asarray(scores, dtype=float).mean(axis=0)
    freq = np.asarray(train_freq, dtype=float)
    if mean_score.std() == 0 or freq.std() == 0:
        return float("nan")
    return float(np.corrcoef(mean_score, freq)[0, 1])


def frequency_plot(table: pd.DataFrame, scorers: Sequence[str], correlations: Mapping[str, float]) -> plt.Figure:
    cols = ["train frequency", "test frequency", *[f"{s} mean score" for s in scorers]]
    long = table.melt(id_vars="genre", value_vars=cols, var_name="series", value_name="value")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(table) + 1.5))
    sns.barplot(data=long, y="genre", x="value", hue="series", ax=ax, orient="h")
    r = ", ".join(f"{k}: r = {v:.2f}" for k, v in correlations.items())
    ax.set_title(
        f"Genre frequency vs mean predicted score\n(correlation of mean score with training frequency: {r})", fontsize=9
    )
    ax.legend(loc="lower right", fontsize=8)
    return fig


def calibration_plot(y: np.ndarray, scores: Mapping[str, np.ndarray], n_bins: int = 10) -> plt.Figure:
    """Reliability curves over every (film, genre) pair pooled; bins by score quantile."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="perfectly calibrated")
    yy = np.asarray(y).ravel()
    for name, s in scores.items():
        ss = np.asarray(s, dtype=float).ravel()
        if np.unique(ss).size < 2:  # constant scores: one point, the bin's positive rate
            ax.plot([ss[0]], [yy.mean()], "o", label=name)
            continue
        frac_pos, mean_pred = calibration_curve(yy, ss, n_bins=n_bins, strategy="quantile")
        ax.plot(mean_pred, frac_pos, "o-", label=name, ms=4)
    ax.set(
        xlabel="mean predicted score",
        ylabel="fraction of true genres",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Calibration (all genres pooled, test films)",
    )
    ax.legend(fontsize=8)
    return fig


def most_confident_strips(
    films: pd.DataFrame, slice_scores: pd.DataFrame, frames: np.ndarray, genres: Sequence[str] = GENRES, n_top: int = 3
) -> list[dict]:
    """For each film of ``films`` (movieId, title and the genre columns), the slice the model
    is most confident about, as a strip for ``frame_strips``: its frames (read from the
    store's ``frames``), the film's true genres and the slice's ``n_top`` genres."""
    strips = []
    for _, film in films.iterrows():
        rows = slice_scores[slice_scores["movieId"] == film["movieId"]]
        best = rows.loc[rows[list(genres)].max(axis=1).idxmax()]
        top = sorted(zip(genres, best[list(genres)].astype(float)), key=lambda t: -t[1])[:n_top]
        strips.append(
            {
                "frames": np.asarray(frames[int(best["start"]) : int(best["stop"])]),
                "title": f"{film['title']} (slice {int(best['slice'])})",
                "true": [g for g in genres if film[g] == 1],
                "top": top,
            }
        )
    return strips


def frame_strips(strips: Sequence[dict], max_frames: int = 10) -> plt.Figure:
    """Like the paper's Figures 7-9: one row per film, its slice's frames, then text with
    the model's top genres and scores beside the true genres.

    Each strip is a dict with ``frames`` (depth, H, W, 3) uint8, ``title``, ``true`` (list of
    genres) and ``top`` (list of (genre, score)).
    """
    n_cols = min(max_frames, max(len(s["frames"]) for s in strips))
    fig, axes = plt.subplots(
        len(strips),
        n_cols + 1,
        figsize=(1.2 * n_cols + 3.2, 1.45 * len(strips)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * n_cols + [2.6]},
    )
    for row, strip in zip(axes, strips):
        for k, ax in enumerate(row[:-1]):
            ax.axis("off")
            if k < len(strip["frames"]):
                ax.imshow(strip["frames"][k])
        text = row[-1]
        text.axis("off")
        predicted = "\n".join(f"{g} {s:.2f}" + (" *" if g in strip["true"] else "") for g, s in strip["top"])
        text.text(
            0,
            1,
            f"{strip['title']}\ntrue: {', '.join(strip['true'])}\n{predicted}",
            va="top",
            fontsize=7,
            transform=text.transAxes,
        )
    fig.suptitle("Test films: the most confident slice, the model's top genres (* = true genre)", fontsize=9)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Each metric of the train stage's history beside its ``val_`` twin, one panel each."""
    epoch = history["epoch"] if "epoch" in history else pd.Series(np.arange(1, len(history) + 1))
    numeric = [c for c in history.columns if c != "epoch" and pd.api.types.is_numeric_dtype(history[c])]
    # Metrics with a validation twin (loss, AUC-PR, ...); bookkeeping columns such as
    # epoch_seconds or learning_rate only if nothing else is there.
    names = [c for c in numeric if not c.startswith("val_") and f"val_{c}" in history] or numeric
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(epoch, history[name], "o-", label=name, ms=3)
        if f"val_{name}" in history:
            ax.plot(epoch, history[f"val_{name}"], "o-", label=f"val_{name}", ms=3)
        ax.set(title=name, xlabel="epoch")
        ax.legend(fontsize=8)
    fig.suptitle("Training curves (re-shown from the train stage)", fontsize=10)
    fig.tight_layout()
    return fig


def comparison_plot(
    table: pd.DataFrame, metrics: Sequence[str] = ("mAP", "macro_ap"), title: str | None = None
) -> plt.Figure:
    """One row per scorer of ``lib.evaluate.compare.comparison_table``, one panel per metric: the
    value as a dot with its 95% bootstrap interval (runs, baselines) or ± one std over
    seeds (seed means). Rows keep the table's order; a non-empty ``flag`` goes in the title."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5.2 * len(metrics), 0.42 * len(table) + 1.6), sharey=True, squeeze=False
    )
    ypos = np.arange(len(table))[::-1]
    kinds = table["kind"].fillna("") if "kind" in table else pd.Series("", index=table.index)
    palette = dict(zip(sorted(set(kinds)), sns.color_palette(n_colors=max(1, len(set(kinds))))))
    for ax, metric in zip(axes[0], metrics):
        for y, (name, row) in zip(ypos, table.iterrows()):
            v = row[metric]
            if not np.isfinite(v):
                continue
            if f"{metric}_std" in row and np.isfinite(row.get(f"{metric}_std", np.nan)):
                err = [[row[f"{metric}_std"]], [row[f"{metric}_std"]]]
            elif f"{metric}_low" in row and np.isfinite(row.get(f"{metric}_low", np.nan)):
                err = [[v - row[f"{metric}_low"]], [row[f"{metric}_high"] - v]]
            else:
                err = None
            ax.errorbar([v], [y], xerr=err, fmt="o", capsize=3, color=palette[kinds[name]])
            ax.text(v, y + 0.18, f"{v:.3f}", ha="center", fontsize=7)
        ax.set_yticks(ypos, table.index)
        ax.set_xlim(0, 1)
        ax.set_xlabel(metric)
    flag = table["flag"].iloc[0] if "flag" in table and len(table) else ""
    fig.suptitle(
        (title or "Every run, seed mean and baseline on the test films (95% bootstrap interval, or ± 1 std over seeds)")
        + (f"\nWARNING: {flag}" if flag else ""),
        fontsize=10,
        color="firebrick" if flag else "black",
    )
    fig.tight_layout()
    return fig


def ablation_gain_bars(table: pd.DataFrame, arms: Sequence[str]) -> plt.Figure:
    """Per genre: each arm's test AP as dots, and the fused arm's gain over frames only as a bar."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.32 * len(table) + 1.5), sharey=True)
    order = list(table.index)[::-1]
    for arm, marker in zip(arms, "os^"):
        if arm in table:
            left.scatter(table.loc[order, arm], order, label=arm, marker=marker)
    left.set(xlabel="test AP (mean over seeds)", xlim=(0, 1), title="AP per genre")
    gains = table.loc[order, "gain"]
    right.barh(order, gains, color=["tab:green" if g > 0 else "tab:red" for g in gains])
    right.axvline(0, color="black", linewidth=0.8)
    right.set(xlabel="AP gain of frames + sound over frames only", title="Which genres does sound help?")
    # below both panels: inside the left one it would hide a genre's dots
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=len(arms), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
