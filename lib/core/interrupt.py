"""Termination signals handled like Ctrl-C, so long runs clean up the same way whatever stops them.

Python turns SIGINT into ``KeyboardInterrupt``, but SIGTERM (``kill``, a CI runner
or scheduler cancelling a job) and SIGHUP (the terminal closing) end the process
at once by default: no ``finally``, no chance to stop child processes or to keep
half-done work out of the records. Inside ``terminate_as_interrupt()`` they raise
``KeyboardInterrupt`` in the main thread instead (where their handler is still the
default: an ignored SIGHUP under ``nohup`` stays ignored), and the defaults come back
on exit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _raise(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a worker's caller handles them
        return
    previous = {}
    try:
        for sig in SIGNALS:
            # Only a default (fatal) handler is replaced: `nohup` ignores SIGHUP, and a caller's own handler stays
            if signal.getsignal(sig) == signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _raise)
    except ValueError:  # an embedding interpreter that forbids it: keep the defaults
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
