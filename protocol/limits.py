"""The sane range of every number a device sends the hub. The hub refuses anything outside
at the edge, so nothing it stores can crash a reader later: a time past year 9999 has no
calendar date, an integer past 2**63 no SQLite column, one past 2**53 no exact JSON reading.
"""

from __future__ import annotations

EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00Z: a device clock earlier than this is unset
LATEST_MS = 4_102_444_800_000  # 2100-01-01T00:00Z
MAX_CLOCK_OFFSET_MS = 7 * 24 * 3600 * 1000  # a week: beyond that the device's clock is broken
MAX_SEQ = 2**53 - 1  # sequence numbers, revisions, cursors, versions: exact in any JSON reader
MAX_COUNT = 10_000_000  # counts a device reports (pending uploads)

# What a calendar can show: any time is clamped into this before it is turned into a date, so
# a stored absurd value reads as a far date instead of crashing the reader.
_CALENDAR_MIN_MS = -62_135_596_800_000 + 2 * 86_400_000  # 0001-01-03T00:00Z
_CALENDAR_MAX_MS = 253_402_300_799_999 - 2 * 86_400_000  # 9999-12-29T23:59:59.999Z


def is_time_ms(value: object) -> bool:
    """A time a device may send: an integer (not a bool) within [EARLIEST_MS, LATEST_MS)."""
    return type(value) is int and EARLIEST_MS <= value < LATEST_MS


def calendar_ms(ms: int) -> int:
    """`ms` moved into the range a datetime can hold in any time zone."""
    return min(max(ms, _CALENDAR_MIN_MS), _CALENDAR_MAX_MS)
