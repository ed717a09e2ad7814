"""BatchNorm statistics that belong to the weights they are used with ("precise BN").

A BatchNormalization layer normalises with the current batch's statistics in training
and with its moving averages at inference. Keras keeps those averages with momentum
0.99 (Keras 2's default too, so the paper's): after ``k`` steps they still hold
``0.99**k`` of their initial values (mean 0, variance 1), plus statistics of weights
long since updated. The paper trained ~9,000 steps per epoch, where that does not bite.
The demo trains ~30 steps per epoch: at the checkpoint the 3D CNN chose (~170 steps)
its first BatchNorm's moving variance was ~0.30 against a true input variance of
~0.003, so inference-mode scores were near chance on slices the network had memorised
in training mode, and checkpointing and early stopping read validation scores computed
with those statistics.

The remedy here is the one of Wu & Johnson, "Rethinking 'Batch' in BatchNorm" (2021,
section 3): before every validation, and therefore before every checkpoint and the
saved model, the statistics are recomputed for the current weights as the plain
average over training batches. We chose it over a momentum set from the number of
steps because a short run's weights move fast: any running average, whatever its
momentum, mixes statistics of weights that no longer exist, while the recomputed ones
are exactly those of the weights being validated. It costs one forward pass over (at
most ``max_batches`` of) the training batches per epoch, run eagerly: on the demo ``cnn3d``
an epoch went from 1.2 s to 2.5-3 s on the 2-core CPU.

Dropout is switched off while the statistics are gathered: at inference no unit is
dropped, and a BatchNorm after a Dropout sees a different variance with and without it
(Li et al., "Understanding the Disharmony between Dropout and Batch Normalization",
CVPR 2019). Non-trainable (frozen) BatchNorm layers are left alone: they always run in
inference mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import keras
import numpy as np

from lib.scoring.metrics import macro_ap

BATCHNORM_MODES = ("moving", "precise")


def _layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    # Keras 3 has no public recursive walk; _flatten_layers follows nested models and
    # wrappers (TimeDistributed's inner model included).
    return list(model._flatten_layers(include_self=False, recursive=True))


def batchnorm_layers(model: keras.layers.Layer) -> list[keras.layers.BatchNormalization]:
    """The trainable BatchNormalization layers of ``model``, nested ones included."""
    return [layer for layer in _layers(model) if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]


@contextmanager
def _gathering(model: keras.layers.Layer) -> Iterator[list[keras.layers.BatchNormalization]]:
    """BatchNorm momenta and Dropout rates as they were, whatever happens inside."""
    norms = batchnorm_layers(model)
    drops = [layer for layer in _layers(model) if isinstance(layer, keras.layers.Dropout)]
    momenta, rates = [n.momentum for n in norms], [d.rate for d in drops]
    try:
        for d in drops:
            d.rate = 0.0
        yield norms
    finally:
        for n, m in zip(norms, momenta):
            n.momentum = m
        for d, r in zip(drops, rates):
            d.rate = r


def _inputs(batch):
    return batch[0] if isinstance(batch, tuple) else batch


def recompute_batchnorm(model: keras.Model, batches: Iterable, max_batches: int | None = 200) -> int:
    """Set every trainable BatchNorm's moving mean and variance to the average of its
    batch statistics over ``batches`` (each ``x`` or ``(x, y, ...)``), for the weights
    as they are now; no weight changes. Returns the number of batches used (0 when the
    model has no trainable BatchNorm, which then stays untouched).

    The running update ``moving = momentum * moving + (1 - momentum) * batch`` with
    momentum ``i / (i + 1)`` on batch ``i`` is exactly the running mean of the batch
    statistics; the first batch (momentum 0) discards whatever the averages held.
    """
    if not batchnorm_layers(model):
        return 0
    used = 0
    with _gathering(model) as norms:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            for n in norms:
                n.momentum = i / (i + 1)
            model(_inputs(batch), training=True)
            used += 1
    return used


def _dataset_batches(dataset) -> Iterator:
    # A PyDataset by index (its batches are a pure function of the epoch and the index,
    # so reading them here changes nothing that training will read); anything else as an iterable.
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        for i in range(len(dataset)):
            yield dataset[i]
    else:
        yield from dataset


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recomputes BatchNorm statistics on training batches before each validation, so
    validation scores, checkpoints, early stopping and the saved model all use the
    statistics of the weights they judge. ``fit`` validates every epoch, and Keras calls
    ``on_test_begin`` from inside ``fit`` right before it (JAX reads the variables after it)."""

    def __init__(self, train_batches, max_batches: int | None = 200):
        super().__init__()
        self.train_batches, self.max_batches = train_batches, max_batches

    def on_test_begin(self, logs=None):
        recompute_batchnorm(self.model, _dataset_batches(self.train_batches), self.max_batches)


def mode_agreement(model: keras.Model, batches: Iterable, max_batches: int | None = None) -> dict[str, float]:
    """How far inference-mode predictions sit from training-mode ones on the same batches,
    Dropout off in both (so only BatchNorm differs): the mean and the largest absolute
    difference of the sigmoid outputs and, when the batches carry labels ``(x, y)``, the
    macro-AP of each mode. On data a network has fitted, a large gap means its moving
    statistics are not those of its weights."""
    train, infer, labels = [], [], []
    with _gathering(model) as norms:
        for n in norms:
            n.momentum = 1.0  # a training-mode call must not move the statistics being judged
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            x = _inputs(batch)
            train.append(np.asarray(keras.ops.convert_to_numpy(model(x, training=True)), float))
            infer.append(np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), float))
            if isinstance(batch, tuple) and len(batch) > 1:
                labels.append(np.asarray(batch[1]))
    if not train:
        return {"mean_abs_diff": 0.0, "max_abs_diff": 0.0}
    t, f = np.concatenate(train), np.concatenate(infer)
    out = {"mean_abs_diff": float(np.abs(t - f).mean()), "max_abs_diff": float(np.abs(t - f).max())}
    if labels:
        y = np.concatenate(labels)
        out.update({"macro_ap_training_mode": macro_ap(y, t), "macro_ap_inference_mode": macro_ap(y, f)})
    return out
