"""How long the prepare stage's Python work takes at the real MovieLens 20M size.

Builds a synthetic catalog of 27,278 films and 25,623 trailers (lib.prepare.movielens.
write_synthetic_catalog), then times each piece of the stage and the whole of
``lib.prepare.labels.prepare_labels``, best of ``--repeat`` runs. For scale, it times
iterative-stratification's own implementation of the same algorithm
(iterstrat.ml_stratifiers.IterativeStratification) on the same label matrix in
the same run, and prints both splits' quality (largest deviation of a genre's
split share from the requested fraction).

    python benchmarks/bench_prepare.py [--repeat 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lib.core.genres import GENRES
from lib.core.params import PrepareParams, parse
from lib.prepare.labels import one_hot_genres, prepare_labels
from lib.prepare.movielens import read_movies, read_youtube, write_synthetic_catalog
from lib.prepare.split import SPLITS, oversample_copies, stratified_split

CFG = {
    "seed": 42,
    "rebalance": [
        {"rule": "exact", "genres": ["Drama"]},
        {"rule": "exact", "genres": ["Comedy", "Drama"]},
        {"rule": "having", "genres": ["Documentary"], "fraction": 0.5},
    ],
    "duplicate_youtube": "keep_first",
    "unknown_genre": "report",
    "split": {"train": 0.7, "val": 0.15, "test": 0.15},
    "oversample_below": 0.05,
    "oversample_max_copies": 5,
}


def best_of(repeat: int, fn):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def worst_share_error(y: np.ndarray, fold: np.ndarray, r: np.ndarray) -> float:
    totals = y.sum(axis=0)
    return max(float(np.abs(y[fold == j].sum(axis=0) / totals - r[j]).max()) for j in range(len(r)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t_write, cat = best_of(1, lambda: write_synthetic_catalog(Path(tmp), seed=args.seed))
        print(f"synthetic catalog: {cat.n_films} films, {cat.n_trailer_rows} trailer rows (written in {t_write:.2f} s)")

        t_movies, movies = best_of(args.repeat, lambda: read_movies(cat.movies_csv))
        t_youtube, _ = best_of(args.repeat, lambda: read_youtube(cat.youtube_csv))
        t_onehot, _ = best_of(args.repeat, lambda: one_hot_genres(movies.frame["genres"]))
        t_stage, prepared = best_of(
            args.repeat, lambda: prepare_labels(cat.movies_csv, cat.youtube_csv, parse(PrepareParams, CFG, "prepare"))
        )

        labels = prepared.labels
        y = labels[list(GENRES)].to_numpy()
        r = np.array([CFG["split"][s] for s in SPLITS])
        t_split, split = best_of(args.repeat, lambda: stratified_split(y, CFG["split"], seed=1))
        t_copies, _ = best_of(args.repeat, lambda: oversample_copies(y, split, 0.05, 5))
        ours = np.array([SPLITS.index(s) for s in split])

        from iterstrat.ml_stratifiers import IterativeStratification

        t_iterstrat, theirs = best_of(
            args.repeat, lambda: IterativeStratification(y.astype(bool), r, np.random.RandomState(1))
        )

    rows = [
        ("read movies.csv", t_movies),
        ("read ml-youtube.csv", t_youtube),
        ("one-hot genres (catalog)", t_onehot),
        ("split (lib.prepare.split.stratified_split)", t_split),
        ("oversampling copies", t_copies),
        ("whole stage: lib.prepare.labels.prepare_labels", t_stage),
    ]
    print(f"\nfilms labelled: {len(labels)}  split: {prepared.counts['splits']}  (best of {args.repeat})")
    for name, seconds in rows:
        print(f"  {name:<42} {seconds * 1000:8.1f} ms")
    print("\nsplit side by side on the same {} x {} label matrix:".format(*y.shape))
    print(
        f"  lib.prepare.split.stratified_split            {t_split * 1000:8.1f} ms   worst genre-share error {worst_share_error(y, ours, r):.4f}"
    )
    print(
        f"  iterstrat IterativeStratification    {t_iterstrat * 1000:8.1f} ms   worst genre-share error {worst_share_error(y, theirs, r):.4f}"
    )
    print(f"  ratio iterstrat / ours: {t_iterstrat / t_split:.1f}x")


if __name__ == "__main__":
    main()
