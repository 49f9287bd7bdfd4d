"""One code held in front of a reader is one scan.

A camera sees the same phone in every frame and a hand scanner may fire twice; without this the
gate would log (and deny as "already admitted") the guest's own second read. Time is passed in
so the window can be tested exactly and the same rule serves camera, wedge and serial input.
"""

from __future__ import annotations

DEFAULT_WINDOW_MS = 2_500


class Deduper:
    """Drops a payload read again within `window_ms` of its last read.

    The window slides: a code held up continuously stays one scan, however long it is held.
    A different payload in between does not reset it (two guests alternating are two scans
    each only once their windows pass)."""

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, max_tracked: int = 256) -> None:
        if window_ms < 0:
            raise ValueError("window_ms must be >= 0")
        self.window_ms = window_ms
        self._max_tracked = max_tracked
        self._last_seen: dict[str, int] = {}

    def accept(self, payload: str, now_ms: int) -> bool:
        """True if this read is a new scan; records the read either way."""
        last = self._last_seen.get(payload)
        self._last_seen[payload] = now_ms
        if len(self._last_seen) > self._max_tracked:
            self._forget_older_than(now_ms - self.window_ms)
        return last is None or now_ms - last >= self.window_ms

    def reset(self) -> None:
        self._last_seen.clear()

    def forget(self, payload: str) -> None:
        """This read did not count (its scan could not be stored): the next read of it is new."""
        self._last_seen.pop(payload, None)

    def _forget_older_than(self, cutoff_ms: int) -> None:
        self._last_seen = {p: t for p, t in self._last_seen.items() if t >= cutoff_ms}
        while len(self._last_seen) > self._max_tracked:  # all recent: drop the oldest
            oldest = min(self._last_seen, key=self._last_seen.__getitem__)
            del self._last_seen[oldest]
