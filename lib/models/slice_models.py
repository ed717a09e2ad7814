"""The study's models: the paper's 3D CNN and the recurrent variant of its future work.

Both take a slice, ``(depth, size, size, 3)`` uint8 straight from the frame store, scale
it to [0, 1] inside the model (so the loader never materialises float copies), and end
in one sigmoid per genre. Everything is ``keras.layers``/``keras.ops``: the same code
runs on the TensorFlow and JAX backends.

The paper's network (HKH515/MovieTrailerML at 92ffc9a, figure 5 of the paper) is
``build_cnn3d()`` with its defaults; the arguments make the smaller variants that fit
the demo corpus's CPU budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from lib.core.genres import N_GENRES

# The paper's architecture: convolution widths grouped into pooling blocks (1 + 2 + 3 convs),
# three dense layers of 1024, 10-frame slices of 64x64 RGB.
PAPER_WIDTHS = (64, 32, 32, 16, 16, 16)
PAPER_BLOCKS = (1, 2, 3)
PAPER_DENSE = (1024, 1024, 1024)
PAPER_INPUT = (10, 64, 64, 3)
PAPER_LR = 1e-4
PAPER_DECAY = 1e-6  # Keras 2's legacy Adam decay: lr / (1 + decay * step)


def _split_blocks(widths: Sequence[int], blocks: Sequence[int]) -> list[list[int]]:
    if sum(blocks) != len(widths) or min(blocks, default=0) < 1:
        raise ValueError(f"blocks {list(blocks)} must be positive and sum to len(widths)={len(widths)}")
    out, i = [], 0
    for n in blocks:
        out.append(list(widths[i : i + n]))
        i += n
    return out


def _pool_size(shape: Sequence[int | None]) -> tuple[int, ...]:
    # Halve every axis that still has room, so a deeper variant never pools an axis to zero.
    return tuple(2 if (d or 2) >= 2 else 1 for d in shape)


def _dense_head(x, dense: Sequence[int], dropout: float, n_outputs: int):
    """Dense -> ReLU -> BatchNorm (-> Dropout) per layer, then the sigmoid genre layer."""
    for i, units in enumerate(dense):
        x = layers.Dense(units, activation="relu", name=f"dense_{i + 1}")(x)
        x = layers.BatchNormalization(name=f"dense_{i + 1}_bn")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense_{i + 1}_dropout")(x)
    # float32 output keeps the loss stable under mixed precision.
    return layers.Dense(n_outputs, activation="sigmoid", dtype="float32", name="genres")(x)


def _scaled_input(input_shape: Sequence[int]):
    inputs = keras.Input(shape=tuple(input_shape), dtype="uint8", name="slice")
    return inputs, layers.Rescaling(1.0 / 255, name="to_unit_range")(inputs)


def build_cnn3d(
    input_shape: Sequence[int] = PAPER_INPUT,
    widths: Sequence[int] = PAPER_WIDTHS,
    blocks: Sequence[int] = PAPER_BLOCKS,
    dense: Sequence[int] = PAPER_DENSE,
    dropout: float = 0.0,
    first_stride: int = 1,
    n_outputs: int = N_GENRES,
    name: str = "cnn3d",
) -> keras.Model:
    """The paper's 3D CNN: blocks of 3x3x3 ReLU convolutions, each block closed by
    MaxPool3D(2) + BatchNorm; Flatten; dense layers with ReLU + BatchNorm; sigmoids.

    ``first_stride`` > 1 strides the first convolution spatially (not in time). The
    paper uses 1; at 2 the full-resolution convolution, most of a CPU step's cost, is
    four times cheaper.
    """
    inputs, x = _scaled_input(input_shape)
    for b, block in enumerate(_split_blocks(widths, blocks), start=1):
        for c, width in enumerate(block, start=1):
            strides = (1, first_stride, first_stride) if (b, c) == (1, 1) else 1
            x = layers.Conv3D(width, 3, strides=strides, padding="same", activation="relu", name=f"block{b}_conv{c}")(x)
        x = layers.MaxPooling3D(_pool_size(x.shape[1:4]), name=f"block{b}_pool")(x)
        x = layers.BatchNormalization(name=f"block{b}_bn")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = _dense_head(x, dense, dropout, n_outputs)
    return keras.Model(inputs, outputs, name=name)


def build_cnn_lstm(
    input_shape: Sequence[int] = PAPER_INPUT,
    filters: Sequence[int] = (16, 32, 32),
    rnn: str = "lstm",
    units: int = 64,
    dense: Sequence[int] = (128,),
    dropout: float = 0.0,
    n_outputs: int = N_GENRES,
    name: str = "cnn_lstm",
) -> keras.Model:
    """The paper's future work (section 6): a 2D CNN applied to every frame of the
    slice (TimeDistributed), a recurrent layer over the frames, the same sigmoid head.

    Each frame goes through Conv2D(3x3, ReLU) -> MaxPool2D(2) -> BatchNorm per filter
    width, then global average pooling, so the recurrent layer sees one vector per frame.
    """
    rnn_layers = {"lstm": layers.LSTM, "gru": layers.GRU}
    if rnn not in rnn_layers:
        raise ValueError(f"rnn must be one of {sorted(rnn_layers)}, got {rnn!r}")
    inputs, x = _scaled_input(input_shape)
    for i, f in enumerate(filters, start=1):
        x = layers.TimeDistributed(layers.Conv2D(f, 3, padding="same", activation="relu"), name=f"frame_conv{i}")(x)
        x = layers.TimeDistributed(layers.MaxPooling2D(_pool_size(x.shape[2:4])), name=f"frame_pool{i}")(x)
        x = layers.TimeDistributed(layers.BatchNormalization(), name=f"frame_bn{i}")(x)
    x = layers.TimeDistributed(layers.GlobalAveragePooling2D(), name="frame_vector")(x)
    x = rnn_layers[rnn](units, name=rnn)(x)
    outputs = _dense_head(x, dense, dropout, n_outputs)
    return keras.Model(inputs, outputs, name=name)
