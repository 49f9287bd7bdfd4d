"""HubStore's reconciliation half: the scans reconciliation reads, the outcomes and
conflicts it writes beside them (scans themselves are never rewritten), the admin report,
and the peer scans an upload's acknowledgement carries back to the device."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.schema import SCAN_GATE_NAME, SCAN_HUB_MS
from hub.store_api import ToReconcile
from hub.store_base import Row, StoreBase

DOUBLE_ENTRY = "double_entry"
MAX_PEER_SCANS = 1000

_RECONCILE_SELECT = (
    "SELECT s.id, s.device_id, s.device_seq, s.ticket_id, s.verdict, s.reason, s.direction,"
    " s.scanned_ms, s.clock_offset_ms,"
    " json_extract(s.detail_json, '$.confirmed') AS confirmed,"
    " json_extract(s.detail_json, '$.manual') AS manual,"
    f" {SCAN_GATE_NAME} AS gate_name,"
    " g.zones_json AS gate_zones_json"
    " FROM scans s LEFT JOIN gates g ON g.id = s.gate_id"
    " WHERE +s.event_id = ? AND s.device_deactivated = 0"  # `+`: use the ticket / id index
)


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """Reconciliation's verdict on one stored scan (by row id)."""

    scan_id: int
    ticket_id: str | None
    outcome: str
    reason: str
    message: str
    corrected_ms: int


@dataclass(frozen=True, slots=True)
class StoredConflict:
    """A double entry: the scan that won and the duplicate, by row id, with what a
    supervisor needs to see (device, seq, gate, corrected time of each, and why)."""

    ticket_id: str
    winner_id: int
    duplicate_id: int
    detail: Mapping[str, Any]


# Judge the given scan rows (of the touched tickets, plus ticketless ones) at once.
Reconcile = Callable[[list[Row]], tuple[list[StoredOutcome], list[StoredConflict]]]


class ReconcileStore(StoreBase):
    def reconcile_event_tickets(
        self, work: ToReconcile, judge: Reconcile, now_ms: int
    ) -> tuple[int, int]:
        """Re-reconcile the tickets (every stored scan of each, from every device) and the
        ticketless scans, in ONE write transaction, so hub processes reconciling the same ticket
        take turns. Outcomes replace the tickets' earlier ones; each ticket's unresolved
        conflicts become exactly the new set (a pair found again keeps its row). Returns
        (outcomes written, conflicts now open for these tickets)."""
        event_id = work.event_id
        tickets = sorted(set(work.ticket_ids))
        conn = self.db.conn
        with self.write_turn, self.relaxed_sync():  # derived facts: recomputed if ever lost
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._reconcile_rows(event_id, tickets, work.scan_ids)
                outcomes, conflicts = judge(rows) if rows else ([], [])
                conn.executemany(
                    "INSERT INTO scan_outcomes (scan_id, event_id, ticket_id, outcome, reason,"
                    " message, corrected_ms, reconciled_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (scan_id) DO UPDATE SET outcome = excluded.outcome,"
                    " reason = excluded.reason, message = excluded.message,"
                    " corrected_ms = excluded.corrected_ms, reconciled_ms = excluded.reconciled_ms",
                    [
                        (
                            o.scan_id,
                            event_id,
                            o.ticket_id,
                            o.outcome,
                            o.reason,
                            o.message,
                            o.corrected_ms,
                            now_ms,
                        )
                        for o in outcomes
                    ],
                )
                keys = [(c.ticket_id, json.dumps([c.winner_id, c.duplicate_id])) for c in conflicts]
                self._replace_conflicts(event_id, tickets, keys, conflicts, now_ms)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return len(outcomes), len(conflicts)

    def _reconcile_rows(
        self, event_id: str, tickets: Sequence[str], extra_scan_ids: Sequence[int]
    ) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(tickets), 500):
            chunk = tickets[start : start + 500]
            sql = _RECONCILE_SELECT + f" AND s.ticket_id IN ({','.join('?' * len(chunk))})"
            rows += self._rows(sql, [event_id, *chunk])
        extra = list(extra_scan_ids)
        for start in range(0, len(extra), 500):
            ids = extra[start : start + 500]
            sql = (
                _RECONCILE_SELECT
                + f" AND s.ticket_id IS NULL AND s.id IN ({','.join('?' * len(ids))})"
            )
            rows += self._rows(sql, [event_id, *ids])
        return rows

    def _replace_conflicts(
        self,
        event_id: str,
        tickets: Sequence[str],
        keys: list[tuple[str, str]],
        conflicts: Sequence[StoredConflict],
        now_ms: int,
    ) -> None:
        conn = self.db.conn
        fresh = set(keys)
        for start in range(0, len(tickets), 500):
            chunk = tickets[start : start + 500]
            stale = [
                (r[0],)
                for r in conn.execute(
                    "SELECT id, ticket_id, scan_ids_json FROM conflicts WHERE kind = ?"
                    f" AND resolved_ms IS NULL AND ticket_id IN ({','.join('?' * len(chunk))})",
                    [DOUBLE_ENTRY, *chunk],
                )
                if (r[1], r[2]) not in fresh
            ]
            conn.executemany("DELETE FROM conflicts WHERE id = ?", stale)
        conn.executemany(
            "INSERT OR IGNORE INTO conflicts (event_id, ticket_id, kind, scan_ids_json,"
            " detail_json, detected_ms) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (event_id, ticket, DOUBLE_ENTRY, ids, json.dumps(dict(c.detail)), now_ms)
                for (ticket, ids), c in zip(keys, conflicts, strict=True)
            ],
        )

    def tickets_of_event(self, event_id: str, ticket_ids: Sequence[str]) -> dict[str, Row]:
        """Unscoped ticket rows of one event by id (the caller already scoped the event)."""
        found: dict[str, Row] = {}
        for start in range(0, len(ticket_ids), 500):
            chunk = list(ticket_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            # `+`: look tickets up by primary key, not through the event's index
            sql = f"SELECT * FROM tickets WHERE +event_id = ? AND id IN ({marks})"
            found.update({r["id"]: r for r in self._rows(sql, [event_id, *chunk])})
        return found

    def unreconciled_tickets(self, event_id: str) -> ToReconcile:
        """Tickets with a stored scan that has no outcome yet (online checks, or outcomes a
        power cut lost), and the ticketless scans without one."""
        tickets: set[str] = set()
        loose: list[int] = []
        for scan_id, ticket_id in self.db.conn.execute(
            "SELECT s.id, s.ticket_id FROM scans s LEFT JOIN scan_outcomes o ON o.scan_id = s.id"
            " WHERE s.event_id = ? AND s.device_deactivated = 0 AND o.scan_id IS NULL",
            [event_id],
        ):
            if ticket_id is None:
                loose.append(scan_id)
            else:
                tickets.add(ticket_id)
        return ToReconcile(event_id, sorted(tickets), loose)

    def outcome_counts(self, event_id: str) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.db.conn.execute(
                "SELECT outcome, count(*) FROM scan_outcomes WHERE event_id = ? GROUP BY outcome",
                [event_id],
            )
        }

    def scan_outcomes_of(self, scan_ids: Sequence[int]) -> dict[int, Row]:
        found: dict[int, Row] = {}
        for start in range(0, len(scan_ids), 500):
            chunk = list(scan_ids[start : start + 500])
            sql = f"SELECT * FROM scan_outcomes WHERE scan_id IN ({','.join('?' * len(chunk))})"
            found.update({r["scan_id"]: r for r in self._rows(sql, chunk)})
        return found

    def double_entries(self, event_id: str) -> list[Row]:
        return self._rows(
            "SELECT * FROM conflicts WHERE event_id = ? AND kind = ? ORDER BY id",
            [event_id, DOUBLE_ENTRY],
        )

    def count_conflicts(self) -> int:
        """Open (unresolved) conflicts, for the metrics gauge."""
        sql = "SELECT count(*) FROM conflicts WHERE resolved_ms IS NULL"
        return int(self.db.execute(sql).fetchone()[0])

    # peer scans in the upload acknowledgement -----------------------------------------------
    def peer_scans(
        self, event_id: str, device_id: str, after: int, limit: int = MAX_PEER_SCANS
    ) -> tuple[list[Row], int, bool]:
        """Counted movements at OTHER devices of the event stored after row id `after`:
        (scans, new cursor, more waiting). The cursor covers every row looked at, so a
        device never re-reads its own scans."""
        conn = self.db.conn
        with self.db.atomic():  # one snapshot: the rows and the cursor agree
            rows = self._rows(
                f"SELECT s.id, s.ticket_id, {SCAN_HUB_MS} AS at_ms,"
                " s.direction, s.device_id, s.device_seq AS seq, s.verdict,"
                f" {SCAN_GATE_NAME} AS gate_name"
                " FROM scans s LEFT JOIN gates g ON g.id = s.gate_id"
                " WHERE s.event_id = ? AND s.id > ? AND s.device_id != ?"
                " AND s.device_deactivated = 0 AND s.counted = 1 AND s.ticket_id IS NOT NULL"
                " ORDER BY s.id LIMIT ?",
                [event_id, after, device_id, limit + 1],
            )
            more = len(rows) > limit
            if more:
                rows = rows[:limit]
                cursor = rows[-1]["id"]
            else:
                top = conn.execute(
                    "SELECT max(id) FROM scans WHERE event_id = ?", [event_id]
                ).fetchone()[0]
                cursor = max(after, top or 0)
        return rows, cursor, more

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Row]:
        cursor = self.db.conn.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor]
