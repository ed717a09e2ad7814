"""The model-kind registry (``lib.models.kinds``) and ``model_info.json`` (``lib.models.info``).

A new kind is a ``ModelKind`` subclass passed to ``register``, and nothing else in
``lib`` changes: here a toy kind, defined in this file only (a dense layer on each
film's mean colour, with its own params dataclass), goes through the train notebook's
sequence of calls (datasets, build, compile, fit, finish, model_info) and comes back
through ``load_run``, the one run loader, exactly as cnn3d, cnn_lstm and tsn do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import pytest

from lib.core.genres import GENRES
from lib.core.params import FrameSettings, ParamsError, StudyParams, TrainParams, fail, load_section, to_dict
from lib.loaders.slices import films_of_split, write_synthetic_corpus
from lib.models.info import INFO_FILE, ModelInfo, ModelInfoError
from lib.models.kinds import KINDS, FrameScores, Hyper, ModelKind, TrainingData, get_kind, load_run, register
from lib.train import fit as T
from lib.train.runtime import setup_runtime

TOY = "toy_mean_colour"
BUILT_IN = ("cnn3d", "cnn_lstm", "tsn", "tsn_audio", "tsn_av")


# -- a toy kind, defined here and nowhere else ------------------------------------------------
@dataclass(frozen=True)
class MeanColourParams:
    """``train.toy_mean_colour``: one hidden dense layer on a film's mean RGB."""

    units: int
    lr: float
    batch_size: int
    epochs: int
    patience: int

    def check(self, where: str, file: str) -> None:
        for name in ("units", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                fail(f"{where}.{name}", f"must be >= 1, got {getattr(self, name)!r}", file)


def mean_colours(store, movie_ids) -> np.ndarray:
    """(n, 3) float32 in [0, 1]: each film's mean colour over its frames and pixels."""
    return np.stack(
        [np.asarray(store.film(int(m)), dtype=np.float32).mean(axis=(0, 1, 2)) / 255 for m in movie_ids]
    ).astype(np.float32)


class FilmColours(keras.utils.PyDataset):
    """One example per film: (mean colour, labels); the attributes the train notebook reads."""

    def __init__(self, store, films: pd.DataFrame, batch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.store, self.batch_size = store, int(batch_size)
        self.movie_ids = films["movieId"].astype(int).to_numpy()
        self.x = mean_colours(store, self.movie_ids)
        self.y = films[list(GENRES)].to_numpy(np.float32)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[rows], self.y[rows]

    n_films = property(lambda self: len(self.x))
    n_slices = n_films
    n_visits = n_films

    def film_labels(self):
        return self.y

    def slice_labels(self):
        return self.y


class MeanColourKind(ModelKind):
    name = TOY
    params_type = MeanColourParams

    def hyper(self, params):
        return Hyper(params.lr, 0.0, params.batch_size, params.epochs, params.patience)

    def datasets(self, params, store, labels, *, seed, workers, embed_dir=None):
        splits = {s: films_of_split(labels, store, s).films for s in ("train", "val")}
        sets = {s: FilmColours(store, films, params.batch_size, workers=workers) for s, films in splits.items()}
        table = pd.DataFrame({s: {"films": ds.n_films, "slices": ds.n_slices} for s, ds in sets.items()}).T
        return TrainingData(sets["train"], sets["val"], table, notes=["one example per film: its mean colour"])

    def build(self, params, frame_shape, data):
        inputs = keras.Input((3,), name="mean_colour")
        x = keras.layers.Dense(params.units, activation="relu", name="hidden")(inputs)
        return keras.Model(inputs, keras.layers.Dense(len(GENRES), activation="sigmoid", name="genres")(x), name=TOY)

    def info_extra(self, params, data):
        return {"features": "mean RGB"}

    def predict_films(self, model, info, store, movie_ids, *, how="mean", top_k=3, batch_size=64):
        ids = [int(m) for m in movie_ids]
        scores = np.asarray(model.predict(mean_colours(store, ids), batch_size=batch_size, verbose=0), dtype=float)
        films = pd.DataFrame(scores, columns=list(info.genres), index=pd.Index(ids, name="movieId"))
        films.insert(0, "n_slices", [store.n_frames(m) for m in ids])
        return films, None

    def score_frames(self, model, info, frames, *, how="mean", top_k=3, batch_size=32):
        x = np.asarray(frames, dtype=np.float32).mean(axis=(0, 1, 2))[None] / 255
        return FrameScores(
            np.asarray(model.predict(x, verbose=0), dtype=float)[0], None, f"mean colour of {len(frames)} frames"
        )


TOY_SECTION = {"units": 8, "lr": 1e-2, "batch_size": 4, "epochs": 2, "patience": 2}


@pytest.fixture
def toy_kind():
    kind = register(MeanColourKind())
    try:
        yield kind
    finally:
        KINDS.pop(TOY, None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(
        tmp_path_factory.mktemp("kinds_store"), n_films=30, frames_per_film=(2, 9), size=8, seed=3
    )


# -- (a) a new kind, end to end ------------------------------------------------------------
def test_a_registered_toy_kind_trains_saves_loads_and_predicts(toy_kind, corpus, tmp_path):
    store, labels = corpus
    common = TrainParams.from_section(
        {"model": TOY, "seed": 5, "mixed_precision": False, "jit_compile": False, "workers": 1, TOY: TOY_SECTION}
    )
    kind = get_kind(common.model)
    assert kind is toy_kind
    params = kind.parse(common.section(kind.name))
    assert params == MeanColourParams(**TOY_SECTION)
    hyper = kind.hyper(params)
    runtime = setup_runtime(common.seed, common.mixed_precision, verbose=False)

    data = kind.datasets(params, store, labels, seed=common.seed, workers=common.workers)
    model = kind.build(params, store.frame_shape, data)
    T.compile_model(model, hyper.lr, hyper.decay, common.jit_compile, T.present_genres(data.val.slice_labels()))
    out = tmp_path / f"{TOY}-seed5"
    result = T.fit(model, data.train, data.val, out, epochs=hyper.epochs, patience=hyper.patience, verbose=0)
    kind.finish(params, result.model_path, store.frame_shape)
    T.model_info(kind, params, common, runtime, result, store, model, extra=kind.info_extra(params, data)).write(out)
    assert len(result.history) == 2 and (out / "model.keras").is_file()

    info = ModelInfo.read(out)
    assert info.model == TOY and info.settings == TOY_SECTION and info.seed == 5 and info.profile is None
    assert info.extra == {"features": "mean RGB"} and info.frame_shape == [8, 8, 3] and info.frames is None

    run = load_run(out)
    assert run.kind is toy_kind and run.info == info
    ids = labels.loc[labels["split"] == "test", "movieId"].tolist()[::-1]  # an order of our own
    films, slices = run.predict_films(store, ids)
    assert slices is None
    assert list(films.index) == ids and list(films.columns) == ["n_slices", *GENRES]
    assert films["n_slices"].tolist() == [store.n_frames(m) for m in ids]
    scores = films[list(GENRES)].to_numpy()
    assert scores.shape == (len(ids), len(GENRES)) and np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    # the reloaded model is the checkpointed one (fit leaves the best weights in `model` too)
    np.testing.assert_allclose(scores, model.predict(mean_colours(store, ids), verbose=0), rtol=1e-5, atol=1e-6)
    one = run.kind.score_frames(run.model, run.info, np.asarray(store.film(ids[0])))
    np.testing.assert_allclose(one.scores, scores[0], rtol=1e-5, atol=1e-6)

    # Unregistered, its runs are refused by name instead of being loaded as something else.
    KINDS.pop(TOY)
    with pytest.raises(ValueError, match=f"unknown model kind '{TOY}'"):
        load_run(out)


def test_a_toy_kinds_section_is_checked_by_its_own_dataclass(toy_kind):
    with pytest.raises(ParamsError, match=rf"train\.{TOY}\.units: must be >= 1, got 0"):
        toy_kind.parse({**TOY_SECTION, "units": 0})
    with pytest.raises(ParamsError, match=rf"train\.{TOY}: unknown key 'unit'"):
        toy_kind.parse({**{k: v for k, v in TOY_SECTION.items() if k != "units"}, "unit": 8})
    with pytest.raises(ParamsError, match=rf"train\.{TOY}\.lr: expected float"):
        toy_kind.parse({**TOY_SECTION, "lr": "fast"})


def test_register_needs_a_name():
    class Nameless(ModelKind):
        params_type = MeanColourParams

    with pytest.raises(ValueError, match="Nameless has no name"):
        register(Nameless())
    assert set(KINDS) == set(BUILT_IN)


# -- (b) the built-in kinds and params.yaml ------------------------------------------------
@pytest.mark.parametrize("name", BUILT_IN)
def test_each_built_in_kind_parses_its_params_yaml_section(name):
    common = load_section(TrainParams, "train")
    kind = get_kind(name)
    params = kind.parse(common.section(name))
    assert isinstance(params, kind.params_type) and kind.name == name
    hyper = kind.hyper(params)
    assert hyper.lr > 0 and hyper.decay >= 0 and hyper.batch_size >= 1 and hyper.epochs >= 1 and hyper.patience >= 0
    # what model_info.json stores is what load_run parses back
    assert kind.parse(json.loads(json.dumps(to_dict(params))), "model_info.json") == params


def test_every_model_of_the_study_is_a_registered_kind():
    study = load_section(StudyParams, "study")
    assert study.models and all(get_kind(m).name == m for m in study.models)
    assert get_kind(load_section(TrainParams, "train").model).name in BUILT_IN


def test_an_unknown_kind_is_refused_with_the_known_ones_named():
    with pytest.raises(
        ValueError, match=r"unknown model kind 'resnet'; known: cnn3d, cnn_lstm, tsn, tsn_audio, tsn_av$"
    ):
        get_kind("resnet")


# -- (c) model_info.json ---------------------------------------------------------------------
def test_model_info_round_trips_with_its_frame_settings(tmp_path):
    info = ModelInfo(
        model="cnn3d",
        genres=list(GENRES),
        frame_shape=[16, 16, 3],
        frames=FrameSettings(step=5, size=16),
        settings={"slice_depth": 4},
        seed=1,
        profile="demo",
        runtime={"backend": "tensorflow"},
        best_epoch=2,
        best={"val_auc_pr": 0.5},
        extra={"note": 1},
    )
    assert info.write(tmp_path) == tmp_path / INFO_FILE
    back = ModelInfo.read(tmp_path)
    assert back == info and back.frames == FrameSettings(step=5, size=16) and back.size == 16


def test_model_info_lacking_keys_names_them(tmp_path):
    # model_info.json as the train stage wrote it before ModelInfo existed
    old = {"model": "cnn3d", "slice_depth": 10, "size": 64, "genres": list(GENRES), "backend": "tensorflow"}
    (tmp_path / INFO_FILE).write_text(json.dumps(old))
    with pytest.raises(ModelInfoError, match=r"lacks \['frame_shape', 'frames', 'seed', 'settings'\]"):
        ModelInfo.read(tmp_path)
    current = json.loads(
        ModelInfo(model="tsn", genres=list(GENRES), frame_shape=[8, 8, 3], frames=None, settings={}, seed=0).to_json()
    )
    (tmp_path / INFO_FILE).write_text(json.dumps({k: v for k, v in current.items() if k != "genres"}))
    with pytest.raises(ModelInfoError, match=r"lacks \['genres'\]"):
        ModelInfo.read(tmp_path)
    (tmp_path / INFO_FILE).write_text(json.dumps({**current, "slice_depth": 10}))
    with pytest.raises(ModelInfoError, match=r"unknown key\(s\) \['slice_depth'\]"):
        ModelInfo.read(tmp_path)
    (tmp_path / INFO_FILE).write_text(json.dumps({**current, "frames": {"stepp": 5}}))
    with pytest.raises(ModelInfoError, match="frames: .*stepp"):
        ModelInfo.read(tmp_path)
    (tmp_path / INFO_FILE).unlink()
    with pytest.raises(ModelInfoError, match="not found"):
        ModelInfo.read(tmp_path)
    with pytest.raises(ModelInfoError, match="not found"):
        load_run(tmp_path)


def test_frame_settings_in_model_info_are_type_checked(tmp_path):
    current = json.loads(
        ModelInfo(model="tsn", genres=list(GENRES), frame_shape=[8, 8, 3], frames=None, settings={}, seed=0).to_json()
    )
    (tmp_path / INFO_FILE).write_text(json.dumps({**current, "frames": {**to_dict(FrameSettings()), "step": "5"}}))
    with pytest.raises(ModelInfoError, match=r"frames\.step: expected"):
        ModelInfo.read(tmp_path)


def test_a_train_section_that_names_no_kind_is_refused():
    from lib.models.kinds import check_sections

    common = TrainParams.from_section(
        {
            "model": "cnn3d",
            "seed": 1,
            "mixed_precision": False,
            "jit_compile": "auto",
            "workers": 1,
            "cnn3d": {},
            "cnn3D": {},
        }
    )
    with pytest.raises(ParamsError, match=r"\['cnn3D'\] name no model kind"):
        check_sections(common)
    check_sections(
        TrainParams.from_section(
            {"model": "cnn3d", "seed": 1, "mixed_precision": False, "jit_compile": "auto", "workers": 1, "cnn3d": {}}
        )
    )
