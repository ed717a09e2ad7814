"""The study's parameters as typed, validated dataclasses: one per params.yaml section.

Why this exists:

* ``dvc repro`` hands params.yaml to each notebook with papermill's ``-f params.yaml``,
  which replaces a section dict *whole*: a key missing from params.yaml would not fall
  back to the notebook's default, it would simply vanish and fail (or worse, be
  guessed) deep inside a stage. So ``parse`` demands every key by default, and a
  default fills in only where a caller asks for it (``defaults=True``).
* A typo (``stepp:``), a quoted number (``n_segments: "8"``) or an out-of-range value
  should stop a run before it spends hours, with the file and the dotted key named.
  Every section is checked by the same generic ``parse``, driven by the dataclass's
  type hints, plus each class's own light ``check`` for what types cannot say.
* Each stage's notebook calls ``parse`` right after its ``parameters`` cell; scripts and
  tests use ``load_section``. The dataclasses below are the one documented list of
  what each section holds.

This module sits in the bottom layer (``lib/core``): it imports no other ``lib`` package.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml

from lib.core.paths import PARAMS


class ParamsError(ValueError):
    """A parameter that is missing, unknown, of the wrong type or out of range; names file and key."""


def fail(where: str, msg: str, file: str = "params.yaml") -> NoReturn:
    raise ParamsError(f"{file}: {where}: {msg}")


# --- the generic parser -------------------------------------------------------------------


def _describe(tp: Any) -> str:
    """A type as a reader of params.yaml would write it (``int | None``, ``one of [...]``)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return "anything"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return f"one of {list(typing.get_args(tp))}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{_describe(typing.get_args(tp)[0])}]"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"dict[{_describe(k)}, {_describe(v)}]"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _got(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


class _Mismatch(Exception):
    """Internal: the value does not fit this type (lets a union try its next member)."""


def _convert(tp: Any, value: Any, where: str, file: str, defaults: bool) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if tp is Any:
        return copy.deepcopy(value)  # never alias the caller's (or YAML's) mutable data
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for member in args:  # the first member that accepts it, in declaration order
            try:
                return _convert(member, value, where, file, defaults)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        # `type(...) is` so that True does not pass for 1, nor 1 for True
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    # bool is a subclass of int in Python, but `epochs: true` in YAML is a mistake, not 1
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (item,) = args
        return [_field(item, v, f"{where}[{i}]", file, defaults) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        key_tp, val_tp = args
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) and key_tp is str:
                fail(where, f"keys must be strings, got {_got(k)}", file)
            out[k] = _field(val_tp, v, f"{where}.{k}", file, defaults)
        return out
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _Mismatch
        return parse(tp, value, where, file, defaults=defaults)
    raise TypeError(f"lib.core.params cannot check values of type {tp!r} (at {where})")


def _field(tp: Any, value: Any, where: str, file: str, defaults: bool) -> Any:
    """``_convert``, but a mismatch becomes a ParamsError naming ``where``."""
    try:
        return _convert(tp, value, where, file, defaults)
    except _Mismatch:
        fail(where, f"expected {_describe(tp)}, got {_got(value)}", file)


def parse(cls: type, data: Any, where: str, file: str = "params.yaml", *, defaults: bool = False):
    """``data`` (a section of params.yaml) as an instance of the dataclass ``cls``, checked.

    Every field must be present unless ``defaults`` is true and the field has a default;
    unknown keys are errors; values are checked (recursively) against the type hints; then
    the instance's ``check(where, file)`` runs, if it has one, for cross-field rules.
    """
    if not isinstance(data, Mapping):
        fail(where, f"expected a mapping, got {_got(data)}", file)
    hints = typing.get_type_hints(cls)  # resolves the string annotations of `from __future__ import annotations`
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]

    unknown = [k for k in data if k not in names]
    if unknown:
        keys = ", ".join(names)
        label = f"unknown key {unknown[0]!r}" if len(unknown) == 1 else f"unknown keys {unknown}"
        fail(where, f"{label} (known: {keys})", file)

    def has_default(f: dataclasses.Field) -> bool:
        return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING

    missing = [f.name for f in fields if f.name not in data and not (defaults and has_default(f))]
    if missing:
        fail(where, f"missing key(s) {missing}", file)

    kwargs = {
        f.name: _field(hints[f.name], data[f.name], f"{where}.{f.name}", file, defaults)
        for f in fields
        if f.name in data
    }
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(where, file)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A parsed dataclass as a plain, JSON-able dict (for model_info.json; ``parse`` reads it back)."""
    return dataclasses.asdict(obj)


def load_params(section: str | None = None, path: str | Path = PARAMS) -> dict[str, Any]:
    """params.yaml as a raw dict (or one section of it): for scripts and tests, not notebooks."""
    with open(path, encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    return params if section is None else params[section]


def load_section(cls: type, section: str, path: str | Path = PARAMS):
    """One section of params.yaml, parsed into ``cls`` (a section dataclass)."""
    path = Path(path)
    params = load_params(path=path)
    if section not in params:
        fail(section, f"no such section (sections: {', '.join(params)})", path.name)
    from_section = getattr(cls, "from_section", None)
    if callable(from_section):  # a section whose raw shape differs from its dataclass (train)
        return from_section(params[section], section, file=path.name)
    return parse(cls, params[section], section, file=path.name)


# --- small checks shared by the sections ---------------------------------------------------


def _at_least(obj: Any, names: str, low: float, where: str, file: str) -> None:
    for name in names.split():
        value = getattr(obj, name)
        if value is not None and not value >= low:
            fail(f"{where}.{name}", f"must be >= {low}, got {value!r}", file)


def _all_positive(obj: Any, names: str, where: str, file: str, *, nonempty: bool = False) -> None:
    for name in names.split():
        values = getattr(obj, name)
        if nonempty and not values:
            fail(f"{where}.{name}", "must not be empty", file)
        for i, v in enumerate(values):
            if v < 1:
                fail(f"{where}.{name}[{i}]", f"must be >= 1, got {v!r}", file)


def _dropout(value: float, where: str, file: str) -> None:
    if not 0.0 <= value < 1.0:
        fail(f"{where}.dropout", f"must be in [0, 1), got {value!r}", file)


def _positive_float(obj: Any, names: str, where: str, file: str) -> None:
    for name in names.split():
        value = getattr(obj, name)
        if not value > 0 or math.isinf(value):
            fail(f"{where}.{name}", f"must be > 0, got {value!r}", file)


def _unique(values: list, where: str, file: str) -> None:
    if not values:
        fail(where, "must not be empty", file)
    dupes = sorted({v for v in values if values.count(v) > 1}, key=str)
    if dupes:
        fail(where, f"duplicates {dupes}", file)


# --- the sections --------------------------------------------------------------------------


@dataclass(frozen=True)
class PrepareParams:
    seed: int
    rebalance: list[dict[str, Any]]  # each rule's shape is checked by lib.prepare.labels
    duplicate_youtube: Literal["keep_first", "drop_all"]
    unknown_genre: Literal["report", "error"]
    split: dict[str, float]
    oversample_below: float  # 0 turns oversampling off
    oversample_max_copies: int

    def check(self, where: str, file: str) -> None:
        if set(self.split) != {"train", "val", "test"}:
            fail(f"{where}.split", f"keys must be exactly train, val, test; got {list(self.split)}", file)
        for name, share in self.split.items():
            if share < 0:
                fail(f"{where}.split.{name}", f"must be >= 0, got {share!r}", file)
        if abs(sum(self.split.values()) - 1.0) > 1e-6:
            fail(f"{where}.split", f"fractions must sum to 1, got {sum(self.split.values())!r}", file)
        _at_least(self, "oversample_below", 0, where, file)
        _at_least(self, "oversample_max_copies", 1, where, file)


@dataclass(frozen=True)
class FrameSettings:
    """What decides a trailer's extracted frames; the defaults are the paper's (section 2.4 and its code).

    This is the one place those defaults live: the extraction functions and the frames
    notebook take theirs from here.
    """

    step: float = 100  # an int when step_unit is "frames": ffmpeg selects every step-th frame
    step_unit: Literal["frames", "seconds"] = "frames"
    size: int = 64
    resize: Literal["squash", "crop"] = "squash"
    min_seconds: float | None = 40.0  # None disables the bound
    max_seconds: float | None = 200.0
    partial_below: float = 0.9

    def __post_init__(self) -> None:
        # A whole step in frames is stored as an int so that the cache key (a JSON dump) is the
        # same whether params.yaml says 100 or 100.0 (parse has just made it a float).
        step = self.step
        if self.step_unit == "frames" and isinstance(step, float) and step.is_integer():
            object.__setattr__(self, "step", int(step))

    def check(self, where: str, file: str) -> None:
        if not self.step > 0 or math.isinf(self.step):
            fail(f"{where}.step", f"must be > 0, got {self.step!r}", file)
        if self.step_unit == "frames" and not isinstance(self.step, int):
            fail(f"{where}.step", f"a step in frames must be a whole number, got {self.step!r}", file)
        _at_least(self, "size", 1, where, file)
        _at_least(self, "min_seconds max_seconds partial_below", 0, where, file)
        if self.min_seconds is not None and self.max_seconds is not None and self.min_seconds > self.max_seconds:
            fail(where, f"min_seconds ({self.min_seconds}) > max_seconds ({self.max_seconds})", file)

    def as_dict(self) -> dict[str, Any]:
        # FrameSettings' fields only, also on FramesParams: these are what the cache key must cover.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(FrameSettings)}

    def cache_key(self, *extra: bytes) -> str:
        """A short hash of the settings and of ``extra`` (the extraction code, the ffmpeg build).

        The recipe lib.frames.stage has always named its parts folders with (sha1 of the sorted
        JSON, ``default=str``, then each extra; 12 hex digits): the same settings dict and
        extras give the same folder as before.
        """
        h = hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True, default=str).encode())
        for chunk in extra:
            h.update(chunk)
        return h.hexdigest()[:12]


@dataclass(frozen=True)
class FramesParams(FrameSettings):
    """The ``frames`` section: the extraction settings plus how many workers run them."""

    n_jobs: int = 0  # 0 = all cores; not part of the settings, it cannot change a frame

    def check(self, where: str, file: str) -> None:
        super().check(where, file)
        _at_least(self, "n_jobs", 0, where, file)

    @property
    def settings(self) -> FrameSettings:
        return FrameSettings(**FrameSettings.as_dict(self))


@dataclass(frozen=True)
class StudyParams:
    models: list[str]
    seeds: list[int]

    def check(self, where: str, file: str) -> None:
        _unique(self.models, f"{where}.models", file)
        _unique(self.seeds, f"{where}.seeds", file)


_MIXED_PRECISION = (False, True, "float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class TrainParams:
    """The keys every model shares; each model's own section is kept raw in ``models``.

    A new model adds its section to params.yaml and its own dataclass (below, or beside
    the model), without touching this class: ``from_section`` files every mapping-valued
    key under ``models`` and the model kind parses it with ``parse``.
    """

    model: str
    seed: int
    mixed_precision: bool | str
    jit_compile: bool | str
    workers: int  # 0 = one per spare core
    models: dict[str, dict[str, Any]]  # not a params.yaml key: built by from_section

    @classmethod
    def from_section(cls, data: Any, where: str = "train", file: str = "params.yaml") -> TrainParams:
        if not isinstance(data, Mapping):
            fail(where, f"expected a mapping, got {_got(data)}", file)
        common_keys = [f.name for f in dataclasses.fields(cls) if f.name != "models"]
        if "models" in data:
            # to_dict's shape, not params.yaml's: taking it for a model named "models" would hide the mix-up
            fail(where, "'models' is not a params.yaml key: each model's section sits under its own name", file)
        common = {k: v for k, v in data.items() if k in common_keys or not isinstance(v, Mapping)}
        models = {k: v for k, v in data.items() if k not in common_keys and isinstance(v, Mapping)}
        return parse(cls, {**common, "models": models}, where, file)

    def check(self, where: str, file: str) -> None:
        if not any(self.mixed_precision == v and type(self.mixed_precision) is type(v) for v in _MIXED_PRECISION):
            fail(
                f"{where}.mixed_precision",
                f"expected one of {list(_MIXED_PRECISION)}, got {_got(self.mixed_precision)}",
                file,
            )
        if isinstance(self.jit_compile, str) and self.jit_compile != "auto":
            fail(f"{where}.jit_compile", f"expected 'auto', true or false, got {_got(self.jit_compile)}", file)
        _at_least(self, "workers", 0, where, file)

    def section(self, model: str, file: str = "params.yaml", where: str = "train") -> dict[str, Any]:
        """``model``'s own section, raw (the model kind parses it into its dataclass)."""
        if model not in self.models:
            fail(where, f"no section {model!r} for model {model} (sections: {', '.join(self.models) or 'none'})", file)
        return self.models[model]


@dataclass(frozen=True)
class ProfileParams:
    """One named set of 3D-CNN hyperparameters (``paper`` is the paper's own network)."""

    widths: list[int]  # Conv3D filters, one per convolution
    blocks: list[int]  # convolutions per MaxPool3D + BatchNorm block
    first_stride: int
    dense: list[int]
    dropout: float
    lr: float
    decay: float  # legacy Keras decay: lr / (1 + decay * step)
    batch_size: int
    # BatchNorm statistics at inference (lib/train/batchnorm.py): ``moving`` is Keras'
    # running average (momentum 0.99, as Keras 2's default: the paper's), ``precise``
    # recomputes them on training batches before every validation and save.
    batchnorm: Literal["moving", "precise"]

    def check(self, where: str, file: str) -> None:
        _all_positive(self, "widths blocks", where, file, nonempty=True)
        _all_positive(self, "dense", where, file)
        if sum(self.blocks) != len(self.widths):
            fail(
                where,
                f"blocks {self.blocks} hold {sum(self.blocks)} convolutions but widths has {len(self.widths)}",
                file,
            )
        _at_least(self, "first_stride batch_size", 1, where, file)
        _dropout(self.dropout, where, file)
        _positive_float(self, "lr", where, file)
        _at_least(self, "decay", 0, where, file)


def _check_slices(obj: Any, where: str, file: str) -> None:
    _at_least(obj, "slice_depth max_slices_per_film epochs", 1, where, file)
    _at_least(obj, "patience", 0, where, file)


@dataclass(frozen=True)
class Cnn3dParams:
    """``train.cnn3d``: the paper's 3D CNN over slices of ``slice_depth`` frames."""

    profile: str
    profiles: dict[str, ProfileParams]
    slice_depth: int
    max_slices_per_film: int | None  # None keeps every slice
    epochs: int
    patience: int

    def check(self, where: str, file: str) -> None:
        if self.profile not in self.profiles:
            fail(
                f"{where}.profile",
                f"{self.profile!r} is not among the profiles ({', '.join(self.profiles) or 'none'})",
                file,
            )
        _check_slices(self, where, file)

    @property
    def hyper(self) -> ProfileParams:
        return self.profiles[self.profile]


@dataclass(frozen=True)
class CnnLstmParams:
    """``train.cnn_lstm``: a per-frame 2D CNN, then an LSTM or GRU over the slice."""

    filters: list[int]
    rnn: Literal["lstm", "gru"]
    units: int
    dense: list[int]
    dropout: float
    lr: float
    decay: float
    batch_size: int
    batchnorm: Literal["moving", "precise"]  # as in ProfileParams
    slice_depth: int
    max_slices_per_film: int | None
    epochs: int
    patience: int

    def check(self, where: str, file: str) -> None:
        _all_positive(self, "filters", where, file, nonempty=True)
        _all_positive(self, "dense", where, file)
        _at_least(self, "units batch_size", 1, where, file)
        _dropout(self.dropout, where, file)
        _positive_float(self, "lr", where, file)
        _at_least(self, "decay", 0, where, file)
        _check_slices(self, where, file)


@dataclass(frozen=True)
class TsnParams:
    """``train.tsn``: one frame per segment of the whole trailer, a 2D encoder, pooling over time."""

    n_segments: int
    pooling: Literal["mean", "attention", "transformer"]
    encoder: str  # "scratch" or a keras-hub preset (name, Kaggle handle or local folder)
    frozen: bool
    scratch_filters: list[int]
    dim: int
    heads: int
    layers: int
    dense: list[int]
    dropout: float
    lr: float
    batch_size: int
    batchnorm: Literal["moving", "precise"]  # as in ProfileParams, for an encoder that trains (the head has none)
    epochs: int
    patience: int
    embed_batch_size: int
    # What the model hears and sees: [frames], [audio] or [frames, audio] (lib/models/tsn.py). The
    # defaults read a model_info.json written before the soundtrack (frames only); params.yaml names them.
    modalities: list[Literal["frames", "audio"]] = dataclasses.field(default_factory=lambda: ["frames"])
    audio_filters: list[int] = dataclasses.field(
        default_factory=lambda: [32, 64, 64]
    )  # Conv1D widths over log-mel time

    def check(self, where: str, file: str) -> None:
        if not self.encoder:
            fail(f"{where}.encoder", "must not be empty", file)
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            fail(f"{where}.modalities", f"must name frames, audio or both, once each; got {self.modalities}", file)
        _all_positive(self, "audio_filters", where, file, nonempty="audio" in self.modalities)
        _all_positive(self, "scratch_filters", where, file, nonempty=self.encoder == "scratch")
        _all_positive(self, "dense", where, file)
        _at_least(self, "n_segments dim heads layers batch_size epochs embed_batch_size", 1, where, file)
        _at_least(self, "patience", 0, where, file)
        _dropout(self.dropout, where, file)
        _positive_float(self, "lr", where, file)


@dataclass(frozen=True)
class EvaluateParams:
    aggregate: Literal["mean", "max", "topk"]  # slice scores -> film score
    top_k: int
    lower: float  # threshold report: below, a genre is confidently absent
    upper: float  # above, confidently present
    seed: int
    n_boot: int
    n_chance: int  # random scorers drawn for chance's threshold metrics, spread and p-values
    batch_size: int
    n_strips: int

    def check(self, where: str, file: str) -> None:
        if not 0.0 <= self.lower <= self.upper <= 1.0:
            fail(where, f"need 0 <= lower <= upper <= 1, got lower={self.lower!r}, upper={self.upper!r}", file)
        _at_least(self, "top_k n_boot n_chance batch_size", 1, where, file)
        _at_least(self, "n_strips", 0, where, file)


@dataclass(frozen=True)
class DownloadParams:
    """Not a stage: ``python -m lib.sources.download`` reads it (its CLI flags override it)."""

    movies_zip_url: str
    youtube_zip_url: str
    trailer_url: str  # a template with {youtubeId}
    format: str
    jobs: int
    pause: float
    retries: int
    backoff: float
    socket_timeout: float
    stop_after_throttled: int  # 0 = never stop
    ytdlp_options: dict[str, Any]

    def check(self, where: str, file: str) -> None:
        if "{youtubeId}" not in self.trailer_url:
            fail(f"{where}.trailer_url", f"must contain {{youtubeId}}, got {self.trailer_url!r}", file)
        _at_least(self, "jobs", 1, where, file)
        _at_least(self, "pause retries backoff stop_after_throttled", 0, where, file)
        _positive_float(self, "socket_timeout", where, file)


def sections_yaml(names: list[str], path: str | Path = PARAMS) -> str:
    """The named top-level sections of ``params.yaml`` as one line of YAML: what a stage hands
    papermill (``-y``), so its report shows its own parameters, not the whole file."""
    data = load_params(path=path)
    missing = [n for n in names if n not in data]
    if missing:
        raise SystemExit(f"{path}: no section(s) {missing}")
    return yaml.dump(
        {n: data[n] for n in names},
        Dumper=_NoAliases,
        default_flow_style=True,
        width=float("inf"),
        sort_keys=False,
    ).strip()


class _NoAliases(yaml.SafeDumper):
    """Writes a section merged from another (``<<: *tsn``) in full, not as ``&id001`` references."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


if __name__ == "__main__":  # python -m lib.core.params SECTION [SECTION ...]
    import sys

    print(sections_yaml(sys.argv[1:]))
