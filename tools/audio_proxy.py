"""A fast proxy for calibrating the demo corpus's soundtracks (lib/sources/demo_corpus.py): no video.

For every ordinary film of a plan (seed 7 by default: never the committed corpus's seed 2018, so no decision reads
its test split) it renders only the soundtrack, puts it through the real codec (Opus with the trailers' exact
settings, in an mp4, decoded back to 16 kHz mono float with the same ffmpeg), computes audio features with librosa,
splits the films 55/45 (seeded), fits one standardized logistic regression per genre and prints validation macro-AP
beside the label prior, then each genre's AP. The aim (issue 23): audio alone a tendency, not a giveaway.

    python tools/audio_proxy.py [--films 560] [--seed 7] [--set MOTIF_RATE=4.0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from lib.core.ffmpeg import ffmpeg_exe
from lib.core.genres import GENRES
from lib.scoring.metrics import ap_per_genre, macro_ap
from lib.sources import demo_corpus as dc

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling tools import too
from corpus_proxy import apply_overrides  # noqa: E402  (the same --set overrides)

N_FFT, HOP, N_MELS, FMAX = 1024, 640, 64, 8000
SILENCE_DB = -50.0  # a frame quieter than this (RMS, dB full scale) counts as silence


def through_codec(sound: np.ndarray, workdir: Path, name: str) -> np.ndarray:
    """Encode as the trailers do (Opus in mp4) and decode back to mono float at SOUND_RATE."""
    raw, mp4 = workdir / f"{name}.f32", workdir / f"{name}.mp4"
    raw.write_bytes(sound.astype("<f4").tobytes())
    # fmt: off
    encode = [
        ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "f32le", "-ar", str(dc.SOUND_RATE), "-ac", "1", "-i", str(raw),
        *dc.OPUS_ARGS, "-map_metadata", "-1", "-fflags", "+bitexact", str(mp4),
    ]
    decode = [ffmpeg_exe(), "-loglevel", "error", "-i", str(mp4), "-f", "f32le", "-ar", str(dc.SOUND_RATE), "-ac", "1", "-"]
    # fmt: on
    subprocess.run(encode, check=True)
    decoded = subprocess.run(decode, check=True, capture_output=True).stdout
    raw.unlink()
    mp4.unlink()
    return np.frombuffer(decoded, dtype="<f4")


def audio_features(y: np.ndarray, sr: int = dc.SOUND_RATE) -> np.ndarray:
    """Log-mel band means and spreads, then loudness, timbre and rhythm summaries (Tzanetakis & Cook's set)."""
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmax=FMAX)
    log_mel = librosa.power_to_db(mel, ref=1.0, top_db=80.0)
    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)[0]
    onset_env = librosa.onset.onset_strength(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=sr, hop_length=HOP)
    summary = [
        rms.mean(),
        rms.std(),
        librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP).mean(),
        librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP).mean(),
        librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=N_FFT, hop_length=HOP).mean(),
        onset_env.mean(),  # spectral flux
        len(onsets) / (len(y) / sr),  # onsets per second
        np.mean(20 * np.log10(rms + 1e-10) < SILENCE_DB),  # silence share
    ]
    return np.concatenate([log_mel.mean(1), log_mel.std(1), summary]).astype(np.float64)


def film_features(row: dict, seed: int, workdir: Path) -> np.ndarray:
    sound = dc.render_soundtrack(row["genre_list"], row["duration"], dc._film_seed(seed, row["movieId"]))
    return audio_features(through_codec(sound, workdir, str(row["movieId"])))


def fit_and_score(x: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray) -> np.ndarray:
    """One standardized logistic regression per genre; validation scores (0 where training has one class)."""
    cols = []
    for j in range(y.shape[1]):
        if 0 < y[tr, j].sum() < len(tr):
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            cols.append(model.fit(x[tr], y[tr, j]).predict_proba(x[va])[:, 1])
        else:
            cols.append(np.zeros(len(va)))
    return np.column_stack(cols)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", type=int, default=dc.DemoConfig.n_films)
    ap.add_argument("--seed", type=int, default=7, help="corpus seed (not 2018: the committed corpus)")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override a module constant")
    args = ap.parse_args(argv)
    apply_overrides(args.set)
    plan = dc.plan_corpus(dc.DemoConfig(n_films=args.films, seed=args.seed))
    rows = [r for r in plan.to_dict("records") if r["kind"] == dc.OK and r["genre_list"] and r["audio"]]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="audio_proxy-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        done = pool.map(lambda r: film_features(r, args.seed, Path(tmp)), rows)
        x = np.stack(list(tqdm(done, total=len(rows), desc="soundtracks", leave=False)))
    print(f"{len(rows)} films: rendered, coded and measured in {time.perf_counter() - t:.0f} s")
    y = np.array([[g in r["genre_list"] for g in GENRES] for r in rows], dtype="float32")
    order = np.random.default_rng(args.split_seed).permutation(len(rows))
    n_train = int(0.55 * len(rows))
    tr, va = order[:n_train], order[n_train:]
    scores = fit_and_score(x, y, tr, va)
    prior = np.tile(y[tr].mean(0), (len(va), 1))
    print(f"validation ({len(va)} films) macro-AP: audio LR {macro_ap(y[va], scores):.3f}, ", end="")
    print(f"label prior {macro_ap(y[va], prior):.3f}")
    per_genre = ap_per_genre(y[va], scores)
    print("  ".join(f"{g} {a:.2f}" for g, a in zip(GENRES, per_genre)))


if __name__ == "__main__":
    main()
