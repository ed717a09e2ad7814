"""Which frames a whole-trailer model sees: ``n_segments`` samples, one per equal segment.

A trailer's kept frames are cut into ``n_segments`` equal segments and one frame is
taken from each (TSN-style): at a random offset in training, the centred frame in
evaluation. Short trailers (fewer kept frames than segments) use every frame once and
pad the rest; ``mask`` marks the real positions, and the model ignores the padded ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def sample_segments(
    n_frames: int, n_segments: int, *, training: bool, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(frame rows ``(N,)``, mask ``(N,)``): a random frame per segment when ``training``
    (``rng`` required), else the centred one."""
    plan = segment_plan(n_frames, n_segments)
    if training:
        if rng is None:
            raise ValueError("training samples need an rng (seeded per epoch by the loader)")
        return plan.random(rng), plan.mask
    return plan.centred(), plan.mask


def film_inputs(
    frames: np.ndarray, n_segments: int, sound: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """One film's evaluation input, batch of one: centred frames, padded slots zeroed; with
    ``sound`` (windows and presence, one per frame) the windows of the same frames too."""
    rows, mask = sample_segments(len(frames), n_segments, training=False)
    x = np.asarray(frames)[rows].copy()
    x[~mask] = 0
    inputs = {"frames": x[None], "mask": mask[None]}
    if sound is not None:
        windows, present = sound
        inputs["audio"] = np.asarray(windows[rows], dtype=np.float32)[None]
        inputs["audio_mask"] = (mask & np.asarray(present, bool)[rows])[None]
    return inputs
