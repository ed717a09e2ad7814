"""The frames stage over a tiny catalog: manifest, store, reconciliation, resumption, atomicity."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lib.frames.stage as stage
import lib.frames.store as frame_store
from lib.core.ffmpeg import ffmpeg_exe
from lib.core.params import FrameSettings
from lib.core.paths import ROOT
from lib.frames.extract import extract_trailer
from lib.frames.store import FrameStore
from lib.prepare.labels import read_labels

SETTINGS = dict(step=5, size=16, min_seconds=1.5, max_seconds=3.5)
SETTING_NAMES = set(FrameSettings().as_dict())


def make_clip(path, seconds: float, colour: str = "testsrc", movflags: str = "") -> None:
    source = "testsrc=size=64x36" if colour == "testsrc" else f"color={colour}:size=64x36"
    cmd = [
        ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"{source}:rate=24:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]
    if movflags:
        cmd += ["-movflags", movflags]
    subprocess.run([*cmd, str(path)], check=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Trailers for every outcome, and the labels table prepare would hand over."""
    trailers = tmp_path_factory.mktemp("trailers")
    make_clip(trailers / "okA.mp4", 2, "red")
    make_clip(trailers / "okB.mp4", 2.5, "blue")
    make_clip(trailers / "okC.mp4", 3, "testsrc")
    make_clip(trailers / "short.mp4", 1)
    make_clip(trailers / "long.mp4", 4)
    (trailers / "empty.mp4").write_bytes(b"")
    make_clip(trailers / "full.mp4", 3, movflags="+faststart")
    data = (trailers / "full.mp4").read_bytes()
    (trailers / "cut.mp4").write_bytes(data[: len(data) // 3])
    (trailers / "full.mp4").unlink()
    (trailers / "okA.webm.part").write_bytes(b"half a download")  # must be ignored
    labels = pd.DataFrame(
        {
            "movieId": [10, 11, 12, 13, 14, 15, 16, 17, 18],
            "youtubeId": ["okA", "okB", "okC", "short", "long", "empty", "cut", "gone", "okB"],
            "split": ["train", "train", "test", "val", "train", "train", "test", "val", "val"],
        }
    )
    expected = ["ok", "ok", "ok", "too_short", "too_long", "unreadable", "partial", "missing", "ok"]
    return trailers, labels, expected


def run(corpus, tmp_path, **kw):
    """The stage with SETTINGS, any of them overridden by a keyword (``size=8``), like the other options."""
    trailers, labels, _ = corpus
    settings = FrameSettings(**{**SETTINGS, **{k: v for k, v in kw.items() if k in SETTING_NAMES}})
    options = {"n_jobs": 2, "progress": False, **{k: v for k, v in kw.items() if k not in SETTING_NAMES}}
    return stage.run_frames_stage(labels, trailers, tmp_path / "out", tmp_path / "parts", settings, **options)


def test_manifest_store_and_reconciliation(corpus, tmp_path):
    trailers, labels, expected = corpus
    result = run(corpus, tmp_path)
    manifest = stage.read_manifest(tmp_path / "out" / stage.MANIFEST_FILE)
    assert list(manifest.columns) == stage.MANIFEST_COLUMNS
    assert manifest["movieId"].tolist() == labels["movieId"].tolist()
    assert manifest["outcome"].tolist() == expected
    assert (manifest.loc[manifest["outcome"] != "ok", "reason"] != "").all(), "every pruned film needs a reason"
    assert manifest.loc[manifest["youtubeId"] == "cut", "reason"].item().startswith("decoded")

    table = stage.outcome_table(manifest)
    assert table.loc["total", "films"] == len(labels) == table.drop(index="total")["films"].sum()

    store = FrameStore(tmp_path / "out" / stage.STORE_DIR)
    ok = manifest[manifest["outcome"] == "ok"]
    assert store.movie_ids.tolist() == ok["movieId"].tolist()
    assert store.frame_shape == (16, 16, 3)
    assert store.settings == FrameSettings(**SETTINGS), "the store records the settings it was extracted with"
    assert store.frames.shape[0] == ok["frames_kept"].sum()
    for movie_id, youtube_id, kept in ok[["movieId", "youtubeId", "frames_kept"]].itertuples(index=False):
        direct = extract_trailer(trailers / f"{youtube_id}.mp4", **SETTINGS).frames
        assert store.n_frames(movie_id) == kept == len(direct)
        np.testing.assert_array_equal(store.film(movie_id), direct)
    assert store.film(10)[..., 0].mean() > 200 and store.film(11)[..., 2].mean() > 200, "films must not get mixed up"
    assert result.extracted == 8 and result.resumed == 0  # okB shared by two films is decoded once
    assert not (tmp_path / "parts").exists(), "parts are removed once consolidated"


def test_interrupted_run_resumes_without_redoing_finished_trailers(corpus, tmp_path, monkeypatch):
    real = stage.extract.extract_trailer
    calls = []

    def interrupted(path, **kw):
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C (or a kill) in the middle of the run
        calls.append(path)
        return real(path, **kw)

    monkeypatch.setattr(stage.extract, "extract_trailer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, tmp_path, n_jobs=1)
    assert not (tmp_path / "out" / stage.MANIFEST_FILE).exists()
    assert not (tmp_path / "out" / stage.STORE_DIR / frame_store.INDEX_FILE).exists()
    parts = list((tmp_path / "parts").glob("*/*.json"))
    assert len(parts) == 3

    redone = []
    monkeypatch.setattr(stage.extract, "extract_trailer", lambda path, **kw: redone.append(path) or real(path, **kw))
    resumed = run(corpus, tmp_path, n_jobs=1)
    assert resumed.resumed == 3 and resumed.extracted == 5 and len(redone) == 5
    assert not set(redone) & set(calls)

    fresh = run(corpus, tmp_path / "fresh")
    pd.testing.assert_frame_equal(resumed.manifest, fresh.manifest)
    np.testing.assert_array_equal(np.asarray(resumed.store.frames), np.asarray(fresh.store.frames))


KILLED_MIDWAY = """
import os, signal, sys
import pandas as pd
import lib.frames.stage as stage
from lib.core.params import FrameSettings

real, calls = stage.extract.extract_trailer, []

def dying(path, **kw):
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: like the OOM killer
    calls.append(path)
    return real(path, **kw)

stage.extract.extract_trailer = dying
labels = pd.read_csv(sys.argv[1], dtype={"youtubeId": str})
stage.run_frames_stage(labels, sys.argv[2], sys.argv[3], sys.argv[4],
                       FrameSettings(step=5, size=16, min_seconds=1.5, max_seconds=3.5), n_jobs=1, progress=False)
"""


def test_run_killed_midway_resumes_from_its_parts(corpus, tmp_path):
    trailers, labels, expected = corpus
    labels.to_csv(tmp_path / "labels.csv", index=False)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_MIDWAY,
            str(tmp_path / "labels.csv"),
            str(trailers),
            str(tmp_path / "out"),
            str(tmp_path / "parts"),
        ],
        cwd=ROOT,
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert len(list((tmp_path / "parts").glob("*/*.json"))) == 3
    result = run(corpus, tmp_path, n_jobs=1)
    assert (result.resumed, result.extracted) == (3, 5)
    assert result.manifest["outcome"].tolist() == expected


def test_damaged_stale_or_foreign_parts_are_redone(corpus, tmp_path, monkeypatch):
    trailers, labels, _ = corpus
    run(corpus, tmp_path, keep_parts=True)
    (part_dir,) = (tmp_path / "parts").iterdir()
    (part_dir / "okA.json").write_text("{not json")  # killed while writing, without our atomic rename
    (part_dir / "okC.npy").write_bytes(b"garbage")
    (part_dir / ".okB.json.123.456.tmp").write_text("half")
    row = stage.json.loads((part_dir / "short.json").read_text())
    (part_dir / "short.json").write_text(
        stage.json.dumps({**row, "source_size": row["source_size"] + 1})
    )  # file replaced since

    redone = []
    real = stage.extract.extract_trailer
    monkeypatch.setattr(
        stage.extract, "extract_trailer", lambda path, **kw: redone.append(path and path.stem) or real(path, **kw)
    )
    result = run(corpus, tmp_path)
    assert sorted(redone) == ["okA", "okC", "short"]
    assert result.manifest["outcome"].tolist() == corpus[2]
    assert not list((tmp_path / "parts").glob("*/.*.tmp"))

    other = run(corpus, tmp_path / "other", step=3)  # new settings: nothing of the old parts may be reused
    assert other.resumed == 0


def test_parts_made_by_other_extraction_code_are_not_reused(corpus, tmp_path, monkeypatch):
    # Parts are keyed on the content of lib/frames/extract.py: after a code change a resumed run extracts anew.
    first = run(corpus, tmp_path, keep_parts=True)
    assert first.extracted == 8
    source = Path(stage.extract.__file__).read_bytes()
    for name, content in (("copy", source), ("changed", source + b"\n# any change at all\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "extract.py").write_bytes(content)
    monkeypatch.setattr(stage.extract, "__file__", str(tmp_path / "copy" / "extract.py"))
    same = run(corpus, tmp_path, keep_parts=True)
    assert (same.resumed, same.extracted) == (8, 0), "the same code elsewhere must reuse the parts"
    monkeypatch.setattr(stage.extract, "__file__", str(tmp_path / "changed" / "extract.py"))
    changed = run(corpus, tmp_path, keep_parts=True)
    assert (changed.resumed, changed.extracted) == (0, 8)
    assert len(list((tmp_path / "parts").iterdir())) == 2
    pd.testing.assert_frame_equal(changed.manifest, first.manifest)


def test_store_stays_consistent_when_consolidation_fails(corpus, tmp_path, monkeypatch):
    original = frame_store.replace_synced
    first = run(corpus, tmp_path)
    store_dir = tmp_path / "out" / stage.STORE_DIR
    before = np.asarray(FrameStore(store_dir).frames).copy()

    # Killed after the new frames are written, before anything is renamed: the old store is intact.
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(frame_store.pd.DataFrame, "to_csv", killed)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, tmp_path, size=8)
    monkeypatch.undo()
    survivor = FrameStore(store_dir)
    np.testing.assert_array_equal(np.asarray(survivor.frames), before)
    assert survivor.movie_ids.tolist() == first.store.movie_ids.tolist()

    # Fails between the two renames: no store at all, never frames that mismatch their index.
    def fail_at_index(tmp, final):
        if final.name == frame_store.INDEX_FILE:
            raise OSError("power cut")
        original(tmp, final)

    monkeypatch.setattr(frame_store, "replace_synced", fail_at_index)
    with pytest.raises(OSError):
        run(corpus, tmp_path, size=8)
    with pytest.raises(FileNotFoundError):
        FrameStore(store_dir)
    monkeypatch.undo()
    rerun = run(corpus, tmp_path, size=8).store
    assert rerun.frame_shape == (8, 8, 3) and rerun.settings == FrameSettings(**{**SETTINGS, "size": 8})


def test_find_trailers_prefers_common_containers_and_skips_partial_downloads(tmp_path):
    for name in ["a.webm", "a.mp4", "b.mkv", "c.mp4.part", "d.webm.ytdl", ".hidden.mp4", "e.gif"]:
        (tmp_path / name).write_bytes(b"x")
    found = stage.find_trailers(tmp_path)
    assert {k: v.name for k, v in found.items()} == {"a": "a.mp4", "b": "b.mkv", "e": "e.gif"}
    assert stage.find_trailers(tmp_path / "absent") == {}


def test_labels_without_youtube_column_get_a_clear_error(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("movieId,title\n1,Toy Story (1995)\n")
    with pytest.raises(ValueError, match="youtubeId"):
        read_labels(bad)
    with pytest.raises(FileNotFoundError, match="prepare"):
        read_labels(tmp_path / "absent.csv")
    # a table handed over directly is checked the same way, before anything is decoded
    with pytest.raises(ValueError, match="youtubeId"):
        stage.run_frames_stage(
            pd.DataFrame({"movieId": [1]}), tmp_path, tmp_path / "out", tmp_path / "parts", progress=False
        )
    assert not (tmp_path / "parts").exists()


def test_n_jobs_zero_means_every_core():
    assert stage.resolve_jobs(0) >= 1
    assert stage.resolve_jobs(3) == 3
