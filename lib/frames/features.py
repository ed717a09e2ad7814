"""Classic computable film features, measured by ffmpeg in the frames stage's own decode.

After Rasheed, Sheikh & Shah, "On the use of computable features for film
classification" (IEEE TCSVT 2005): average shot length, motion content, lighting key
and colour variance, the features a genre study's non-deep baseline is built on.

How they are measured
---------------------
``extract_with_features`` gives the ffmpeg run that decodes a trailer for its kept
frames a second output (``output_args``): ffmpeg decodes once and feeds both. In that
branch every decoded frame (not only the kept ones) is scaled to ``FEATURE_SIZE`` and
passes ``scdet`` (``mafd``, the mean absolute difference to the previous frame, and a
scene-change score, 0-100); every ``STATS_EVERY``-th frame then passes
``signalstats`` (luma and chroma levels and percentiles, saturation; per-frame cost
is why it sees a sample). Two ``metadata=print`` filters write the measurements to
text files, which ``parse_metadata`` reads back and ``summarize`` turns into one row
per trailer. No second decode, no Python per-pixel work, and nothing here assumes the
demo corpus: any video ffmpeg can decode gets the same columns.

The features (``FEATURES``)
---------------------------
* ``shot_length_mean`` (seconds, log-scaled in ``log_shot_length``), ``cut_rate``
  (cuts per minute), ``shot_length_cv`` (how regular the cutting is): a cut is a frame
  whose scene score is at least ``CUT_SCORE`` (scdet's own default threshold, 10).
* ``motion_mean``: mean ``mafd`` over frames that are not cuts (motion within shots,
  Rasheed's "motion content"); ``motion_active``: the share of such frames that change
  visibly (``mafd`` > ``MOVING``).
* ``key_mean``, ``key_std`` (brightness, 0-1, and its spread over the trailer),
  ``contrast_mean`` (``YHIGH - YLOW``, the 10th-90th percentile spread, per frame),
  ``dark_share`` (frames with mean luma below 0.25): the lighting key; low-key horror
  and noir against high-key comedy.
* ``saturation_mean``, ``chroma_spread`` (within-frame ``UHIGH-ULOW + VHIGH-VLOW``),
  ``chroma_var`` (variance of the frames' mean chroma over the trailer): colour variance.
* ``black_share``: frames that are (nearly) black, fades and gaps between shots.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

FEATURE_SIZE = (64, 36)  # every frame is measured at this size: cheap, and the same for any source
CUT_SCORE = 10.0  # scdet's default threshold
STATS_EVERY = 6  # signalstats on every 6th frame: ~4 per second at 24 fps
MOVING = 0.2  # mafd above which a frame counts as moving
FEATURES = (
    "log_shot_length",
    "shot_length_mean",
    "cut_rate",
    "shot_length_cv",
    "motion_mean",
    "motion_active",
    "key_mean",
    "key_std",
    "contrast_mean",
    "dark_share",
    "saturation_mean",
    "chroma_spread",
    "chroma_var",
    "black_share",
)
FEATURES_FILE = "features.csv"
_KEYS = {
    "lavfi.signalstats.YAVG": "yavg",
    "lavfi.signalstats.YLOW": "ylow",
    "lavfi.signalstats.YHIGH": "yhigh",
    "lavfi.signalstats.YMAX": "ymax",
    "lavfi.signalstats.SATAVG": "sat",
    "lavfi.signalstats.UAVG": "uavg",
    "lavfi.signalstats.VAVG": "vavg",
    "lavfi.signalstats.ULOW": "ulow",
    "lavfi.signalstats.UHIGH": "uhigh",
    "lavfi.signalstats.VLOW": "vlow",
    "lavfi.signalstats.VHIGH": "vhigh",
    "lavfi.scd.score": "score",
    "lavfi.scd.mafd": "mafd",
}
_FRAME = re.compile(r"^frame:\s*(\d+)\s+pts:\s*(\S+)\s+pts_time:\s*(\S+)")


def _escape(path: str) -> str:
    """A file path as a filter option value inside a filter chain (two levels of escaping)."""
    level1 = re.sub(r"([\\':])", r"\\\1", path)
    return re.sub(r"([\\'\[\],;])", r"\\\1", level1)


def feature_filter(scene_path: str | Path, stats_path: str | Path) -> str:
    """The feature branch's filter chain: scene scores of every frame, levels of a sample."""
    w, h = FEATURE_SIZE
    return (
        f"scale={w}:{h}:flags=area,format=yuv420p,scdet=threshold={CUT_SCORE:g},"
        f"metadata=mode=print:file={_escape(str(scene_path))},"
        rf"select=not(mod(n\,{STATS_EVERY})),signalstats,"
        f"metadata=mode=print:file={_escape(str(stats_path))}"
    )


def output_args(scene_path: str | Path, stats_path: str | Path, threads: int = 1) -> list[str]:
    """ffmpeg arguments for a second output of the same run: the measurements, no video written."""
    # fmt: off
    return ["-an", "-sn", "-dn", "-vf", feature_filter(scene_path, stats_path), "-filter_threads", str(threads),
            "-fps_mode", "passthrough", "-f", "null", "-"]
    # fmt: on


def parse_metadata(text: str) -> pd.DataFrame:
    """``metadata=print`` output -> one row per frame (columns of ``_KEYS`` plus ``t``, seconds)."""
    rows, row = [], None
    for line in text.splitlines():
        if m := _FRAME.match(line):
            if row is not None:
                rows.append(row)
            try:
                t = float(m.group(3))
            except ValueError:
                t = math.nan
            row = {"t": t}
        elif row is not None and "=" in line:
            key, _, value = line.partition("=")
            name = _KEYS.get(key.strip())
            if name is not None:
                try:
                    row[name] = float(value)
                except ValueError:
                    pass
    if row is not None:
        rows.append(row)
    return pd.DataFrame(rows, columns=["t", *_KEYS.values()])


def summarize(scene: pd.DataFrame, stats: pd.DataFrame, fps: float | None = None) -> dict[str, float]:
    """One trailer's features (``FEATURES``) from its per-frame measurements; NaN where undefined.

    ``scene``: every frame's ``t``, ``score`` and ``mafd``; ``stats``: the sampled frames' levels.
    """
    out = {k: math.nan for k in FEATURES}
    scene = scene.dropna(subset=["mafd"])
    n = len(scene)
    if n > 0:
        t = scene["t"].to_numpy(dtype=float)
        if np.isfinite(t).all() and n > 1 and t[-1] > t[0]:
            duration = float(t[-1] - t[0]) * n / (n - 1)
        else:
            duration = n / fps if fps else math.nan
        score = scene["score"].fillna(0.0).to_numpy(dtype=float)
        cut = score >= CUT_SCORE
        cut[0] = False
        n_cuts = int(cut.sum())
        if np.isfinite(duration) and duration > 0:
            out["shot_length_mean"] = duration / (n_cuts + 1)
            out["log_shot_length"] = math.log(out["shot_length_mean"])
            out["cut_rate"] = n_cuts * 60.0 / duration
        lengths = np.diff(np.concatenate([[0], np.flatnonzero(cut), [n]]))
        lengths = lengths[lengths > 0]
        out["shot_length_cv"] = float(lengths.std() / lengths.mean()) if len(lengths) > 1 else 0.0
        within = scene["mafd"].to_numpy(dtype=float)[1:][~cut[1:]]
        if len(within):
            out["motion_mean"] = float(within.mean())
            out["motion_active"] = float((within > MOVING).mean())
    stats = stats.dropna(subset=["yavg"])
    if len(stats):
        y = stats["yavg"].to_numpy(dtype=float) / 255.0
        out["key_mean"] = float(y.mean())
        out["key_std"] = float(y.std())
        out["contrast_mean"] = float(((stats["yhigh"] - stats["ylow"]) / 255.0).mean())
        out["dark_share"] = float((y < 0.25).mean())
        out["black_share"] = float((stats["ymax"] < 40).mean())
        out["saturation_mean"] = float(stats["sat"].mean() / 255.0)
        out["chroma_spread"] = float(
            ((stats["uhigh"] - stats["ulow"]) + (stats["vhigh"] - stats["vlow"])).mean() / 255.0
        )
        out["chroma_var"] = float((stats["uavg"].var(ddof=0) + stats["vavg"].var(ddof=0)) / 255.0**2)
    return out


def read_features(path: str | Path) -> pd.DataFrame:
    """The frames stage's ``features.csv``: movieId, youtubeId and ``FEATURES``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no features table; run the frames stage first")
    table = pd.read_csv(path, dtype={"youtubeId": str})
    missing = [c for c in ("movieId", "youtubeId", *FEATURES) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    return table


class FeatureOutput:
    """The features as a second output of the frames stage's one ffmpeg decode.

    ``args`` go after the frames output on the same command line (``extract_trailer``'s
    ``extra_output``), so the features cost no second decode; after the decode,
    ``read`` summarises what ffmpeg wrote, with NaNs (never an exception) for a trailer
    whose measurements cannot be read.
    """

    def __init__(self, folder: str | Path, threads: int = 1):
        self.scene, self.stats = Path(folder) / "scene.txt", Path(folder) / "stats.txt"
        self.args = output_args(self.scene, self.stats, threads)

    def read(self, fps: float | None) -> dict[str, float]:
        return summarize(parse_metadata(_read(self.scene)), parse_metadata(_read(self.stats)), fps)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def genre_profile(
    features: pd.DataFrame, films: pd.DataFrame, columns: list[str] | tuple[str, ...], genres
) -> pd.DataFrame:
    """Genre x feature: the mean z-score of each genre's films (how many standard deviations they
    sit from the average film), over the films measured in ``columns`` (a trailer without sound
    has none of the audio ones). ``films``: movieId and a 0/1 column per genre."""
    columns = list(columns)
    measured = features.dropna(subset=columns, how="all")
    z = (measured[columns] - measured[columns].mean()) / measured[columns].std().replace(0, 1)
    has = measured[["movieId"]].merge(films[["movieId", *genres]], on="movieId", how="left").fillna(0)
    return pd.DataFrame({g: z[has[g].to_numpy() == 1].mean() for g in genres if has[g].sum()}).T
