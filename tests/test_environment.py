"""The dependency list has one pinned source of truth, and nothing writes to $HOME."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata

import yaml

from lib.paths import ROOT


def _pins(path):
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path}: '{line}' is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_direct_dependencies_are_pinned_identically_in_the_lock():
    direct, lock = _pins("requirements.in"), _pins("requirements.lock")
    mismatched = {n: (v, lock.get(n)) for n, v in direct.items() if lock.get(n) != v}
    assert not mismatched, f"requirements.in and requirements.lock disagree: {mismatched}"


def test_conda_route_installs_the_same_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip_section == ["-r requirements.lock"]


def test_installed_versions_match_the_lock():
    wrong = {}
    for name, version in _pins("requirements.in").items():
        installed = metadata.version(name)
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from the lock (run `make setup`): {wrong}"


def test_importing_lib_keeps_keras_and_matplotlib_out_of_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"KERAS_HOME", "MPLCONFIGDIR"}}
    env["HOME"] = str(home)
    code = "import lib, keras, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; plt.figure(); print(keras.config.backend())"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, cwd=tmp_path)
    written = [str(p.relative_to(home)) for p in home.rglob("*")]
    assert not written, f"importing lib, keras and matplotlib wrote into $HOME: {written}"
