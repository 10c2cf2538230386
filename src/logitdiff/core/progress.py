"""Progress of a long loop: a live bar on a terminal, plain lines when stderr goes to a file.

A batch job's log (SLURM, nohup, a pipe) is not a terminal: a bar's `\\r` redraws would pile up in one
endless log line, so there each progress report is a line of its own, at most every 30 s or 10 %.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Protocol, TextIO

LINE_EVERY_S = 30.0
LINE_EVERY_FRACTION = 0.1


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...
    def close(self) -> None: ...
    def __enter__(self) -> Progress: ...
    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None: ...


class LineProgress:
    """'<desc>: <done>/<total> <unit> (<pct> %), <elapsed> s' lines: at 30 s / 10 % steps and at the end
    (a loop that ends short of its total, whose total was an upper bound, ends with '<desc>: <done> <unit>, …')."""

    def __init__(self, total: int, desc: str, unit: str, stream: TextIO, every_s: float = LINE_EVERY_S) -> None:
        self.total, self.desc, self.unit, self.stream, self.every_s = total, desc, unit, stream, every_s
        self.done = 0
        self._start = self._last_time = time.monotonic()
        self._last_step = 0
        self._closed = False

    def _line(self) -> None:
        # A loop may end before its total (which can be an upper bound): then the count alone.
        count = f"{self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f} %)" if self.total and (self.done < self.total and not self._closed or self.done == self.total) else f"{self.done} {self.unit}"
        print(f"{self.desc}: {count}, {time.monotonic() - self._start:.0f} s", file=self.stream, flush=True)
        self._last_time = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        step = int(self.done / self.total / LINE_EVERY_FRACTION) if self.total else 0
        if self.done < self.total and (step > self._last_step or time.monotonic() - self._last_time >= self.every_s):
            self._last_step = step
            self._line()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()


def progress(total: int, desc: str, unit: str, *, enabled: bool = True, transient: bool = False) -> Progress:
    """A tqdm bar on a terminal, LineProgress elsewhere; `transient`: the bar disappears when done."""
    from tqdm import tqdm

    if not enabled or sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=not transient)  # type: ignore[return-value]
    return LineProgress(total, desc, unit, sys.stderr)
