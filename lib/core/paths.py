"""Every path in the study is anchored here, at the repository root.

papermill, nbval and pytest start kernels in different working directories, so
nothing in the project may resolve a relative path against the current one.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DATA = ROOT / "data"  # the raw snapshot tracked by data.dvc
MOVIELENS = DATA / "movielens"
MOVIES_CSV = MOVIELENS / "movies.csv"
YOUTUBE_CSV = MOVIELENS / "ml-youtube.csv"
TRAILERS = DATA / "trailers"

OUTPUTS = ROOT / "outputs"  # stage outputs, managed by dvc.yaml
REPORTS = ROOT / "reports"  # executed notebooks: the study's report
SMOKE = OUTPUTS / "smoke"  # where the notebooks' smoke-size defaults write
CACHE = ROOT / ".cache"  # keras, matplotlib and jupyter state, never in $HOME

PARAMS = ROOT / "params.yaml"


def resolve(path: str | Path) -> Path:
    """Resolve a path given relative to the repository root (absolute paths pass through)."""
    p = Path(path)
    return p if p.is_absolute() else ROOT / p
