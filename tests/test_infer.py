"""The inference command on generated trailers, a folder of frames, a local URL, and bad input."""
from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import threading

import cv2
import imageio_ffmpeg
import keras
import numpy as np
import pytest

from lib.genres import GENRES
from lib.infer import main
from lib.paths import ROOT

DEPTH, SIZE, STEP = 3, 64, 10

extract = pytest.importorskip("lib.extract", reason="lib.extract (frames stage) not written yet")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny untrained model with the study's interface: (depth, 64, 64, 3) uint8 -> 18 sigmoids."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((DEPTH, SIZE, SIZE, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling3D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(GENRES), activation="sigmoid")(x))
    folder = tmp_path_factory.mktemp("model")
    model.save(folder / "model.keras")
    info = {"model": "tiny", "slice_depth": DEPTH, "size": SIZE, "genres": list(GENRES), "step": STEP, "step_unit": "frames", "resize": "squash"}
    (folder / "model_info.json").write_text(json.dumps(info))
    return folder / "model.keras"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2 s, 25 fps test pattern: 50 frames, every 10th kept -> 5 frames -> 2 slices of 3."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=96x64:rate=25",
         "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)],
        check=True,
    )
    return path


@pytest.fixture
def server(clip):
    """A local HTTP server on 127.0.0.1 serving the clip's folder, stopped after the test."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the server's request log out of stderr
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(clip.parent)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def scores_in(report: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^  (\S+)\s+([01]\.\d{3})\s", report, re.M)}


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("trailer-genres: error: ") and "Traceback" not in captured.err
    assert captured.out == ""
    return lines[0]


def test_video_file_report_uses_the_pipeline_path(model_path, clip, capsys):
    assert main([str(model_path), str(clip), "--lower", "0.3", "--upper", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "slices used: 2 of 3 frames from 5 kept frames (1 zero-padded" in out
    scores = scores_in(out)
    assert set(scores) == set(GENRES)
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    # The same extraction, slicing and mean as the pipeline, computed here directly.
    from lib.slicing import slice_film

    frames = extract.extract_trailer(clip, step=STEP, step_unit="frames", size=SIZE, resize="squash", min_seconds=None, max_seconds=None).frames
    expected = keras.saving.load_model(model_path).predict(slice_film(frames, DEPTH), verbose=0).mean(axis=0)
    for g, value in zip(GENRES, expected):
        assert scores[g] == pytest.approx(value, abs=6e-4)
    confident = re.search(r"^confident \(> 0.7\): (.*)$", out, re.M)[1]
    assert confident == (", ".join(g for g in sorted(scores, key=scores.get, reverse=True) if scores[g] > 0.7) or "(none)")


def test_folder_of_frames(model_path, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(40, 60), (64, 64), (90, 30), (50, 50)]):  # sizes differ on purpose
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert main([str(model_path), str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "slices used: 2 of 3 frames from 4 kept frames" in out and len(scores_in(out)) == len(GENRES)


def test_url_served_locally(model_path, server, capsys):
    assert main([str(model_path), f"{server}/clip.mp4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"trailer: {server}/clip.mp4 -> ")
    assert "slices used: 2 of 3" in out


def test_404_url(model_path, server, capsys):
    assert main([str(model_path), f"{server}/no-such-trailer.mp4"]) != 0
    assert "cannot download" in one_error_line(capsys)


def test_missing_file(model_path, tmp_path, capsys):
    assert main([str(model_path), str(tmp_path / "nope.mp4")]) != 0
    assert "not found" in one_error_line(capsys)


def test_zero_byte_file(model_path, tmp_path, capsys):
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert main([str(model_path), str(tmp_path / "empty.mp4")]) != 0
    assert "empty" in one_error_line(capsys)


def test_not_a_video(model_path, tmp_path, capsys):
    (tmp_path / "fake.mp4").write_bytes(b"this is not a video\n" * 100)
    assert main([str(model_path), str(tmp_path / "fake.mp4")]) != 0
    one_error_line(capsys)


def test_folder_without_images(model_path, tmp_path, capsys):
    assert main([str(model_path), str(tmp_path)]) != 0
    assert "no image files" in one_error_line(capsys)


def test_missing_model(clip, tmp_path, capsys):
    assert main([str(tmp_path / "model.keras"), str(clip)]) != 0
    assert "model file not found" in one_error_line(capsys)


def test_command_line_exit_status_without_traceback(model_path, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lib.infer", str(model_path), str(tmp_path / "missing.mp4")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"trailer-genres: error: trailer not found: {tmp_path / 'missing.mp4'}"]
    assert str(ROOT) not in result.stdout


def test_whole_trailer_tsn_model(clip, tmp_path, capsys):
    """A tsn model scores the trailer once, from the centred frame of each segment."""
    from lib import tsn

    keras.utils.set_random_seed(0)
    params = {"n_segments": 8, "pooling": "attention", "encoder": "scratch", "frozen": True, "scratch_filters": [4],
              "dim": 8, "heads": 2, "layers": 1, "dense": [8], "dropout": 0.0}
    model = tsn.build_tsn(params, (SIZE, SIZE, 3))
    model.save(tmp_path / "model.keras")
    info = {"model": "tsn", "slice_depth": DEPTH, "size": SIZE, "genres": list(GENRES), "step": STEP, "step_unit": "frames",
            "resize": "squash", "tsn": {"n_segments": 8, "encoder": "scratch", "frozen": False}}
    (tmp_path / "model_info.json").write_text(json.dumps(info))
    assert main([str(tmp_path / "model.keras"), str(clip)]) == 0
    out = capsys.readouterr().out
    assert "frames used: 5 of 5 kept frames, the centred one of each of 8 segments (3 padded and masked)" in out
    assert "per slice" not in out
    frames = extract.extract_trailer(clip, step=STEP, step_unit="frames", size=SIZE, resize="squash", min_seconds=None, max_seconds=None).frames
    expected = model.predict(tsn.film_inputs(frames, 8), verbose=0)[0]
    scores = scores_in(out)
    for g, value in zip(GENRES, expected):
        assert scores[g] == pytest.approx(value, abs=6e-4)
