"""``tsn``: a whole-trailer model over N frames, one per temporal segment (TSN-style).

A trailer's kept frames are cut into ``n_segments`` equal segments and one frame is
taken from each: at a random offset in training, the centred frame in evaluation
(``segment_plan``/``sample_segments``). Each frame goes through a 2D image encoder
(``build_scratch_encoder`` or a keras-hub preset, ``load_preset_encoder``); the N frame
vectors are pooled over time (``mean``, learned ``attention`` pooling or a small
``transformer`` encoder) and a small head ends in one sigmoid per genre.

Short trailers (fewer kept frames than segments) use every frame once and pad the
rest of the N positions; a boolean ``mask`` input marks the real ones, and every
pooling ignores the padded positions, so their content never changes the output.

Model layout (``build_tsn``): inputs ``{"frames": (N, H, W, 3) uint8, "mask": (N,)}``;
``TimeDistributed(encoder)`` gives ``(N, D)`` frame vectors; the **head**
(``build_tsn_head``: inputs ``{"embeddings": (N, D), "mask": (N,)}``) does the rest.
With a frozen preset the head alone trains, on cached embeddings (lib.embeddings), and
``assemble`` puts the trained head behind the encoder again, so the saved model still
takes raw frames. Its frame vectors are rounded to float16 exactly as the cache stores
them, so the saved model gives the scores the head was checkpointed on.

keras-hub is imported only when a preset is used (importing it loads TensorFlow, which
takes seconds); the rest is keras/keras.ops and runs on any backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import keras
import numpy as np
from keras import layers, ops

from lib.genres import N_GENRES

POOLINGS = ("mean", "attention", "transformer")
SCRATCH = "scratch"
PACKAGE = "tsn"


# -- sampling ----------------------------------------------------------------------------
@dataclass
class SegmentPlan:
    """Where the ``n_segments`` samples of one film may come from (rows relative to the film)."""

    starts: np.ndarray  # (N,) int64, first frame of each segment
    lengths: np.ndarray  # (N,) int64, frames in each segment (>= 1)
    mask: np.ndarray  # (N,) bool, False for padded positions of a short film

    def centred(self) -> np.ndarray:
        return self.starts + (self.lengths - 1) // 2

    def random(self, rng: np.random.Generator) -> np.ndarray:
        return self.starts + np.floor(rng.random(len(self.starts)) * self.lengths).astype(np.int64)


def segment_plan(n_frames: int, n_segments: int) -> SegmentPlan:
    """``n_frames`` cut into ``n_segments`` segments of (near) equal length.

    A film with fewer frames than segments gets one segment per frame and padded
    positions after them (``mask`` False; they point at frame 0 and are zeroed by the
    loader). Nothing is repeated: a 3-frame film is 3 frames and 5 masked slots.
    """
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    if n_frames < 1:
        raise ValueError(f"a film needs at least one frame, got {n_frames}")
    if n_frames >= n_segments:
        edges = (np.arange(n_segments + 1, dtype=np.int64) * n_frames) // n_segments
        return SegmentPlan(edges[:-1], np.diff(edges), np.ones(n_segments, bool))
    starts = np.zeros(n_segments, np.int64)
    starts[:n_frames] = np.arange(n_frames)
    mask = np.arange(n_segments) < n_frames
    return SegmentPlan(starts, np.ones(n_segments, np.int64), mask)


def sample_segments(n_frames: int, n_segments: int, *, training: bool, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(frame rows ``(N,)``, mask ``(N,)``): a random frame per segment when ``training``
    (``rng`` required), else the centred one."""
    plan = segment_plan(n_frames, n_segments)
    if training:
        if rng is None:
            raise ValueError("training samples need an rng (seeded per epoch by the loader)")
        return plan.random(rng), plan.mask
    return plan.centred(), plan.mask


def film_inputs(frames: np.ndarray, n_segments: int) -> dict[str, np.ndarray]:
    """One film's evaluation input, batch of one: centred frames, padded slots zeroed."""
    rows, mask = sample_segments(len(frames), n_segments, training=False)
    x = np.asarray(frames)[rows].copy()
    x[~mask] = 0
    return {"frames": x[None], "mask": mask[None]}


# -- layers ------------------------------------------------------------------------------
def _mask_float(mask, dtype):
    return ops.cast(mask, dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMeanPooling(layers.Layer):
    """Mean of the frame vectors whose mask is set: ``(b, N, D), (b, N) -> (b, D)``."""

    def call(self, x, frame_mask):
        m = ops.expand_dims(_mask_float(frame_mask, x.dtype), -1)
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)

    def compute_output_shape(self, x_shape, frame_mask_shape):
        return (x_shape[0], x_shape[2])


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionPooling(layers.Layer):
    """Learned attention pooling (Ilse et al. 2018): ``softmax_n(w . tanh(V x_n))``
    weights over the unmasked frames; masked frames get weight exactly zero."""

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.hidden = layers.Dense(self.units, activation="tanh", name="hidden")
        self.score = layers.Dense(1, name="score")

    def build(self, x_shape, frame_mask_shape=None):
        self.hidden.build(x_shape)
        self.score.build((*x_shape[:-1], self.units))

    def call(self, x, frame_mask):
        logits = ops.squeeze(self.score(self.hidden(x)), -1)  # (b, N)
        m = _mask_float(frame_mask, logits.dtype)
        logits = ops.where(m > 0, logits, ops.full_like(logits, -1e4))
        weights = ops.softmax(logits, axis=-1) * m
        weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)
        return ops.sum(x * ops.expand_dims(weights, -1), axis=1)

    def compute_output_shape(self, x_shape, frame_mask_shape):
        return (x_shape[0], x_shape[2])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionEmbedding(layers.Layer):
    """A learned vector per segment position, added to the frame vectors."""

    def __init__(self, length: int, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)

    def build(self, x_shape):
        self.table = self.add_weight(shape=(self.length, int(x_shape[-1])), initializer=keras.initializers.RandomNormal(stddev=0.02), name="table")

    def call(self, x):
        return x + ops.cast(self.table, x.dtype)[None]

    def get_config(self):
        return {**super().get_config(), "length": self.length}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerBlock(layers.Layer):
    """Pre-norm self-attention + feed-forward block; padded frames are masked as keys
    (real frames never attend to them) and their own rows are dropped by the pooling."""

    def __init__(self, dim: int, heads: int = 4, ff: int | None = None, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads, self.ff, self.dropout = int(dim), int(heads), int(ff or 2 * dim), float(dropout)
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.attn = layers.MultiHeadAttention(self.heads, max(1, self.dim // self.heads), dropout=self.dropout, name="attention")
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.ff1 = layers.Dense(self.ff, activation="gelu", name="ff1")
        self.ff2 = layers.Dense(self.dim, name="ff2")
        self.drop = layers.Dropout(self.dropout)

    def build(self, x_shape, frame_mask_shape=None):
        self.norm1.build(x_shape)
        self.attn.build(x_shape, x_shape)
        self.norm2.build(x_shape)
        self.ff1.build(x_shape)
        self.ff2.build((*x_shape[:-1], self.ff))

    def call(self, x, frame_mask, training=None):
        m = ops.cast(frame_mask, "bool")
        attention_mask = ops.logical_and(m[:, :, None], m[:, None, :])  # (b, N, N)
        # A padded query row would be all False (NaN in softmax): let it see itself only.
        eye = ops.eye(ops.shape(m)[1], dtype="bool")[None]
        attention_mask = ops.logical_or(attention_mask, eye)
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, attention_mask=attention_mask, training=training), training=training)
        h = self.norm2(x)
        return x + self.drop(self.ff2(self.ff1(h)), training=training)

    def compute_output_shape(self, x_shape, frame_mask_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "heads": self.heads, "ff": self.ff, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Float16Round(layers.Layer):
    """Rounds to float16 and back: the saved frozen-encoder model sees the very numbers
    the head trained on from the float16 embedding cache."""

    def call(self, x):
        return ops.cast(ops.cast(x, "float16"), self.compute_dtype)


# -- encoders ----------------------------------------------------------------------------
def build_scratch_encoder(frame_shape: Sequence[int], filters: Sequence[int] = (16, 32, 64), name: str = "scratch_encoder") -> keras.Model:
    """A small 2D CNN: uint8 frame -> [0, 1] -> per width Conv(3x3, stride 2 on the first)
    + BatchNorm + ReLU + MaxPool -> global average pooling. Sized for a 2-core CPU:
    with (16, 32, 64) about 24 k parameters and ~3 MFLOPs per 64x64 frame."""
    inputs = keras.Input(shape=tuple(frame_shape), dtype="uint8", name="frame")
    x = layers.Rescaling(1.0 / 255, name="to_unit")(ops.cast(inputs, "float32"))
    for i, f in enumerate(filters):
        x = layers.Conv2D(int(f), 3, strides=2 if i == 0 else 1, padding="same", use_bias=False, name=f"conv_{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn_{i + 1}")(x)
        x = layers.Activation("relu", name=f"relu_{i + 1}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"pool_{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="frame_vector")(x)
    return keras.Model(inputs, x, name=name)


def _import_keras_hub():
    try:
        import keras_hub
    except ImportError as exc:  # pragma: no cover - pinned in requirements.lock
        raise ImportError("a keras-hub preset encoder needs the keras-hub package (pinned in requirements.lock)") from exc
    return keras_hub


def load_preset_parts(preset: str):
    """(backbone, image converter) of a keras-hub preset: a name such as
    ``efficientnet_lite0_ra_imagenet``, a Kaggle handle, or a local preset folder, all
    through ``Backbone.from_preset``. The converter is the preset's own preprocessing
    (resize to its image size, scale, offset): a preset without one is refused rather
    than fed guessed ImageNet statistics."""
    keras_hub = _import_keras_hub()
    from lib.pretrained import resolve_preset  # `efficientnet_lite0_pypi`: the offline ImageNet encoder

    preset = resolve_preset(preset)
    try:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    except Exception as exc:
        raise ValueError(f"cannot load keras-hub backbone preset {preset!r}: {exc}") from exc
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception as exc:
        raise ValueError(
            f"keras-hub preset {preset!r} has no image converter (image_converter.json); "
            "the encoder needs the preset's own preprocessing"
        ) from exc
    return backbone, converter


def load_preset_encoder(preset: str, frame_shape: Sequence[int], trainable: bool = False, name: str = "preset_encoder") -> keras.Model:
    """uint8 frame -> the preset's image converter -> backbone -> global average pooling.

    The converter resizes to the preset's image size (``image_size`` in its
    image_converter.json; e.g. 224 for ImageNet presets), so a 64x64 store is upsampled
    there; a converter without an image size takes the store's frames as they are.
    ``trainable=False`` freezes the backbone (BatchNorm then runs in inference mode)."""
    backbone, converter = load_preset_parts(preset)
    backbone.trainable = bool(trainable)
    converter.trainable = False
    inputs = keras.Input(shape=tuple(frame_shape), dtype="uint8", name="frame")
    x = converter(ops.cast(inputs, "float32"))
    x = backbone(x)
    if isinstance(x, dict):  # some backbones return named feature maps
        x = x[sorted(x)[-1]]
    rank = len(x.shape)
    if rank == 4:
        x = layers.GlobalAveragePooling2D(name="frame_vector")(x)
    elif rank == 3:  # token sequences (ViT-like backbones)
        x = layers.GlobalAveragePooling1D(name="frame_vector")(x)
    elif rank != 2:
        raise ValueError(f"preset {preset!r}: backbone output of rank {rank} is not a feature map")
    return keras.Model(inputs, x, name=name)


def converter_image_size(encoder: keras.Model) -> list[int] | None:
    for layer in encoder.layers:
        if hasattr(layer, "image_size") and hasattr(layer, "resizing"):
            size = layer.image_size
            return None if size is None else [int(s) for s in size]
    return None


def is_preset(encoder: str) -> bool:
    return str(encoder) != SCRATCH


def uses_cache(tsn: Mapping[str, Any]) -> bool:
    """A frozen preset encoder: its embeddings are cached and only the head trains."""
    return is_preset(tsn["encoder"]) and bool(tsn["frozen"])


def build_encoder(tsn: Mapping[str, Any], frame_shape: Sequence[int]) -> keras.Model:
    if is_preset(tsn["encoder"]):
        return load_preset_encoder(tsn["encoder"], frame_shape, trainable=not tsn["frozen"])
    return build_scratch_encoder(frame_shape, tsn["scratch_filters"])


# -- the model ---------------------------------------------------------------------------
def build_tsn_head(
    n_segments: int,
    embed_dim: int,
    *,
    pooling: str = "attention",
    dim: int = 64,
    heads: int = 4,
    layers_: int = 1,
    dense: Sequence[int] = (64,),
    dropout: float = 0.3,
    n_outputs: int = N_GENRES,
    name: str = "tsn_head",
) -> keras.Model:
    """``{"embeddings": (N, D) float, "mask": (N,) bool} -> (n_outputs,)`` sigmoids.

    Frame vectors are projected to ``dim`` (LayerNorm + Dense), pooled over the masked
    time axis, then ``dense`` ReLU layers with dropout, then the sigmoids."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    emb = keras.Input(shape=(n_segments, embed_dim), name="embeddings")
    mask = keras.Input(shape=(n_segments,), dtype="bool", name="mask")
    x = layers.LayerNormalization(epsilon=1e-6, name="embed_norm")(emb)
    x = layers.Dense(dim, activation="relu" if pooling != "transformer" else None, name="project")(x)
    if pooling == "mean":
        x = MaskedMeanPooling(name="pool")(x, mask)
    elif pooling == "attention":
        x = AttentionPooling(dim, name="pool")(x, mask)
    else:
        x = PositionEmbedding(n_segments, name="position")(x)
        for i in range(int(layers_)):
            x = TransformerBlock(dim, heads, dropout=dropout, name=f"transformer_{i + 1}")(x, mask)
        x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
        x = MaskedMeanPooling(name="pool")(x, mask)
    for i, units in enumerate(dense):
        x = layers.Dense(int(units), activation="relu", name=f"dense_{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense_{i + 1}_dropout")(x)
    out = layers.Dense(n_outputs, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model({"embeddings": emb, "mask": mask}, out, name=name)


def assemble(encoder: keras.Model, head: keras.Model, n_segments: int, frame_shape: Sequence[int], *, round_float16: bool = False, name: str = "tsn") -> keras.Model:
    """``{"frames": (N, H, W, 3) uint8, "mask": (N,)}`` -> genre sigmoids: the encoder on
    every frame, then the head (whose weights are shared, not copied)."""
    frames = keras.Input(shape=(n_segments, *frame_shape), dtype="uint8", name="frames")
    mask = keras.Input(shape=(n_segments,), dtype="bool", name="mask")
    x = layers.TimeDistributed(encoder, name="encode")(frames)
    if round_float16:
        x = Float16Round(name="as_cached")(x)
    out = head({"embeddings": x, "mask": mask})
    return keras.Model({"frames": frames, "mask": mask}, out, name=name)


def head_kwargs(tsn: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pooling": tsn["pooling"],
        "dim": int(tsn["dim"]),
        "heads": int(tsn["heads"]),
        "layers_": int(tsn["layers"]),
        "dense": [int(u) for u in tsn["dense"]],
        "dropout": float(tsn["dropout"]),
    }


def build_tsn(tsn: Mapping[str, Any], frame_shape: Sequence[int], encoder: keras.Model | None = None) -> keras.Model:
    """The whole raw-frame model from params.yaml's ``train.tsn`` section."""
    encoder = encoder if encoder is not None else build_encoder(tsn, frame_shape)
    n = int(tsn["n_segments"])
    head = build_tsn_head(n, int(encoder.output.shape[-1]), **head_kwargs(tsn))
    return assemble(encoder, head, n, frame_shape, round_float16=uses_cache(tsn))


def head_of(model: keras.Model) -> keras.Model:
    return model.get_layer("tsn_head")


def ensure_loadable(info: Mapping[str, Any]) -> None:
    """Import what deserialising a saved tsn model needs: this module's layers are
    registered on import; a preset encoder's classes live in keras-hub."""
    tsn = info.get("tsn") or {}
    if is_preset(tsn.get("encoder", SCRATCH)):
        _import_keras_hub()


def restore_frozen(model: keras.Model, info: Mapping[str, Any]) -> keras.Model:
    """A keras-hub backbone's config does not carry ``trainable``: after loading, freeze
    the encoder again when it was frozen in training (matters only to further training)."""
    if (info.get("tsn") or {}).get("frozen"):
        model.get_layer("encode").trainable = False
    return model


TSN_KEYS = ["n_segments", "pooling", "encoder", "frozen", "scratch_filters", "dim", "heads", "layers", "dense", "dropout", "lr", "batch_size", "epochs", "patience", "embed_batch_size"]


def check_config(tsn: Mapping[str, Any]) -> dict[str, Any]:
    missing = [k for k in TSN_KEYS if k not in tsn]
    if missing:
        raise KeyError(f"train.tsn lacks {missing}")
    if tsn["pooling"] not in POOLINGS:
        raise ValueError(f"train.tsn.pooling must be one of {POOLINGS}, got {tsn['pooling']!r}")
    if int(tsn["n_segments"]) < 1:
        raise ValueError(f"train.tsn.n_segments must be >= 1, got {tsn['n_segments']}")
    if not str(tsn["encoder"]).strip():
        raise ValueError("train.tsn.encoder is empty: `scratch` or a keras-hub preset (name, Kaggle handle or folder)")
    return dict(tsn)


def n_frames_used(n_frames: int, n_segments: int) -> int:
    """Frames a film contributes to one prediction (its ``n_slices`` in score tables)."""
    return int(min(n_frames, n_segments))

