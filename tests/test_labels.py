"""Join, one-hot, cleaning, rebalancing rules, counts that reconcile, and the whole stage at real scale."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES
from lib.core.params import ParamsError, PrepareParams, parse
from lib.prepare.labels import (
    LABEL_COLUMNS,
    Ledger,
    Rule,
    one_hot_genres,
    parse_rules,
    prepare_labels,
    read_labels,
    rebalance,
    reconcile,
    write_prepared,
)
from lib.prepare.movielens import ML20M_FILMS, ML20M_TRAILERS, write_synthetic_catalog
from lib.prepare.split import SPLITS

PAPER_RULES = [{"rule": "exact", "genres": ["Drama"]}, {"rule": "exact", "genres": ["Comedy", "Drama"]}]
CFG = {
    "seed": 42,
    "rebalance": PAPER_RULES,
    "duplicate_youtube": "keep_first",
    "unknown_genre": "report",
    "split": {"train": 0.6, "val": 0.2, "test": 0.2},
    "oversample_below": 0.0,
    "oversample_max_copies": 5,
}

# A tiny catalog where every step has exactly known work to do.
MOVIES = """movieId,title,genres
1,"Toy Story, The (1995)",Adventure|Animation|Children|Comedy|Fantasy
2,Heat (1995),Action|Crime|Thriller
3,Drama Only (1990),Drama
4,Drama In IMAX (2010),Drama|IMAX
5,Dramedy (2000),Comedy|Drama
6,Romantic Dramedy (2001),Comedy|Drama|Romance
7,Nothing (2015),(no genres listed)
8,Only IMAX (2012),IMAX
9,Alien (1979),Horror|Sci-Fi
10,Twin A (1980),Western
11,Twin B (1980),War
12,Noir (1946),Film-Noir|Crime
13,"Amélie ""Le fabuleux"" (2001)",Comedy|Romance
14,Docu (2005),Documentary
15,Mystery Musical (1960),Mystery|Musical
16,No Trailer (1970),Drama
"""
YOUTUBE = """youtubeId,movieId,title
yt_01,1,Toy Story
yt_02,2,Heat
yt_03,3,Drama Only
yt_04,4,Drama In IMAX
yt_05,5,Dramedy
yt_06,6,Romantic Dramedy
yt_07,7,Nothing
yt_08,8,Only IMAX
yt_09,9,Alien
yt_twin,11,Twin B
yt_twin,10,Twin A
yt_12,12,Noir
yt_13,13,Amélie
yt_14,14,Docu
yt_15,15,Mystery Musical
yt_2b,2,Heat (second trailer)
yt_99,999,Unknown Film
yt_98,998,Another Unknown
"""


def prepare(movies, youtube, cfg):
    """The prepare stage's computation on params.yaml's ``prepare`` section as a dict, parsed as the notebook does."""
    return prepare_labels(movies, youtube, parse(PrepareParams, cfg, "prepare"))


@pytest.fixture
def catalog(tmp_path):
    movies, youtube = tmp_path / "movies.csv", tmp_path / "ml-youtube.csv"
    movies.write_text(MOVIES, encoding="utf-8")
    youtube.write_text(YOUTUBE, encoding="utf-8")
    return movies, youtube


def steps_by_name(prepared):
    return {s["step"]: s for s in prepared.counts["steps"]}


def test_one_hot_has_the_18_genres_in_paper_order_and_ignores_imax():
    onehot, unknown = one_hot_genres(pd.Series(["Drama|IMAX", "Sci-Fi | Film-Noir", "(no genres listed)", "", "IMAX"]))
    assert list(onehot.columns) == list(GENRES)
    assert GENRES[:3] == ("Adventure", "Animation", "Children") and GENRES[-1] == "Film-Noir"
    assert onehot.iloc[0].sum() == 1 and onehot.loc[0, "Drama"] == 1
    assert onehot.loc[1, "Sci-Fi"] == 1 and onehot.loc[1, "Film-Noir"] == 1
    assert (onehot.iloc[2:].sum(axis=1) == 0).all()
    assert unknown == {}


def test_unknown_genre_names_are_reported_with_their_film_counts():
    onehot, unknown = one_hot_genres(pd.Series(["Drama|Biopic", "Biopic", "Comedy|Sci-fi"]))
    assert unknown == {"Biopic": 2, "Sci-fi": 1}
    assert onehot.loc[0, "Drama"] == 1 and onehot.iloc[1].sum() == 0 and onehot.loc[2, "Comedy"] == 1


def test_each_step_drops_exactly_the_films_it_should(catalog):
    prepared = prepare(*catalog, CFG)
    steps = steps_by_name(prepared)
    kept = set(prepared.labels["movieId"])
    assert steps["trailer rows read from ml-youtube.csv"]["remaining"] == 18
    assert steps["trailer rows of movies not in movies.csv dropped"]["dropped"] == 2
    assert steps["further trailers of a film dropped (first row kept)"]["dropped"] == 1
    assert prepared.labels.set_index("movieId").loc[2, "youtubeId"] == "yt_02"
    assert steps["films without any of the 18 genres dropped (no genres listed, IMAX only)"]["dropped"] == 2
    assert not {7, 8} & kept
    # the twin listed first in ml-youtube.csv (movie 11) keeps the shared trailer
    assert steps["films sharing a youtubeId dropped (keep_first)"]["dropped"] == 1
    assert 11 in kept and 10 not in kept
    # paper rules: Drama alone (IMAX ignored) and exactly {Comedy, Drama}; a superset survives
    assert steps["rebalance: drop films whose genres are exactly {Drama}"]["dropped"] == 2
    assert steps["rebalance: drop films whose genres are exactly {Comedy, Drama}"]["dropped"] == 1
    assert not {3, 4, 5} & kept and 6 in kept
    assert kept == {1, 2, 6, 9, 11, 12, 13, 14, 15}
    assert 16 not in kept  # a film without a trailer never enters
    reconcile(prepared.counts, prepared.labels)


def test_labels_follow_the_contract_and_survive_a_round_trip(catalog, tmp_path):
    prepared = prepare(*catalog, CFG)
    paths = write_prepared(prepared, tmp_path / "out")
    labels = read_labels(paths["labels"])
    assert list(labels.columns) == LABEL_COLUMNS
    assert labels["movieId"].is_unique and labels["youtubeId"].is_unique
    assert set(labels["split"]) <= set(SPLITS) and (labels["copies"] == 1).all()
    assert (labels[list(GENRES)].isin([0, 1])).all().all() and (labels[list(GENRES)].sum(axis=1) >= 1).all()
    row = labels.set_index("movieId").loc[13]
    assert row["title"] == 'Amélie "Le fabuleux" (2001)' and row["Comedy"] == 1 and row["Romance"] == 1
    assert row["youtubeId"] == "yt_13"
    counts = json.loads(paths["counts"].read_text(encoding="utf-8"))
    reconcile(counts, labels)


def test_drop_all_policy_drops_both_films_sharing_a_trailer(catalog):
    prepared = prepare(*catalog, {**CFG, "duplicate_youtube": "drop_all"})
    assert steps_by_name(prepared)["films sharing a youtubeId dropped (drop_all)"]["dropped"] == 2
    assert not {10, 11} & set(prepared.labels["movieId"])
    reconcile(prepared.counts, prepared.labels)


def test_unknown_duplicate_policy_is_refused(catalog):
    with pytest.raises(
        ParamsError, match=r"prepare\.duplicate_youtube: expected one of \['keep_first', 'drop_all'\], got str 'merge'"
    ):
        parse(PrepareParams, {**CFG, "duplicate_youtube": "merge"}, "prepare")


def test_unknown_genre_is_reported_or_stops_the_stage(catalog, tmp_path):
    movies, youtube = catalog
    movies.write_text(MOVIES + "17,Biography (1999),Biopic|Drama\n", encoding="utf-8")
    youtube.write_text(YOUTUBE + "yt_17,17,Biography\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="Biopic"):
        prepared = prepare(movies, youtube, CFG)
    assert prepared.counts["unknown genres"] == {"Biopic": 1}
    assert 17 not in set(prepared.labels["movieId"])  # Biopic ignored: Drama alone, dropped by the paper's rule
    with pytest.raises(ValueError, match="Biopic"):
        prepare(movies, youtube, {**CFG, "unknown_genre": "error"})


def test_rules_come_from_params_not_code(catalog):
    none = prepare(*catalog, {**CFG, "rebalance": []})
    assert {3, 4, 5} <= set(none.labels["movieId"])
    docs = prepare(*catalog, {**CFG, "rebalance": [{"rule": "having", "genres": ["Documentary"]}]})
    assert 14 not in set(docs.labels["movieId"]) and len(docs.labels) == len(none.labels) - 1
    reconcile(docs.counts, docs.labels)


def films_with(n: int, drama_share: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    films = pd.DataFrame(0, index=range(n), columns=list(GENRES), dtype="int8")
    films["Drama"] = (rng.random(n) < drama_share).astype("int8")
    films["Comedy"] = 1 - films["Drama"]
    films.insert(0, "movieId", np.arange(n))
    return films


def test_fraction_rule_drops_that_share_of_matching_films_with_a_seed():
    films = films_with(1000, 0.5)
    n_drama = int(films["Drama"].sum())
    rule = [Rule("having", ("Drama",), 0.3)]
    ledger = Ledger()
    ledger.start("films", len(films), "films")
    a = rebalance(films, rule, seed=1, ledger=ledger)
    assert ledger.steps[-1]["dropped"] == round(0.3 * n_drama) == len(films) - len(a)
    assert films["Comedy"].sum() == a["Comedy"].sum(), "only matching films are dropped"
    b = rebalance(films, rule, seed=1, ledger=Ledger())
    c = rebalance(films, rule, seed=2, ledger=Ledger())
    assert a["movieId"].tolist() == b["movieId"].tolist()
    assert a["movieId"].tolist() != c["movieId"].tolist()


def test_rules_are_validated_with_their_position():
    assert parse_rules([{"rule": "having", "genres": "War", "fraction": 0.5}]) == [Rule("having", ("War",), 0.5)]
    assert parse_rules([{"rule": "exact", "genres": ["Drama", "Comedy"]}])[0].genres == ("Comedy", "Drama")
    for bad, message in [
        ({"rule": "exact", "genres": ["Drame"]}, "unknown genre"),
        ({"rule": "only", "genres": ["Drama"]}, "rule must be"),
        ({"rule": "having", "genres": ["War"], "fraction": 1.5}, "fraction"),
        ({"rule": "having", "genres": []}, "at least one genre"),
        ({"rule": "having", "genres": ["War"], "seed": 3}, "unknown key"),
    ]:
        with pytest.raises(ValueError, match=message) as err:
            parse_rules([PAPER_RULES[0], bad])
        assert "prepare.rebalance[1]" in str(err.value)


def test_missing_param_key_is_named(catalog):
    cfg = {k: v for k, v in CFG.items() if k != "oversample_max_copies"}
    with pytest.raises(ParamsError, match=r"prepare: missing key\(s\) \['oversample_max_copies'\]"):
        parse(PrepareParams, cfg, "prepare")
    with pytest.raises(ParamsError, match=r"prepare: unknown key 'oversample_max_copy'"):
        parse(PrepareParams, {**cfg, "oversample_max_copy": 5}, "prepare")
    with pytest.raises(ParamsError, match=r"prepare\.split: fractions must sum to 1"):
        parse(PrepareParams, {**CFG, "split": {"train": 0.6, "val": 0.2, "test": 0.1}}, "prepare")


def test_reconcile_catches_counts_that_do_not_add_up(catalog):
    prepared = prepare(*catalog, CFG)
    reconcile(prepared.counts, prepared.labels)
    for tamper in (
        lambda c: c["steps"][3].__setitem__("dropped", c["steps"][3]["dropped"] + 1),
        lambda c: c["splits"].__setitem__("test", c["splits"]["test"] + 1),
        lambda c: c.__setitem__("films", c["films"] - 1),
        lambda c: c.__setitem__("train rows with copies", c["train rows with copies"] + 1),
    ):
        counts = copy.deepcopy(prepared.counts)
        tamper(counts)
        with pytest.raises(AssertionError, match="do not reconcile"):
            reconcile(counts, prepared.labels)
    with pytest.raises(AssertionError, match="labels have"):
        reconcile(prepared.counts, prepared.labels.iloc[1:])


def test_real_scale_catalog_is_labelled_split_and_counted_correctly(tmp_path):
    truth = write_synthetic_catalog(tmp_path, seed=5)
    assert truth.n_films == ML20M_FILMS and truth.n_trailer_rows == ML20M_TRAILERS + truth.unknown_movie_rows
    cfg = {**CFG, "split": {"train": 0.7, "val": 0.15, "test": 0.15}, "oversample_below": 0.05}
    prepared = prepare(truth.movies_csv, truth.youtube_csv, cfg)
    labels, steps = prepared.labels, steps_by_name(prepared)
    reconcile(prepared.counts, labels)

    assert prepared.counts["catalog"]["films in movies.csv"] == ML20M_FILMS
    assert steps["trailer rows of movies not in movies.csv dropped"]["dropped"] == truth.unknown_movie_rows
    assert (
        steps["films without any of the 18 genres dropped (no genres listed, IMAX only)"]["dropped"]
        == truth.no_genre_films_with_trailer
    )
    assert steps["films sharing a youtubeId dropped (keep_first)"]["dropped"] == truth.shared_youtube_films // 2

    y = labels[list(GENRES)].to_numpy()
    drama, comedy, n_genres = y[:, GENRES.index("Drama")], y[:, GENRES.index("Comedy")], y.sum(axis=1)
    assert not ((n_genres == 1) & (drama == 1)).any(), "a Drama-only film survived"
    assert not ((n_genres == 2) & (drama == 1) & (comedy == 1)).any(), "a {Comedy, Drama} film survived"
    assert ((n_genres == 3) & (drama == 1) & (comedy == 1)).any(), "supersets of the rules must survive"
    assert (y.sum(axis=1) >= 1).all()
    assert labels["movieId"].is_unique and labels["youtubeId"].is_unique  # so no film or trailer is in two splits

    for name, share in cfg["split"].items():
        part = labels["split"] == name
        assert abs(part.mean() - share) < 0.005
        assert (labels.loc[part, list(GENRES)].sum() > 0).all(), f"a genre is missing from {name}"
    assert (labels.loc[labels["split"] != "train", "copies"] == 1).all()
    assert labels.loc[labels["split"] == "train", "copies"].max() > 1, "Film-Noir (~1% of films) is oversampled"


def test_youtube_ids_with_cruft_are_cleaned_counted_and_reconciled(catalog, tmp_path):
    movies, youtube = catalog
    text = (
        YOUTUBE.replace("yt_01,1,", "yt_01/,1,")
        .replace("yt_09,9,", "  yt_09 ,9,")
        .replace("yt_12,12,", "https://www.youtube.com/watch?feature=share&v=ABCDEFGHIJK,12,")
        .replace("yt_14,14,", "https://youtu.be/yt_14/more,14,")
    )  # cannot be cleaned: film 14 is dropped
    youtube.write_text(text, encoding="utf-8")
    prepared = prepare(movies, youtube, CFG)
    paths = write_prepared(prepared, tmp_path / "out")
    counts = json.loads(paths["counts"].read_text(encoding="utf-8"))
    labels = read_labels(paths["labels"])
    reconcile(counts, labels)
    by_film = labels.set_index("movieId")["youtubeId"]
    assert (by_film[1], by_film[9], by_film[12]) == ("yt_01", "yt_09", "ABCDEFGHIJK")
    assert set(labels["movieId"]) == {1, 2, 6, 9, 11, 12, 13, 15}  # 14 lost its trailer row, nothing else changed
    cleaned = counts["youtubeIds cleaned"]
    assert cleaned["rows"] == 3
    assert cleaned["by kind"] == {"trailing slash": 1, "surrounding whitespace": 1, "youtube.com/watch?v= URL": 1}
    assert [(c["row"], c["youtubeId"]) for c in cleaned["list"]] == [(2, "yt_01"), (10, "yt_09"), (13, "ABCDEFGHIJK")]
    assert counts["youtubeIds rejected"] == [{"row": 15, "raw": "https://youtu.be/yt_14/more"}]
    assert steps_by_name(prepared)["trailer rows skipped: youtubeId not a YouTube id"]["dropped"] == 1
    assert any("row 15" in n for n in counts["notes"])

    for tamper in (
        lambda c: c["youtubeIds cleaned"].__setitem__("rows", 2),
        lambda c: c["youtubeIds cleaned"]["by kind"].__setitem__("trailing slash", 2),
        lambda c: c["youtubeIds rejected"].append({"row": 99, "raw": "x y"}),
    ):
        tampered = copy.deepcopy(counts)
        tamper(tampered)
        with pytest.raises(AssertionError, match="do not reconcile"):
            reconcile(tampered, labels)


def test_cleaned_ids_on_a_catalog_built_like_movielens(tmp_path):
    """The real-size synthetic catalog with cruft put on some trailer rows, as in the real ml-youtube.csv."""
    truth = write_synthetic_catalog(tmp_path, seed=3)
    table = pd.read_csv(truth.youtube_csv, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(table), size=40, replace=False)
    kinds = [
        "{}/",
        " {} ",
        "https://www.youtube.com/watch?v={}&t=5",
        "http://m.youtube.com/watch?list=x&v={}",
        "https://youtu.be/{}",
    ]
    for i, row in enumerate(rows[:35]):
        table.loc[row, "youtubeId"] = kinds[i % len(kinds)].format(table.loc[row, "youtubeId"])
    for row in rows[35:]:
        table.loc[row, "youtubeId"] = "#NAME?"  # what a spreadsheet makes of an id starting with '-'
    table.to_csv(truth.youtube_csv, index=False)
    clean = prepare(truth.movies_csv, truth.youtube_csv, CFG)
    reconcile(clean.counts, clean.labels)
    assert clean.counts["youtubeIds cleaned"]["rows"] == 35
    assert len(clean.counts["youtubeIds rejected"]) == 5
    assert set(clean.labels["youtubeId"]).isdisjoint(table.loc[rows[:35], "youtubeId"])  # only clean ids reach labels
