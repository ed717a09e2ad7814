"""A frozen preset encoder fed at its own resolution, straight from the video decode.

The 64x64 store suits the paper's 3D CNN, not an ImageNet encoder: upsampled to 224, a
thumbnail is another picture (on 12 real clips the pooled embeddings of the two agree
with mean cosine 0.69, and the ImageNet top-1 class on 16% of frames). So the frames
stage gives its one ffmpeg decode a further output, the same kept frames at the
encoder's input size (``lib.frames.extract.FramesOutput``), and encodes them at once:
only the float16 embeddings are kept, never a pixel store at that size (~100 GB for the
MovieLens-20M trailers, against ~2 GB of embeddings).

Size and resize policy come from the preset's own image converter (``image_size``, and
``crop_to_aspect_ratio``: ``crop`` for keras-hub's ImageNet presets). Cropping the
centred square keeps objects in the proportions the encoder was trained and evaluated on
(ImageNet's centre crop; CLIP's resize-then-centre-crop, as the trailer peers use it), at
the price of a 16:9 frame's sides. ffmpeg does the resize (area averaging, from the
source pixels), so the converter's own resize is then the identity and only its scale
and offset act.

``NativeEncoder.encode`` cuts one trailer's frames into batches of ``batch_size`` in order
(the last one shorter, not padded: a demo trailer keeps ~10 frames, and padding them to 32
tripled the encoder's work). A trailer's frames so always meet the same batches, in any
run, so an interrupted and resumed stage writes byte-identical embeddings; a new batch
shape costs one trace of the graph (0.15-1 s, at most ``batch_size`` of them).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from lib.encoders.presets import converter_image_size, converter_resize, load_preset_encoder

DTYPE = "float16"


@dataclass
class NativeEncoder:
    """uint8 ``(k, size, size, 3)`` frames -> float16 ``(k, dim)`` vectors of a frozen preset."""

    model: keras.Model
    preset: str
    size: int
    resize: str  # "crop" or "squash" (lib.frames.extract.RESIZE_MODES)
    batch_size: int = 32
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dim(self) -> int:
        return int(self.model.output.shape[-1])

    @property
    def n_params(self) -> int:
        return int(self.model.count_params())

    def encode(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (self.size, self.size, 3) or frames.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 (k, {self.size}, {self.size}, 3) frames, got {frames.dtype} {frames.shape}"
            )
        out = np.empty((len(frames), self.dim), dtype=DTYPE)
        # One encoder call at a time: the decode threads share it, and the backend already
        # spreads one call over every core.
        with self._lock:
            for start in range(0, len(frames), self.batch_size):
                chunk = np.ascontiguousarray(frames[start : start + self.batch_size])
                out[start : start + len(chunk)] = np.asarray(self.model.predict_on_batch(chunk), dtype=np.float32)
        return out

    def describe(self) -> dict[str, Any]:
        """What the embeddings' metadata records about the encoder."""
        return {
            "encoder": self.preset,
            "image_size": [self.size, self.size],
            "resize": self.resize,
            "dim": self.dim,
            "encoder_params": self.n_params,
        }

    def cache_key(self) -> bytes:
        """What decides the vectors, for the frames stage's parts folder name."""
        weights = hashlib.sha1()
        for w in self.model.weights:  # the weights themselves: a re-converted preset never reuses old parts
            weights.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
        described = {**self.describe(), "batch_size": self.batch_size, "weights": weights.hexdigest()}
        return json.dumps(described, sort_keys=True).encode()


def native_encoder(preset: str, batch_size: int = 32) -> NativeEncoder:
    """The frozen ``preset`` at its converter's own square input size."""
    model = load_preset_encoder(preset, None, trainable=False)
    size = converter_image_size(model)
    if not size or size[0] != size[1]:
        raise ValueError(
            f"preset {preset!r}: its image converter gives no square input size ({size}); "
            "the frames stage needs one to decode frames at the encoder's resolution"
        )
    resize = converter_resize(model)
    return NativeEncoder(model, str(preset), int(size[0]), resize, int(batch_size))
