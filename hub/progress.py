"""Progress of a long CLI job (a 100k-ticket import, `demo-data`), drawn on a terminal only.

The jobs report `(what, done, total)` to a Progress callback and know nothing of terminals;
`ProgressLine` redraws one stderr line in place, at most every REDRAW_S (and at once for a
new phase or the end of one), and only when stderr is a terminal, so logs and pipes stay clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

# (what is being done, how many so far, how many in all or None when not known yet)
Progress = Callable[[str, int, int | None], None]
REDRAW_S = 0.1
WIDTH = 30


class ProgressLine:
    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.clock = stream, clock
        self.shown = ""
        self._drawn_at = float("-inf")
        self._what = ""

    def __call__(self, what: str, done: int, total: int | None) -> None:
        finished = total is not None and done >= total
        new_phase = what != self._what
        if not (finished or new_phase) and self.clock() - self._drawn_at < REDRAW_S:
            return
        self._what = what
        if total:
            part = min(1.0, done / total)
            bar = "#" * round(part * WIDTH) + "." * (WIDTH - round(part * WIDTH))
            text = f"{what} [{bar}] {part:4.0%}  {done:,}/{total:,}"
        else:
            text = f"{what} {done:,}"
        if text != self.shown:
            self.stream.write("\r" + text.ljust(len(self.shown)))
            self.stream.flush()
            self.shown, self._drawn_at = text, self.clock()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = ""


def on_terminal(stream: TextIO) -> ProgressLine | None:
    """A progress line on `stream` if it is a terminal, else None (report nothing)."""
    return ProgressLine(stream) if stream.isatty() else None
