"""``model_info.json``: what a reader of ``model.keras`` needs, and how it was trained.

Written once by the train stage (``ModelInfo.write``) and read by evaluate and the
``trailer-genres`` CLI (``ModelInfo.read``): one schema, one writer, one reader. Above
all it records the **frame settings** the model's store was extracted with
(``frames``), so a new trailer is decoded exactly as the training trailers were,
whatever ``params.yaml`` says at the time; and the model kind's own section of
``params.yaml`` as trained (``settings``), from which the kind rebuilds what prediction
needs (slice depth, number of segments, encoder).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lib.core.atomic import atomic_write
from lib.core.params import FrameSettings, ParamsError, parse, to_dict

INFO_FILE = "model_info.json"


class ModelInfoError(ValueError):
    """A model_info.json that is missing, unreadable or lacks what prediction needs."""


@dataclass
class ModelInfo:
    model: str  # the model kind (lib.models.kinds)
    genres: list[str]  # the order of the model's sigmoid outputs
    frame_shape: list[int]  # (H, W, 3) of the frames it takes
    frames: FrameSettings | None  # extraction settings of its store; None for a store not made by the frames stage
    settings: dict[str, Any]  # the kind's params.yaml section (train.<model>) as trained
    seed: int
    profile: str | None = None  # the slice models' hyperparameter profile (train.<model>.profile)
    runtime: dict[str, Any] = field(default_factory=dict)  # backend, device, dtype policy, Keras version
    n_params: dict[str, int] = field(default_factory=dict)  # total, trainable, non_trainable
    best_epoch: int | None = None
    best: dict[str, float] = field(default_factory=dict)  # the checkpointed epoch's logs
    epochs_run: int | None = None
    train_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific facts (slices per split, embedding cache)

    @property
    def size(self) -> int:
        return int(self.frame_shape[0])

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["frames"] = None if self.frames is None else to_dict(self.frames)
        return json.dumps(data, indent=2, default=str) + "\n"

    def write(self, run_dir: str | Path) -> Path:
        return atomic_write(Path(run_dir) / INFO_FILE, self.to_json())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = INFO_FILE) -> ModelInfo:
        names = {f.name for f in fields(cls)}
        required = {"model", "genres", "frame_shape", "frames", "settings", "seed"}
        missing = sorted(required - set(data))
        if missing:
            raise ModelInfoError(
                f"{where} lacks {missing}: it was not written by this version of the train stage; retrain (dvc repro)"
            )
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelInfoError(f"{where} has unknown key(s) {unknown}")
        values = dict(data)
        if values["frames"] is not None:
            try:
                values["frames"] = parse(FrameSettings, values["frames"], "frames", where)
            except ParamsError as exc:
                raise ModelInfoError(str(exc)) from None
        return cls(**values)

    @classmethod
    def read(cls, run_dir: str | Path) -> ModelInfo:
        path = Path(run_dir) / INFO_FILE
        if not path.is_file():
            raise ModelInfoError(f"{path} not found: the train stage writes it next to model.keras")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelInfoError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ModelInfoError(f"{path}: expected a JSON object")
        return cls.from_dict(data, str(path))
