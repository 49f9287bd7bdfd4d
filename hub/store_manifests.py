"""HubStore's manifest half: event revisions, per-ticket change revisions, issued credentials,
and the one transaction an online check runs in.

Revisions are bumped by triggers (hub/schema.py), so every code path that changes a ticket
moves the manifest on without having to remember to.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.online_check import CheckContext, OnlineCheck
from hub.schema import SCAN_GATE_NAME, SCAN_HUB_MS
from hub.store_base import ROW_CACHE_S, Row, StoreBase
from hub.store_venue_keys import trusted_key_sets
from protocol.backend_codes import ED25519_KEY_BYTES, LOOKUP_KEY_BYTES
from protocol.credential import CodeMatch, CodeState
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
    # Codes a ticketing system printed (tickets.backend_code): the key gates hash them with
    # (never None while a ticket has one), the event's pretix_sig1 public keys, and per ticket
    # of `tickets` its codes that no longer admit, (code, 'superseded' | 'blocked').
    code_lookup_key: bytes | None = None
    code_signing_keys: tuple[bytes, ...] = ()
    retired_codes: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # The venue's TicketToken key sets gates trust, their secrets still sealed, in the order
    # gates try them (hub/store_venue_keys.py; hub/venue_keys.legacy_keys opens them).
    legacy_key_sets: tuple[Row, ...] = ()


CHECK_FAILED = "check_failed"
# A backend code's tickets at an event: by tickets_backend_code and ticket_retired_codes_code.
BACKEND_CODE_SQL = (
    "SELECT id, 'current' FROM tickets WHERE event_id = ? AND backend_code = ?"
    " UNION ALL SELECT r.ticket_id, r.state FROM ticket_retired_codes r"
    " JOIN tickets t ON t.id = r.ticket_id WHERE r.code = ? AND t.event_id = ?"
)


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
        """The manifest revision: 1 plus the number of changes the triggers counted (a bulk
        insert of tickets counts as one: hub/store_tickets.py insert_tickets)."""
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
        """The event's facts and tickets (all, none, or changed after revision `since`). An
        event whose tickets carry backend codes and that has no code lookup key yet gets one
        first (gates must never get codes they cannot hash a scan to find), then is read
        again, so rows, keys and revision agree."""
        source, needs_key = self._manifest_source(event_id, with_tickets, since)
        if not needs_key:
            return source
        self._create_code_key(event_id)
        return self._manifest_source(event_id, with_tickets, since)[0]

    def _create_code_key(self, event_id: str) -> None:
        """32 random bytes, once (another process may have made it meanwhile), and a new
        revision: the key travels in the manifest header."""
        with self._writing():
            made = self.db.conn.execute(
                "INSERT INTO event_code_keys (event_id, lookup_key) VALUES (?, ?)"
                " ON CONFLICT (event_id) DO NOTHING",
                [event_id, secrets.token_bytes(LOOKUP_KEY_BYTES)],
            ).rowcount
            if made:
                self.db.conn.execute(
                    "INSERT INTO event_revisions (event_id, revision) VALUES (?, 1)"
                    " ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1",
                    [event_id],
                )

    def _code_keys(self, event_id: str) -> tuple[bytes | None, tuple[bytes, ...], bool]:
        """The event's code lookup key and signing keys, and whether it needs a key it lacks
        (a ticket carries a backend code). Two index reads."""
        row = self.db.conn.execute(
            "SELECT lookup_key, signing_keys_json FROM event_code_keys WHERE event_id = ?",
            [event_id],
        ).fetchone()
        if row is None:
            coded = self.db.conn.execute(
                "SELECT 1 FROM tickets WHERE event_id = ? AND backend_code IS NOT NULL LIMIT 1",
                [event_id],
            ).fetchone()
            return None, (), coded is not None
        return bytes(row[0]), _signing_keys(event_id, row[1]), False

    def _retired_codes(
        self, event_id: str, ids: Sequence[str] | None
    ) -> dict[str, tuple[tuple[str, str], ...]]:
        """(code, state) of the codes that no longer admit, by ticket: of the tickets `ids`,
        else of every ticket of the event."""
        found: dict[str, list[tuple[str, str]]] = {}
        if ids is None:
            rows = self.db.conn.execute(
                "SELECT r.ticket_id, r.code, r.state FROM ticket_retired_codes r"
                " JOIN tickets t ON t.id = r.ticket_id WHERE t.event_id = ?",
                [event_id],
            ).fetchall()
        else:
            rows = []
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows += self.db.conn.execute(
                    "SELECT ticket_id, code, state FROM ticket_retired_codes"
                    f" WHERE ticket_id IN ({marks})",
                    chunk,
                ).fetchall()
        for ticket_id, code, state in rows:
            found.setdefault(ticket_id, []).append((code, state))
        return {t: tuple(sorted(codes)) for t, codes in found.items()}

    def _manifest_source(
        self, event_id: str, with_tickets: bool, since: int | None
    ) -> tuple[ManifestSource | None, bool]:
        """manifest_source's one read transaction, and whether the event needs a code key."""
        with self.db.atomic():
            event = self.event_by_id(event_id)
            if event is None:
                return None, False
            lookup_key, signing_keys, needs_key = self._code_keys(event_id)
            if needs_key:
                return None, True
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
            retired: dict[str, tuple[tuple[str, str], ...]] = {}
            if lookup_key is not None and tickets:
                ids = None if since is None else [t["id"] for t in tickets]
                retired = self._retired_codes(event_id, ids)
            legacy_key_sets = trusted_key_sets(self.db, venue["id"])
            revision = self.event_revision(event_id)
        source = ManifestSource(
            revision,
            event,
            venue,
            zones,
            types,
            tickets,
            revoked,
            since,
            removed,
            lookup_key,
            signing_keys,
            retired,
            legacy_key_sets,
        )
        return source, False

    def _tickets_by_id(self, select: str, event_id: str, ids: Sequence[str]) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = select + f" WHERE t.event_id = ? AND t.id IN ({marks})"
            rows += self.db.query(sql, [event_id, *chunk])
        return rows

    def backend_code_matches(self, event_id: str, code: str) -> list[CodeMatch]:
        """The event's tickets that carry `code` as the code their backend printed on them
        now, or as one that no longer admits: the online check's ParseContext.code_lookup (the
        hub holds the codes themselves; gates hold their hashes). Two index reads."""
        rows = self.db.conn.execute(BACKEND_CODE_SQL, [event_id, code, code, event_id]).fetchall()
        return [CodeMatch(ticket_id, CodeState(state)) for ticket_id, state in rows]

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
        credential = check.identify(context, self.issued_credential, self.backend_code_matches)
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


def _signing_keys(event_id: str, stored: str) -> tuple[bytes, ...]:
    """event_code_keys.signing_keys_json (raw Ed25519 public keys, hex). An entry that is no
    such key is left out and logged: the event's other codes must still reach its gates."""
    keys: list[bytes] = []
    try:
        entries = json.loads(stored)
    except ValueError:
        entries = None
    for entry in entries if isinstance(entries, list) else [stored]:
        try:
            key = bytes.fromhex(entry) if isinstance(entry, str) else b""
        except ValueError:
            key = b""
        if len(key) == ED25519_KEY_BYTES:
            keys.append(key)
        else:
            log.error("event %s: a code signing key that is no Ed25519 key: %r", event_id, entry)
    return tuple(keys)
