"""lib.sources.download against a local HTTP server: every test starts and stops its own on 127.0.0.1.

The server plays both files.grouplens.org (zips in the MovieLens layout, with
their .md5) and YouTube (direct mp4 URLs, which yt-dlp's generic extractor
downloads), plus 404s, 429s, stalls and truncated bodies. Nothing touches the
repository's data/ folder: every run writes under tmp_path.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import imageio_ffmpeg
import pandas as pd
import pytest

from lib.core.params import ParamsError
from lib.core.paths import ROOT
from lib.sources import download

MOVIES = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    "2,Jumanji (1995),Adventure|Children|Fantasy\n"
    "3,Heat (1995),Action|Crime|Thriller\n"
    '4,"American President, The (1995)",Comedy|Drama|Romance\n'
    "5,Sabrina (1995),Comedy|Romance\n"
)
YOUTUBE = (
    "youtubeId,movieId,title\n"
    "K26_sDKnvMU,1,Toy Story (1995)\n"
    "3LPANjHlPxo,2,Jumanji (1995)\n"
    "2GfZl4kuVNI,3,Heat (1995)\n"
    'Q6tUhkNAQ-o,4,"American President, The (1995)"\n'
    "xe8nrvEexwo,5,Sabrina (1995)\n"
)


# --------------------------------------------------------------------------- the local server


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    delay: float = 0.0  # seconds before the headers
    chunk_delay: float = 0.0  # seconds between 512-byte chunks (a trickling body)
    truncate: bool = False  # announce the full length, send half, close
    content_type: str = "video/mp4"


class Site:
    """A threaded HTTP server on 127.0.0.1 with a mutable route table and a hit counter."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def do_GET(self):
                site.hits[self.path] += 1
                route = site.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                if route.status != 200:
                    self.send_error(route.status)
                    return
                time.sleep(route.delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    body = route.body[: len(route.body) // 2] if route.truncate else route.body
                    if not route.chunk_delay:
                        self.wfile.write(body)
                        return
                    for start in range(0, len(body), 512):
                        self.wfile.write(body[start : start + 512])
                        self.wfile.flush()
                        time.sleep(route.chunk_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as the stall tests intend

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def site():
    with Site() as s:
        yield s


@pytest.fixture(scope="module")
def mp4s(tmp_path_factory) -> list[bytes]:
    """Three distinct one-second mp4 files, made with the bundled ffmpeg."""
    folder = tmp_path_factory.mktemp("mp4")
    bodies = []
    for i, colour in enumerate(("red", "green", "blue")):
        path = folder / f"{i}.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"color=c={colour}:size=32x32:rate=10:duration=1",
                "-pix_fmt",
                "yuv420p",
                str(path),
            ],
            check=True,
        )
        bodies.append(path.read_bytes())
    assert len(set(bodies)) == 3
    return bodies


def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def serve_movielens(site: Site, *, movies_members=None, youtube_members=None, md5=None) -> list[str]:
    """Serve ml-20m.zip (with a BSD-style .md5, as GroupLens does) and ml-20m-youtube.zip (no .md5)."""
    movies_zip = zip_bytes(
        movies_members
        or {"ml-20m/movies.csv": MOVIES, "ml-20m/ratings.csv": "userId\n1\n", "ml-20m/README.txt": "readme"}
    )
    youtube_zip = zip_bytes(youtube_members or {"ml-20m-youtube/ml-youtube.csv": YOUTUBE})
    digest = md5 or hashlib.md5(movies_zip).hexdigest()
    site.routes["/ml-20m.zip"] = Route(movies_zip, content_type="application/zip")
    site.routes["/ml-20m.zip.md5"] = Route(f"MD5 (ml-20m.zip) = {digest}\n".encode(), content_type="text/plain")
    site.routes["/ml-20m-youtube.zip"] = Route(youtube_zip, content_type="application/zip")
    return ["--movies-zip-url", site.url("/ml-20m.zip"), "--youtube-zip-url", site.url("/ml-20m-youtube.zip")]


def common_flags(tmp_path: Path, site: Site, **overrides) -> list[str]:
    flags = {
        "--out": str(tmp_path / "data"),
        "--params": str(tmp_path / "no-params.yaml"),
        "--trailer-url": site.url("/v/{youtubeId}.mp4"),
        "--jobs": "3",
        "--pause": "0",
        "--retries": "1",
        "--backoff": "0.05",
        "--socket-timeout": "1",
        "--stop-after-throttled": "0",
    }
    flags.update(overrides)
    return [x for kv in flags.items() for x in kv] + ["--no-progress"]


def write_youtube_csv(out: Path, ids: list[str]) -> None:
    (out / "movielens").mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{yid},{i},Film {i}\n" for i, yid in enumerate(ids, 1))
    (out / "movielens" / "ml-youtube.csv").write_text("youtubeId,movieId,title\n" + rows)


def no_partial_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if p.name.endswith((".part", ".tmp")) or p.name == download.PARTIAL]


# --------------------------------------------------------------------------- MovieLens zips


def test_zips_extract_into_the_movielens_layout_and_resume(site, tmp_path, capsys):
    flags = serve_movielens(site) + common_flags(tmp_path, site) + ["--no-trailers"]
    assert download.main(flags) == 0
    out = tmp_path / "data"
    assert (out / "movielens" / "movies.csv").read_text() == MOVIES
    assert (out / "movielens" / "ml-youtube.csv").read_text() == YOUTUBE
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "download_sources.json",
        "movielens/ml-youtube.csv",
        "movielens/movies.csv",
    ]  # no zip, no ratings
    sources = download._read_sources(out)
    assert sources["movielens/movies.csv"]["md5_verified"] is True
    assert sources["movielens/ml-youtube.csv"]["md5_verified"] is False  # no .md5 published for it
    assert "next step: dvc add" in capsys.readouterr().out
    hits = site.hits["/ml-20m.zip"]
    assert download.main(flags) == 0  # a second run finds both CSVs and fetches nothing
    assert site.hits["/ml-20m.zip"] == hits == 1


def test_md5_mismatch_fails_clearly_and_keeps_the_other_csv(site, tmp_path, capsys):
    flags = serve_movielens(site, md5="0" * 32) + common_flags(tmp_path, site) + ["--no-trailers"]
    assert download.main(flags) == 1
    err = capsys.readouterr().err
    assert "md5" in err and "0" * 32 in err and "Nothing was extracted" in err
    out = tmp_path / "data"
    assert not (out / "movielens" / "movies.csv").exists()
    assert (out / "movielens" / "ml-youtube.csv").read_text() == YOUTUBE
    assert no_partial_files(out)


@pytest.mark.parametrize(
    "members, message",
    [
        ({"ml-20m/ratings.csv": "userId\n"}, "expected exactly one 'movies.csv'"),
        ({"ml-20m/movies.csv": "id,name,tags\n1,x,y\n"}, "has header ['id', 'name', 'tags']"),
    ],
)
def test_bad_zip_member_or_header_is_a_clear_error(site, tmp_path, capsys, members, message):
    flags = serve_movielens(site, movies_members=members) + common_flags(tmp_path, site) + ["--no-trailers"]
    assert download.main(flags) == 1
    assert message in capsys.readouterr().err
    out = tmp_path / "data"
    assert not (out / "movielens" / "movies.csv").exists()
    assert (out / "movielens" / "ml-youtube.csv").exists()
    assert no_partial_files(out)


def test_a_csv_not_fetched_by_the_command_is_never_overwritten(site, tmp_path, capsys):
    out = tmp_path / "data"
    (out / "movielens").mkdir(parents=True)
    (out / "movielens" / "movies.csv").write_text("movieId,title,genres\n9,Demo,Drama\n")
    flags = serve_movielens(site) + common_flags(tmp_path, site) + ["--no-trailers"]
    assert download.main(flags) == 1
    assert "demo snapshot" in capsys.readouterr().err
    assert (out / "movielens" / "movies.csv").read_text() == "movieId,title,genres\n9,Demo,Drama\n"
    assert download.main(flags + ["--force"]) == 0
    assert (out / "movielens" / "movies.csv").read_text() == MOVIES


# --------------------------------------------------------------------------- trailers


def test_mixed_batch_writes_each_outcome_to_the_manifest(site, tmp_path, mp4s, capsys):
    out = tmp_path / "data"
    ids = ["okA", "okB", "slowOk", "gone", "stall", "cut", "busy"]
    write_youtube_csv(out, ids)
    site.routes["/v/okA.mp4"] = Route(mp4s[0])
    site.routes["/v/okB.mp4"] = Route(mp4s[1])
    site.routes["/v/slowOk.mp4"] = Route(mp4s[2], delay=0.3)  # slower than usual, within the timeout
    site.routes["/v/stall.mp4"] = Route(mp4s[0], delay=3.0)  # past the 1 s socket timeout
    site.routes["/v/cut.mp4"] = Route(mp4s[1], truncate=True)
    site.routes["/v/busy.mp4"] = Route(status=429)  # "gone" has no route: 404

    assert download.main(common_flags(tmp_path, site) + ["--no-movielens"]) == 0
    printed = capsys.readouterr().out
    assert "3 ok, 1 unavailable, 2 error, 1 throttled" in printed and "next step: dvc add" in printed

    manifest = pd.read_csv(out / download.MANIFEST_NAME, keep_default_na=False).set_index("youtubeId")
    assert list(manifest.reset_index().columns) == download.MANIFEST_COLUMNS
    assert sorted(manifest.index) == sorted(ids)
    status = manifest["status"].to_dict()
    assert status == {
        "okA": "ok",
        "okB": "ok",
        "slowOk": "ok",
        "gone": "unavailable",
        "stall": "error",
        "cut": "error",
        "busy": "throttled",
    }
    for yid, body in (("okA", mp4s[0]), ("okB", mp4s[1]), ("slowOk", mp4s[2])):
        assert (out / "trailers" / f"{yid}.mp4").read_bytes() == body
        assert manifest.loc[yid, "path"] == f"trailers/{yid}.mp4"
        assert manifest.loc[yid, "bytes"] == len(body)
    assert "404" in manifest.loc["gone", "reason"]
    assert "timed out" in manifest.loc["stall", "reason"]
    assert "429" in manifest.loc["busy", "reason"]
    assert manifest.loc["gone", "attempts"] == 1  # unavailable is final: no retry
    assert manifest.loc["busy", "attempts"] == 2 and manifest.loc["cut", "attempts"] == 2
    assert sorted(p.name for p in (out / "trailers").iterdir()) == ["okA.mp4", "okB.mp4", "slowOk.mp4"]
    assert no_partial_files(out)


def test_a_rerun_skips_present_and_unavailable_and_retries_the_rest(site, tmp_path, mp4s):
    out = tmp_path / "data"
    write_youtube_csv(out, ["okA", "gone", "busy"])
    site.routes["/v/okA.mp4"] = Route(mp4s[0])
    site.routes["/v/busy.mp4"] = Route(status=429)
    flags = common_flags(tmp_path, site, **{"--retries": "0"}) + ["--no-movielens"]
    assert download.main(flags) == 0
    site.routes["/v/busy.mp4"] = Route(mp4s[1])  # the rate limit has passed
    before = dict(site.hits)
    assert download.main(flags) == 0
    assert site.hits["/v/okA.mp4"] == before["/v/okA.mp4"]  # present: no request at all
    assert site.hits["/v/gone.mp4"] == before["/v/gone.mp4"]  # known unavailable: not asked again
    manifest = pd.read_csv(out / download.MANIFEST_NAME).set_index("youtubeId")
    assert manifest["status"].to_dict() == {"okA": "ok", "gone": "unavailable", "busy": "ok"}
    assert download.main(flags + ["--retry-unavailable"]) == 0
    assert site.hits["/v/gone.mp4"] > before["/v/gone.mp4"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_download_is_no_failure_and_leaves_no_partial_file(site, tmp_path, mp4s, sig):
    out = tmp_path / "data"
    write_youtube_csv(out, ["fastA", "fastB", "drip"])
    site.routes["/v/fastA.mp4"] = Route(mp4s[0])
    site.routes["/v/fastB.mp4"] = Route(mp4s[1])
    site.routes["/v/drip.mp4"] = Route(mp4s[2] * 40, chunk_delay=0.1)  # ~100 s unless interrupted
    flags = common_flags(tmp_path, site) + ["--no-movielens"]
    # Its own process group, signalled as a whole: what a terminal's Ctrl-C (or a job runner's SIGTERM) does.
    # Ctrl-C handled as in a terminal, even when pytest runs in a background job that ignores SIGINT.
    as_in_a_terminal = (
        "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_module('lib.sources.download', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", as_in_a_terminal, *flags],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    staging = out / "trailers" / download.PARTIAL / "drip"

    def midway() -> bool:
        return (
            (out / "trailers" / "fastA.mp4").exists()
            and (out / "trailers" / "fastB.mp4").exists()
            and staging.is_dir()
            and any(p.stat().st_size > 0 for p in staging.iterdir())
        )

    deadline = time.monotonic() + 90  # a loaded CI machine may take long to import yt-dlp
    while time.monotonic() < deadline and proc.poll() is None and not midway():
        time.sleep(0.05)
    assert proc.poll() is None and midway(), proc.communicate() if proc.poll() is not None else "never got midway"
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert sorted(p.name for p in (out / "trailers").iterdir()) == ["fastA.mp4", "fastB.mp4"]
    assert no_partial_files(out)
    manifest = pd.read_csv(out / download.MANIFEST_NAME).set_index("youtubeId")
    # The interrupted video is neither a failure nor unavailable: it has no row, and the next run fetches it.
    assert manifest["status"].to_dict() == {"fastA": "ok", "fastB": "ok"}

    site.routes["/v/drip.mp4"] = Route(mp4s[2])
    before = dict(site.hits)
    assert download.main(flags) == 0
    assert (out / "trailers" / "drip.mp4").read_bytes() == mp4s[2]
    assert site.hits["/v/fastA.mp4"] == before["/v/fastA.mp4"]
    assert pd.read_csv(out / download.MANIFEST_NAME)["status"].tolist() == ["ok", "ok", "ok"]


def test_a_file_finished_as_the_run_is_stopped_is_not_put_in_place(tmp_path, monkeypatch):
    trailers = tmp_path / "trailers"
    trailers.mkdir()
    stop = threading.Event()

    def fetched_while_stopping(url, staging, youtube_id, params, stop_event):
        path = staging / f"{youtube_id}.mp4"
        path.write_bytes(b"maybe cut short")
        stop_event.set()  # the interruption lands while yt-dlp returns
        return path

    monkeypatch.setattr(download, "_fetch_video", fetched_while_stopping)
    cfg = download.settings({"pause": 0}, params_file=None)
    result = download.download_one("vid", cfg, trailers, {}, download.Pacer(0), stop)
    assert result.status == download.INTERRUPTED
    assert download.present_trailers(trailers) == {}


def test_a_run_of_throttled_answers_halts_the_batch(site, tmp_path):
    out = tmp_path / "data"
    ids = [f"t{i}" for i in range(6)]
    write_youtube_csv(out, ids)
    for yid in ids:
        site.routes[f"/v/{yid}.mp4"] = Route(status=429)
    flags = common_flags(tmp_path, site, **{"--jobs": "1", "--retries": "0", "--stop-after-throttled": "2"})
    assert download.main(flags + ["--no-movielens"]) == 3
    manifest = pd.read_csv(out / download.MANIFEST_NAME)
    assert manifest["status"].tolist() == ["throttled", "throttled"]  # the other four never started


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    "message, status",
    [
        ("ERROR: [youtube] abc: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser", "throttled"),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 429: Too Many Requests", "throttled"),
        (
            "ERROR: [youtube] abc: Video unavailable. This content isn't available, try again later. "
            "The current session has been rate-limited by YouTube for up to an hour.",
            "throttled",
        ),
        ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", "unavailable"),
        ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", "unavailable"),
        ("ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found", "unavailable"),
        ("ERROR: [youtube] abc: Requested format is not available. Use --list-formats", "unavailable"),
        ("ERROR: [generic] x: Read timed out. (read timeout=30.0)", "error"),
    ],
)
def test_failures_are_classified_by_their_message(message, status):
    got, reason = download.classify_failure(message)
    assert got == status
    assert not reason.startswith("ERROR") and "\u2019" not in reason


def test_subsets_only_kept_per_genre_and_limit(tmp_path):
    (tmp_path / "movies.csv").write_text(MOVIES)
    (tmp_path / "yt.csv").write_text(
        YOUTUBE.replace("xe8nrvEexwo", "xe8nrvEexwo/")  # cleaned as prepare does
        + "K26_sDKnvMU,1,Toy Story again\n"  # a duplicate id
        "https://youtu.be/K26_sDKnvMU,1,Toy Story as a URL\n"
        "../../etc,9,Not an id\n"
    )
    (tmp_path / "labels.csv").write_text("movieId,youtubeId\n3,2GfZl4kuVNI\n5,xe8nrvEexwo\n")
    yt, movies = tmp_path / "yt.csv", tmp_path / "movies.csv"
    every = ["K26_sDKnvMU", "3LPANjHlPxo", "2GfZl4kuVNI", "Q6tUhkNAQ-o", "xe8nrvEexwo"]
    assert download.select_videos(yt) == every
    assert download.select_videos(yt, only_kept=tmp_path / "labels.csv") == ["2GfZl4kuVNI", "xe8nrvEexwo"]
    # One film per genre: Toy Story covers Adventure..Fantasy, Heat Action/Crime/Thriller,
    # film 4 Romance and Drama.
    assert download.select_videos(yt, movies, per_genre=1) == ["K26_sDKnvMU", "2GfZl4kuVNI", "Q6tUhkNAQ-o"]
    assert download.select_videos(yt, movies, per_genre=2, limit=2) == ["K26_sDKnvMU", "3LPANjHlPxo"]
    with pytest.raises(download.DownloadError, match="needs movies.csv"):
        download.select_videos(yt, tmp_path / "missing.csv", per_genre=1)
    with pytest.raises(download.DownloadError, match="does not exist"):
        download.select_videos(yt, only_kept=tmp_path / "no-labels.csv")


def test_settings_precedence(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("download:\n  jobs: 7\n  pause: 3.5\n")
    cfg = download.settings({"pause": 0.0, "retries": None}, params)
    assert (cfg["jobs"], cfg["pause"], cfg["retries"]) == (7, 0.0, download.DEFAULTS["retries"])
    params.write_text("download:\n  jobz: 7\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: download: unknown key 'jobz'"):
        download.settings({}, params)
    params.write_text("download:\n  jobs: seven\n")
    with pytest.raises(ParamsError, match=r"download\.jobs: expected int, got str 'seven'"):
        download.settings({}, params)
    with pytest.raises(ParamsError, match=r"download\.trailer_url: must contain \{youtubeId\}"):
        download.settings({"trailer_url": "https://example.org/watch"}, None)
