"""tools/corpus_proxy.py calibrates the demo corpus without video files; its pictures must be the
ones the frames stage keeps from the real trailers, or its measurements mean nothing."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lib.core.paths import ROOT
from lib.frames.extract import extract_trailer
from lib.sources import demo_corpus as dc

sys.path.insert(0, str(ROOT / "tools"))
import corpus_proxy  # noqa: E402

CONFIG = dc.DemoConfig(n_films=30, seed=7, duration_scale=0.1, jobs=2)
STEP = 24  # one kept frame per second of these short trailers


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("proxy") / "data"
    plan = dc.generate_corpus(out, CONFIG, progress=False)
    rows = [r for r in plan.to_dict("records") if r["kind"] == dc.OK and r["genre_list"]][:4]
    return out, rows


def test_proxy_frames_match_the_frames_stage_on_the_encoded_trailers(corpus):
    out, rows = corpus
    for row in rows:
        proxy = corpus_proxy.kept_frames(row, CONFIG, STEP).astype(int)
        real = extract_trailer(
            out / "trailers" / f"{row['youtubeId']}.mp4", step=STEP, min_seconds=None, max_seconds=None
        )
        assert real.ok, real.reason
        assert proxy.shape == real.frames.shape, row["youtubeId"]
        # x264 at CRF 34 and two different resamplers leave a few grey levels of difference;
        # a one-frame misalignment costs far more (13-53 on these films).
        assert np.abs(proxy - real.frames).mean() < 10, row["youtubeId"]


def test_set_overrides_a_constant_and_refuses_unknown_ones(monkeypatch):
    monkeypatch.setattr(dc, "IMAGERY", dc.IMAGERY)  # restored after the test
    corpus_proxy.apply_overrides(["IMAGERY=0.3"])
    assert dc.IMAGERY == 0.3
    with pytest.raises(SystemExit, match="no NOT_A_CONSTANT"):
        corpus_proxy.apply_overrides(["NOT_A_CONSTANT=1"])
    with pytest.raises(SystemExit, match="not a Python literal"):
        corpus_proxy.apply_overrides(["IMAGERY=__import__('os')"])
