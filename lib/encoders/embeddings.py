"""The cache of per-frame encoder embeddings (``outputs/embed``): its format, writer and reader.

The frames stage writes it (``lib.frames.stage`` with a ``lib.encoders.native`` encoder):
each kept frame is decoded a second time at the encoder's own input size by the same
ffmpeg run and encoded at once, so the cache holds the encoder's view of the source
video, not of the 64x64 store. Layout:

* ``embeddings.npy``: ``(n_frames, D)`` float16, row ``i`` is the encoder's vector of
  frame ``i`` of the store's ``frames.npy`` (the same moment of the same trailer),
  opened memory-mapped by readers;
* ``embeddings.json``: what made it: ``encoder`` (the preset), ``source`` (``video``:
  frames decoded at the encoder's size; ``store``: the store's frames resized by the
  converter, the fallback of a training run that finds no cache), ``frames`` (the
  extraction settings of the frames the encoder saw: a whole-trailer model trained on
  the cache decodes a new trailer with them), ``image_size``, ``resize``, ``dim``, and
  the store's frame count and shape, checked by ``load_embeddings`` so a head never
  trains on a stale or foreign cache. No timings: the file is byte-identical run to run.

When ``train.tsn`` does not use a frozen preset (``encoder: scratch``, or a preset
being fine-tuned) nothing is worth caching: only ``embeddings.json`` is written, with
``"cached": false`` and the reason, so the stage's output always exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm  # plain text: tqdm.auto wants ipywidgets in a notebook (a warning box in every report)

from lib.core.atomic import atomic_write, replace_synced
from lib.core.params import FrameSettings, TsnParams

SCRATCH = "scratch"  # lib.encoders.presets.SCRATCH, which imports Keras
EMBEDDINGS_FILE = "embeddings.npy"


class FrameStore(Protocol):
    """What the cache needs of a ``lib.frames.store.FrameStore`` (the frames layer sits above
    this one: it runs the encoder on its decode)."""

    frames: np.ndarray
    movie_ids: np.ndarray
    frame_shape: tuple[int, int, int]
    settings: FrameSettings | None

    def __len__(self) -> int: ...

    def film(self, movie_id: int) -> np.ndarray: ...


META_FILE = "embeddings.json"
DTYPE = "float16"


def write_embeddings(
    out_dir: str | Path, films: Sequence[np.ndarray], store: FrameStore, meta: Mapping[str, Any]
) -> dict[str, Any]:
    """``films``' vectors (one ``(k, D)`` array per film, in store order) as one cache for
    ``store``; returns the JSON's content. The array is written under a temporary name
    and renamed, the JSON last: no JSON, no cache."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / META_FILE).unlink(missing_ok=True)
    n = sum(len(f) for f in films)
    if n != len(store.frames):
        raise ValueError(f"{n} embedded frames for a store of {len(store.frames)}")
    dim = int(meta["dim"]) if films else 0
    tmp = out_dir / (EMBEDDINGS_FILE + ".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPE, shape=(n, dim))
    start = 0
    for film in films:
        out[start : start + len(film)] = film
        start += len(film)
    out.flush()
    del out
    replace_synced(tmp, out_dir / EMBEDDINGS_FILE)
    info = {
        "cached": True,
        **dict(meta),
        "dim": dim,
        "dtype": DTYPE,
        "n_frames": int(n),
        "frame_shape": [int(d) for d in store.frame_shape],
        "films": int(len(store)),
    }
    atomic_write(out_dir / META_FILE, json.dumps(info, indent=2) + "\n")
    return info


def encode_store(
    encoder, store: FrameStore, out_dir: str | Path, *, meta: Mapping[str, Any], progress: bool = True
) -> dict[str, Any]:
    """The fallback cache: ``encoder`` (a ``lib.encoders.native.NativeEncoder`` built for the
    store's frame size) on every frame of ``store``, film by film."""
    films = [
        encoder.encode(np.asarray(store.film(m)))
        for m in tqdm(store.movie_ids, desc="encoding the store's frames", unit="film", disable=not progress)
    ]
    return write_embeddings(out_dir, films, store, meta)


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
        raise ValueError(
            f"embedding cache unusable: {problem}; run the frames stage with a frozen preset in train.tsn (dvc repro frames)"
        )
    emb = np.load(Path(out_dir) / EMBEDDINGS_FILE, mmap_mode="r")
    if emb.shape[0] != len(store.frames):
        raise ValueError(f"{out_dir / EMBEDDINGS_FILE} has {emb.shape[0]} rows, the store {len(store.frames)} frames")
    return emb


def no_cache_reason(encoder: str, frozen: bool) -> str:
    """Why ``train.tsn``'s encoder needs no cache ("" when it does: a frozen preset). Free of
    Keras, so a stage without an encoder never loads it."""
    if str(encoder) == SCRATCH:
        return "encoder is scratch (trained end to end)"
    if not frozen:
        return "preset is fine-tuned (frozen: false)"
    return ""


def encoder_for_config(encoder: str, frozen: bool, batch_size: int = 32):
    """(the ``lib.encoders.native.NativeEncoder`` the frames stage runs for ``train.tsn``'s
    ``encoder`` and ``frozen``, "") or (None, why none is needed)."""
    if why := no_cache_reason(encoder, frozen):
        return None, why
    from lib.encoders.native import native_encoder

    return native_encoder(encoder, batch_size), ""


def embed_for_config(tsn: TsnParams, store: FrameStore, out_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """The fallback of a training run that finds no cache (a smoke run, a preset tried
    outside ``dvc repro``): the store's own frames, resized by the preset's converter
    (``source: store``). The frames stage's cache, decoded from the video at the encoder's
    size, is the real one; a model trained on either records which frames it takes."""
    meta = {"encoder": tsn.encoder, "frozen": tsn.frozen}
    if why := no_cache_reason(tsn.encoder, tsn.frozen):
        return write_not_cached(out_dir, why, meta)
    from lib.encoders.native import NativeEncoder
    from lib.encoders.presets import converter_image_size, converter_resize, load_preset_encoder

    model = load_preset_encoder(tsn.encoder, store.frame_shape, trainable=False)
    encoder = NativeEncoder(
        model, tsn.encoder, int(store.frame_shape[0]), converter_resize(model), tsn.embed_batch_size
    )
    settings = store.settings
    meta.update(
        encoder.describe(),
        source="store",
        frames=None if settings is None else settings.as_dict(),
        image_size=converter_image_size(model),  # what the converter resizes the store's frames to
    )
    return encode_store(encoder, store, out_dir, meta=meta, progress=progress)
