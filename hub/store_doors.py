"""HubStore's doors half: what the venue console's live doors page and device pages read.

The doors page keeps a running tally per event (hub/console/doors_feed.py): `door_counts`
sums the event's scans stored after a scan id, so each update reads only what was stored
since the last one (scan ids grow in commit order: writers take turns). Every reader sees a
scan on the hub's clock and under the hub's gate name (hub/schema.py SCAN_HUB_MS,
SCAN_GATE_NAME). The callers scope: the event and the device are the principal's already.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from hub.schema import SCAN_GATE_NAME, SCAN_HUB_MS
from hub.store_base import Row, StoreBase

MINUTE_MS = 60_000

# The zone a scan counts in: the device's own zone, else its gate's when the gate leads into
# one zone only, else the ticket's (its own, else its type's); None: nowhere in particular.
_SCAN_ZONE = (
    "COALESCE(s.zone, CASE WHEN json_array_length(g.zones_json) = 1"
    " THEN json_extract(g.zones_json, '$[0]') END, t.zone, tt.zone)"
)
_SCAN_PLACES = (
    " FROM scans s LEFT JOIN gates g ON g.id = s.gate_id"
    " LEFT JOIN tickets t ON t.id = s.ticket_id"
    " LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id"
)
# A scan as a person reads it on the doors and device pages (no holder names, no payload).
_SCAN_LINE = (
    f"SELECT s.id, s.device_id, s.device_seq AS seq, s.event_id, s.ticket_id, s.verdict,"
    f" s.reason, s.direction, s.counted, {SCAN_HUB_MS} AS at_ms, s.arrived_ms,"
    f" {SCAN_GATE_NAME} AS gate_name, {_SCAN_ZONE} AS zone, d.name AS device_name"
    f"{_SCAN_PLACES} LEFT JOIN devices d ON d.id = s.device_id"
)


class DoorGroup(NamedTuple):
    """Scans of one device alike in zone, direction, verdict, reason and whether they
    moved a person: how many, and the latest one's time (hub clock)."""

    device_id: str
    zone: str | None
    direction: str
    verdict: str
    reason: str
    counted: bool
    scans: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class DoorCounts:
    """An event's scans stored after one scan id, up to `last_scan_id`, summed: `groups`,
    and the counted entries by (zone, minute on the hub clock) from `since_ms` on. Scans of
    deactivated devices are kept for audit and counted nowhere."""

    groups: list[DoorGroup]
    entries_by_minute: list[tuple[str | None, int, int]]  # (zone, epoch minute, entries)
    last_scan_id: int


class DoorsStore(StoreBase):
    def door_counts(self, event_id: str, after_scan_id: int, since_ms: int) -> DoorCounts:
        """The event's scans after `after_scan_id` (0: all), summed, in one snapshot."""
        conn = self.db.conn
        with self.db.atomic():  # one snapshot: the sums and the last id agree
            top = conn.execute("SELECT max(id) FROM scans WHERE event_id = ?", [event_id])
            last = max(after_scan_id, top.fetchone()[0] or 0)
            where = " WHERE s.event_id = ? AND s.id > ? AND s.id <= ? AND s.device_deactivated = 0"
            params: list[Any] = [event_id, after_scan_id, last]
            groups = [
                DoorGroup(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])
                for r in conn.execute(
                    f"SELECT s.device_id, {_SCAN_ZONE}, s.direction, s.verdict, s.reason,"
                    f" s.counted, count(*), max({SCAN_HUB_MS})"
                    f"{_SCAN_PLACES}{where} GROUP BY 1, 2, 3, 4, 5, 6",
                    params,
                )
            ]
            minutes = [
                (r[0], r[1], r[2])
                for r in conn.execute(
                    f"SELECT {_SCAN_ZONE}, ({SCAN_HUB_MS}) / {MINUTE_MS}, count(*)"
                    f"{_SCAN_PLACES}{where} AND s.counted = 1 AND s.direction = 'entry'"
                    f" AND {SCAN_HUB_MS} >= ? GROUP BY 1, 2",
                    [*params, since_ms],
                )
            ]
        return DoorCounts(groups, minutes, last)

    def latest_door_scans(self, event_id: str, limit: int) -> list[Row]:
        """The event's newest scans (of active devices), newest first."""
        return self._lines(
            " WHERE s.event_id = ? AND s.device_deactivated = 0 ORDER BY s.id DESC LIMIT ?",
            [event_id, limit],
        )

    def latest_device_scans(self, device_id: str, limit: int) -> list[Row]:
        """A device's newest scans (kept after deactivation too), newest first."""
        return self._lines(" WHERE s.device_id = ? ORDER BY s.id DESC LIMIT ?", [device_id, limit])

    def _lines(self, tail: str, params: list[Any]) -> list[Row]:
        cursor = self.db.conn.execute(_SCAN_LINE + tail, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def manifest_behind_since(self, event_id: str, revisions: Iterable[int]) -> dict[int, int]:
        """For each manifest revision a gate holds, when the oldest ticket change it lacks was
        made (the ticket's last update): how long the gate has been behind. A revision that
        lacks nothing is left out."""
        behind: dict[int, int] = {}
        for revision in set(revisions):
            row = self.db.conn.execute(
                "SELECT min(t.updated_ms) FROM ticket_changes c JOIN tickets t ON t.id ="
                " c.ticket_id WHERE c.event_id = ? AND c.revision > ?",
                [event_id, revision],
            ).fetchone()
            if row[0] is not None:
                behind[revision] = int(row[0])
        return behind

    def device_enrollment(self, device_id: str) -> Row | None:
        """The enrolment code a device spent (never the code: it is stored only hashed)."""
        return self._one(
            "SELECT id, gate_id, zone, name, created_by, created_ms, expires_ms, used_ms"
            " FROM enrollment_codes WHERE device_id = ?",
            [device_id],
        )
