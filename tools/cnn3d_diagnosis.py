"""Why the paper's 3D CNN scores what it scores on the demo corpus: evidence, on train and
validation only (never test).

For each variant of the demo profile it trains on the training split and prints, per
epoch, validation slice macro-AP and the fit on the training slices themselves, read
three ways:

* ``train (training mode)``: Keras' own training AUC-PR, batch statistics and dropout on;
* ``train (inference, as trained)`` / ``(inference, precise BN)``: the same slices
  scored as evaluate scores them, with the variant's own BatchNorm statistics (Keras'
  moving averages for ``moving``) and with the statistics recomputed for the current
  weights (``lib.train.batchnorm``); validation likewise.

A gap between the first and the moving-BN reading is the BatchNorm failure; a low
reading everywhere is underfitting (too few steps or too little capacity). It also
splits validation slices by how many real (not zero-padded) frames they hold.

    python tools/cnn3d_diagnosis.py [--epochs 60] [--variants demo,no_dropout,moving]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

VARIANTS = {
    # name: (changes to the demo profile, early stopping)
    "demo": ({}, True),
    "moving": ({"batchnorm": "moving"}, True),
    "no_dropout": ({"dropout": 0.0}, False),
    "no_dropout_lr3e-4": ({"dropout": 0.0, "lr": 3e-4}, False),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--variants", default="demo,moving,no_dropout")
    parser.add_argument("--labels", default="outputs/prepare/labels.csv")
    parser.add_argument("--store", default="outputs/frames/store")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="write the per-epoch table here as JSON")
    args = parser.parse_args(argv)

    # Keras loads with its backend's noise filtered, as in the notebooks.
    from lib.core.native_stderr import import_keras

    keras = import_keras()
    from lib.core.params import TrainParams, load_section
    from lib.core.paths import resolve
    from lib.frames.store import FrameStore
    from lib.models.kinds import get_kind
    from lib.prepare.labels import read_labels

    kind = get_kind("cnn3d")
    section = load_section(TrainParams, "train").section("cnn3d")
    base = kind.parse({**section, "profile": "demo"})
    labels = read_labels(resolve(args.labels))
    store = FrameStore(resolve(args.store))
    out: dict[str, list[dict]] = {}

    for name in args.variants.split(","):
        out[name] = diagnose(name, base, kind, store, labels, args, keras)
    if args.json:
        resolve(args.json).write_text(json.dumps(out, indent=1) + "\n")


def diagnose(name, base, kind, store, labels, args, keras) -> list[dict]:
    """One variant's per-epoch rows (see the module docstring)."""
    from lib.scoring.metrics import macro_ap
    from lib.train import fit as T
    from lib.train.batchnorm import PreciseBatchNorm, recompute_batchnorm
    from lib.train.runtime import setup_runtime

    changes, early = VARIANTS[name]
    hyper_profile = replace(base.hyper, **changes)
    params = replace(base, profiles={"demo": hyper_profile}, epochs=args.epochs)
    hyper = kind.hyper(params)
    setup_runtime(args.seed, False, verbose=False)
    data = kind.datasets(params, store, labels, seed=args.seed, workers=1)
    # the training slices in a fixed order, for reading the fit
    train_fixed = type(data.train)(store, _films(data.train), depth=params.slice_depth, batch_size=64, use_copies=False)
    y_train, y_val = train_fixed.slice_labels(), data.val.slice_labels()
    real = (data.val.slices["stop"] - data.val.slices["start"]).to_numpy()
    model = kind.build(params, store.frame_shape, data)
    T.compile_model(model, hyper.lr, hyper.decay, False, T.present_genres(y_val))
    rows: list[dict] = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, "train_auc_pr_training_mode": float(logs["auc_pr"])}
            weights = [v.numpy() if hasattr(v, "numpy") else np.asarray(v) for v in self.model.weights]
            # as validation saw it: moving averages, or already recomputed by PreciseBatchNorm
            row["train_ap_inference_as_trained"] = macro_ap(y_train, self.model.predict(train_fixed, verbose=0))
            row["val_ap_as_trained"] = macro_ap(y_val, self.model.predict(data.val, verbose=0))
            recompute_batchnorm(self.model, (data.train[i] for i in range(len(data.train))))
            row["train_ap_inference_precise"] = macro_ap(y_train, self.model.predict(train_fixed, verbose=0))
            val_precise = self.model.predict(data.val, verbose=0)
            row["val_ap_precise"] = macro_ap(y_val, val_precise)
            for lo, hi in ((1, 5), (6, 10)):
                keep = (real >= lo) & (real <= hi)
                row[f"val_ap_precise_{lo}-{hi}_real_frames"] = macro_ap(y_val[keep], val_precise[keep])
            self.model.set_weights(weights)  # the probe must not change what training sees
            rows.append(row)
            print(name, json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)

    t0 = time.perf_counter()
    callbacks = [Probe()]
    if early:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_auc_pr", mode="max", patience=params.patience))
    if hyper.batchnorm == "precise":
        callbacks.insert(0, PreciseBatchNorm(data.train))
    model.fit(data.train, validation_data=data.val, epochs=params.epochs, callbacks=callbacks, shuffle=False, verbose=0)
    print(
        f"{name}: {len(rows)} epochs in {time.perf_counter() - t0:.0f} s; "
        f"{int((real <= 5).sum())} of {len(real)} validation slices hold 5 or fewer real frames"
    )
    return rows


def _films(dataset):
    """The dataset's films (movieId + labels), each once: its slice table lists them in order."""
    import pandas as pd

    films = pd.DataFrame(dataset.film_labels(), columns=list(dataset.genres))
    films.insert(0, "movieId", list(dict.fromkeys(dataset.slices["movieId"].tolist())))
    return films


if __name__ == "__main__":
    main()
