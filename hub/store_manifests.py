"""HubStore's manifest half: event revisions, per-ticket change revisions, issued credentials,
and the one transaction an online check runs in.

Revisions are bumped by triggers (hub/schema.py), so every code path that changes a ticket
moves the manifest on without having to remember to.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.online_check import CheckContext, OnlineCheck
from hub.schema import SCAN_GATE_NAME, SCAN_HUB_MS
from hub.store_base import ROW_CACHE_S, Row, StoreBase
from protocol.wire import SEQ_CONFLICT

log = logging.getLogger("hub.check")


@dataclass(frozen=True, slots=True)
class ManifestSource:
    """Everything a manifest is built from, read in one transaction so rows and revision
    agree. `tickets` holds every ticket, none, or (with `since`) only those changed after
    that revision; `removed` are ids changed since then that no longer exist."""

    revision: int
    event: Row
    venue: Row
    zones: list[str]
    ticket_types: list[Row]
    tickets: list[Row]
    revoked: dict[str, str]  # ticket id -> reason, for every REVOKED ticket of the event
    since: int | None = None
    removed: tuple[str, ...] = ()


CHECK_FAILED = "check_failed"


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What an online check stored: the decision JSON, the scan's row id, and whether this
    was a retry of an already-stored check (same device and seq)."""

    decision: dict[str, Any]
    scan_id: int
    repeated: bool
    error: str | None = None  # CHECK_FAILED or SEQ_CONFLICT: nothing was stored

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """A flat tuple (it comes back from the check writer process for every check)."""
        return CheckOutcome, (self.decision, self.scan_id, self.repeated, self.error)


class ManifestStore(StoreBase):
    def event_revision(self, event_id: str) -> int:
        """The manifest revision: 1 plus the number of changes the triggers counted."""
        row = self._one("SELECT revision FROM event_revisions WHERE event_id = ?", [event_id])
        return int(row["revision"]) + 1 if row else 1

    def current_revision(self, event_id: str) -> int:
        """event_revision for the online check's hot path, remembered until this connection
        next writes anything; a change made by another process (a CLI import) is seen within
        ROW_CACHE_S, as for the event row itself."""
        remembered = self.remembered_revision(event_id)
        if remembered is not None:
            return remembered
        changes, now = self.db.conn.total_changes, time.monotonic()
        revision = self.event_revision(event_id)
        self._revisions[event_id] = (changes, now, revision)
        return revision

    def remembered_revision(self, event_id: str) -> int | None:
        """current_revision while it is remembered, else None; no database read (the
        connection's change counter is memory), so the event loop may ask."""
        hit = self._revisions.get(event_id)
        if (
            hit is not None
            and hit[0] == self.db.conn.total_changes
            and time.monotonic() - hit[1] < ROW_CACHE_S
        ):
            return hit[2]
        return None

    def bump_all_revisions(self) -> int:
        """A new manifest revision for every event, no ticket changed: after a hub key change,
        so every gate pulls a header with the new trusted keys, signed by the new key."""
        with self._writing():
            cursor = self.db.execute(
                "INSERT INTO event_revisions (event_id, revision) SELECT id, 1 FROM events"
                " WHERE true ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1"
            )
        return cursor.rowcount

    def event_by_id(self, event_id: str) -> Row | None:
        """Unscoped; device routes check the device's venue against it themselves. Cached:
        every online check reads it (events are imported, never changed)."""
        return self._cached(
            "events", event_id, lambda: self._one("SELECT * FROM events WHERE id = ?", [event_id])
        )

    def remembered_event(self, event_id: str) -> Row | None:
        return self._remembered("events", event_id)

    def event_times(self, venue_id: str) -> list[tuple[str, int, int]]:
        """(id, start, end) of every event at a venue: for naming the one gates hold now."""
        rows = self.db.conn.execute(
            "SELECT id, start_ms, end_ms FROM events WHERE venue_id = ?", [venue_id]
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def manifest_source(
        self, event_id: str, *, with_tickets: bool = True, since: int | None = None
    ) -> ManifestSource | None:
        """The event's facts and tickets (all, none, or changed after revision `since`)."""
        with self.db.atomic():
            event = self.event_by_id(event_id)
            if event is None:
                return None
            venue = self._one("SELECT * FROM venues WHERE id = ?", [event["venue_id"]])
            assert venue is not None
            zones = [
                r["name"]
                for r in self.db.query(
                    "SELECT name FROM zones WHERE venue_id = ? ORDER BY name", [venue["id"]]
                )
            ]
            types = list(
                self.db.query(
                    "SELECT * FROM ticket_types WHERE event_id = ? ORDER BY code", [event_id]
                )
            )
            revoked = {
                r["id"]: r["lock_reason"] or "revoked"
                for r in self.db.query(
                    "SELECT id, lock_reason FROM tickets WHERE event_id = ? AND status = 'REVOKED'",
                    [event_id],
                )
            }
            select = (
                "SELECT t.*, tt.name AS ticket_type_name FROM tickets t"
                " LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id"
            )
            tickets: list[Row] = []
            removed: tuple[str, ...] = ()
            if since is not None:
                changed = [
                    r["ticket_id"]
                    for r in self.db.query(
                        "SELECT ticket_id FROM ticket_changes WHERE event_id = ? AND revision > ?",
                        [event_id, since],
                    )
                ]
                tickets = self._tickets_by_id(select, event_id, changed)
                present = {t["id"] for t in tickets}
                removed = tuple(t for t in changed if t not in present)
            elif with_tickets:
                tickets = list(self.db.query(select + " WHERE t.event_id = ?", [event_id]))
            revision = self.event_revision(event_id)
        return ManifestSource(
            revision, event, venue, zones, types, tickets, revoked, since, removed
        )

    def _tickets_by_id(self, select: str, event_id: str, ids: Sequence[str]) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = select + f" WHERE t.event_id = ? AND t.id IN ({marks})"
            rows += self.db.query(sql, [event_id, *chunk])
        return rows

    # issued native credentials ------------------------------------------------------------
    def credentials_of(self, ticket_ids: Sequence[str]) -> dict[tuple[str, int], str]:
        found: dict[tuple[str, int], str] = {}
        for start in range(0, len(ticket_ids), 500):
            chunk = list(ticket_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = (
                "SELECT ticket_id, generation, credential FROM ticket_credentials"
                f" WHERE ticket_id IN ({marks})"
            )
            for r in self.db.query(sql, chunk):
                found[(r["ticket_id"], r["generation"])] = r["credential"]
        return found

    def issued_credential(self, ticket_id: str, generation: int) -> str | None:
        row = self.db.conn.execute(
            "SELECT credential FROM ticket_credentials WHERE ticket_id = ? AND generation = ?",
            [ticket_id, generation],
        ).fetchone()
        return None if row is None else str(row[0])

    def save_credentials(self, rows: Iterable[tuple[str, int, str]], now_ms: int) -> None:
        with self._writing():
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO ticket_credentials"
                " (ticket_id, generation, credential, issued_ms) VALUES (?, ?, ?, ?)",
                [(t, g, c, now_ms) for t, g, c in rows],
            )

    # scans -------------------------------------------------------------------------------
    def scans_of_ticket(self, ticket_id: str, event_id: str) -> list[Row]:
        """The movements' facts of every stored scan of a ticket at its event, each at its
        corrected (hub) time. Deactivated devices' scans are kept for audit, never counted;
        scans stored under no event or another event never count against the ticket."""
        cursor = self.db.conn.execute(
            f"SELECT s.ticket_id, {SCAN_HUB_MS} AS scanned_ms, s.direction,"
            f" s.counted, s.device_id, {SCAN_GATE_NAME} AS gate_name"
            " FROM scans s LEFT JOIN gates g ON g.id = s.gate_id"
            # `+s.event_id`: by the ticket's index, never the event's (which the planner may
            # pick, reading every scan of the event: 120 ms a check at 80k scans)
            " WHERE s.ticket_id = ? AND +s.event_id = ? AND s.device_deactivated = 0"
            f" ORDER BY {SCAN_HUB_MS}, s.id",
            [ticket_id, event_id],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor]

    def check_and_record(
        self, checks: Sequence[OnlineCheck], contexts: Mapping[int, CheckContext]
    ) -> tuple[list[CheckOutcome], list[tuple[str, dict[str, Any]]]]:
        """Run checks in order inside ONE write transaction (BEGIN IMMEDIATE): each reads the
        ticket and its scans (including those stored by earlier checks of the batch), is
        judged, and its scan inserted; one COMMIT (one fsync) makes them all durable.

        A retry with the same (device, seq) returns what was stored the first time. If any
        judgement raises, nothing of the batch is stored. The scan listeners are not told
        here (this runs in the check writer process): the stored rows are returned, as
        (device id, row), for the hub to tell them."""
        outcomes: list[CheckOutcome] = []
        fresh: list[tuple[str, dict[str, Any]]] = []
        with self._writing():
            for check in checks:
                try:
                    with self.db.atomic():  # a savepoint: one check's failure is its own
                        outcome, row = self._check_one(check, contexts[check.context_id])
                except Exception:
                    log.exception("check failed", extra={"device": check.device_id})
                    outcome, row = CheckOutcome({}, 0, False, CHECK_FAILED), None
                outcomes.append(outcome)
                if row is not None:
                    fresh.append((check.device_id, row))
        return outcomes, fresh

    def _check_one(
        self, check: OnlineCheck, context: CheckContext
    ) -> tuple[CheckOutcome, dict[str, Any] | None]:
        conn = self.db.conn
        stored = conn.execute(
            "SELECT id, detail_json, raw_hash FROM scans WHERE device_id = ? AND device_seq = ?",
            [check.device_id, check.seq],
        ).fetchone()
        if stored is not None:
            if stored[2] != check.raw_hash:  # another read under a seq already used
                return CheckOutcome({}, stored[0], True, SEQ_CONFLICT), None
            decision = json.loads(stored[1]).get("decision", {})
            return CheckOutcome(decision, stored[0], True), None
        ticket = None
        scans: list[Row] = []
        credential = check.identify(context, self.issued_credential)
        if credential.ticket_id is not None:
            ticket = self._one("SELECT * FROM tickets WHERE id = ?", [credential.ticket_id])
            scans = self.scans_of_ticket(credential.ticket_id, context.event_id)
        decision, row = check.judge(context, credential, ticket, scans)
        columns = list(row)
        cursor = conn.execute(
            f"INSERT INTO scans (device_id, device_seq, arrived_ms, {', '.join(columns)})"
            f" VALUES (?, ?, ?, {', '.join('?' * len(columns))})",
            [check.device_id, check.seq, check.now_ms, *row.values()],
        )
        notice = {**row, "seq": check.seq, "gate_name": check.gate.gate_name}
        return CheckOutcome(decision, int(cursor.lastrowid or 0), False), notice
