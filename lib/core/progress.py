"""Progress that reads well in a log and in an executed notebook: a line at each tenth of the work.

A tqdm bar redraws itself with carriage returns: in a terminal that is one line, but a notebook
(and papermill's ``--log-output``) keeps every redraw, dozens of stderr entries per report.
``LineProgress`` takes the part of tqdm's interface the stages use (``update``,
``set_postfix``, ``close``) and prints one line to stdout each time another tenth is done, so
``dvc repro`` shows the stage moving and the report keeps ten lines.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class LineProgress:
    def __init__(self, total: int, desc: str, unit: str = "it", steps: int = 10, file: TextIO | None = None):
        self.total, self.desc, self.unit, self.steps = int(total), desc, unit, max(int(steps), 1)
        self.file = file or sys.stdout
        self.done, self._printed, self._postfix = 0, 0, ""
        self._t0 = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        step = self.steps * self.done // self.total if self.total else self.steps
        if step > self._printed:
            self._printed = step
            self._line()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self._postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        if self._printed < self.steps:  # stopped early (interrupted): say how far it got
            self._line()
            self._printed = self.steps

    def _line(self) -> None:
        pct = 100 * self.done / self.total if self.total else 100.0
        tail = f"; {self._postfix}" if self._postfix else ""
        print(
            f"{self.desc}: {self.done}/{self.total} {self.unit}s ({pct:.0f}%), {time.perf_counter() - self._t0:.0f} s{tail}",
            file=self.file,
            flush=True,
        )
