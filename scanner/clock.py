"""The device's wall clock, as every part of the gate reads it: injectable, so tests and
drills (`--clock-skew-ms`) can run a gate on another time."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]  # milliseconds since the epoch


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
