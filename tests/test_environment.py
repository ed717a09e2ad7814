"""The dependency list has one pinned source of truth, and nothing writes to $HOME."""

from __future__ import annotations

import os
import platform
import re
import runpy
import subprocess
import sys
import tomllib
from importlib import metadata

import yaml
from packaging.specifiers import SpecifierSet

from lib.core.paths import ROOT


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


def _supported_pythons() -> dict[str, SpecifierSet]:
    """The Python versions each entry point accepts, as version specifiers."""
    make = re.search(
        r"SUPPORTED := \((\d+), (\d+), (\d+)\) <= sys\.version_info\[:3\] < \((\d+), (\d+)\)",
        (ROOT / "Makefile").read_text(),
    )
    assert make, "the Makefile's SUPPORTED range is not where this test looks for it"
    low, high = ".".join(make.groups()[:3]), ".".join(make.groups()[3:])
    conda = [
        d
        for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
        if isinstance(d, str) and re.match(r"python\b", d)
    ]
    assert len(conda) == 1, conda
    return {
        "Makefile": SpecifierSet(f">={low},<{high}"),
        "pyproject.toml": SpecifierSet(
            tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
        ),
        "environment.yml": SpecifierSet(conda[0].removeprefix("python")),
    }


def test_make_pyproject_and_conda_accept_the_same_pythons():
    supported = _supported_pythons()
    assert len(set(supported.values())) == 1, f"the Python ranges disagree: {supported}"
    spec = supported["Makefile"]
    accepted = [
        v for v in ("3.10.13", "3.11.2", "3.11.5", "3.11.7", "3.12.0", "3.13.0", "3.13.9", "3.14.0") if v in spec
    ]
    assert accepted == ["3.11.5", "3.11.7", "3.12.0", "3.13.0", "3.13.9"]
    assert platform.python_version() in spec, "the tests run on an interpreter the project does not accept"


def test_the_version_check_covers_every_supported_minor_version_at_its_oldest_release():
    spec = _supported_pythons()["Makefile"]
    checked = runpy.run_path(str(ROOT / "tools" / "check_python_versions.py"))["VERSIONS"]
    assert all(v in spec for v in checked)
    minors = {v.rsplit(".", 1)[0] for v in checked}
    assert minors == {"3.11", "3.12", "3.13"}
    for v in checked:  # the oldest accepted release of its minor version: pip checks Requires-Python against it
        major, minor, patch = map(int, v.split("."))
        assert patch == 0 or f"{major}.{minor}.{patch - 1}" not in spec, v


def test_conda_route_installs_the_same_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
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
