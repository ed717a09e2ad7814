"""The inference command on generated trailers, a folder of frames, a local URL, bad input,
and a model from the real train stage trained at another frame step than the paper's."""

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

from lib.apps.infer import main
from lib.core.genres import GENRES
from lib.core.params import FrameSettings, to_dict
from lib.core.paths import ROOT
from lib.frames import extract
from lib.models.info import ModelInfo

DEPTH, SIZE, STEP = 3, 64, 10
SLICE_SECTION = {
    "profile": "tiny",
    "profiles": {
        "tiny": {
            "widths": [4],
            "blocks": [1],
            "first_stride": 1,
            "dense": [4],
            "dropout": 0.0,
            "lr": 1e-3,
            "decay": 0.0,
            "batch_size": 2,
            "batchnorm": "precise",
        }
    },
    "slice_depth": DEPTH,
    "max_slices_per_film": None,
    "epochs": 1,
    "patience": 1,
}


def write_info(folder, model: str, settings: dict) -> None:
    """model_info.json as the train stage writes it (``ModelInfo``), for a model made here."""
    frames = FrameSettings(step=STEP, size=SIZE, min_seconds=None, max_seconds=None)
    ModelInfo(
        model=model, genres=list(GENRES), frame_shape=[SIZE, SIZE, 3], frames=frames, settings=settings, seed=0
    ).write(folder)


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
    # a cnn3d run as far as prediction is concerned: slices of DEPTH frames, one sigmoid per genre
    write_info(folder, "cnn3d", SLICE_SECTION)
    return folder / "model.keras"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2 s, 25 fps test pattern: 50 frames, every 10th kept -> 5 frames -> 2 slices of 3."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=96x64:rate=25",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            str(path),
        ],
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
    from lib.loaders.slicing import slice_film

    frames = extract.extract_trailer(
        clip, step=STEP, step_unit="frames", size=SIZE, resize="squash", min_seconds=None, max_seconds=None
    ).frames
    expected = keras.saving.load_model(model_path).predict(slice_film(frames, DEPTH), verbose=0).mean(axis=0)
    for g, value in zip(GENRES, expected):
        assert scores[g] == pytest.approx(value, abs=6e-4)
    confident = re.search(r"^confident \(> 0.7\): (.*)$", out, re.M)[1]
    assert confident == (
        ", ".join(g for g in sorted(scores, key=scores.get, reverse=True) if scores[g] > 0.7) or "(none)"
    )


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
        [sys.executable, "-m", "lib.apps.infer", str(model_path), str(tmp_path / "missing.mp4")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"trailer-genres: error: trailer not found: {tmp_path / 'missing.mp4'}"
    ]
    assert str(ROOT) not in result.stdout


def test_whole_trailer_tsn_model(clip, tmp_path, capsys):
    """A tsn model scores the trailer once, from the centred frame of each segment."""
    from lib.core.params import TsnParams, parse
    from lib.loaders.segments import film_inputs
    from lib.models import tsn

    keras.utils.set_random_seed(0)
    section = {
        "n_segments": 8,
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
        "modalities": ["frames"],
        "audio_filters": [8, 8],
    }
    model = tsn.build_tsn(parse(TsnParams, section, "train.tsn"), (SIZE, SIZE, 3))
    model.save(tmp_path / "model.keras")
    write_info(tmp_path, "tsn", section)
    assert main([str(tmp_path), str(clip)]) == 0  # a run folder is accepted as the model
    out = capsys.readouterr().out
    assert "frames used: 5 of 5 kept frames, the centred one of each of 8 segments (3 padded and masked)" in out
    assert "per slice" not in out
    frames = extract.extract_trailer(
        clip, step=STEP, step_unit="frames", size=SIZE, resize="squash", min_seconds=None, max_seconds=None
    ).frames
    expected = model.predict(film_inputs(frames, 8), verbose=0)[0]
    scores = scores_in(out)
    for g, value in zip(GENRES, expected):
        assert scores[g] == pytest.approx(value, abs=6e-4)


def test_a_model_info_the_train_stage_did_not_write_is_refused(model_path, clip, tmp_path, capsys):
    (tmp_path / "model.keras").write_bytes(model_path.read_bytes())
    (tmp_path / "model_info.json").write_text(json.dumps({"model": "cnn3d", "slice_depth": DEPTH, "size": SIZE}))
    assert main([str(tmp_path / "model.keras"), str(clip)]) == 2
    line = one_error_line(capsys)
    assert "lacks" in line and "frames" in line and "retrain" in line


def test_a_model_trained_at_step_25_is_scored_with_step_25(tmp_path):
    """The real frames stage extracts at frames.step=25 and the real train notebook writes
    model_info.json; the CLI then extracts a trailer exactly as training did (4 frames of a
    100-frame trailer), not at params.yaml's or the paper's step 100 (1 frame)."""
    import papermill as pm
    import yaml

    from lib.frames.stage import run_frames_stage
    from lib.frames.store import FrameStore
    from lib.prepare.labels import read_labels

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    trailers = tmp_path / "trailers"
    trailers.mkdir()
    rows = []
    for k in range(12):  # 4 s at 25 fps: 100 frames each, a different pattern and hue per film
        yid = f"film{k:02d}"
        subprocess.run(
            [
                ffmpeg,
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=4:size=48x32:rate=25",
                "-vf",
                f"hue=h={k * 30}",
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                str(trailers / f"{yid}.mp4"),
            ],
            check=True,
        )
        rows.append(
            {
                "movieId": k + 1,
                "youtubeId": yid,
                "title": f"Film {k}",
                **{g: int(j % 6 == k % 6) for j, g in enumerate(GENRES)},
                "split": ("train", "train", "val", "test")[k % 4],
                "copies": 1,
            }
        )
    labels_csv = tmp_path / "labels.csv"
    import pandas as pd

    pd.DataFrame(rows).to_csv(labels_csv, index=False)
    settings = FrameSettings(step=25, size=16, min_seconds=None, max_seconds=None)
    run_frames_stage(
        read_labels(labels_csv), trailers, tmp_path / "frames", tmp_path / "parts", settings, n_jobs=2, progress=False
    )
    store = FrameStore(tmp_path / "frames" / "store")
    assert store.settings == settings and store.n_frames(1) == 4

    train = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    train["cnn3d"] = {**SLICE_SECTION, "slice_depth": 2, "epochs": 1}
    run_dir = tmp_path / "run"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "03_train.ipynb"),
        str(tmp_path / "03_train.ipynb"),
        parameters={
            "train": train,
            "model": "cnn3d",
            "seed": 0,
            "labels_csv": str(labels_csv),
            "store_dir": str(store.directory),
            "out_dir": str(run_dir),
            "embed_dir": str(tmp_path / "embed"),
        },
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    info = json.loads((run_dir / "model_info.json").read_text())
    assert info["frames"] == to_dict(settings), "the train stage records the store's frame settings"

    result = subprocess.run(
        [sys.executable, "-m", "lib.apps.infer", str(run_dir), str(trailers / "film03.mp4")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "slices used: 2 of 2 frames from 4 kept frames" in result.stdout
    # The same frames the store holds for that film, through the same model: the same scores.
    model = keras.saving.load_model(run_dir / "model.keras")
    from lib.loaders.slicing import slice_film

    expected = model.predict(slice_film(np.asarray(store.film(4)), 2), verbose=0).mean(axis=0)
    scores = scores_in(result.stdout)
    for g, value in zip(GENRES, expected):
        assert scores[g] == pytest.approx(value, abs=6e-4)


def test_a_run_folder_is_the_model_and_json_says_what_the_report_says(model_path, clip, capsys):
    assert main([str(model_path.parent), str(clip), "--upper", "0.7"]) == 0
    report_scores = scores_in(capsys.readouterr().out)
    assert main([str(model_path.parent), str(clip), "--upper", "0.7", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["scores"]) == set(GENRES)
    for genre, value in report_scores.items():
        assert result["scores"][genre] == pytest.approx(value, abs=6e-4)
    assert result["confident"] == [g for g in sorted(result["scores"], key=result["scores"].get, reverse=True)
                                   if result["scores"][g] > 0.7]  # fmt: skip
    assert result["model"]["kind"] == "cnn3d" and result["frames"]["step"] == STEP and result["frames"]["as_trained"]
    assert len(result["per_slice"]) == 2 and len(result["per_slice"][0]) == len(GENRES)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert re.fullmatch(r"trailer-genres \S+( \S+)*\n", capsys.readouterr().out)


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "not a Keras model archive"),
        (b"garbage, not a zip\n" * 50, "not a Keras model archive"),
        ("zip without weights", "lacks model.weights.h5"),
    ],
)
def test_a_corrupt_model_file_is_refused_before_keras_loads_it(clip, tmp_path, capsys, monkeypatch, content, says):
    import zipfile

    import lib.apps.infer as infer

    bad = tmp_path / "run"
    bad.mkdir()
    if isinstance(content, str):
        with zipfile.ZipFile(bad / "model.keras", "w") as archive:
            archive.writestr("config.json", "{}")
    else:
        (bad / "model.keras").write_bytes(content)
    write_info(bad, "cnn3d", SLICE_SECTION)
    # Keras took 16.7 s to say "File not found" of such a file: it must never be asked
    monkeypatch.setattr(infer, "load_model", lambda *a: pytest.fail("the model loader was reached"))
    assert main([str(bad), str(clip)]) == 2
    assert says in one_error_line(capsys)


def test_a_folder_without_a_model_is_not_a_run(clip, tmp_path, capsys):
    assert main([str(tmp_path), str(clip)]) == 2
    assert "without model.keras" in one_error_line(capsys)
