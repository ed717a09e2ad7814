"""The model builders: shapes and parameter counts worked out by hand from the layer shapes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lib.models.kinds import get_kind
from lib.models.slice_models import PAPER_DECAY, PAPER_LR, build_cnn3d, build_cnn_lstm
from lib.train.fit import count_params, make_optimizer


def conv3d(c_in, c_out):
    return 27 * c_in * c_out + c_out


def conv2d(c_in, c_out):
    return 9 * c_in * c_out + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def bn(c):
    return 4 * c  # gamma, beta (trainable), moving mean and variance (not)


def test_paper_cnn3d_has_the_hand_counted_3_3_million_parameters():
    # (10, 64, 64, 3) -conv 64-> pool (5, 32, 32) -conv 32, 32-> pool (2, 16, 16) -conv 16 x3-> pool (1, 8, 8)
    # -> flatten 1 * 8 * 8 * 16 = 1024 -> 1024 x3 -> 18
    convs = conv3d(3, 64) + conv3d(64, 32) + conv3d(32, 32) + conv3d(32, 16) + 2 * conv3d(16, 16)
    blocks_bn = bn(64) + bn(32) + bn(16)
    head = dense(1024, 1024) * 3 + bn(1024) * 3 + dense(1024, 18)
    expected = convs + blocks_bn + head
    assert expected == 3_295_938

    model = build_cnn3d()
    counts = count_params(model)
    assert counts["total"] == expected
    assert counts["non_trainable"] == 2 * (64 + 32 + 16 + 3 * 1024)  # BatchNorm moving statistics
    assert model.input_shape == (None, 10, 64, 64, 3) and model.input.dtype == "uint8"
    assert model.output_shape == (None, 18)
    assert model.get_layer("flatten").output.shape[1:] == (1024,)
    assert [model.get_layer(f"block{b}_pool").output.shape[1:] for b in (1, 2, 3)] == [
        (5, 32, 32, 64),
        (2, 16, 16, 32),
        (1, 8, 8, 16),
    ]


def test_cnn3d_variant_count_and_dropout():
    # (4, 16, 16, 3) -conv 4-> pool (2, 8, 8) -conv 6-> pool (1, 4, 4) -conv 8-> pool: time stays 1 -> (1, 2, 2)
    model = build_cnn3d(input_shape=(4, 16, 16, 3), widths=[4, 6, 8], blocks=[1, 1, 1], dense=[16, 12], dropout=0.5)
    flat = 1 * 2 * 2 * 8
    expected = (
        conv3d(3, 4)
        + conv3d(4, 6)
        + conv3d(6, 8)
        + bn(4)
        + bn(6)
        + bn(8)
        + dense(flat, 16)
        + bn(16)
        + dense(16, 12)
        + bn(12)
        + dense(12, 18)
    )
    assert count_params(model)["total"] == expected
    assert model.get_layer("block3_pool").output.shape[1:] == (1, 2, 2, 8)  # a pooled-out axis is never pooled to 0
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 2
    assert model.output_shape == (None, 18)


def test_cnn3d_rejects_blocks_that_do_not_match_widths():
    with pytest.raises(ValueError, match="blocks"):
        build_cnn3d(widths=[8, 8, 8], blocks=[1, 1])


def test_cnn_lstm_counts_for_lstm_and_gru():
    shape = (4, 16, 16, 3)
    frame_cnn = conv2d(3, 4) + bn(4) + conv2d(4, 6) + bn(6)  # then global average pooling: 6 features per frame
    head = dense(8, 16) + bn(16) + dense(16, 18)
    lstm = 4 * (8 * (6 + 8) + 8)
    gru = 3 * (8 * (6 + 8) + 2 * 8)  # Keras' reset_after GRU has two bias vectors
    m_lstm = build_cnn_lstm(input_shape=shape, filters=[4, 6], rnn="lstm", units=8, dense=[16])
    m_gru = build_cnn_lstm(input_shape=shape, filters=[4, 6], rnn="gru", units=8, dense=[16])
    assert count_params(m_lstm)["total"] == frame_cnn + lstm + head
    assert count_params(m_gru)["total"] == frame_cnn + gru + head
    assert m_lstm.get_layer("frame_vector").output.shape[1:] == (4, 6)
    assert m_lstm.output_shape == m_gru.output_shape == (None, 18)
    with pytest.raises(ValueError, match="rnn"):
        build_cnn_lstm(rnn="transformer")


def test_models_take_uint8_slices_and_return_probabilities():
    x = np.random.default_rng(0).integers(0, 256, size=(3, 4, 16, 16, 3), dtype=np.uint8)
    for model in (
        build_cnn3d(input_shape=(4, 16, 16, 3), widths=[2, 2], blocks=[1, 1], dense=[4]),
        build_cnn_lstm(input_shape=(4, 16, 16, 3), filters=[2], units=4, dense=[4]),
    ):
        assert model.get_layer("to_unit_range").scale == pytest.approx(1 / 255)
        p = keras.ops.convert_to_numpy(model(x, training=False))
        assert p.shape == (3, 18) and ((p > 0) & (p < 1)).all()


def test_unknown_model_kinds_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown model kind 'resnet'"):
        get_kind("resnet")


def test_optimizer_reproduces_the_legacy_decay():
    opt = make_optimizer(PAPER_LR, PAPER_DECAY)
    schedule = opt._learning_rate
    assert isinstance(opt, keras.optimizers.Adam)
    for step in (0, 1, 1_000, 1_000_000):
        lr = float(keras.ops.convert_to_numpy(schedule(step)))
        assert lr == pytest.approx(PAPER_LR / (1 + PAPER_DECAY * step), rel=1e-6)
    assert float(keras.ops.convert_to_numpy(make_optimizer(1e-3, 0.0).learning_rate)) == pytest.approx(1e-3)
