"""lib.core.params: every section of params.yaml parses, and every kind of mistake is named.

papermill's `-f params.yaml` replaces a section dict whole, so these checks are the only
thing standing between a typo in params.yaml and a stage that runs with the wrong value.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from lib.core.params import (
    Cnn3dParams,
    CnnLstmParams,
    DownloadParams,
    EvaluateParams,
    FrameSettings,
    FramesParams,
    ParamsError,
    PrepareParams,
    ProfileParams,
    StudyParams,
    TrainParams,
    TsnParams,
    load_params,
    load_section,
    parse,
    to_dict,
)
from lib.core.paths import PARAMS

PROFILE_DEMO = {
    "widths": [16, 32, 32, 16, 16, 16],
    "blocks": [1, 2, 3],
    "first_stride": 2,
    "dense": [128],
    "dropout": 0.3,
    "lr": 1.0e-3,
    "decay": 1.0e-6,
    "batch_size": 16,
    "batchnorm": "precise",
}
PROFILE_PAPER = {
    "widths": [64, 32, 32, 16, 16, 16],
    "blocks": [1, 2, 3],
    "first_stride": 1,
    "dense": [1024, 1024, 1024],
    "dropout": 0.0,
    "lr": 1.0e-4,
    "decay": 1.0e-6,
    "batch_size": 16,
    "batchnorm": "moving",
}
CNN3D = {
    "profile": "demo",
    "profiles": {"paper": PROFILE_PAPER, "demo": PROFILE_DEMO},
    "slice_depth": 10,
    "max_slices_per_film": None,
    "epochs": 24,
    "patience": 6,
}
CNN_LSTM = {
    "filters": [16, 32, 32],
    "rnn": "lstm",
    "units": 64,
    "dense": [128],
    "dropout": 0.3,
    "lr": 1.0e-3,
    "decay": 1.0e-6,
    "batch_size": 16,
    "batchnorm": "precise",
    "slice_depth": 10,
    "max_slices_per_film": None,
    "epochs": 24,
    "patience": 6,
}
TSN = {
    "n_segments": 8,
    "pooling": "attention",
    "encoder": "efficientnet_lite0_pypi",
    "frozen": True,
    "scratch_filters": [16, 32, 64],
    "dim": 64,
    "heads": 4,
    "layers": 1,
    "dense": [64],
    "dropout": 0.3,
    "lr": 1.0e-3,
    "batch_size": 8,
    "batchnorm": "precise",
    "epochs": 80,
    "patience": 15,
    "embed_batch_size": 32,
    "modalities": ["frames"],
    "audio_filters": [8, 8],
}
# The train section in its per-model shape: common keys, then one mapping per model.
TRAIN = {
    "model": "cnn3d",
    "seed": 42,
    "mixed_precision": False,
    "jit_compile": "auto",
    "workers": 1,
    "cnn3d": CNN3D,
    "cnn_lstm": CNN_LSTM,
    "tsn": TSN,
}
MODEL_CLASSES = {"cnn3d": Cnn3dParams, "cnn_lstm": CnnLstmParams, "tsn": TsnParams}

FRAMES = {
    "step": 100,
    "step_unit": "frames",
    "size": 64,
    "resize": "squash",
    "min_seconds": 40,
    "max_seconds": 200,
    "partial_below": 0.9,
    "n_jobs": 0,
}
EVALUATE = {
    "aggregate": "mean",
    "top_k": 3,
    "lower": 0.25,
    "upper": 0.75,
    "seed": 42,
    "n_boot": 1000,
    "n_chance": 1000,
    "batch_size": 64,
    "n_strips": 4,
}

SECTIONS = {
    "prepare": PrepareParams,
    "frames": FramesParams,
    "study": StudyParams,
    "evaluate": EvaluateParams,
    "download": DownloadParams,
}


def raises(match: str):
    return pytest.raises(ParamsError, match=match)


# --- the repository's own params.yaml --------------------------------------------------------


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_section_of_params_yaml_parses(section):
    cls = SECTIONS[section]
    obj = parse(cls, load_params(section), section)
    assert isinstance(obj, cls)
    assert load_section(cls, section) == obj


def test_the_train_section_of_params_yaml_parses_per_model():
    train = load_section(TrainParams, "train")
    assert {"cnn3d", "cnn_lstm", "tsn"} <= set(train.models)
    for name, cls in MODEL_CLASSES.items():
        parse(cls, train.section(name), f"train.{name}")
    assert train.model in train.models


def test_load_section_names_a_missing_section(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"study": {"models": ["cnn3d"], "seeds": [1]}}))
    assert load_section(StudyParams, "study", path) == StudyParams(models=["cnn3d"], seeds=[1])
    with raises(r"^p\.yaml: evaluate: no such section \(sections: study\)$"):
        load_section(EvaluateParams, "evaluate", path)


def test_load_params_reads_the_raw_yaml():
    raw = yaml.safe_load(PARAMS.read_text())
    assert load_params() == raw
    assert load_params("frames") == raw["frames"]


# --- keys ---------------------------------------------------------------------------------------


def test_unknown_key_is_named_with_the_known_ones():
    with raises(
        r"^params\.yaml: frames: unknown key 'stepp' \(known: step, step_unit, size, resize, min_seconds, "
        r"max_seconds, partial_below, n_jobs\)$"
    ):
        parse(FramesParams, {**FRAMES, "stepp": 5}, "frames")


def test_missing_keys_are_all_listed():
    data = load_params("prepare")
    del data["seed"], data["split"]
    with raises(r"^params\.yaml: prepare: missing key\(s\) \['seed', 'split'\]$"):
        parse(PrepareParams, data, "prepare")


def test_defaults_never_fill_in_unless_asked():
    partial = {"step": 5, "size": 16}
    with raises(
        r"frames: missing key\(s\) \['step_unit', 'resize', 'min_seconds', 'max_seconds', 'partial_below', 'n_jobs'\]"
    ):
        parse(FramesParams, partial, "frames")
    got = parse(FramesParams, partial, "frames", defaults=True)
    assert got == FramesParams(step=5, size=16)
    # a field without a default is still required with defaults=True
    with raises(r"study: missing key\(s\) \['seeds'\]"):
        parse(StudyParams, {"models": ["cnn3d"]}, "study", defaults=True)


def test_not_a_mapping():
    with raises(r"^params\.yaml: study: expected a mapping, got list \['cnn3d'\]$"):
        parse(StudyParams, ["cnn3d"], "study")
    with raises(r"^x\.yaml: train\.cnn3d\.profiles\.demo: expected mapping, got str 'fast'$"):
        parse(Cnn3dParams, {**CNN3D, "profiles": {"demo": "fast"}}, "train.cnn3d", "x.yaml")


# --- types --------------------------------------------------------------------------------------


def test_wrong_type_names_file_and_dotted_key():
    with raises(r"^params\.yaml: train\.tsn\.n_segments: expected int, got str '8'$"):
        parse(TsnParams, {**TSN, "n_segments": "8"}, "train.tsn")
    with raises(r"^other\.yaml: evaluate\.lower: expected float, got str '0\.25'$"):
        parse(EvaluateParams, {**EVALUATE, "lower": "0.25"}, "evaluate", file="other.yaml")


def test_bool_is_not_an_int_nor_a_float():
    with raises(r"train\.tsn\.epochs: expected int, got bool True"):
        parse(TsnParams, {**TSN, "epochs": True}, "train.tsn")
    with raises(r"train\.tsn\.lr: expected float, got bool False"):
        parse(TsnParams, {**TSN, "lr": False}, "train.tsn")


def test_an_int_is_not_a_bool():
    with raises(r"train\.tsn\.frozen: expected bool, got int 1"):
        parse(TsnParams, {**TSN, "frozen": 1}, "train.tsn")


def test_int_is_accepted_as_float_and_converted():
    got = parse(EvaluateParams, {**EVALUATE, "lower": 0, "upper": 1}, "evaluate")
    assert got.lower == 0.0 and type(got.lower) is float
    assert type(got.upper) is float


def test_float_is_not_accepted_as_int():
    with raises(r"evaluate\.top_k: expected int, got float 3\.0"):
        parse(EvaluateParams, {**EVALUATE, "top_k": 3.0}, "evaluate")


def test_literal_rejects_other_values():
    with raises(r"^params\.yaml: train\.cnn_lstm\.rnn: expected one of \['lstm', 'gru'\], got str 'rnn'$"):
        parse(CnnLstmParams, {**CNN_LSTM, "rnn": "rnn"}, "train.cnn_lstm")
    with raises(r"frames\.resize: expected one of \['squash', 'crop'\], got str 'Squash'"):
        parse(FramesParams, {**FRAMES, "resize": "Squash"}, "frames")


def test_nested_paths_in_messages():
    train = TrainParams.from_section(copy.deepcopy(TRAIN))
    bad = copy.deepcopy(train.section("cnn3d"))
    bad["profiles"]["demo"]["lr"] = "fast"
    with raises(r"^params\.yaml: train\.cnn3d\.profiles\.demo\.lr: expected float, got str 'fast'$"):
        parse(Cnn3dParams, bad, "train.cnn3d")
    bad = copy.deepcopy(CNN3D)
    bad["profiles"]["paper"]["dense"] = [1024, "x"]
    with raises(r"train\.cnn3d\.profiles\.paper\.dense\[1\]: expected int, got str 'x'"):
        parse(Cnn3dParams, bad, "train.cnn3d")
    bad = copy.deepcopy(CNN3D)
    bad["profiles"]["paper"]["momentum"] = 0.9
    with raises(r"train\.cnn3d\.profiles\.paper: unknown key 'momentum'"):
        parse(Cnn3dParams, bad, "train.cnn3d")


def test_optional_accepts_none_and_the_type_only():
    assert parse(Cnn3dParams, {**CNN3D, "max_slices_per_film": 4}, "c").max_slices_per_film == 4
    assert parse(Cnn3dParams, CNN3D, "c").max_slices_per_film is None
    with raises(r"c\.max_slices_per_film: expected int \| null, got str 'all'"):
        parse(Cnn3dParams, {**CNN3D, "max_slices_per_film": "all"}, "c")
    assert parse(FramesParams, {**FRAMES, "min_seconds": None}, "frames").min_seconds is None


def test_list_and_dict_types():
    with raises(r"study\.models: expected list\[str\], got str 'cnn3d'"):
        parse(StudyParams, {"models": "cnn3d", "seeds": [1]}, "study")
    got = parse(StudyParams, {"models": ("cnn3d", "tsn"), "seeds": (1, 2)}, "study")  # tuples from Python code
    assert got.models == ["cnn3d", "tsn"] and type(got.models) is list
    with raises(r"prepare\.split\.val: expected float, got str 'a fifth'"):
        parse(
            PrepareParams, {**load_params("prepare"), "split": {"train": 0.8, "val": "a fifth", "test": 0.0}}, "prepare"
        )


def test_union_takes_the_first_member_that_fits():
    @dataclass(frozen=True)
    class Flags:
        a: bool | str
        b: int | float
        c: Any
        d: Literal[1, 2] | None

    got = parse(Flags, {"a": "auto", "b": 2, "c": {"x": [1]}, "d": None}, "flags")
    assert got == Flags("auto", 2, {"x": [1]}, None) and type(got.b) is int
    assert type(parse(Flags, {"a": True, "b": 2.5, "c": None, "d": 1}, "flags").b) is float
    with raises(r"flags\.a: expected bool \| str, got int 3"):
        parse(Flags, {"a": 3, "b": 2, "c": 1, "d": 1}, "flags")
    with raises(r"flags\.d: expected one of \[1, 2\] \| null, got bool True"):
        parse(Flags, {"a": True, "b": 2, "c": 1, "d": True}, "flags")


def test_parsed_values_do_not_alias_the_input():
    data = load_params("download")
    data["ytdlp_options"] = {"http_headers": {"a": "b"}}
    got = parse(DownloadParams, data, "download")
    data["ytdlp_options"]["http_headers"]["a"] = "changed"
    assert got.ytdlp_options == {"http_headers": {"a": "b"}}
    with pytest.raises(FrozenInstanceError):
        got.jobs = 2


# --- each section's own checks --------------------------------------------------------------


def test_frame_settings_defaults_are_the_papers():
    s = FrameSettings()
    assert s.as_dict() == {
        "step": 100,
        "step_unit": "frames",
        "size": 64,
        "resize": "squash",
        "min_seconds": 40.0,
        "max_seconds": 200.0,
        "partial_below": 0.9,
    }
    assert list(s.as_dict()) == ["step", "step_unit", "size", "resize", "min_seconds", "max_seconds", "partial_below"]
    assert FramesParams().n_jobs == 0 and FramesParams().settings == s


def test_a_step_in_frames_is_a_whole_number_stored_as_int():
    with raises(r"^params\.yaml: frames\.step: a step in frames must be a whole number, got 2\.5$"):
        parse(FramesParams, {**FRAMES, "step": 2.5}, "frames")
    got = parse(FramesParams, {**FRAMES, "step": 100.0}, "frames")
    assert got.step == 100 and type(got.step) is int
    got = parse(FramesParams, {**FRAMES, "step": 2, "step_unit": "seconds"}, "frames")
    assert got.step == 2.0 and type(got.step) is float
    assert parse(FramesParams, {**FRAMES, "step": 2.5, "step_unit": "seconds"}, "frames").step == 2.5


@pytest.mark.parametrize(
    "change, match",
    [
        ({"step": 0}, r"frames\.step: must be > 0, got 0"),
        ({"step": -1.5, "step_unit": "seconds"}, r"frames\.step: must be > 0"),
        ({"size": 0}, r"frames\.size: must be >= 1, got 0"),
        ({"min_seconds": 300}, r"frames: min_seconds \(300\.0\) > max_seconds \(200\.0\)"),
        ({"n_jobs": -1}, r"frames\.n_jobs: must be >= 0"),
    ],
)
def test_frames_checks(change, match):
    with raises(match):
        parse(FramesParams, {**FRAMES, **change}, "frames")


def test_frames_settings_drop_n_jobs():
    got = parse(FramesParams, {**FRAMES, "n_jobs": 3}, "frames")
    assert type(got.settings) is FrameSettings
    assert got.settings.as_dict() == {k: v for k, v in got.as_dict().items()}
    assert "n_jobs" not in got.settings.as_dict()
    assert got.cache_key() == got.settings.cache_key()  # workers cannot change a frame
    assert parse(FramesParams, {**FRAMES, "n_jobs": 0}, "frames").settings == got.settings


def _legacy_settings_key(settings: dict, *extras: bytes) -> str:
    """lib.frames.stage.settings_key as it was before FrameSettings (it names the parts folders)."""
    keys = ("step", "step_unit", "size", "resize", "min_seconds", "max_seconds", "partial_below")
    h = hashlib.sha1(json.dumps({k: settings[k] for k in keys}, sort_keys=True, default=str).encode())
    for chunk in extras:
        h.update(chunk)
    return h.hexdigest()[:12]


def test_cache_key_is_the_frames_stages_settings_key():
    stage = pytest.importorskip("lib.frames.stage")
    from lib.frames import audio, extract, features

    extras = [
        Path(extract.__file__).read_bytes(),
        Path(features.__file__).read_bytes(),
        Path(audio.__file__).read_bytes(),
        Path(extract.ffmpeg_exe()).name.encode(),
    ]
    for s in [
        FrameSettings(),
        parse(FramesParams, FRAMES, "frames").settings,
        FrameSettings(step=0.5, step_unit="seconds", size=32, resize="crop", min_seconds=None, max_seconds=None),
    ]:
        assert s.cache_key(*extras) == _legacy_settings_key(s.as_dict(), *extras)
        assert s.cache_key(*extras) == stage.settings_key(s)
    # every input counts: the settings, and each extra
    base = FrameSettings().cache_key(*extras)
    assert len(base) == 12
    assert FrameSettings(size=32).cache_key(*extras) != base
    assert FrameSettings().cache_key(extras[0], extras[1], b"other-ffmpeg") != base
    assert FrameSettings().cache_key(*extras) == base  # deterministic


def test_cache_key_is_json_of_the_settings():
    s = FrameSettings()
    expected = hashlib.sha1(json.dumps(s.as_dict(), sort_keys=True).encode() + b"abc").hexdigest()[:12]
    assert s.cache_key(b"a", b"bc") == expected


@pytest.mark.parametrize(
    "split, match",
    [
        ({"train": 0.6, "val": 0.2, "test": 0.25}, r"prepare\.split: fractions must sum to 1"),
        ({"train": 1.2, "val": -0.2, "test": 0.0}, r"prepare\.split\.val: must be >= 0"),
        ({"train": 0.8, "test": 0.2}, r"prepare\.split: keys must be exactly train, val, test"),
        ({"train": 0.5, "val": 0.2, "test": 0.2, "holdout": 0.1}, r"prepare\.split: keys must be exactly"),
    ],
)
def test_prepare_split_checks(split, match):
    with raises(match):
        parse(PrepareParams, {**load_params("prepare"), "split": split}, "prepare")


def test_prepare_split_tolerates_rounding():
    got = parse(PrepareParams, {**load_params("prepare"), "split": {"train": 0.7, "val": 0.2, "test": 0.1}}, "prepare")
    assert got.split == {"train": 0.7, "val": 0.2, "test": 0.1}


def test_study_rejects_duplicates_and_empty_lists():
    with raises(r"study\.seeds: duplicates \[42\]"):
        parse(StudyParams, {"models": ["cnn3d"], "seeds": [42, 43, 42]}, "study")
    with raises(r"study\.models: must not be empty"):
        parse(StudyParams, {"models": [], "seeds": [42]}, "study")


@pytest.mark.parametrize("lower, upper", [(0.8, 0.2), (-0.1, 0.5), (0.5, 1.5)])
def test_evaluate_thresholds_are_ordered_in_the_unit_interval(lower, upper):
    with raises(r"evaluate: need 0 <= lower <= upper <= 1"):
        parse(EvaluateParams, {**EVALUATE, "lower": lower, "upper": upper}, "evaluate")


def test_download_trailer_url_needs_the_placeholder():
    with raises(r"download\.trailer_url: must contain \{youtubeId\}"):
        parse(DownloadParams, {**load_params("download"), "trailer_url": "https://example.org/{id}"}, "download")


def test_cnn3d_profile_must_exist_and_hyper_picks_it():
    got = parse(Cnn3dParams, CNN3D, "train.cnn3d")
    assert got.hyper == parse(ProfileParams, PROFILE_DEMO, "p") and got.hyper.first_stride == 2
    with raises(r"^params\.yaml: train\.cnn3d\.profile: 'fast' is not among the profiles \(paper, demo\)$"):
        parse(Cnn3dParams, {**CNN3D, "profile": "fast"}, "train.cnn3d")


@pytest.mark.parametrize(
    "change, match",
    [
        ({"blocks": [1, 2, 2]}, r"blocks \[1, 2, 2\] hold 5 convolutions but widths has 6"),
        ({"blocks": [0, 3, 3]}, r"p\.blocks\[0\]: must be >= 1"),
        ({"dropout": 1.0}, r"p\.dropout: must be in \[0, 1\)"),
        ({"dropout": -0.1}, r"p\.dropout: must be in \[0, 1\)"),
        ({"lr": 0}, r"p\.lr: must be > 0"),
        ({"batch_size": 0}, r"p\.batch_size: must be >= 1"),
        ({"dense": [128, 0]}, r"p\.dense\[1\]: must be >= 1"),
    ],
)
def test_profile_checks(change, match):
    with raises(match):
        parse(ProfileParams, {**PROFILE_DEMO, **change}, "p")


@pytest.mark.parametrize(
    "cls, base, change, match",
    [
        (CnnLstmParams, CNN_LSTM, {"units": 0}, r"units: must be >= 1"),
        (CnnLstmParams, CNN_LSTM, {"epochs": 0}, r"epochs: must be >= 1"),
        (CnnLstmParams, CNN_LSTM, {"max_slices_per_film": 0}, r"max_slices_per_film: must be >= 1"),
        (CnnLstmParams, CNN_LSTM, {"filters": []}, r"filters: must not be empty"),
        (TsnParams, TSN, {"n_segments": 0}, r"n_segments: must be >= 1"),
        (TsnParams, TSN, {"dropout": 1.5}, r"dropout: must be in \[0, 1\)"),
        (TsnParams, TSN, {"patience": -1}, r"patience: must be >= 0"),
        (TsnParams, TSN, {"pooling": "max"}, r"pooling: expected one of \['mean', 'attention', 'transformer'\]"),
        (Cnn3dParams, CNN3D, {"slice_depth": 0}, r"slice_depth: must be >= 1"),
    ],
)
def test_model_section_checks(cls, base, change, match):
    with raises(match):
        parse(cls, {**base, **change}, "m")


# --- train: common keys, then one raw section per model ---------------------------------------


def test_train_splits_model_sections():
    train = TrainParams.from_section(copy.deepcopy(TRAIN))
    assert (train.model, train.seed, train.mixed_precision, train.jit_compile, train.workers) == (
        "cnn3d",
        42,
        False,
        "auto",
        1,
    )
    assert train.models == {"cnn3d": CNN3D, "cnn_lstm": CNN_LSTM, "tsn": TSN}
    assert train.section("tsn") == TSN
    for name, cls in MODEL_CLASSES.items():
        assert isinstance(parse(cls, train.section(name), f"train.{name}"), cls)
    # a new model's section needs no change here
    assert TrainParams.from_section({**TRAIN, "vit": {"patch": 16}}).section("vit") == {"patch": 16}


def test_train_missing_model_section():
    train = TrainParams.from_section({k: v for k, v in TRAIN.items() if k != "tsn"})
    with raises(r"^params\.yaml: train: no section 'tsn' for model tsn \(sections: cnn3d, cnn_lstm\)$"):
        train.section("tsn")


def test_train_unknown_scalar_key_and_missing_common_key():
    with raises(
        r"^params\.yaml: train: unknown key 'epochs' \(known: model, seed, mixed_precision, jit_compile, workers, models\)$"
    ):
        TrainParams.from_section({**TRAIN, "epochs": 24})
    with raises(r"train: missing key\(s\) \['seed'\]"):
        TrainParams.from_section({k: v for k, v in TRAIN.items() if k != "seed"})
    with raises(r"train: 'models' is not a params\.yaml key"):
        TrainParams.from_section({**TRAIN, "models": {}})
    with raises(r"^params\.yaml: train: expected a mapping"):
        TrainParams.from_section(None)


@pytest.mark.parametrize("value", [False, True, "float32", "mixed_float16", "mixed_bfloat16"])
def test_train_mixed_precision_values(value):
    assert TrainParams.from_section({**TRAIN, "mixed_precision": value}).mixed_precision == value


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("mixed_precision", "float16", r"train\.mixed_precision: expected one of \[False, True, 'float32'"),
        ("mixed_precision", 1, r"train\.mixed_precision: expected bool \| str, got int 1"),
        ("jit_compile", "xla", r"train\.jit_compile: expected 'auto', true or false"),
        ("workers", -1, r"train\.workers: must be >= 0"),
        ("seed", "42", r"train\.seed: expected int, got str '42'"),
    ],
)
def test_train_common_checks(key, value, match):
    with raises(match):
        TrainParams.from_section({**TRAIN, key: value})


# --- round trips --------------------------------------------------------------------------------


def test_round_trip_through_to_dict():
    objects = {
        "prepare": parse(PrepareParams, load_params("prepare"), "prepare"),
        "frames": parse(FramesParams, {**FRAMES, "step": 0.5, "step_unit": "seconds"}, "frames"),
        "study": parse(StudyParams, load_params("study"), "study"),
        "evaluate": parse(EvaluateParams, EVALUATE, "evaluate"),
        "download": parse(DownloadParams, load_params("download"), "download"),
        "train": TrainParams.from_section(copy.deepcopy(TRAIN)),
        "train.cnn3d": parse(Cnn3dParams, CNN3D, "train.cnn3d"),
        "train.cnn_lstm": parse(CnnLstmParams, CNN_LSTM, "train.cnn_lstm"),
        "train.tsn": parse(TsnParams, TSN, "train.tsn"),
    }
    for where, obj in objects.items():
        d = to_dict(obj)
        assert type(d) is dict
        back = parse(type(obj), json.loads(json.dumps(d)), where)  # JSON-able, as in model_info.json
        assert back == obj, where
    assert type(to_dict(objects["train.cnn3d"])["profiles"]["demo"]) is dict
    assert to_dict(parse(FramesParams, FRAMES, "frames")) == {**FRAMES, "min_seconds": 40.0, "max_seconds": 200.0}
