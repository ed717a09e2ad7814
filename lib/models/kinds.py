"""Model kinds: one object per kind knows how it is batched, built, trained, finished,
loaded, and how it scores a film. Nothing else in the project asks "which model is this?".

``KINDS`` maps the names of ``params.yaml`` (``study.models``, ``train.model``, and the
``model`` of ``model_info.json``) to kind objects, in the style of
``lib.evaluate.baselines.BASELINES`` and of the model registries of large video codebases
(SlowFast's ``MODEL_REGISTRY``). The train notebook, evaluate and the ``trailer-genres``
CLI all go through it; ``load_run`` is the one way to load a trained run. A new kind is
a subclass of ``ModelKind`` passed to ``register``: no other module changes.

What a kind provides (see ``ModelKind``):

* ``params_type`` and ``parse``: its own section of ``params.yaml`` (``train.<name>``),
  typed and validated (``lib.core.params``);
* ``hyper``: what the shared training loop needs (learning rate, decay, batch size,
  epochs, patience, how BatchNorm statistics are kept) and ``profile``: the hyperparameter profile's name, if any;
* ``datasets``: the training and validation batches (``TrainingData``);
* ``build``: the model to fit, and ``finish``: what is saved as ``model.keras`` once the
  best epoch is known (e.g. a frozen encoder put back in front of a trained head);
* ``model_frames``: the frames the saved model takes (shape, and the extraction settings a
  new trailer is decoded with), recorded in ``model_info.json``;
* ``load_model`` and ``predict_saved``: the saved model, and its validation scores, so the
  train stage can check that the file is the checkpointed epoch;
* ``predict_films``: scores of stored films, and ``score_frames``: scores of one new
  trailer's frames (the CLI), with its sound's log-mel windows for a kind that ``hears``.

``tsn_audio`` and ``tsn_av`` are ``tsn`` under the names of the soundtrack ablation's arms: their
``params.yaml`` sections differ from ``train.tsn`` in ``modalities`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import pandas as pd

from lib.core.params import Cnn3dParams, CnnLstmParams, FrameSettings, ParamsError, TrainParams, TsnParams, parse
from lib.encoders import embeddings as E
from lib.encoders.presets import import_keras_hub, is_preset, load_preset_encoder, uses_cache
from lib.frames import audio as A
from lib.frames.store import FrameStore
from lib.loaders.films import make_film_datasets
from lib.loaders.segments import film_inputs
from lib.loaders.slices import make_split_datasets
from lib.loaders.slicing import slice_film
from lib.models import slice_models, tsn
from lib.models.info import ModelInfo
from lib.models.scoring import aggregate_scores, predict_films, predict_tsn


@dataclass(frozen=True)
class Hyper:
    """What the shared training loop (``lib.train.fit``) needs from a kind's section."""

    lr: float
    decay: float
    batch_size: int
    epochs: int
    patience: int
    batchnorm: str = "moving"  # BatchNorm statistics: lib.train.batchnorm.BATCHNORM_MODES


@dataclass
class TrainingData:
    """A kind's training and validation batches, and the table the train report shows."""

    train: Any  # a keras.utils.PyDataset with film_labels(), slice_labels(), n_films, n_visits
    val: Any
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # lines the report prints (e.g. where the inputs came from)
    embed_dim: int | None = None  # width of cached encoder outputs, when the kind trains on them
    embed_meta: dict[str, Any] | None = None
    band_stats: tuple[list[float], list[float]] | None = None  # training windows' per-band (mean, var), when it hears


@dataclass
class FrameScores:
    """One trailer's scores: per genre, per slice (slice models; None otherwise), and
    one line that says which frames the model used."""

    scores: np.ndarray
    per_slice: np.ndarray | None
    used: str
    depth: int = 0  # frames per slice, for a kind with slice scores


class ModelKind:
    """The interface every kind implements; see the module docstring."""

    name: ClassVar[str]
    params_type: ClassVar[type]

    def parse(self, section: Mapping[str, Any], file: str = "params.yaml") -> Any:
        # a run saved before a key was added reads as that key's default (frames-only tsn runs have no `modalities`)
        return parse(self.params_type, section, f"train.{self.name}", file, defaults=file == "model_info.json")

    def hyper(self, params) -> Hyper:
        raise NotImplementedError

    def profile(self, params) -> str | None:
        return None

    def datasets(
        self, params, store: FrameStore, labels: pd.DataFrame, *, seed: int, workers: int, embed_dir: Path | None = None
    ) -> TrainingData:
        raise NotImplementedError

    def build(self, params, frame_shape: Sequence[int], data: TrainingData) -> keras.Model:
        raise NotImplementedError

    def model_frames(self, params, store: FrameStore, data: TrainingData) -> tuple[list[int], FrameSettings | None]:
        """(frame shape, extraction settings) of what the saved model takes: by default the
        store's frames, as the frames stage extracted them."""
        return [int(d) for d in store.frame_shape], store.settings

    def finish(self, params, model_path: Path, frame_shape: Sequence[int]) -> None:
        """Turn the checkpointed ``model_path`` into the model that is kept (default: as it is);
        ``frame_shape``: ``model_frames``' shape."""

    def load_model(self, path: Path, params) -> keras.Model:
        return keras.saving.load_model(path)

    def predict_saved(self, model: keras.Model, data: TrainingData) -> np.ndarray:
        """The saved model's scores of the validation batches (the checkpoint check)."""
        return model.predict(data.val, verbose=0)

    def info_extra(self, params, data: TrainingData) -> dict[str, Any]:
        return {}

    def predict_films(
        self,
        model,
        info: ModelInfo,
        store: FrameStore,
        movie_ids: Sequence[int],
        *,
        how: str = "mean",
        top_k: int = 3,
        batch_size: int = 64,
        embed_dir: Path | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """(film scores: index movieId in the order of ``movie_ids``, ``n_slices``, then one
        column per genre; slice scores, or None for a kind that has none). ``embed_dir``: the
        frames stage's embedding cache, for a kind that can score from it (``scored_from``)."""
        raise NotImplementedError

    def scored_from(self, info: ModelInfo, store: FrameStore, embed_dir: Path | None) -> str:
        """What ``predict_films`` reads for this run: ``frames``, or ``cached embeddings``."""
        return "frames"

    def scoring_problem(self, info: ModelInfo, store: FrameStore, embed_dir: Path | None) -> str | None:
        """Why this run cannot be scored on ``store`` (None: it can): it takes frames of
        another shape, or extracted with other settings, than the store's."""
        if self.scored_from(info, store, embed_dir) == "cached embeddings":
            return None
        if tuple(info.frame_shape) != tuple(store.frame_shape):
            return f"it takes {tuple(info.frame_shape)} frames, the store holds {tuple(store.frame_shape)}"
        if info.frames not in (None, store.settings):
            return f"it was trained on frames extracted with {info.frames}, the store with {store.settings}"
        return None

    def score_frames(
        self,
        model,
        info: ModelInfo,
        frames: np.ndarray,
        *,
        how: str = "mean",
        top_k: int = 3,
        batch_size: int = 32,
        sound: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> FrameScores:
        """``sound``: the trailer's log-mel windows and their presence (``lib.frames.audio``),
        for a kind that ``hears``."""
        raise NotImplementedError

    def hears(self, info: ModelInfo) -> bool:
        """Whether the run takes the soundtrack too (the CLI then decodes it)."""
        return False


KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    if not getattr(kind, "name", None):
        raise ValueError(f"{type(kind).__name__} has no name")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def check_sections(common: TrainParams, file: str = "params.yaml") -> None:
    """Every model section of ``train:`` names a kind: a typo (``cnn3D:``) would otherwise
    sit unread while the real section's defaults train."""
    unknown = sorted(set(common.models) - set(KINDS))
    if unknown:
        raise ParamsError(f"{file}: train: section(s) {unknown} name no model kind; known: {', '.join(KINDS)}")


# -- slice models: the paper's 3D CNN and the recurrent variant of its future work -------------
class SliceKind(ModelKind):
    """Consecutive slices of ``slice_depth`` frames, each labelled with its film's genres;
    a film's score is an aggregate (``evaluate.aggregate``) of its slices' scores."""

    def datasets(self, params, store, labels, *, seed, workers, embed_dir=None):
        datasets, table = make_split_datasets(
            store,
            labels,
            depth=params.slice_depth,
            batch_size=self.hyper(params).batch_size,
            seed=seed,
            max_slices_per_film=params.max_slices_per_film,
            workers=workers,
        )
        x0, _ = datasets["train"][0]
        if x0.dtype != np.uint8 or x0.shape[1:] != (params.slice_depth, *store.frame_shape):
            raise AssertionError(
                f"slice batch {x0.dtype} {x0.shape}, expected uint8 (b, {params.slice_depth}, {store.frame_shape})"
            )
        return TrainingData(datasets["train"], datasets["val"], table, notes=[f"one batch: x {x0.shape} {x0.dtype}"])

    def predict_films(self, model, info, store, movie_ids, *, how="mean", top_k=3, batch_size=64, embed_dir=None):
        params = self.parse(info.settings, "model_info.json")
        return predict_films(model, store, movie_ids, params.slice_depth, how, top_k, batch_size, info.genres)

    def score_frames(self, model, info, frames, *, how="mean", top_k=3, batch_size=32, sound=None):
        depth = self.parse(info.settings, "model_info.json").slice_depth
        per_slice = np.asarray(model.predict(slice_film(frames, depth), batch_size=batch_size, verbose=0), dtype=float)
        padded = len(per_slice) * depth - len(frames)
        used = (
            f"slices used: {len(per_slice)} of {depth} frames from {len(frames)} kept frames "
            f"({padded} zero-padded in the last slice); film score = {how} over slices"
        )
        return FrameScores(aggregate_scores(per_slice, how, top_k), per_slice, used, depth)


class Cnn3dKind(SliceKind):
    """The paper's 3D CNN (``lib.models.slice_models.build_cnn3d``), its hyperparameters
    from the chosen profile (``paper`` or ``demo``)."""

    name = "cnn3d"
    params_type = Cnn3dParams

    def hyper(self, params):
        p = params.hyper
        return Hyper(p.lr, p.decay, p.batch_size, params.epochs, params.patience, p.batchnorm)

    def profile(self, params):
        return params.profile

    def build(self, params, frame_shape, data):
        p = params.hyper
        return slice_models.build_cnn3d(
            input_shape=(params.slice_depth, *frame_shape),
            widths=p.widths,
            blocks=p.blocks,
            first_stride=p.first_stride,
            dense=p.dense,
            dropout=p.dropout,
        )


class CnnLstmKind(SliceKind):
    """The paper's future work (section 6): a per-frame 2D CNN and a recurrent layer."""

    name = "cnn_lstm"
    params_type = CnnLstmParams

    def hyper(self, params):
        return Hyper(params.lr, params.decay, params.batch_size, params.epochs, params.patience, params.batchnorm)

    def build(self, params, frame_shape, data):
        return slice_models.build_cnn_lstm(
            input_shape=(params.slice_depth, *frame_shape),
            filters=params.filters,
            rnn=params.rnn,
            units=params.units,
            dense=params.dense,
            dropout=params.dropout,
        )


# -- the whole-trailer model ------------------------------------------------------------------
class TsnKind(ModelKind):
    """``lib.models.tsn``: one example per film, ``n_segments`` frames through a 2D encoder.

    With a frozen preset encoder only the head trains, on the embeddings the ``embed``
    stage cached (``lib.encoders.embeddings``); ``finish`` then puts the encoder back in
    front of the trained head, so the saved model takes raw frames like any other."""

    name = "tsn"
    params_type = TsnParams

    def hyper(self, params):
        return Hyper(params.lr, 0.0, params.batch_size, params.epochs, params.patience, params.batchnorm)

    @staticmethod
    def cached(params) -> bool:
        return "frames" in params.modalities and uses_cache(params.encoder, params.frozen)

    @staticmethod
    def sound(params, store: FrameStore) -> tuple[np.ndarray, np.ndarray] | None:
        """The frames stage's log-mel windows for the store (kept in the store's folder), when the run hears."""
        if "audio" not in params.modalities:
            return None
        return A.load_sound(store.directory, len(store.frames))

    def hears(self, info):
        return "audio" in self.parse(info.settings, "model_info.json").modalities

    def datasets(self, params, store, labels, *, seed, workers, embed_dir=None):
        notes, embeddings, meta, band_stats = [], None, None, None
        sound = self.sound(params, store)
        if sound is not None:
            band_stats = band_statistics(sound, store, labels)
            heard = sound[1].sum()
            notes.append(
                f"sound: {len(sound[0])} log-mel windows {sound[0].shape[1:]} {sound[0].dtype}, "
                f"{heard} of them hold sound ({heard / max(len(sound[1]), 1):.0%})"
            )
        if self.cached(params):
            if embed_dir is None:
                raise ValueError("a frozen-encoder tsn trains on cached embeddings: pass embed_dir")
            # The frames stage's embedding cache; a run outside dvc (smoke size, a new preset) makes its own.
            problem = E.cache_problem(embed_dir, store, params.encoder)
            if problem:
                notes.append(f"encoding every frame now ({problem})")
                E.embed_for_config(params, store, embed_dir)
            embeddings = E.load_embeddings(embed_dir, store, params.encoder)
            meta = E.read_meta(embed_dir)
            seen = (
                f"frames decoded from the videos at {meta['image_size'][0]}x{meta['image_size'][1]} ({meta['resize']})"
                if self.from_video(meta)
                else f"the store's frames resized to {meta['image_size']} by its converter"
            )
            notes.append(f"cached embeddings: {embeddings.shape} {embeddings.dtype} from {meta['encoder']}, {seen}")
        datasets, table = make_film_datasets(
            store,
            labels,
            n_segments=params.n_segments,
            batch_size=params.batch_size,
            seed=seed,
            embeddings=embeddings,
            workers=workers,
            audio=sound,
            frames="frames" in params.modalities,
        )
        x0, _ = datasets["train"][0]
        key = "embeddings" if embeddings is not None else "frames" if "frames" in x0 else "audio"
        masks = [m for m in ("mask", "audio_mask") if m in x0]
        if x0[key].shape[1] != params.n_segments or any(x0[m].shape != x0[key].shape[:2] for m in masks):
            raise AssertionError(f"film batch {key} {x0[key].shape}: expected {params.n_segments} segments")
        notes.append("one batch: " + ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in x0.items()))
        return TrainingData(
            datasets["train"],
            datasets["val"],
            table,
            notes,
            embed_dim=None if embeddings is None else int(embeddings.shape[1]),
            embed_meta=meta,
            band_stats=band_stats,
        )

    def build(self, params, frame_shape, data):
        if self.cached(params):
            hear = tsn.audio_encoder_for(params, data.band_stats)
            return tsn.build_tsn_head(params.n_segments, data.embed_dim, audio_encoder=hear, **tsn.head_kwargs(params))
        return tsn.build_tsn(params, frame_shape, band_stats=data.band_stats)

    @staticmethod
    def from_video(meta: Mapping[str, Any] | None) -> bool:
        """Embeddings of frames decoded from the video at the encoder's size (the frames stage's)."""
        return bool(meta) and meta.get("source") == "video"

    def model_frames(self, params, store, data):
        if not self.from_video(data.embed_meta):
            return super().model_frames(params, store, data)
        meta = data.embed_meta
        size = int(meta["image_size"][0])
        return [size, size, 3], parse(FrameSettings, meta["frames"], "frames", "embeddings.json")

    def finish(self, params, model_path, frame_shape):
        if not self.cached(params):
            return
        head = keras.saving.load_model(model_path)
        encoder = load_preset_encoder(params.encoder, frame_shape, trainable=False)
        tsn.assemble(encoder, head, params.n_segments, frame_shape, round_float16=True).save(model_path)

    def load_model(self, path, params):
        if is_preset(params.encoder):
            import_keras_hub()  # a preset encoder's classes live in keras-hub
        model = keras.saving.load_model(path)
        return tsn.restore_frozen(model, tsn.sees(model) and params.frozen and is_preset(params.encoder))

    def predict_saved(self, model, data):
        if data.embed_dim is None:
            return model.predict(data.val, verbose=0)
        if self.from_video(data.embed_meta):
            # its frames were decoded at the encoder's size and never stored: the head is checked on
            # their cached vectors (the encoder is checked against a direct decode in tests/test_native_embed.py)
            return tsn.head_of(model).predict(data.val, verbose=0)
        # the saved model takes raw frames even when the head trained on cached embeddings
        return model.predict(data.val.on_frames(), verbose=0)

    def info_extra(self, params, data):
        extra = {"cached_embeddings": self.cached(params), "embeddings": data.embed_meta}
        if "audio" in params.modalities:
            extra["audio"] = A.DESCRIPTION  # how trailer-genres must cut a new trailer's sound
        return extra

    def scoring_problem(self, info, store, embed_dir):
        if self.hears(info) and (problem := A.audio_problem(store.directory, len(store.frames))):
            return problem
        return super().scoring_problem(info, store, embed_dir)

    def scored_from(self, info, store, embed_dir):
        """A frozen-encoder run scores from the frames stage's embedding cache when it is the very cache
        the run trained on (same metadata) and fits this store: the saved model's encoder would
        compute the same rows again (rounded to float16 by its ``as_cached`` layer), at the
        cost of the whole encoder on every validation and test frame. A run that hears only reads
        the store's ``sound windows``."""
        if "frames" not in self.parse(info.settings, "model_info.json").modalities:
            return "sound windows"
        trained_on = (info.extra or {}).get("embeddings")
        if embed_dir is None or not (info.extra or {}).get("cached_embeddings") or not trained_on:
            return "frames"
        encoder = self.parse(info.settings, "model_info.json").encoder
        if E.cache_problem(embed_dir, store, encoder) or E.read_meta(embed_dir) != trained_on:
            return "frames"
        return "cached embeddings"

    def predict_films(self, model, info, store, movie_ids, *, how="mean", top_k=3, batch_size=64, embed_dir=None):
        params = self.parse(info.settings, "model_info.json")
        hear = {"audio": self.sound(params, store), "frames": "frames" in params.modalities}
        if not hear["frames"]:
            return predict_tsn(model, store, movie_ids, params.n_segments, batch_size, info.genres, **hear), None
        if self.scored_from(info, store, embed_dir) == "cached embeddings":
            embeddings = E.load_embeddings(embed_dir, store, params.encoder)
            head = tsn.head_of(model)
            return predict_tsn(
                head, store, movie_ids, params.n_segments, batch_size, info.genres, embeddings, **hear
            ), None
        if list(info.frame_shape) != list(store.frame_shape):
            why = E.cache_problem(embed_dir, store, params.encoder) if embed_dir is not None else "no embed_dir given"
            raise ValueError(
                f"this tsn run takes {info.frame_shape[0]}x{info.frame_shape[1]} frames decoded from the videos and "
                f"the store holds {store.frame_shape[0]}x{store.frame_shape[1]}: it is scored from the frames stage's "
                f"embeddings, which cannot serve it ({why}); rerun the frames stage (dvc repro frames), or score "
                "trailers with trailer-genres"
            )
        return predict_tsn(model, store, movie_ids, params.n_segments, batch_size, info.genres, **hear), None

    def score_frames(self, model, info, frames, *, how="mean", top_k=3, batch_size=32, sound=None):
        params = self.parse(info.settings, "model_info.json")
        n = params.n_segments
        inputs = film_inputs(frames, n, sound if "audio" in params.modalities else None)
        used = int(inputs["mask"].sum())
        line = (
            f"frames used: {used} of {len(frames)} kept frames, the centred one of each of {n} segments"
            + (f" ({n - used} padded and masked)" if used < n else "")
            + "; one whole-trailer score"
        )
        if "audio" in params.modalities:
            heard = int(inputs["audio_mask"].sum())
            line += f"; sound: the {A.WINDOW_SECONDS:g}-s log-mel window from each of those frames ({heard} hold sound)"
        if "frames" not in params.modalities:
            line = line.replace("frames used:", "moments used:") + " (the model hears only)"
            inputs = {k: v for k, v in inputs.items() if k in ("audio", "audio_mask")}
        return FrameScores(np.asarray(model.predict(inputs, verbose=0), dtype=float)[0], None, line)


def band_statistics(
    sound: tuple[np.ndarray, np.ndarray], store: FrameStore, labels: pd.DataFrame
) -> tuple[list[float], list[float]]:
    """Per-band mean and variance of the training films' windows that hold sound (the sound
    encoder's input standardization: no validation or test window enters it)."""
    windows, present = sound
    train = set(labels.loc[labels["split"] == "train", "movieId"].astype(int)) & set(store.movie_ids.tolist())
    rows = np.concatenate(
        [np.arange(int(r.start), int(r.stop)) for r in store.index.loc[sorted(train)].itertuples()]
        or [np.zeros(0, int)]
    )
    rows = rows[present[rows]]
    if len(rows) == 0:
        return [0.0] * windows.shape[-1], [1.0] * windows.shape[-1]
    x = np.asarray(windows[rows], dtype=np.float64).reshape(-1, windows.shape[-1])
    return x.mean(axis=0).tolist(), np.maximum(x.var(axis=0), 1e-6).tolist()


class TsnAudioKind(TsnKind):
    """``tsn`` on the soundtrack alone (its section sets ``modalities: [audio]``): the ablation's
    audio-only arm, scored on the same films and moments."""

    name = "tsn_audio"


class TsnAvKind(TsnKind):
    """``tsn`` seeing and hearing (``modalities: [frames, audio]``): the ablation's fused arm."""

    name = "tsn_av"


for _kind in (Cnn3dKind(), CnnLstmKind(), TsnKind(), TsnAudioKind(), TsnAvKind()):
    register(_kind)


# -- trained runs -------------------------------------------------------------------------------
@dataclass
class LoadedRun:
    model: keras.Model
    info: ModelInfo
    kind: ModelKind

    def predict_films(
        self, store: FrameStore, movie_ids: Sequence[int], **kwargs
    ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        return self.kind.predict_films(self.model, self.info, store, movie_ids, **kwargs)


def load_run(run_dir: str | Path, info: ModelInfo | None = None, model_file: str = "model.keras") -> LoadedRun:
    """A train-stage output folder (``model.keras`` + ``model_info.json``), loaded by its kind:
    the one run loader of the project (evaluate, the CLI and the tests use it)."""
    run_dir = Path(run_dir)
    info = info or ModelInfo.read(run_dir)
    kind = get_kind(info.model)
    model = kind.load_model(run_dir / model_file, kind.parse(info.settings, "model_info.json"))
    return LoadedRun(model, info, kind)
