"""The soundtrack: decoded from real containers, cut into windows aligned with the kept frames,
measured, cached by the frames stage, and masked by the models when it is missing.

Every file here is made by the test with the bundled ffmpeg: mp3 in mp4, Vorbis in WebM,
AAC 5.1 in mp4, AC-3 in AVI, and an mp4 with no audio stream at all.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from lib.core.ffmpeg import ffmpeg_exe
from lib.frames import audio as A
from lib.frames import stage
from lib.frames.store import FrameStore

SECONDS = 12  # 288 frames at 24 fps: frames 0, 100 and 200 are kept (0 s, 4.17 s, 8.33 s)
STEP_S = 100 / 24
SETTINGS = dict(step=100, step_unit="frames", size=16, resize="squash", min_seconds=None, max_seconds=None)
CONTAINERS = {
    # name: (file, video codec args, audio filter, audio codec args, codec ffmpeg names)
    "mp3_in_mp4": ("a.mp4", ["-c:v", "libx264"], "sine=frequency=440", ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3"),
    "vorbis_in_webm": (
        "b.webm",
        ["-c:v", "libvpx", "-b:v", "100k"],
        "sine=frequency=440",
        ["-c:a", "libvorbis"],
        "vorbis",
    ),
    "aac_51_in_mp4": ("c.mp4", ["-c:v", "libx264"], "sine=frequency=440", ["-c:a", "aac", "-ac", "6"], "aac"),
    "ac3_in_avi": ("d.avi", ["-c:v", "mpeg4"], "sine=frequency=440", ["-c:a", "ac3", "-ac", "2"], "ac3"),
    "no_audio": ("e.mp4", ["-c:v", "libx264"], None, [], None),
}


def make_clip(path, video_args, audio_filter, audio_args, seconds=SECONDS, then=""):
    """``audio_filter``: a lavfi source (None: no audio stream); ``then``: filters after it."""
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size=64x36:rate=24:duration={seconds}"]
    if audio_filter:
        chain = f"{audio_filter}:sample_rate=44100:duration={seconds}" + (f",{then}" if then else "")
        cmd += ["-f", "lavfi", "-i", chain]
    cmd += [*video_args, "-pix_fmt", "yuv420p", *audio_args, str(path)]
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sound")
    for file, video, afilter, acodec, _ in CONTAINERS.values():
        make_clip(folder / file, video, afilter, acodec)
    return folder


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_every_container_decodes_to_mono_16k_or_says_no_audio(clips, name):
    file, _, afilter, _, codec = CONTAINERS[name]
    track = A.decode_audio(clips / file)
    if afilter is None:
        assert track.outcome == "no_audio" and track.reason and len(track.samples) == 0
        return
    assert track.outcome == "ok", track.reason
    assert codec in track.stream
    assert track.samples.dtype == np.float32 and track.samples.ndim == 1
    assert abs(track.seconds - SECONDS) < 0.15
    # a 440 Hz sine survives the codec: its strongest frequency is 440 Hz at 16 kHz
    spectrum = np.abs(np.fft.rfft(track.samples[: A.SAMPLE_RATE * 4]))
    assert abs(np.argmax(spectrum) * A.SAMPLE_RATE / (A.SAMPLE_RATE * 4) - 440) < 3


def test_a_broken_stream_is_unreadable_not_a_crash(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    track = A.decode_audio(bad)
    assert track.outcome in ("unreadable", "no_audio") and track.reason


def test_windows_start_at_their_frame(tmp_path):
    """Silence, with noise only from 4.5 s to 8 s: inside the window of the kept frame at 4.17 s
    and outside those of the frames at 0 s and 8.33 s. A window cut anywhere else fails."""
    path = tmp_path / "burst.mp4"
    make_clip(
        path,
        ["-c:v", "libx264"],
        "anoisesrc=amplitude=0.5",
        ["-c:a", "aac"],
        then="volume='between(t,4.5,8)':eval=frame",
    )
    track = A.decode_audio(path)
    times = A.kept_frame_times(3, 100, "frames", 24.0, SECONDS)
    assert np.allclose(times, [0, STEP_S, 2 * STEP_S])
    windows, present = A.logmel_windows(track.samples, times)
    assert windows.shape == (3, A.WINDOW_STEPS, A.N_MELS) and windows.dtype == np.float16
    assert present.all()
    loudness = windows.astype(np.float32).mean(axis=(1, 2))
    assert loudness[1] > loudness[0] + 30 and loudness[1] > loudness[2] + 30, loudness
    # within window 1 the burst starts ~0.33 s in (step 8 of 100) and stops ~3.83 s in (step 96)
    per_step = windows[1].astype(np.float32).mean(axis=1)
    assert per_step[:5].mean() < per_step[20:80].mean() - 30
    assert per_step[20:80].mean() > per_step[98:].mean() + 30


def test_windows_past_the_end_of_the_sound_are_not_present():
    samples = np.random.default_rng(0).normal(0, 0.1, A.SAMPLE_RATE * 5).astype(np.float32)  # 5 s of sound
    windows, present = A.logmel_windows(samples, np.array([0.0, 4.0, 8.0]))
    assert present.tolist() == [True, True, False]
    assert (windows[2] == np.float16(A.FLOOR_DB)).all()
    none, nothing = A.logmel_windows(None, np.array([0.0, 4.0]))
    assert not nothing.any() and (none == np.float16(A.FLOOR_DB)).all()


def _clicks(rate_hz: float, seconds: float = 10.0, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * A.SAMPLE_RATE)) / A.SAMPLE_RATE
    env = np.exp(-np.mod(t, 1.0 / rate_hz) * 40.0)
    return (0.5 * env * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_audio_features_follow_the_sound():
    fast, slow = A.audio_features(_clicks(4.0)), A.audio_features(_clicks(0.5))
    assert set(fast) == set(A.AUDIO_FEATURES)
    assert fast["audio_onset_rate"] > 2 * slow["audio_onset_rate"]
    bright, dark = A.audio_features(_clicks(2.0, freq=3000.0)), A.audio_features(_clicks(2.0, freq=300.0))
    assert bright["audio_centroid_mean"] > dark["audio_centroid_mean"] + 1000
    noise = np.random.default_rng(1).normal(0, 0.2, A.SAMPLE_RATE * 5).astype(np.float32)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(A.SAMPLE_RATE * 5) / A.SAMPLE_RATE)).astype(np.float32)
    half = tone.copy()
    half[len(half) // 2 :] = 0
    assert A.audio_features(tone)["audio_silence_share"] < 0.05
    assert abs(A.audio_features(half)["audio_silence_share"] - 0.5) < 0.05
    assert A.audio_features(noise)["audio_flatness_mean"] > 10 * A.audio_features(tone)["audio_flatness_mean"]
    assert all(np.isnan(v) for v in A.audio_features(None).values())


def test_the_frames_stage_caches_sound_for_every_container(clips, tmp_path):
    films = pd.DataFrame({"movieId": range(1, 6), "youtubeId": [f.split(".")[0] for f, *_ in CONTAINERS.values()]})
    from lib.core.params import FrameSettings

    result = stage.run_frames_stage(films, clips, tmp_path / "out", tmp_path / "parts", FrameSettings(**SETTINGS))
    manifest = stage.read_manifest(tmp_path / "out" / stage.MANIFEST_FILE)
    assert (manifest["outcome"] == "ok").all(), manifest
    assert manifest["audio"].tolist() == ["ok"] * 4 + ["no_audio"]
    assert manifest.loc[4, "audio_reason"] == "the file has no audio stream"
    store = FrameStore(tmp_path / "out" / stage.STORE_DIR)
    windows, present = A.load_sound(store.directory, len(store.frames))
    assert windows.shape == (len(store.frames), A.WINDOW_STEPS, A.N_MELS) and len(store.frames) == 15
    assert present.tolist() == [True] * 12 + [False] * 3
    meta = json.loads((store.directory / "audio.json").read_text())
    assert meta["films"] == {"ok": 4, "no_audio": 1, "unreadable": 0} and meta["windows_with_sound"] == 12
    features = pd.read_csv(tmp_path / "out" / "features.csv")
    assert features.loc[:3, list(A.AUDIO_FEATURES)].notna().all().all()
    assert features.loc[4, list(A.AUDIO_FEATURES)].isna().all()
    # the same windows as a direct cut of the same file's sound
    direct, _ = A.logmel_windows(
        A.decode_audio(clips / "a.mp4").samples, A.kept_frame_times(3, 100, "frames", 24.0, 12)
    )
    assert np.array_equal(windows[:3], direct)
    assert result.extracted == 5
    # a part whose windows are gone is decoded again, not consolidated without them
    parts = tmp_path / "parts2"
    stage.run_frames_stage(films, clips, tmp_path / "o2", parts, FrameSettings(**SETTINGS), keep_parts=True)
    (mel,) = list(parts.rglob(f"a{stage.AUDIO_SUFFIX}"))
    mel.unlink()
    again = stage.run_frames_stage(films, clips, tmp_path / "o2", parts, FrameSettings(**SETTINGS), keep_parts=True)
    assert (again.extracted, again.resumed) == (1, 4)
    assert (tmp_path / "o2/store/logmel.npy").read_bytes() == (tmp_path / "out/store/logmel.npy").read_bytes()


def test_a_missing_soundtrack_is_masked_by_the_model():
    from lib.models import tsn

    head = tsn.build_tsn_head(
        4, 8, audio_encoder=tsn.build_audio_encoder(filters=(4, 4)), pooling="attention", dim=8, dense=[8], dropout=0.0
    )
    rng = np.random.default_rng(0)
    base = {
        "embeddings": rng.normal(size=(2, 4, 8)).astype(np.float32),
        "mask": np.ones((2, 4), bool),
        "audio": rng.normal(-40, 10, size=(2, 4, A.WINDOW_STEPS, A.N_MELS)).astype(np.float32),
        "audio_mask": np.array([[False] * 4, [True, True, False, False]]),
    }
    other = {**base, "audio": base["audio"] + rng.normal(0, 20, size=base["audio"].shape).astype(np.float32)}
    a, b = head.predict(base, verbose=0), head.predict(other, verbose=0)
    assert np.allclose(a[0], b[0], atol=1e-6), "a film without sound must not hear the padding"
    assert not np.allclose(a[1], b[1], atol=1e-4), "a film with sound must hear it"
    # only the masked windows of film 1 change: same output
    masked_only = {**base, "audio": base["audio"].copy()}
    masked_only["audio"][1, 2:] += 50
    assert np.allclose(head.predict(masked_only, verbose=0)[1], a[1], atol=1e-6)


def test_trailer_genres_cuts_the_sound_of_a_new_file(clips):
    from lib.apps.infer import load_trailer
    from lib.core.params import FrameSettings

    settings = FrameSettings(**SETTINGS)
    heard = load_trailer(str(clips / "b.webm"), settings, clips, hear=True)
    windows, present = heard.sound
    assert windows.shape == (3, A.WINDOW_STEPS, A.N_MELS) and present.all() and not heard.note
    silent = load_trailer(str(clips / "e.mp4"), settings, clips, hear=True)
    assert not silent.sound[1].any() and "sound masked: no_audio" in silent.note
    assert load_trailer(str(clips / "b.webm"), settings, clips).sound is None


@pytest.mark.parametrize("kind", ["tsn_audio", "tsn_av"])
def test_trailer_genres_scores_a_model_that_hears_with_the_files_sound(clips, tmp_path, capsys, kind):
    """A tiny scratch model that hears (untrained: the wiring is under test), saved with the
    model_info.json the train stage writes: the CLI cuts the new file's sound into the windows
    of its kept frames and the model's scores are what it gives on exactly those inputs."""
    from lib.apps.infer import main
    from lib.core.genres import GENRES
    from lib.core.params import FrameSettings, TsnParams, parse
    from lib.loaders.segments import film_inputs
    from lib.models import tsn
    from lib.models.info import ModelInfo

    section = {
        "n_segments": 4,
        "pooling": "attention",
        "encoder": "scratch",
        "frozen": True,
        "scratch_filters": [4],
        "dim": 8,
        "heads": 2,
        "layers": 1,
        "dense": [8],
        "dropout": 0.0,
        "lr": 1e-3,
        "batch_size": 2,
        "batchnorm": "precise",
        "epochs": 1,
        "patience": 1,
        "embed_batch_size": 8,
        "modalities": ["audio"] if kind == "tsn_audio" else ["frames", "audio"],
        "audio_filters": [4, 4],
    }
    settings = FrameSettings(**SETTINGS)
    model = tsn.build_tsn(parse(TsnParams, section, "train.tsn"), (16, 16, 3), band_stats=([-50.0] * 64, [400.0] * 64))
    model.save(tmp_path / "model.keras")
    ModelInfo(
        model=kind,
        genres=list(GENRES),
        frame_shape=[16, 16, 3],
        frames=settings,
        settings=section,
        seed=0,
        extra={"audio": A.DESCRIPTION},
    ).write(tmp_path)
    assert main([str(tmp_path), str(clips / "a.mp4"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "sound: the 4-s log-mel window from each of those frames (3 hold sound)" in report["used"]
    frames = stage.extract.extract_trailer(clips / "a.mp4", **SETTINGS).frames
    sound = A.logmel_windows(A.decode_audio(clips / "a.mp4").samples, A.kept_frame_times(3, 100, "frames", 24.0, 12))
    inputs = film_inputs(frames, 4, sound)
    if kind == "tsn_audio":
        inputs = {k: inputs[k] for k in ("audio", "audio_mask")}
    expected = model.predict(inputs, verbose=0)[0]
    assert [report["scores"][g] for g in GENRES] == pytest.approx(expected.tolist(), abs=1e-5)
    # the same model on a file without sound: scored, its sound masked, and the report says so
    assert main([str(tmp_path), str(clips / "e.mp4"), "--json"]) == 0
    silent = json.loads(capsys.readouterr().out)
    assert "(0 hold sound)" in silent["used"] and "sound masked: no_audio" in silent["note"]


def test_a_hung_decode_is_unreadable_and_a_stopped_one_records_nothing(clips):
    from lib.frames.extract import Interrupted, StopSwitch

    slow = A.decode_audio(clips / "a.mp4", timeout=0.001)  # ffmpeg cannot even start in a millisecond
    assert slow.outcome == "unreadable" and "timed out" in slow.reason
    stop = StopSwitch()
    stop.stop()
    with pytest.raises(Interrupted):
        A.decode_audio(clips / "a.mp4", stop=stop)
