"""Checking a stage's parameters once papermill has injected them.

papermill's ``-f params.yaml`` replaces each section dict whole, so a key missing
from params.yaml would silently lose its default. Notebooks call ``require`` right
after their ``parameters`` cell to fail early with the missing keys named.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import yaml

from lib.paths import PARAMS


def require(section: Mapping[str, Any], keys: Iterable[str], name: str) -> dict[str, Any]:
    missing = [k for k in keys if k not in section]
    if missing:
        raise KeyError(f"params section '{name}' lacks {missing}; add them to params.yaml (or the notebook's parameters cell)")
    return dict(section)


def load_params(section: str | None = None) -> dict[str, Any]:
    """params.yaml as a dict (or one section of it): for scripts and tests, not notebooks."""
    with open(PARAMS, encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    return params if section is None else params[section]
