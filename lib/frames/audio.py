"""The soundtrack: one audio decode per kept trailer, log-mel windows aligned with the kept
frames, and the classic computable audio features.

How the sound is read
---------------------
``decode_audio`` runs the bundled ffmpeg once more, beside the frames decode, with no video
(``-vn``): it picks the trailer's main audio stream (ffmpeg's choice: the one with the most
channels), downmixes it to mono and resamples it to ``SAMPLE_RATE`` (16 kHz, what audio
taggers such as PANNs and BEATs take), as float32 on a pipe. Any container and codec ffmpeg
reads works (AAC, Opus, Vorbis, MP3, AC-3, 5.1 or stereo); the frames decode cannot carry
it as a further output, since an output without a stream (a silent file) fails the whole run.

Outcomes (``AUDIO_OUTCOMES``): ``ok``; ``no_audio`` (the file has no audio stream, as some
real trailers have none); ``unreadable`` (a stream that does not decode). Neither of the
last two prunes the trailer: its frames stay, and the models mask its sound.

What is cached
--------------
* **Log-mel windows** (``logmel_windows``): the log-mel spectrogram of the whole trailer
  (``N_FFT`` 64 ms frames every ``HOP`` = 40 ms, ``N_MELS`` bands up to 8 kHz, in dB),
  cut into one window of ``WINDOW_SECONDS`` per kept frame, starting at that frame's time:
  the sound from one kept frame to about the next (kept frames are ~4.2 s apart at the
  paper's step). So a model that picks frame ``i`` of a segment hears window ``i``: the
  modalities stay aligned. A window past the end of the sound is padded with ``FLOOR_DB``
  and not ``present``. float16, ``(k, WINDOW_STEPS, N_MELS)`` per trailer.
* **Computable features** (``audio_features``, ``AUDIO_FEATURES``), one row per trailer,
  the timbre and rhythm descriptors of Tzanetakis & Cook ("Musical genre classification of
  audio signals", IEEE TSAP 2002) and the energy cues of film-genre work (Rasheed & Shah,
  ICPR 2002; Moncrieff et al., ICME 2003): RMS energy (mean and spread, in dB) and its
  dynamic range, zero-crossing rate, spectral centroid, roll-off, flatness (tonal against
  noisy) and flux (onset strength), onset rate, tempo, and the share of silence.

Both come from librosa, the field's reference implementation, on the same decoded samples;
``trailer-genres`` calls the same functions on a new file.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lib.core.ffmpeg import ffmpeg_exe
from lib.frames.extract import _OUTSIDE_STOPS, Interrupted, StopSwitch

SAMPLE_RATE = 16000
N_FFT = 1024  # 64 ms
HOP = 640  # 40 ms: 25 spectrogram columns a second
N_MELS = 64
FMAX = 8000.0
WINDOW_SECONDS = 4.0
WINDOW_STEPS = round(WINDOW_SECONDS * SAMPLE_RATE / HOP)  # 100
FLOOR_DB = -100.0  # log-mel of digital silence (power floor 1e-10), and of padding
SILENT_DB = -60.0  # a 40 ms frame whose RMS is below this (dBFS) counts as silence
DTYPE = "float16"
# the frames stage's sound cache, beside the frames in the store's folder
LOGMEL_FILE, PRESENT_FILE, META_FILE = "logmel.npy", "present.npy", "audio.json"
AUDIO_OUTCOMES = ("ok", "no_audio", "unreadable")
AUDIO_FEATURES = (
    "audio_rms_db_mean",
    "audio_rms_db_std",
    "audio_dynamic_range",
    "audio_silence_share",
    "audio_zcr_mean",
    "audio_centroid_mean",
    "audio_rolloff_mean",
    "audio_flatness_mean",
    "audio_flux_mean",
    "audio_onset_rate",
    "audio_tempo",
)
DESCRIPTION = {
    "sample_rate": SAMPLE_RATE,
    "n_fft": N_FFT,
    "hop": HOP,
    "n_mels": N_MELS,
    "fmax": FMAX,
    "window_seconds": WINDOW_SECONDS,
    "window_steps": WINDOW_STEPS,
    "floor_db": FLOOR_DB,
    "layout": "(kept frame, time step, mel band), dB",
}

_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: Audio: (.*)$")
_NO_STREAM = re.compile(r"does not contain any stream", re.I)


@dataclass
class AudioTrack:
    outcome: str
    reason: str
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # mono, SAMPLE_RATE
    stream: str = ""  # ffmpeg's description of the stream it decoded

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def audio_command(path: str | Path) -> list[str]:
    # fmt: off
    return [
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-threads", "1", "-i", str(path),
        "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "pipe:1",
    ]
    # fmt: on


def decode_audio(path: str | Path, *, timeout: float | None = None, stop: StopSwitch | None = None) -> AudioTrack:
    """The trailer's sound as mono float32 at ``SAMPLE_RATE``; bad input never raises.

    Like ``lib.frames.extract.extract_trailer``: ffmpeg runs in a session of its own, and a
    decode stopped through ``stop`` or by a signal from outside raises ``Interrupted``."""
    path = Path(path)
    if stop is not None and stop.stopped:
        raise Interrupted(f"{path.name}: stopped before decoding its sound")
    try:
        proc = subprocess.Popen(
            audio_command(path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return AudioTrack("unreadable", f"could not start ffmpeg: {exc}")
    if stop is not None:
        stop._track(proc)
    timed_out = threading.Event()

    def _time_out() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, _time_out) if timeout else None
    if timer is not None:
        timer.start()
    try:
        out, err = proc.communicate()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if stop is not None:
            stop._forget(proc)
    if stop is not None and stop.stopped:
        raise Interrupted(f"{path.name}: sound decode stopped; nothing recorded")
    if timed_out.is_set():
        return AudioTrack("unreadable", f"ffmpeg timed out after {timeout:g} s")
    if -proc.returncode in _OUTSIDE_STOPS:
        raise Interrupted(f"{path.name}: ffmpeg was stopped by {signal.Signals(-proc.returncode).name} from outside")
    log = err.decode("utf-8", "replace").splitlines()
    streams = [m.group(1) for line in log if (m := _AUDIO_STREAM.match(line))]
    if not streams:
        if any(_NO_STREAM.search(line) for line in log) or proc.returncode == 0:
            return AudioTrack("no_audio", "the file has no audio stream")
        return AudioTrack("unreadable", _last_error(log) or f"ffmpeg exited with code {proc.returncode}")
    described = streams[0].split(",")[0].strip()
    samples = np.frombuffer(out[: len(out) // 4 * 4], dtype="<f4").astype(np.float32)
    if len(samples) == 0:
        why = _last_error(log) or f"ffmpeg exited with code {proc.returncode}"
        return AudioTrack("unreadable", f"no sound decodes ({why})", stream=described)
    samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    reason = "" if proc.returncode == 0 else f"decoding stopped early: {_last_error(log) or proc.returncode}"
    return AudioTrack("ok", reason, samples, described)


def _last_error(log: list[str]) -> str:
    errors = [line for line in log if re.search(r"error|invalid|failed|could not", line, re.I)]
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", errors[-1]).strip() if errors else ""


# -- log-mel windows ---------------------------------------------------------------------
def log_mel(samples: np.ndarray) -> np.ndarray:
    """``(steps, N_MELS)`` float32 dB, one row every ``HOP`` samples (centred frames)."""
    import librosa  # imported here: the frames stage's other paths never need it

    if len(samples) == 0:
        return np.full((0, N_MELS), FLOOR_DB, np.float32)
    power = librosa.feature.melspectrogram(
        y=np.asarray(samples, np.float32), sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmax=FMAX
    )
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).T.astype(np.float32)


def kept_frame_times(n_kept: int, step: float, step_unit: str, fps: float | None, duration: float | None) -> np.ndarray:
    """Seconds at which the kept frames are shown: ``i * step / fps`` for a step in frames
    (the average rate; ``duration / (n_kept * step)`` frames a second when ffmpeg gave
    none), ``i * step`` for a step in seconds (each bin's first frame, to within a frame)."""
    i = np.arange(n_kept, dtype=np.float64)
    if step_unit == "seconds":
        return i * float(step)
    rate = fps or (n_kept * step / duration if duration else 25.0)
    return i * float(step) / rate


def logmel_windows(samples: np.ndarray | None, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(windows ``(k, WINDOW_STEPS, N_MELS)`` float16, present ``(k,)`` bool): the sound
    from each kept frame's time on, ``WINDOW_SECONDS`` long. No sound (``None``) gives
    floor-valued windows, none present."""
    k = len(times)
    windows = np.full((k, WINDOW_STEPS, N_MELS), FLOOR_DB, np.float32)
    present = np.zeros(k, bool)
    if samples is not None and len(samples):
        spec = log_mel(samples)
        for j, t in enumerate(times):
            start = int(round(t * SAMPLE_RATE / HOP))
            part = spec[start : start + WINDOW_STEPS]
            if len(part):
                windows[j, : len(part)] = part
                present[j] = True
    return windows.astype(DTYPE), present


# -- computable features -------------------------------------------------------------------
def audio_features(samples: np.ndarray | None) -> dict[str, float]:
    """One trailer's ``AUDIO_FEATURES``; NaN throughout when it has no sound (the baseline fills
    them with the training films' medians, like a failed video measurement)."""
    import librosa

    nan = {k: float("nan") for k in AUDIO_FEATURES}
    if samples is None or len(samples) < N_FFT:
        return nan
    y = np.asarray(samples, np.float32)
    rms_db = 20 * np.log10(np.maximum(librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)[0], 1e-5))
    loud = rms_db >= SILENT_DB
    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    centroid = librosa.feature.spectral_centroid(S=spec, sr=SAMPLE_RATE)[0]
    rolloff = librosa.feature.spectral_rolloff(S=spec, sr=SAMPLE_RATE, roll_percent=0.85)[0]
    flatness = librosa.feature.spectral_flatness(S=spec)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)[0]
    onset_env = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=SAMPLE_RATE, hop_length=HOP)
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=SAMPLE_RATE, hop_length=HOP)[0]
    n = min(len(loud), len(centroid), len(zcr))
    sound = loud[:n]

    def mean_of_sound(values: np.ndarray) -> float:
        values = values[:n][sound]
        return float(values.mean()) if len(values) else float("nan")

    audible = rms_db[loud]
    return {
        "audio_rms_db_mean": float(audible.mean()) if len(audible) else SILENT_DB,
        "audio_rms_db_std": float(audible.std()) if len(audible) else 0.0,
        "audio_dynamic_range": float(np.percentile(audible, 95) - np.percentile(audible, 5)) if len(audible) else 0.0,
        "audio_silence_share": float(1.0 - loud.mean()),
        "audio_zcr_mean": mean_of_sound(zcr),
        "audio_centroid_mean": mean_of_sound(centroid),
        "audio_rolloff_mean": mean_of_sound(rolloff),
        "audio_flatness_mean": mean_of_sound(flatness),
        "audio_flux_mean": float(onset_env.mean()),
        "audio_onset_rate": float(len(onsets) / (len(y) / SAMPLE_RATE)),
        "audio_tempo": float(tempo),
    }


# -- the frames stage's cache, read back ----------------------------------------------------
def audio_problem(audio_dir: str | Path | None, n_rows: int) -> str | None:
    """Why ``audio_dir`` cannot serve a store of ``n_rows`` frames (None: it can)."""
    if audio_dir is None:
        return "no audio_dir given"
    audio_dir = Path(audio_dir)
    if not (audio_dir / LOGMEL_FILE).is_file() or not (audio_dir / PRESENT_FILE).is_file():
        return f"no sound cached in {audio_dir}; run the frames stage"
    rows = np.load(audio_dir / LOGMEL_FILE, mmap_mode="r").shape
    if rows != (n_rows, WINDOW_STEPS, N_MELS):
        return f"{audio_dir / LOGMEL_FILE} is {rows}, the store needs ({n_rows}, {WINDOW_STEPS}, {N_MELS}); rerun the frames stage"
    return None


def load_sound(audio_dir: str | Path, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(log-mel windows, memory-mapped, row ``i`` for frame ``i`` of the store; present per row)."""
    if problem := audio_problem(audio_dir, n_rows):
        raise ValueError(problem)
    audio_dir = Path(audio_dir)
    return np.load(audio_dir / LOGMEL_FILE, mmap_mode="r"), np.load(audio_dir / PRESENT_FILE)
