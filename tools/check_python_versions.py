"""Does every pin of requirements.lock have a distribution for each supported Python? A per-pin report.

    python tools/check_python_versions.py                  # 3.11.5, 3.12.0, 3.13.0 on this machine's platform
    python tools/check_python_versions.py --python 3.13 --platform manylinux_2_28_x86_64 --report pins.csv

It reads the lock alone and installs nothing: for each Python version it asks pip for an
install plan of the whole lock (``pip install --dry-run --no-deps --only-binary=:all:
--python-version X --target <tmp> --report <json>``), with this interpreter's pip and pip
configuration (the same index ``make setup`` uses). pip picks, for every pin, the file it
would install on that version, and the report prints which kind it is:

* ``any``: a pure-Python wheel (``py3-none-any``), good for every version;
* ``abi3``: a compiled wheel built against the stable ABI (``cp3N-abi3``), good from 3.N on;
* ``cp3N``: a compiled wheel built for exactly that version;
* ``binary``: a wheel for this platform that needs no Python ABI (a bundled executable);
* ``sdist``: no wheel at all, only a source archive: pip builds it when installing (fine for
  a pure-Python package, a compiler job otherwise), so it is listed apart;
* ``MISSING``: no file of that release serves that version: the pin must move, or the
  version is not supported.

A pin that stops pip's plan is recorded and taken out, and the plan is asked again for the
rest, so one run reports every missing pin, not only the first. The exit status is 0 when
no cell is MISSING. pip downloads wheels to read their metadata where the index offers no
separate metadata file: the first run moves a few GB (tensorflow alone is ~600 MB per
version); later runs come from pip's cache.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
# The oldest release of each supported minor version: pip checks Requires-Python against exactly this
# (a bare "3.12" means 3.12.0), and soupsieve, for one, needs 3.11.5 or newer.
VERSIONS = ("3.11.5", "3.12.0", "3.13.0")
NOT_FOUND = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)==")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """Normalized name -> pinned 'name==version' line, in file order."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version:
            raise SystemExit(f"{path}: '{line}' is not pinned with ==")
        pins[normalize(name)] = f"{name.strip()}=={version.strip()}"
    return pins


def kind_of(filename: str) -> str:
    """'any', 'abi3', 'cp3N', 'binary' or 'sdist' from a distribution's file name."""
    if not filename.endswith(".whl"):
        return "sdist"
    python_tag, abi_tag, platform_tag = filename[:-4].split("-")[-3:]
    if abi_tag == "abi3":
        return "abi3"
    if abi_tag == "none" and platform_tag == "any":
        return "any"
    if abi_tag == "none":  # e.g. a bundled executable (deno): no Python ABI, one platform
        return "binary"
    return python_tag.split(".")[0]


def pip_plan(
    pins: list[str], version: str, platforms: list[str], workdir: Path, binary_only: bool
) -> subprocess.CompletedProcess:
    requirements = workdir / "requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--no-deps",
        "--ignore-installed",
        "--disable-pip-version-check",
        "--quiet",
        "--retries",
        "10",
        "--python-version",
        version,
        "--target",
        str(workdir / "target"),
        "--report",
        str(report),
        "-r",
        str(requirements),
    ]
    if binary_only:
        cmd.append("--only-binary=:all:")
    for platform in platforms:
        cmd += ["--platform", platform]
    return subprocess.run(cmd, capture_output=True, text=True)


def plan_for(pins: dict[str, str], version: str, platforms: list[str], workdir: Path, log) -> dict[str, str]:
    """Normalized name -> kind for one Python version; MISSING where no file serves it."""
    kinds: dict[str, str] = {}
    todo = dict(pins)
    for binary_only in (True, False):
        while todo:
            proc = pip_plan(list(todo.values()), version, platforms, workdir, binary_only)
            if proc.returncode == 0:
                report = json.loads((workdir / "report.json").read_text())
                for item in report["install"]:
                    name = normalize(item["metadata"]["name"])
                    filename = unquote(Path(urlparse(item["download_info"]["url"]).path).name)
                    kinds[name] = kind_of(filename)
                    todo.pop(name, None)
                break
            missing = NOT_FOUND.search(proc.stderr)
            if not missing or normalize(missing.group(1)) not in todo:
                log(proc.stderr[-3000:])
                raise SystemExit(f"pip failed for Python {version} in a way this script cannot attribute to a pin")
            name = normalize(missing.group(1))
            kinds[name] = "MISSING"
            log(f"  {version}: no {'wheel' if binary_only else 'file at all'} for {todo[name]}")
            del todo[name]
        # Second pass: the pins without a wheel, now allowing a source archive.
        todo = {n: pins[n] for n, k in kinds.items() if k == "MISSING"}
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--python", nargs="+", default=list(VERSIONS), metavar="X.Y")
    parser.add_argument(
        "--platform", action="append", default=[], help="wheel platform tag(s) to plan for (default: this machine's)"
    )
    parser.add_argument("--report", type=Path, help="also write the pin x version table as CSV")
    args = parser.parse_args(argv)

    pins = read_lock(args.lock)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    table: dict[str, dict[str, str]] = {name: {} for name in pins}
    with tempfile.TemporaryDirectory(prefix="pycheck-") as tmp:
        for version in args.python:
            log(f"Python {version}: asking pip for an install plan of {len(pins)} pins ...")
            workdir = Path(tmp) / version
            workdir.mkdir()
            for name, kind in plan_for(pins, version, args.platform, workdir, log).items():
                table[name][version] = kind
    for name in pins:  # a pin pip did not mention at all is as bad as a missing one
        for version in args.python:
            table[name].setdefault(version, "MISSING")

    if args.report:
        with args.report.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["pin", *args.python])
            writer.writerows([pins[n], *(table[n][v] for v in args.python)] for n in pins)

    where = ", ".join(args.platform) or "this machine's platform"
    print(f"{args.lock.name}: {len(pins)} pins, Python {', '.join(args.python)}, {where}")
    kinds = sorted({k for row in table.values() for k in row.values()})
    print(
        "files per kind: "
        + "; ".join(f"{k}: " + "/".join(str(sum(table[n][v] == k for n in pins)) for v in args.python) for k in kinds)
    )
    special = {n: row for n, row in table.items() if any(k in ("sdist", "MISSING") for k in row.values())}
    width = max([len(pins[n]) for n in special] + [3])
    if special:
        print("\npins without a wheel for every version:")
        print(f"  {'pin':<{width}}  " + "  ".join(f"{v:>8}" for v in args.python))
        for name, row in special.items():
            print(f"  {pins[name]:<{width}}  " + "  ".join(f"{row[v]:>8}" for v in args.python))
    missing = [(pins[n], v) for n, row in table.items() for v, k in row.items() if k == "MISSING"]
    if missing:
        print(
            f"\nFAIL: {len(missing)} (pin, version) pairs have no distribution: "
            + ", ".join(f"{p} on {v}" for p, v in missing)
        )
        return 1
    print(f"\nOK: every pin has a distribution for Python {', '.join(args.python)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
