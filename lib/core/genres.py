"""The 18 MovieLens genres of the paper, in the paper's order (section 2.3)."""

from __future__ import annotations

GENRES: tuple[str, ...] = (
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Fantasy",
    "Romance",
    "Drama",
    "Action",
    "Crime",
    "Thriller",
    "Horror",
    "Mystery",
    "Sci-Fi",
    "Documentary",
    "War",
    "Musical",
    "Western",
    "Film-Noir",
)
N_GENRES = len(GENRES)

# MovieLens tags that are not genres of this study.
IGNORED_TAGS: frozenset[str] = frozenset({"IMAX"})
NO_GENRE_TAG = "(no genres listed)"
