"""``tsn``: a whole-trailer model over N frames, one per temporal segment (TSN-style).

The loader (``lib.loaders.films`` over ``lib.loaders.segments``) gives N frames of a
trailer, one per equal segment. Each goes through a 2D image encoder (the small
``build_scratch_encoder`` trained end to end, or a keras-hub preset from
``lib.encoders.presets``); the N frame vectors are pooled over time (``mean``, learned
``attention`` pooling or a small ``transformer`` encoder) and a small head ends in one
sigmoid per genre. A boolean ``mask`` input marks the real positions of a short trailer,
and every pooling ignores the padded ones, so their content never changes the output.

Model layout (``build_tsn``): inputs ``{"frames": (N, H, W, 3) uint8, "mask": (N,)}``;
``TimeDistributed(encoder)`` gives ``(N, D)`` frame vectors; the **head**
(``build_tsn_head``: inputs ``{"embeddings": (N, D), "mask": (N,)}``) does the rest.
With a frozen preset the head alone trains, on cached embeddings
(``lib.encoders.embeddings``), and ``assemble`` puts the trained head behind the encoder
again, so the saved model still takes raw frames. Its frame vectors are rounded to
float16 exactly as the cache stores them, so the saved model gives the scores the head
was checkpointed on.

The soundtrack (``modalities`` with ``audio``): each sampled segment also brings the
log-mel window that starts at its frame (``lib.frames.audio``), so picture and sound stay
aligned. ``build_audio_encoder``, a small 1D CNN over the window's time steps (mel bands as
channels, trained from scratch), turns each window into a vector; the vectors are pooled
over the segments that hold sound (``audio_mask``), exactly as the frame vectors are. The
two pooled vectors are concatenated with a has-sound flag (a trailer without an audio
stream gives a zero sound vector and a 0 flag) before the dense layers: mid fusion, masked.
With ``modalities: [audio]`` the head hears only; its inputs are ``{"audio", "audio_mask"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from lib.core.genres import N_GENRES
from lib.core.params import TsnParams
from lib.encoders.presets import is_preset, load_preset_encoder, uses_cache
from lib.frames.audio import N_MELS, WINDOW_STEPS

POOLINGS = ("mean", "attention", "transformer")
PACKAGE = "tsn"  # the registered layers' package: saved models name their classes by it


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
        self.table = self.add_weight(
            shape=(self.length, int(x_shape[-1])),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="table",
        )

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
        self.attn = layers.MultiHeadAttention(
            self.heads, max(1, self.dim // self.heads), dropout=self.dropout, name="attention"
        )
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


# -- encoders
def build_scratch_encoder(
    frame_shape: Sequence[int], filters: Sequence[int] = (16, 32, 64), name: str = "scratch_encoder"
) -> keras.Model:
    """A small 2D CNN: uint8 frame -> [0, 1] -> per width Conv(3x3, stride 2 on the first)
    + BatchNorm + ReLU + MaxPool -> global average pooling. Sized for a 2-core CPU:
    with (16, 32, 64) about 24 k parameters and ~3 MFLOPs per 64x64 frame."""
    inputs = keras.Input(shape=tuple(frame_shape), dtype="uint8", name="frame")
    x = layers.Rescaling(1.0 / 255, name="to_unit")(ops.cast(inputs, "float32"))
    for i, f in enumerate(filters):
        x = layers.Conv2D(int(f), 3, strides=2 if i == 0 else 1, padding="same", use_bias=False, name=f"conv_{i + 1}")(
            x
        )
        x = layers.BatchNormalization(name=f"bn_{i + 1}")(x)
        x = layers.Activation("relu", name=f"relu_{i + 1}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"pool_{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="frame_vector")(x)
    return keras.Model(inputs, x, name=name)


def build_audio_encoder(
    window_shape: Sequence[int] = (WINDOW_STEPS, N_MELS),
    filters: Sequence[int] = (32, 64, 64),
    band_mean: Sequence[float] | None = None,
    band_var: Sequence[float] | None = None,
    name: str = "audio_encoder",
) -> keras.Model:
    """A log-mel window ``(steps, bands)`` in dB -> a vector: each band standardized with the
    training windows' statistics, then per width Conv1D over time (kernel 5 then 3, stride 2
    on the first two) + LayerNorm + ReLU, then mean and max over time. LayerNorm, not
    BatchNorm: nothing to recompute between training and evaluation. With (32, 64, 64) about
    30 k parameters and ~1 MFLOP per 4-s window."""
    inputs = keras.Input(shape=tuple(window_shape), name="window")
    bands = int(window_shape[-1])
    # without statistics (a test, a model about to be loaded) the standardization is the identity
    mean = [0.0] * bands if band_mean is None else [float(v) for v in band_mean]
    var = [1.0] * bands if band_var is None else [float(v) for v in band_var]
    x = layers.Normalization(axis=-1, mean=mean, variance=var, name="band_norm")(inputs)
    for i, f in enumerate(filters):
        x = layers.Conv1D(int(f), 5 if i == 0 else 3, strides=2 if i < 2 else 1, padding="same", name=f"aconv_{i + 1}")(
            x
        )
        x = layers.LayerNormalization(epsilon=1e-6, name=f"aln_{i + 1}")(x)
        x = layers.Activation("relu", name=f"arelu_{i + 1}")(x)
    x = layers.Concatenate(name="window_vector")(
        [layers.GlobalAveragePooling1D(name="amean")(x), layers.GlobalMaxPooling1D(name="amax")(x)]
    )
    return keras.Model(inputs, x, name=name)


def build_encoder(tsn: TsnParams, frame_shape: Sequence[int]) -> keras.Model:
    if is_preset(tsn.encoder):
        return load_preset_encoder(tsn.encoder, frame_shape, trainable=not tsn.frozen)
    return build_scratch_encoder(frame_shape, tsn.scratch_filters)


# -- the model ---------------------------------------------------------------------------
def _pool(x, mask, pooling: str, n_segments: int, dim: int, heads: int, layers_: int, dropout: float, prefix: str):
    """Project ``(b, N, D)`` vectors to ``dim`` and pool them over the masked time axis."""
    x = layers.Dense(dim, activation="relu" if pooling != "transformer" else None, name=f"{prefix}project")(x)
    if pooling == "mean":
        return MaskedMeanPooling(name=f"{prefix}pool")(x, mask)
    if pooling == "attention":
        return AttentionPooling(dim, name=f"{prefix}pool")(x, mask)
    x = PositionEmbedding(n_segments, name=f"{prefix}position")(x)
    for i in range(int(layers_)):
        x = TransformerBlock(dim, heads, dropout=dropout, name=f"{prefix}transformer_{i + 1}")(x, mask)
    x = layers.LayerNormalization(epsilon=1e-6, name=f"{prefix}final_norm")(x)
    return MaskedMeanPooling(name=f"{prefix}pool")(x, mask)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AnyOf(layers.Layer):
    """``(b, N)`` mask -> ``(b, 1)`` float: 1 when any position is set (the trailer has sound)."""

    def call(self, present):  # not `mask`: Keras gives that argument name a meaning of its own
        return ops.max(ops.cast(present, self.compute_dtype), axis=1, keepdims=True)

    def compute_output_shape(self, present_shape):
        return (present_shape[0], 1)


def build_tsn_head(
    n_segments: int,
    embed_dim: int | None,
    *,
    audio_encoder: keras.Model | None = None,
    pooling: str = "attention",
    dim: int = 64,
    heads: int = 4,
    layers_: int = 1,
    dense: Sequence[int] = (64,),
    dropout: float = 0.3,
    n_outputs: int = N_GENRES,
    name: str = "tsn_head",
) -> keras.Model:
    """``{"embeddings": (N, D) float, "mask": (N,) bool}`` (and, with an ``audio_encoder``,
    ``"audio": (N, steps, bands)``, ``"audio_mask": (N,)``) -> ``(n_outputs,)`` sigmoids.
    ``embed_dim`` None: no frames, the head hears only.

    Frame vectors are projected to ``dim`` (LayerNorm + Dense), pooled over the masked
    time axis; the sound windows go through ``audio_encoder`` and are pooled the same way
    over the windows that hold sound; then ``dense`` ReLU layers with dropout, then the sigmoids."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if embed_dim is None and audio_encoder is None:
        raise ValueError("a head needs frames (embed_dim) or sound (audio_encoder)")
    inputs, parts = {}, []
    pool_args = (pooling, n_segments, dim, heads, layers_, dropout)
    if embed_dim is not None:
        inputs["embeddings"] = keras.Input(shape=(n_segments, embed_dim), name="embeddings")
        inputs["mask"] = keras.Input(shape=(n_segments,), dtype="bool", name="mask")
        x = layers.LayerNormalization(epsilon=1e-6, name="embed_norm")(inputs["embeddings"])
        parts.append(_pool(x, inputs["mask"], *pool_args, prefix=""))
    if audio_encoder is not None:
        inputs["audio"] = keras.Input(shape=(n_segments, *audio_encoder.input.shape[1:]), name="audio")
        inputs["audio_mask"] = keras.Input(shape=(n_segments,), dtype="bool", name="audio_mask")
        a = layers.TimeDistributed(audio_encoder, name="hear")(inputs["audio"])
        parts += [
            _pool(a, inputs["audio_mask"], *pool_args, prefix="audio_"),
            AnyOf(name="has_sound")(inputs["audio_mask"]),
        ]
    x = parts[0] if len(parts) == 1 else layers.Concatenate(name="fuse")(parts)
    for i, units in enumerate(dense):
        x = layers.Dense(int(units), activation="relu", name=f"dense_{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense_{i + 1}_dropout")(x)
    out = layers.Dense(n_outputs, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model(inputs, out, name=name)


def assemble(
    encoder: keras.Model,
    head: keras.Model,
    n_segments: int,
    frame_shape: Sequence[int],
    *,
    round_float16: bool = False,
    name: str = "tsn",
) -> keras.Model:
    """``{"frames": (N, H, W, 3) uint8, "mask": (N,)}`` (plus the head's sound inputs, passed
    through) -> genre sigmoids: the encoder on every frame, then the head (whose weights are
    shared, not copied)."""
    frames = keras.Input(shape=(n_segments, *frame_shape), dtype="uint8", name="frames")
    mask = keras.Input(shape=(n_segments,), dtype="bool", name="mask")
    x = layers.TimeDistributed(encoder, name="encode")(frames)
    if round_float16:
        x = Float16Round(name="as_cached")(x)
    sound = {k: keras.Input(shape=head.input[k].shape[1:], dtype=head.input[k].dtype, name=k) for k in hears(head)}
    out = head({"embeddings": x, "mask": mask, **sound})
    return keras.Model({"frames": frames, "mask": mask, **sound}, out, name=name)


def hears(model: keras.Model) -> tuple[str, ...]:
    """The sound inputs a model (or head) takes: ``("audio", "audio_mask")`` or ``()``."""
    names = model.input.keys() if isinstance(model.input, dict) else ()
    return tuple(k for k in ("audio", "audio_mask") if k in names)


def sees(model: keras.Model) -> bool:
    """Whether a model (or head) takes frames or their embeddings."""
    names = model.input.keys() if isinstance(model.input, dict) else ()
    return "mask" in names


def head_kwargs(tsn: TsnParams) -> dict[str, Any]:
    return {
        "pooling": tsn.pooling,
        "dim": tsn.dim,
        "heads": tsn.heads,
        "layers_": tsn.layers,
        "dense": list(tsn.dense),
        "dropout": tsn.dropout,
    }


def audio_encoder_for(tsn: TsnParams, band_stats: tuple[Sequence[float], Sequence[float]] | None) -> keras.Model | None:
    """The sound branch's encoder when ``tsn.modalities`` has audio; ``band_stats``: the training
    windows' per-band (mean, variance)."""
    if "audio" not in tsn.modalities:
        return None
    mean, var = band_stats if band_stats is not None else (None, None)
    return build_audio_encoder(filters=tsn.audio_filters, band_mean=mean, band_var=var)


def build_tsn(
    tsn: TsnParams,
    frame_shape: Sequence[int],
    encoder: keras.Model | None = None,
    band_stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> keras.Model:
    """The whole raw-frame model from params.yaml's ``train.tsn`` section (the head alone
    when it hears only)."""
    audio = audio_encoder_for(tsn, band_stats)
    if "frames" not in tsn.modalities:
        return build_tsn_head(tsn.n_segments, None, audio_encoder=audio, **head_kwargs(tsn))
    encoder = encoder if encoder is not None else build_encoder(tsn, frame_shape)
    head = build_tsn_head(tsn.n_segments, int(encoder.output.shape[-1]), audio_encoder=audio, **head_kwargs(tsn))
    return assemble(encoder, head, tsn.n_segments, frame_shape, round_float16=uses_cache(tsn.encoder, tsn.frozen))


def head_of(model: keras.Model) -> keras.Model:
    """The head of an assembled model; a model that hears only is its own head."""
    if model.name == "tsn_head":
        return model
    return model.get_layer("tsn_head")


def restore_frozen(model: keras.Model, frozen: bool) -> keras.Model:
    """A keras-hub backbone's config does not carry ``trainable``: after loading, freeze
    the encoder again when it was frozen in training (matters only to further training)."""
    if frozen:
        model.get_layer("encode").trainable = False
    return model
