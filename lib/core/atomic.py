"""Writing a file so that a reader sees the old content or the new one, never half of it.

Stages can be interrupted (Ctrl-C, a killed `dvc repro`) and resumed, and several
threads write parts side by side, so every output file goes to a temporary name in
the same folder (a rename is atomic only within one filesystem), is flushed to disk,
and is renamed into place. The temporary name is unique per process and thread and
starts with a dot, so a killed run's leftovers are easy to recognise and sweep
(``STALE_GLOB``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

STALE_GLOB = ".*.tmp"


def temporary_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_write(final: str | Path, content: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write ``content`` (bytes, text as UTF-8, or a function that writes to a binary
    file handle) to ``final`` through a temporary file and a rename."""
    final = Path(final)
    tmp = temporary_name(final)
    try:
        with open(tmp, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def replace_synced(tmp: str | Path, final: str | Path) -> None:
    """Rename a file that was written elsewhere (e.g. a memory-mapped ``.npy``) into
    place, after forcing it to disk, so a crash never leaves a renamed but empty file."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
