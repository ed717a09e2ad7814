"""Per-frame embeddings of a frozen encoder, cached once for every frame of the store.

    python -m lib.encoders.embeddings --store outputs/frames/store --out outputs/embed

Layout of the output folder (the ``embed`` stage's output):

* ``embeddings.npy``: ``(n_frames, D)`` float16, row ``i`` is the encoder's vector of
  row ``i`` of the store's ``frames.npy`` (opened memory-mapped by readers);
* ``embeddings.json``: what made it (encoder preset, image size the converter resizes
  to, dimension, the store's frame count and shape), checked by ``load_embeddings`` so a
  head never trains on a stale or foreign cache.

When ``train.tsn`` does not use a frozen preset (``encoder: scratch``, or a preset
being fine-tuned) nothing is worth caching: the command writes only ``embeddings.json``
with ``"cached": false`` and the reason, so the stage's output always exists.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm  # plain text: tqdm.auto wants ipywidgets in a notebook (a warning box in every report)

from lib.core.atomic import atomic_write, replace_synced
from lib.core.params import TrainParams, TsnParams, load_params, parse
from lib.core.paths import resolve
from lib.encoders.presets import converter_image_size, is_preset, load_preset_encoder, uses_cache
from lib.frames.store import FrameStore

EMBEDDINGS_FILE = "embeddings.npy"
META_FILE = "embeddings.json"
DTYPE = "float16"


def encode_store(
    encoder,
    store: FrameStore,
    out_dir: str | Path,
    *,
    batch_size: int = 32,
    meta: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``encoder`` (uint8 frame -> vector) on every frame of ``store`` in batches and
    write ``embeddings.npy`` (float16) + ``embeddings.json`` into ``out_dir``; returns the
    JSON's content. The array is written under a temporary name and renamed, JSON last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / META_FILE).unlink(missing_ok=True)
    frames = store.frames
    n = len(frames)
    dim = int(encoder.output.shape[-1])
    tmp = out_dir / (EMBEDDINGS_FILE + ".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPE, shape=(n, dim))
    t0 = time.perf_counter()
    for start in tqdm(range(0, n, batch_size), desc="encoding frames", unit="batch", disable=not progress):
        batch = np.asarray(frames[start : start + batch_size])
        out[start : start + len(batch)] = np.asarray(encoder.predict_on_batch(batch), dtype=np.float32).astype(DTYPE)
    seconds = time.perf_counter() - t0
    out.flush()
    del out
    replace_synced(tmp, out_dir / EMBEDDINGS_FILE)
    info = {
        "cached": True,
        **(dict(meta) if meta else {}),
        "dim": dim,
        "dtype": DTYPE,
        "n_frames": int(n),
        "frame_shape": [int(d) for d in store.frame_shape],
        "films": int(len(store)),
        "seconds": round(seconds, 1),
        "frames_per_second": round(n / seconds, 1) if seconds > 0 else None,
    }
    atomic_write(out_dir / META_FILE, json.dumps(info, indent=2) + "\n")
    return info


def write_not_cached(out_dir: str | Path, reason: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / EMBEDDINGS_FILE).unlink(missing_ok=True)
    info = {"cached": False, "reason": reason, **(dict(meta) if meta else {})}
    atomic_write(out_dir / META_FILE, json.dumps(info, indent=2) + "\n")
    return info


def read_meta(out_dir: str | Path) -> dict[str, Any] | None:
    path = Path(out_dir) / META_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def cache_problem(out_dir: str | Path, store: FrameStore, encoder: str) -> str | None:
    """Why the cache in ``out_dir`` cannot serve ``encoder`` on ``store`` (None: it can)."""
    meta = read_meta(out_dir)
    if meta is None:
        return f"no {META_FILE} in {out_dir}"
    if not meta.get("cached"):
        return f"{out_dir} holds no embeddings ({meta.get('reason', 'not cached')})"
    if str(meta.get("encoder")) != str(encoder):
        return f"{out_dir} caches encoder {meta.get('encoder')!r}, not {encoder!r}"
    if meta.get("n_frames") != len(store.frames) or list(meta.get("frame_shape", [])) != list(store.frame_shape):
        return f"{out_dir} was made for {meta.get('n_frames')} frames of {meta.get('frame_shape')}, the store has {len(store.frames)} of {list(store.frame_shape)}"
    if not (Path(out_dir) / EMBEDDINGS_FILE).is_file():
        return f"{out_dir / EMBEDDINGS_FILE} is missing"
    return None


def load_embeddings(out_dir: str | Path, store: FrameStore, encoder: str) -> np.ndarray:
    """The cached ``(n_frames, D)`` float16 array, memory-mapped, after checking it
    belongs to this store and this encoder."""
    problem = cache_problem(out_dir, store, encoder)
    if problem:
        raise ValueError(f"embedding cache unusable: {problem}; run the embed stage (dvc repro embed)")
    emb = np.load(Path(out_dir) / EMBEDDINGS_FILE, mmap_mode="r")
    if emb.shape[0] != len(store.frames):
        raise ValueError(f"{out_dir / EMBEDDINGS_FILE} has {emb.shape[0]} rows, the store {len(store.frames)} frames")
    return emb


def embed_for_config(tsn: TsnParams, store: FrameStore, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """What the embed stage does for params.yaml's ``train.tsn``: encode with a frozen
    preset, or record why nothing is cached."""
    meta = {"encoder": tsn.encoder, "frozen": tsn.frozen}
    if not uses_cache(tsn.encoder, tsn.frozen):
        why = (
            "encoder is scratch (trained end to end)"
            if not is_preset(tsn.encoder)
            else "preset is fine-tuned (frozen: false)"
        )
        return write_not_cached(out_dir, why, meta)
    encoder = load_preset_encoder(tsn.encoder, store.frame_shape, trainable=False)
    meta["image_size"] = converter_image_size(encoder)
    meta["encoder_params"] = int(encoder.count_params())
    return encode_store(encoder, store, out_dir, batch_size=tsn.embed_batch_size, meta=meta, progress=progress)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lib.encoders.embeddings",
        description="Cache a frozen tsn encoder's per-frame embeddings (params.yaml train.tsn).",
    )
    p.add_argument("--store", default="outputs/frames/store")
    p.add_argument("--out", default="outputs/embed")
    args = p.parse_args(argv)
    tsn = parse(TsnParams, TrainParams.from_section(load_params("train")).section("tsn"), "train.tsn")
    info = embed_for_config(tsn, FrameStore(resolve(args.store)), resolve(args.out))
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
