"""The frames stage's encoder output: each kept frame decoded at the encoder's own size by the
same ffmpeg run, encoded at once, kept as float16 vectors (lib.encoders.native).

Two encoders: a tiny keras-hub preset (fast; the stage's bookkeeping, resumption, bad input),
and the offline ImageNet EfficientNet-Lite0 on a 720p video made of scikit-image's photos
(the real pixels the thumbnail path got wrong)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import lib.frames.stage as stage
from lib.core.ffmpeg import ffmpeg_exe
from lib.core.params import FrameSettings
from lib.encoders import embeddings as E
from lib.encoders.native import NativeEncoder, native_encoder
from lib.encoders.presets import load_preset_encoder
from lib.frames.extract import extract_trailer
from lib.frames.store import FrameStore

keras_hub = pytest.importorskip("keras_hub")

SETTINGS = FrameSettings(step=6, size=16, min_seconds=None, max_seconds=None)


def render(path: Path, photos, seconds: float = 2.0, fps: int = 24, width: int = 1280, height: int = 720) -> Path:
    """A video of ``photos``, each filling the frame and panned slowly left to right (H.264, yuv420p)."""
    from PIL import Image

    # fmt: off
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(path)]
    # fmt: on
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    n = round(seconds * fps)
    for photo in photos:
        h, w = photo.shape[:2]
        scale = max(width / w, height / h) * 1.15  # a little larger than the frame: room to pan
        big = np.asarray(Image.fromarray(photo).resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS))
        top = (big.shape[0] - height) // 2
        for i in range(n):
            left = round((big.shape[1] - width) * i / (n - 1))
            proc.stdin.write(np.ascontiguousarray(big[top : top + height, left : left + width]).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return path


def make_clip(path: Path, seconds: float, source: str = "testsrc2") -> Path:
    # fmt: off
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi",
                    "-i", f"{source}=size=96x54:rate=24:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    # fmt: on
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> NativeEncoder:
    """A ~80 k-parameter keras-hub preset whose converter takes 24x24 and crops to it."""
    from test_tsn_preset import save_tiny_preset

    folder = save_tiny_preset(tmp_path_factory.mktemp("tiny_preset"), image_size=(24, 24))
    return native_encoder(str(folder), batch_size=4)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    trailers = tmp_path_factory.mktemp("native_trailers")
    for name, seconds, source in (
        ("a", 1.0, "testsrc2"),
        ("b", 1.5, "testsrc"),
        ("c", 2.0, "smptebars"),
        ("d", 1.2, "rgbtestsrc"),
    ):
        make_clip(trailers / f"{name}.mp4", seconds, source)
    (trailers / "broken.mp4").write_bytes(b"not a video at all")
    films = pd.DataFrame({"movieId": [1, 2, 3, 4, 5, 6], "youtubeId": ["a", "b", "missing", "c", "broken", "d"]})
    return trailers, films


def run(clips, tmp_path, encoder, **kw):
    trailers, films = clips
    return stage.run_frames_stage(
        films,
        trailers,
        tmp_path / "out",
        tmp_path / "parts",
        SETTINGS,
        progress=False,
        encoder=encoder,
        embed_dir=tmp_path / "embed",
        **kw,
    )


def test_the_encoder_takes_the_converters_size_and_policy(tiny):
    assert (tiny.size, tiny.resize, tiny.dim) == (24, "crop", 64)  # keras-hub's converters crop to the aspect ratio
    frames = np.random.default_rng(0).integers(0, 256, (9, 24, 24, 3), dtype=np.uint8)
    vectors = tiny.encode(frames)
    assert vectors.shape == (9, 64) and vectors.dtype == np.float16
    # the same frames give the same vectors, whichever frames share their batch (up to the last bits)
    np.testing.assert_array_equal(tiny.encode(frames), vectors)
    np.testing.assert_allclose(tiny.encode(frames[4:7]), vectors[4:7], rtol=1e-2, atol=1e-3)
    with pytest.raises(ValueError, match="expected uint8"):
        tiny.encode(np.zeros((2, 16, 16, 3), np.uint8))


def test_the_stage_embeds_the_stores_frames_decoded_at_the_encoders_size(clips, tmp_path, tiny):
    trailers, films = clips
    result = run(clips, tmp_path, tiny)
    assert result.manifest["outcome"].tolist() == ["ok", "ok", "missing", "ok", "unreadable", "ok"]
    store = FrameStore(tmp_path / "out" / "store")
    vectors = E.load_embeddings(tmp_path / "embed", store, tiny.preset)
    assert vectors.shape == (len(store.frames), 64) and vectors.dtype == np.float16
    meta = E.read_meta(tmp_path / "embed")
    assert meta["source"] == "video" and meta["image_size"] == [24, 24] and meta["resize"] == "crop"
    assert meta["frames"] == {**SETTINGS.as_dict(), "size": 24, "resize": "crop"}
    assert "seconds" not in meta  # nothing that changes run to run
    for movie_id, youtube_id in store.index[["movieId", "youtubeId"]].itertuples(index=False):
        # the same frame indices as the 64x64 store, each decoded straight from the video at 24x24
        direct = extract_trailer(trailers / f"{youtube_id}.mp4", **{**SETTINGS.as_dict(), "size": 24, "resize": "crop"})
        assert len(direct.frames) == store.n_frames(movie_id)
        row = store.index.loc[movie_id]
        np.testing.assert_array_equal(vectors[row["start"] : row["stop"]], tiny.encode(direct.frames))
    assert not (tmp_path / "parts").exists()


def test_an_interrupted_run_resumes_to_byte_identical_embeddings(clips, tmp_path, tiny, monkeypatch):
    real = stage.extract.extract_trailer
    calls = []

    def interrupted(path, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(path)
        return real(path, **kw)

    monkeypatch.setattr(stage.extract, "extract_trailer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(clips, tmp_path / "resumed", tiny, n_jobs=1)
    assert len(list((tmp_path / "resumed" / "parts").glob("*/*.emb.npy"))) >= 1
    assert not (tmp_path / "resumed" / "embed" / E.META_FILE).exists()
    monkeypatch.setattr(stage.extract, "extract_trailer", real)
    resumed = run(clips, tmp_path / "resumed", tiny, n_jobs=1)
    assert resumed.resumed == 2 and resumed.extracted == 4  # six trailers, two finished before the interruption

    run(clips, tmp_path / "fresh", tiny, n_jobs=2)  # uninterrupted, in parallel
    for name in (E.EMBEDDINGS_FILE, E.META_FILE):
        assert (tmp_path / "resumed" / "embed" / name).read_bytes() == (
            tmp_path / "fresh" / "embed" / name
        ).read_bytes()
    assert (tmp_path / "resumed" / "out" / "store" / "frames.npy").read_bytes() == (
        tmp_path / "fresh" / "out" / "store" / "frames.npy"
    ).read_bytes()


def test_a_part_without_its_vectors_is_redone_and_another_encoder_reuses_nothing(clips, tmp_path, tiny, monkeypatch):
    run(clips, tmp_path, tiny, keep_parts=True)
    (part_dir,) = (tmp_path / "parts").iterdir()
    (part_dir / "b.emb.npy").unlink()  # frames and outcome written, vectors lost
    redone = []
    real = stage.extract.extract_trailer
    monkeypatch.setattr(
        stage.extract, "extract_trailer", lambda path, **kw: redone.append(path and path.stem) or real(path, **kw)
    )
    again = run(clips, tmp_path, tiny, keep_parts=True)
    assert redone == ["b"] and again.resumed == 5
    # without an encoder the parts are keyed apart: the frames-only run decodes everything again
    plain = stage.run_frames_stage(clips[1], clips[0], tmp_path / "plain", tmp_path / "parts", SETTINGS, progress=False)
    assert plain.resumed == 0


def test_a_trailer_whose_encoder_frames_do_not_match_is_recorded_not_raised(clips, tmp_path, tiny, monkeypatch):
    real_read = stage.extract.FramesOutput.read
    # the first trailer decoded loses a frame of its encoder output; every other one is intact
    state = {"done": False}

    def lose_one(self):
        frames = real_read(self)
        if not state["done"] and len(frames):
            state["done"] = True
            return frames[:-1]
        return frames

    monkeypatch.setattr(stage.extract.FramesOutput, "read", lose_one)
    result = run(clips, tmp_path, tiny, n_jobs=1)
    bad = result.manifest[result.manifest["reason"].str.contains("24x24 output gave")]
    assert len(bad) == 1 and (bad["outcome"] == "unreadable").all()
    store = FrameStore(tmp_path / "out" / "store")
    assert len(store) == 3 and E.cache_problem(tmp_path / "embed", store, tiny.preset) is None


# --- real pixels: the offline ImageNet encoder on scikit-image's photos ----------------------


@pytest.fixture(scope="module")
def photos_run(tmp_path_factory):
    """The frames stage with EfficientNet-Lite0 over a 720p pan across coffee, then chelsea."""
    from skimage import data

    from lib.core.native_stderr import import_keras

    import_keras()
    tmp = tmp_path_factory.mktemp("photos")
    (tmp / "trailers").mkdir()
    render(tmp / "trailers" / "photos.mp4", [data.coffee(), data.chelsea()])
    encoder = native_encoder("efficientnet_lite0_pypi", batch_size=8)
    settings = FrameSettings(step=8, min_seconds=None, max_seconds=None)  # 6 frames per photo, 64x64 store
    films = pd.DataFrame({"movieId": [7], "youtubeId": ["photos"]})
    stage.run_frames_stage(
        films,
        tmp / "trailers",
        tmp / "out",
        tmp / "parts",
        settings,
        progress=False,
        encoder=encoder,
        embed_dir=tmp / "embed",
    )
    store = FrameStore(tmp / "out" / "store")
    return tmp, encoder, store, settings


def imagenet_top1(vectors: np.ndarray) -> list[str]:
    """The converted preset's own ImageNet head on pooled vectors (what the cache holds)."""
    from lib.encoders.efficientnet_lite0 import resolve_preset

    classifier = keras_hub.models.ImageClassifier.from_preset(resolve_preset("efficientnet_lite0_pypi"))
    probs = classifier.output_dense(keras.ops.convert_to_tensor(np.asarray(vectors, dtype="float32")))
    return [top[0][0] for top in keras_hub.utils.decode_imagenet_predictions(keras.ops.convert_to_numpy(probs), top=1)]


def test_cached_vectors_are_the_encoder_on_a_direct_native_decode(photos_run):
    tmp, encoder, store, settings = photos_run
    cached = np.asarray(E.load_embeddings(tmp / "embed", store, encoder.preset), dtype=np.float32)
    direct = extract_trailer(
        tmp / "trailers" / "photos.mp4", **{**settings.as_dict(), "size": 224, "resize": encoder.resize}
    ).frames
    assert (encoder.size, encoder.resize) == (224, "crop") and len(direct) == len(cached) == 12
    encoded = np.asarray(encoder.model.predict(direct, verbose=0), dtype=np.float32)
    cosine = (cached * encoded).sum(1) / np.linalg.norm(cached, axis=1) / np.linalg.norm(encoded, axis=1)
    assert cosine.min() >= 0.99, cosine


def test_the_cache_sees_an_espresso_where_the_thumbnail_path_did_not(photos_run):
    tmp, encoder, store, _ = photos_run
    cached = E.load_embeddings(tmp / "embed", store, encoder.preset)
    top1 = imagenet_top1(cached)
    assert top1[:6] == ["espresso"] * 6, top1  # the coffee photo, every frame of the pan
    assert all("cat" in name for name in top1[6:]), top1  # chelsea: tabby / tiger / Egyptian cat
    # the old path: the 64x64 store upsampled to 224 by the converter (the fallback of a run without the cache)
    thumbnails = load_preset_encoder(encoder.preset, store.frame_shape)  # 64x64 in, resized to 224 inside
    thumbs = NativeEncoder(thumbnails, encoder.preset, store.frame_shape[0], "crop", 8).encode(np.asarray(store.frames))
    old = imagenet_top1(thumbs)
    assert old[:6].count("espresso") <= 3, old  # measured: 1 of 6 (consomme, whiskey_jug, ...)


def test_trailer_genres_decodes_at_the_trained_size_and_agrees_with_the_cache(photos_run, capsys):
    """A frozen-encoder tsn trained on the cache records 224x224 crop; the CLI decodes the video so
    and scores what evaluate scores from the cache."""
    from test_tsn_preset import tsn_section

    from lib.apps.infer import main
    from lib.core.genres import GENRES
    from lib.core.params import TsnParams, parse, to_dict
    from lib.models import tsn
    from lib.models.info import ModelInfo
    from lib.models.kinds import get_kind, load_run

    tmp, encoder, store, _ = photos_run
    kind = get_kind("tsn")
    params = parse(TsnParams, tsn_section(encoder.preset, pooling="mean"), "train.tsn")
    keras.utils.set_random_seed(3)
    run_dir = tmp / "run"
    run_dir.mkdir()
    tsn.build_tsn_head(params.n_segments, encoder.dim, **tsn.head_kwargs(params)).save(run_dir / "model.keras")
    meta = E.read_meta(tmp / "embed")
    kind.finish(params, run_dir / "model.keras", [224, 224, 3])
    ModelInfo(
        model="tsn",
        genres=list(GENRES),
        frame_shape=[224, 224, 3],
        frames=FrameSettings(**meta["frames"]),
        settings=to_dict(params),
        seed=3,
        extra={"cached_embeddings": True, "embeddings": meta},
    ).write(run_dir)

    assert main([str(run_dir), str(tmp / "trailers" / "photos.mp4")]) == 0
    report = capsys.readouterr().out
    assert "frames: every 8 frames, 224x224 crop, as the model was trained (model_info.json)" in report, report
    shown = {
        m.group(1): float(m.group(2))
        for m in (re.match(r"^\s+(\S+)\s+([01]\.\d{3})\s", line) for line in report.splitlines())
        if m
    }
    run = load_run(run_dir)
    assert kind.scored_from(run.info, store, tmp / "embed") == "cached embeddings"
    cached, _ = run.predict_films(store, [7], embed_dir=tmp / "embed")
    assert set(shown) == set(GENRES)
    np.testing.assert_allclose([shown[g] for g in GENRES], cached.loc[7, list(GENRES)].to_numpy(float), atol=2e-3)
    # evaluate never feeds this run the 64x64 store in place of its cache
    with pytest.raises(ValueError, match="takes 224x224 frames decoded from the videos"):
        run.predict_films(store, [7], embed_dir=tmp / "nowhere")
