"""From the two MovieLens CSVs to one labelled row per film, every dropped row counted.

The steps, in order (each one recorded in a :class:`Ledger`, so the counts reconcile):

1. trailer rows read from ``ml-youtube.csv``; ids with unambiguous cruft cleaned (whitespace, a
   trailing slash, a full YouTube URL: counted and listed row by row in ``counts.json`` under
   ``youtubeIds cleaned``); blank ids, ids that cannot be cleaned and exact repeats skipped;
2. trailer rows of movies absent from ``movies.csv`` dropped;
3. further trailers of a film that already has one dropped (the first row in the file is kept),
   so there is one row per film from here on;
4. films with none of the 18 genres dropped: ``(no genres listed)``, ``IMAX`` alone, or
   only unknown genre names (which are reported, never dropped silently);
5. films that share one youtubeId handled by the ``duplicate_youtube`` policy, because two
   films with one trailer share pixels and would leak across the split;
6. the rebalancing rules of ``params.yaml``, one step each;
7. the split (:mod:`lib.prepare.split`), and oversampling copies on the training split only.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core.atomic import atomic_write
from lib.core.genres import GENRES, IGNORED_TAGS, NO_GENRE_TAG
from lib.core.params import PrepareParams
from lib.prepare.movielens import read_movies, read_youtube
from lib.prepare.split import SPLITS, oversample_copies, stratified_split

LABEL_COLUMNS = ["movieId", "youtubeId", "title", *GENRES, "split", "copies"]
DUPLICATE_POLICIES = ("keep_first", "drop_all")
UNKNOWN_GENRE_POLICIES = ("report", "error")


# ---------------------------------------------------------------------------
# The ledger: films (or trailer rows) remaining after every step.


class Ledger:
    """An ordered record of ``(step, unit, dropped, remaining)``.

    ``dropped`` and ``remaining`` are counted independently (a mask's sum and the
    length of what is left), so :func:`reconcile` can catch a step whose two
    numbers disagree.
    """

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def start(self, step: str, remaining: int, unit: str) -> None:
        self.steps.append({"step": step, "unit": unit, "dropped": 0, "remaining": int(remaining)})

    def drop(self, step: str, dropped: int, remaining: int, unit: str = "films") -> None:
        self.steps.append({"step": step, "unit": unit, "dropped": int(dropped), "remaining": int(remaining)})

    @property
    def remaining(self) -> int:
        return self.steps[-1]["remaining"]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.steps, columns=["step", "unit", "dropped", "remaining"])


# ---------------------------------------------------------------------------
# Genres.


def one_hot_genres(genres: pd.Series) -> tuple[pd.DataFrame, dict[str, int]]:
    """0/1 columns for the 18 GENRES in paper order, and ``{unknown name: films}``.

    ``IMAX`` and ``(no genres listed)`` are not genres here and are ignored;
    any other name outside GENRES is returned so it can be reported.
    """
    text = genres.fillna("").astype(str).str.replace(r"\s*\|\s*", "|", regex=True).str.strip()
    # Split, factorize, scatter: five times faster than str.get_dummies on the 27k-film catalog.
    parts = text.str.split("|", regex=False)
    codes, names = pd.factorize(parts.explode().to_numpy())
    matrix = np.zeros((len(text), len(names)), dtype=np.int8)
    matrix[np.repeat(np.arange(len(text)), parts.str.len().to_numpy()), codes] = 1
    dummies = pd.DataFrame(matrix, columns=[str(n) for n in names])
    unknown_names = [
        c for c in dummies.columns if c not in GENRES and c not in IGNORED_TAGS and c != NO_GENRE_TAG and c != ""
    ]
    unknown = {name: int(dummies[name].sum()) for name in sorted(unknown_names)}
    onehot = dummies.reindex(columns=list(GENRES), fill_value=0).astype("int8")
    onehot.index = genres.index
    return onehot, unknown


# ---------------------------------------------------------------------------
# Rebalancing rules.


@dataclass(frozen=True)
class Rule:
    """``exact``: films whose genre set is exactly ``genres``; ``having``: films with all of ``genres``.

    A ``fraction`` below 1 drops that share of the matching films, chosen with a seeded generator.
    """

    kind: str
    genres: tuple[str, ...]
    fraction: float = 1.0

    def describe(self) -> str:
        share = "" if self.fraction == 1.0 else f"{self.fraction:.0%} of "
        if self.kind == "exact":
            return f"rebalance: drop {share}films whose genres are exactly {{{', '.join(self.genres)}}}"
        return f"rebalance: drop {share}films having {{{', '.join(self.genres)}}}"

    def matches(self, onehot: pd.DataFrame) -> np.ndarray:
        y = onehot[list(GENRES)].to_numpy(dtype=bool)
        want = np.isin(np.array(GENRES), self.genres)
        if self.kind == "exact":
            return (y == want).all(axis=1)
        return y[:, want].all(axis=1)


def parse_rules(rules: Iterable[Mapping[str, Any]] | None) -> list[Rule]:
    parsed = []
    for i, raw in enumerate(rules or []):
        where = f"prepare.rebalance[{i}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a mapping like {{rule: exact, genres: [Drama]}}, got {raw!r}")
        extra = set(raw) - {"rule", "genres", "fraction"}
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)}; allowed: rule, genres, fraction")
        kind = raw.get("rule")
        if kind not in ("exact", "having"):
            raise ValueError(f"{where}: rule must be 'exact' or 'having', got {kind!r}")
        names = raw.get("genres")
        if isinstance(names, str):
            names = [names]
        if not names:
            raise ValueError(f"{where}: 'genres' must list at least one genre")
        unknown = [g for g in names if g not in GENRES]
        if unknown:
            raise ValueError(f"{where}: unknown genre(s) {unknown}; the genres are {list(GENRES)}")
        fraction = float(raw.get("fraction", 1.0))
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"{where}: fraction must lie in [0, 1], got {fraction}")
        parsed.append(Rule(kind, tuple(sorted(set(names), key=GENRES.index)), fraction))
    return parsed


def rebalance(films: pd.DataFrame, rules: Iterable[Rule], seed: int, ledger: Ledger) -> pd.DataFrame:
    """Apply the rules in order, one ledger step each; films must be sorted by movieId."""
    for i, rule in enumerate(rules):
        match = np.flatnonzero(rule.matches(films))
        n_drop = int(round(rule.fraction * len(match)))
        # One generator per rule, so adding a rule does not reshuffle the ones before it.
        chosen = np.random.default_rng([seed, i]).permutation(match)[:n_drop]
        keep = np.ones(len(films), dtype=bool)
        keep[chosen] = False
        films = films[keep]
        ledger.drop(rule.describe(), n_drop, len(films))
    return films


# ---------------------------------------------------------------------------
# Joining and cleaning.


def join_trailers(movies: pd.DataFrame, trailers: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """One row per film with a trailer: movies' columns plus youtubeId, sorted by movieId.

    ``trailers`` keeps its file order, which decides which trailer of a film is kept.
    """
    known = trailers["movieId"].isin(movies["movieId"])
    trailers = trailers[known]
    ledger.drop("trailer rows of movies not in movies.csv dropped", int((~known).sum()), len(trailers), "trailer rows")
    extra = trailers["movieId"].duplicated(keep="first")
    trailers = trailers[~extra]
    ledger.drop("further trailers of a film dropped (first row kept)", int(extra.sum()), len(trailers), "trailer rows")
    films = trailers[["movieId", "youtubeId"]].assign(trailer_row=np.arange(len(trailers)))
    films = films.merge(movies, on="movieId", how="inner", validate="one_to_one")
    return films.sort_values("movieId", kind="stable").reset_index(drop=True)


def drop_films_without_genre(films: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    none = films[list(GENRES)].sum(axis=1).to_numpy() == 0
    films = films[~none]
    ledger.drop("films without any of the 18 genres dropped (no genres listed, IMAX only)", int(none.sum()), len(films))
    return films


def resolve_shared_trailers(films: pd.DataFrame, policy: str, ledger: Ledger) -> pd.DataFrame:
    """Two films, one youtubeId: ``keep_first`` keeps the film listed first in ml-youtube.csv, ``drop_all`` drops both."""
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"prepare.duplicate_youtube must be one of {DUPLICATE_POLICIES}, got {policy!r}")
    by_file_order = films.sort_values("trailer_row", kind="stable")
    if policy == "keep_first":
        drop_ids = by_file_order.loc[by_file_order["youtubeId"].duplicated(keep="first"), "movieId"]
    else:
        drop_ids = by_file_order.loc[by_file_order["youtubeId"].duplicated(keep=False), "movieId"]
    drop = films["movieId"].isin(drop_ids).to_numpy()
    films = films[~drop]
    ledger.drop(f"films sharing a youtubeId dropped ({policy})", int(drop.sum()), len(films))
    return films


# ---------------------------------------------------------------------------
# The whole stage.


@dataclass
class Prepared:
    labels: pd.DataFrame  # the contract: LABEL_COLUMNS, one row per film
    before_rebalance: pd.DataFrame  # films after cleaning, before the rebalancing rules
    ledger: Ledger
    counts: dict[str, Any] = field(default_factory=dict)


def prepare_labels(movies_csv: str | Path, youtube_csv: str | Path, cfg: PrepareParams) -> Prepared:
    """Read, join, one-hot, clean, rebalance, split and oversample: the prepare stage's computation."""
    rules = parse_rules(cfg.rebalance)
    movies_read, youtube_read = read_movies(movies_csv), read_youtube(youtube_csv)

    onehot, unknown = one_hot_genres(movies_read.frame["genres"])
    if unknown:
        message = f"{movies_read.path.name}: genre names outside the study's 18 (films): {unknown}"
        if cfg.unknown_genre == "error":
            raise ValueError(message + "; set prepare.unknown_genre: report to keep the films' known genres")
        warnings.warn(message + "; those names are ignored, the films keep their other genres", stacklevel=2)
    movies = pd.concat([movies_read.frame[["movieId", "title"]], onehot], axis=1)

    ledger = Ledger()
    ledger.start("trailer rows read from ml-youtube.csv", youtube_read.rows_read, "trailer rows")
    remaining = youtube_read.rows_read
    for reason, n in youtube_read.skipped.items():
        remaining -= n
        ledger.drop(f"trailer rows skipped: {reason}", n, remaining, "trailer rows")
    films = join_trailers(movies, youtube_read.frame, ledger)
    films = drop_films_without_genre(films, ledger)
    films = resolve_shared_trailers(films, cfg.duplicate_youtube, ledger)
    before = films[["movieId", "youtubeId", "title", *GENRES]].reset_index(drop=True)
    films = rebalance(films, rules, cfg.seed, ledger)

    labels = films[["movieId", "youtubeId", "title", *GENRES]].reset_index(drop=True)
    y = labels[list(GENRES)].to_numpy()
    labels["split"] = stratified_split(y, cfg.split, cfg.seed)
    labels["copies"] = oversample_copies(y, labels["split"].to_numpy(), cfg.oversample_below, cfg.oversample_max_copies)

    counts = {
        "catalog": {
            "movies.csv rows read": movies_read.rows_read,
            "movies.csv rows skipped": movies_read.skipped,
            "films in movies.csv": len(movies_read.frame),
        },
        "steps": ledger.steps,
        "films": len(labels),
        "splits": {s: int((labels["split"] == s).sum()) for s in SPLITS},
        "train rows with copies": int(labels.loc[labels["split"] == "train", "copies"].sum()),
        "train films oversampled": int((labels["copies"] > 1).sum()),
        "unknown genres": unknown,
        "youtubeIds cleaned": cleaned_summary(youtube_read.cleaned),
        "youtubeIds rejected": youtube_read.rejected,
        "notes": movies_read.notes + youtube_read.notes,
    }
    return Prepared(labels, before, ledger, counts)


def cleaned_summary(cleaned: list[dict]) -> dict[str, Any]:
    """The cleaned youtubeIds for counts.json: how many rows, how many of each kind, and every row."""
    by_kind: dict[str, int] = {}
    for row in cleaned:
        for kind in row["how"]:
            by_kind[kind] = by_kind.get(kind, 0) + 1
    return {"rows": len(cleaned), "by kind": by_kind, "list": list(cleaned)}


def reconcile(counts: Mapping[str, Any], labels: pd.DataFrame) -> None:
    """Raise AssertionError unless every number in ``counts`` follows from the one before and matches ``labels``."""
    steps = counts["steps"]
    problems = []
    for prev, step in zip(steps, steps[1:]):
        if prev["remaining"] - step["dropped"] != step["remaining"]:
            problems.append(f"'{step['step']}': {prev['remaining']} - {step['dropped']} != {step['remaining']}")
        if step["dropped"] < 0:
            problems.append(f"'{step['step']}': negative drop {step['dropped']}")
    if steps[-1]["remaining"] != counts["films"]:
        problems.append(f"last step leaves {steps[-1]['remaining']} films but counts say {counts['films']}")
    if counts["films"] != len(labels):
        problems.append(f"counts say {counts['films']} films, labels have {len(labels)} rows")
    if sum(counts["splits"].values()) != counts["films"]:
        problems.append(f"splits {counts['splits']} do not add up to {counts['films']} films")
    actual = labels["split"].value_counts().reindex(list(SPLITS), fill_value=0).to_dict()
    if {k: int(v) for k, v in actual.items()} != dict(counts["splits"]):
        problems.append(f"splits in counts {counts['splits']} differ from the labels' {actual}")
    if (cleaned := counts.get("youtubeIds cleaned")) is not None:
        if cleaned["rows"] != len(cleaned["list"]):
            problems.append(f"youtubeIds cleaned: {cleaned['rows']} rows counted, {len(cleaned['list'])} listed")
        listed = {k: sum(k in row["how"] for row in cleaned["list"]) for k in cleaned["by kind"]}
        if listed != cleaned["by kind"] or any(not row["how"] for row in cleaned["list"]):
            problems.append(f"youtubeIds cleaned by kind {cleaned['by kind']} differ from the rows listed {listed}")
    rejected = counts.get("youtubeIds rejected")
    skipped = next((s["dropped"] for s in steps if s["step"] == "trailer rows skipped: youtubeId not a YouTube id"), 0)
    if rejected is not None and len(rejected) != skipped:
        problems.append(f"{len(rejected)} youtubeIds rejected are listed, {skipped} trailer rows skipped for it")
    train_rows = int(labels.loc[labels["split"] == "train", "copies"].sum())
    if train_rows != counts["train rows with copies"]:
        problems.append(
            f"train rows with copies: counts say {counts['train rows with copies']}, labels give {train_rows}"
        )
    if problems:
        raise AssertionError("counts do not reconcile:\n  " + "\n  ".join(problems))


def counts_table(counts: Mapping[str, Any]) -> pd.DataFrame:
    """The counts as one readable table: every step, then the split."""
    rows = [(s["step"], s["unit"], s["dropped"], s["remaining"]) for s in counts["steps"]]
    rows += [(f"split: {name}", "films", None, n) for name, n in counts["splits"].items()]
    rows.append(("train rows including oversampling copies", "rows", None, counts["train rows with copies"]))
    return pd.DataFrame(rows, columns=["step", "unit", "dropped", "remaining"]).astype(
        {"dropped": "Int64", "remaining": "Int64"}
    )


def write_prepared(prepared: Prepared, out_dir: str | Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"labels": out_dir / "labels.csv", "counts": out_dir / "counts.json"}
    atomic_write(paths["labels"], prepared.labels[LABEL_COLUMNS].to_csv(index=False))
    atomic_write(paths["counts"], json.dumps(prepared.counts, indent=2, ensure_ascii=False) + "\n")
    return paths


def read_labels(path: str | Path) -> pd.DataFrame:
    """``labels.csv`` as every stage reads it (its one reader): youtubeIds and titles kept
    as text (an id such as '0123' is not a number, a film titled 'NA' is not missing)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no labels table; run the prepare stage first")
    labels = pd.read_csv(path, dtype={"youtubeId": str, "title": str, "split": str}, keep_default_na=False)
    missing = [c for c in ("movieId", "youtubeId") if c not in labels.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    return labels
