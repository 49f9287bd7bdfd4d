"""HubStore's side of the backend seam (hub/backends/seam.py): backends configured per
tenant or venue, a pull turned into hub rows, and the outbox of scans owed upstream.

Rows a backend brings get ids derived from the backend's id and the upstream id (uuid5), so
a second pull of the same thing finds it again without a mapping table, and two backends
never collide. A pull writes only what changed: an unchanged ticket keeps its revision, so a
quiet incremental pull moves no gate's manifest. The outbox is filled by a trigger on `scans`
(hub/schema.py): here it is only read and marked.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hub.api_rows import BACKEND_VIEW
from hub.backends.seam import OwedScan, Pull, UpstreamTicket
from hub.schema import SCAN_HUB_MS
from hub.store_base import Row, StoreBase, new_id
from hub.store_tickets import insert_tickets
from manifests.admission_types import ScanFact

if TYPE_CHECKING:
    from hub.store_api import ConnectedBackend, PushedScans

_BACKEND_IDS = uuid.UUID("6f1c2b1e-4f0e-4d55-9a43-0b5e1c7f2a10")
EVENT_CODE_LIMIT = 2**32 - 1
# What a listing shows of a backend: everything but the sealed token.
_PUBLIC_COLUMNS = (
    "id, tenant_id, venue_id, kind, name, settings_json, active, created_ms, last_pull_ms,"
    " last_pull_ok_ms, last_pull_error, last_push_ok_ms, last_push_error"
)


def backend_view(row: Row) -> dict[str, Any]:
    """What anyone may see of a backend: where it is and what it fronts, never its token."""
    return BACKEND_VIEW.json(row)


def upstream_id(backend_id: str, kind: str, *refs: str) -> str:
    """The hub's id for a thing a backend calls `refs`: the same on every pull."""
    return str(uuid.uuid5(_BACKEND_IDS, "/".join((backend_id, kind, *refs))))


def idempotency_key(device_id: str, device_seq: int) -> str:
    """One per scan for as long as the scan exists (its device and the device's counter),
    whatever the hub's row id: a restored hub database keeps it."""
    digest = hashlib.sha256(f"{device_id}:{device_seq}".encode()).hexdigest()
    return f"vg-{digest[:40]}"


@dataclass(slots=True)
class PullSummary:
    events: int = 0
    ticket_types: int = 0
    tickets_added: int = 0
    tickets_changed: int = 0
    codes_retired: int = 0
    unmatched_codes: int = 0
    tickets_revoked: int = 0  # gone from a complete pull
    refused: int = 0  # rows naming an id this backend does not own
    changed_events: set[str] = field(default_factory=set)
    venues: dict[str, str] = field(default_factory=dict)  # event id -> venue, of changed tickets

    def changed(self) -> bool:
        return bool(
            self.tickets_added or self.tickets_changed or self.codes_retired or self.tickets_revoked
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "ticket_types": self.ticket_types,
            "tickets_added": self.tickets_added,
            "tickets_changed": self.tickets_changed,
            "codes_retired": self.codes_retired,
            "unmatched_codes": self.unmatched_codes,
            "tickets_revoked": self.tickets_revoked,
            "refused": self.refused,
        }


@dataclass(frozen=True, slots=True)
class OutboxState:
    owed: int
    oldest_owed_ms: int | None
    failing: int  # owed scans that failed at least once
    pushed: int
    last_error: str | None


# An admitted entry's place among its ticket's admitted entries, by hub time then row.
_MOVED = (
    "(s2.verdict = 'admit' OR (s2.verdict = 'attention'"
    " AND json_extract(s2.detail_json, '$.confirmed') = 1))"
)
_ENTRY_NUMBER = (
    "SELECT count(*) FROM scans s2 WHERE s2.ticket_id = s.ticket_id AND s2.direction = 'entry'"
    f" AND s2.device_deactivated = 0 AND {_MOVED}"
    " AND (s2.scanned_ms + s2.clock_offset_ms, s2.id) <= (s.scanned_ms + s.clock_offset_ms, s.id)"
)


class BackendStore(StoreBase):
    # configuration --------------------------------------------------------------------------
    def create_backend(
        self, tenant_id: str, backend: ConnectedBackend, actor: str, now_ms: int
    ) -> Row:
        """Raises sqlite3.IntegrityError for a name the tenant already uses. Audited with its
        kind, name and settings, never its sealed token."""
        backend_id, settings, seal = new_id(), dict(backend.settings), backend.seal
        row = {
            "id": backend_id,
            "tenant_id": tenant_id,
            "venue_id": backend.venue_id,
            "kind": backend.kind,
            "name": backend.name,
            "settings_json": json.dumps(settings, sort_keys=True),
            "secret_sealed": None if seal is None else seal(backend_id),
            "created_ms": now_ms,
        }
        detail = {"kind": backend.kind, "name": backend.name, "settings": settings}
        self._insert_audited(
            "backends", row, tenant_id, backend.venue_id, actor, "backend.add", now_ms, detail
        )
        found = self.get_backend(backend_id)
        assert found is not None
        return found

    def get_backend(self, backend_id: str) -> Row | None:
        return self._one(f"SELECT {_PUBLIC_COLUMNS} FROM backends WHERE id = ?", [backend_id])

    def backend_secret(self, backend_id: str) -> bytes | None:
        row = self._one("SELECT secret_sealed FROM backends WHERE id = ?", [backend_id])
        return None if row is None else row["secret_sealed"]

    def list_backends(
        self, tenant_id: str | None = None, scope_venue: str | None = None
    ) -> list[Row]:
        """A tenant's backends (all tenants' with None); a venue-scoped reader sees its
        venue's and the tenant-wide ones."""
        sql = f"SELECT {_PUBLIC_COLUMNS} FROM backends WHERE 1 = 1"
        params: list[Any] = []
        if tenant_id is not None:
            sql += " AND tenant_id = ?"
            params.append(tenant_id)
        if scope_venue is not None:
            sql += " AND (venue_id IS NULL OR venue_id = ?)"
            params.append(scope_venue)
        return list(self.db.query(sql + " ORDER BY name, id", params))

    def find_backend(self, tenant_id: str, id_or_name: str) -> Row | None:
        return self._one(
            f"SELECT {_PUBLIC_COLUMNS} FROM backends WHERE tenant_id = ? AND (id = ? OR name = ?)"
            " ORDER BY id = ? DESC LIMIT 1",
            [tenant_id, id_or_name, id_or_name, id_or_name],
        )

    def remove_backend(self, backend: Row, actor: str, now_ms: int) -> dict[str, int]:
        """Stop fronting it. Its events and tickets stay, as the hub's own (gates keep
        scanning them); scans still owed to it are dropped from the outbox, and counted."""
        backend_id = backend["id"]
        with self._writing():
            owed = self.db.execute(
                "SELECT count(*) FROM backend_outbox WHERE backend_id = ? AND pushed_ms IS NULL",
                [backend_id],
            ).fetchone()[0]
            self.db.execute("DELETE FROM backend_outbox WHERE backend_id = ?", [backend_id])
            self.db.execute("DELETE FROM backend_events WHERE backend_id = ?", [backend_id])
            tickets = self.db.execute(
                "UPDATE tickets SET backend_id = NULL WHERE backend_id = ?", [backend_id]
            ).rowcount
            self.db.execute("DELETE FROM backends WHERE id = ?", [backend_id])
            detail = {"name": backend["name"], "dropped_owed_scans": owed, "tickets": tickets}
            self._audit(
                backend["tenant_id"],
                backend["venue_id"],
                actor,
                "backend.remove",
                backend_id,
                detail,
                now_ms,
            )
        return {"dropped_owed_scans": owed, "tickets_kept": tickets}

    def backend_cursor(self, backend_id: str) -> dict[str, Any]:
        row = self._one("SELECT cursor_json FROM backends WHERE id = ?", [backend_id])
        return {} if row is None else dict(json.loads(row["cursor_json"]))

    def record_pull_failure(self, backend_id: str, error: str, now_ms: int) -> None:
        with self._writing():
            self.db.execute(
                "UPDATE backends SET last_pull_ms = ?, last_pull_error = ? WHERE id = ?",
                [now_ms, error, backend_id],
            )

    # pull -------------------------------------------------------------------------------------
    def apply_pull(self, backend: Row, pull: Pull, now_ms: int) -> PullSummary:
        """Everything a pull brought, and its cursor, in one transaction: a pull that fails
        halfway leaves the hub as it was and starts again from the old cursor."""
        summary = PullSummary()
        backend_id = backend["id"]
        with self._writing():
            events = {e.ref: self._upsert_event(backend, e, summary) for e in pull.events}
            known = self._backend_event_ids(backend_id)
            listed: dict[str, set[str]] = {}
            types: dict[tuple[str, str], str] = {}
            for t in pull.ticket_types:
                event_id = events.get(t.event_ref) or known.get(t.event_ref)
                if event_id is not None:
                    types[(t.event_ref, t.ref)] = self._upsert_type(backend_id, event_id, t)
                    summary.ticket_types += 1
            placed = [
                (event_id, ticket)
                for ticket in pull.tickets
                if (event_id := events.get(ticket.event_ref) or known.get(ticket.event_ref))
            ]
            for event_id, ticket_id in self._upsert_tickets(backend_id, placed, now_ms, summary):
                listed.setdefault(event_id, set()).add(ticket_id)
            for ref in pull.complete_events:
                event_id = events.get(ref) or known.get(ref)
                if event_id is not None:
                    self._revoke_unlisted(
                        backend_id, event_id, listed.get(event_id, set()), now_ms, summary
                    )
            for code in pull.retired_codes:
                event_id = events.get(code.event_ref) or known.get(code.event_ref)
                if event_id is None or not self._retire(event_id, code, now_ms, summary):
                    summary.unmatched_codes += 1
            self.db.execute(
                "UPDATE backends SET cursor_json = ?, last_pull_ms = ?, last_pull_ok_ms = ?,"
                " last_pull_error = NULL WHERE id = ?",
                [json.dumps(dict(pull.cursor), sort_keys=True), now_ms, now_ms, backend_id],
            )
            if summary.changed():
                detail: dict[str, Any] = {**summary.as_dict(), "source": backend["kind"]}
                self._audit(
                    backend["tenant_id"],
                    backend["venue_id"],
                    f"backend:{backend['name']}",
                    "backend.pull",
                    backend_id,
                    detail,
                    now_ms,
                )
        for event_id in summary.changed_events:
            self._forget("events", event_id)
        return summary

    def _backend_event_ids(self, backend_id: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT upstream_ref, event_id FROM backend_events WHERE backend_id = ?", [backend_id]
        )
        return dict(rows.fetchall())

    def _upsert_event(self, backend: Row, event: Any, summary: PullSummary) -> str | None:
        backend_id = backend["id"]
        event_id = event.hub_id or upstream_id(backend_id, "event", event.ref)
        values = {
            "name": event.name,
            "timezone": event.timezone,
            "start_ms": event.start_ms,
            "end_ms": max(event.end_ms, event.start_ms),
        }
        held = self._one(
            "SELECT e.name, e.timezone, e.start_ms, e.end_ms, e.venue_id, be.backend_id"
            " FROM events e LEFT JOIN backend_events be ON be.event_id = e.id WHERE e.id = ?",
            [event_id],
        )
        if held is not None and held["backend_id"] != backend_id:
            # an id this backend does not own (another tenant's event, the hub's own): a
            # backend naming it must never take it over
            summary.refused += 1
            return None
        if held is None:
            used = {r[0] for r in self.db.execute("SELECT code FROM events")}
            code = secrets.randbelow(EVENT_CODE_LIMIT) + 1
            while code in used:
                code = secrets.randbelow(EVENT_CODE_LIMIT) + 1
            row = {
                "id": event_id,
                "venue_id": backend["venue_id"],
                "code": code,
                "created_ms": 0,
                **values,
            }
            self.db.table("events").insert(row)
            summary.changed_events.add(event_id)
        elif any(held[k] != v for k, v in values.items()):
            self.db.table("events").update(event_id, values)
            summary.changed_events.add(event_id)
        self.db.execute(
            "INSERT INTO backend_events (event_id, backend_id, upstream_ref, detail_json)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET"
            " detail_json = excluded.detail_json",
            [event_id, backend_id, event.ref, json.dumps(dict(event.detail), sort_keys=True)],
        )
        keys = json.dumps([k.hex() for k in event.signing_keys])
        changed = self.db.execute(
            "INSERT INTO event_code_keys (event_id, lookup_key, signing_keys_json)"
            " VALUES (?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET"
            " signing_keys_json = excluded.signing_keys_json"
            " WHERE signing_keys_json != excluded.signing_keys_json",
            [event_id, secrets.token_bytes(32), keys],
        ).rowcount
        if changed:  # a new key travels in the manifest header: move the revision
            self.db.execute(
                "INSERT INTO event_revisions (event_id, revision) VALUES (?, 1)"
                " ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1",
                [event_id],
            )
            summary.changed_events.add(event_id)
        summary.events += 1
        return event_id

    def _upsert_type(self, backend_id: str, event_id: str, t: Any) -> str:
        type_id = upstream_id(backend_id, "ticket_type", t.event_ref, t.ref)
        held = self._one("SELECT name FROM ticket_types WHERE id = ?", [type_id])
        taken = self._one(
            "SELECT id FROM ticket_types WHERE event_id = ? AND name = ? AND id != ?",
            [event_id, t.name, type_id],
        )
        name = t.name if taken is None else f"{t.name} ({t.ref})"  # names are unique per event
        if held is None:
            top = self.db.execute(
                "SELECT coalesce(max(code), 0) FROM ticket_types WHERE event_id = ?", [event_id]
            ).fetchone()[0]
            row = {"id": type_id, "event_id": event_id, "code": top + 1, "name": name}
            self.db.table("ticket_types").insert(row)
        elif held["name"] != name:
            self.db.table("ticket_types").update(type_id, {"name": name})
        return type_id

    def _upsert_tickets(
        self,
        backend_id: str,
        placed: Sequence[tuple[str, UpstreamTicket]],
        now_ms: int,
        s: PullSummary,
    ) -> list[tuple[str, str]]:
        """(event id, hub id) of each ticket taken. What the hub holds is read for all of
        them at once and new ones are inserted together: a first pull of 100,000 tickets is
        a few statements, not 200,000."""
        prepared = []
        type_ids: dict[tuple[str, str], str] = {}  # a few types for many tickets: uuid5 once
        for event_id, t in placed:
            ticket_id = t.hub_id or upstream_id(backend_id, "ticket", t.ref)
            type_id = None
            if t.type_ref is not None:
                type_id = type_ids.get((t.event_ref, t.type_ref))
                if type_id is None:
                    type_id = upstream_id(backend_id, "ticket_type", t.event_ref, t.type_ref)
                    type_ids[(t.event_ref, t.type_ref)] = type_id
            values: dict[str, Any] = {
                "status": str(t.status),
                "ticket_type_id": type_id,
                "holder_name": t.holder_name,
                "order_ref": t.order_ref,
                "backend_code": t.code,
                "zone": t.zone,
                "seat": t.seat,
            }
            prepared.append((event_id, t, ticket_id, values))
        ids = [ticket_id for _, _, ticket_id, _ in prepared]
        held = self._rows_by_id(
            "tickets",
            "id, status, ticket_type_id, holder_name, order_ref, backend_code, zone, seat,"
            " backend_id, event_id",
            ids,
        )
        blocked = {
            (r["ticket_id"], r["code"])
            for r in self._rows_by_id(
                "ticket_retired_codes",
                "ticket_id, code",
                ids,
                key="ticket_id",
                where="state = 'blocked'",
            ).values()
        }
        taken, fresh = [], []
        for event_id, t, ticket_id, values in prepared:
            row = held.get(ticket_id)
            if row is not None and (row["backend_id"] != backend_id or row["event_id"] != event_id):
                s.refused += 1  # never take over a ticket this backend did not bring
                continue
            taken.append((event_id, ticket_id))
            if row is None:
                fresh.append(
                    {"id": ticket_id, "event_id": event_id, "backend_id": backend_id,
                     "updated_ms": now_ms, **values}
                )  # fmt: skip
                s.tickets_added += 1
                self._ticket_changed(event_id, s)
            elif any(row[k] != v for k, v in values.items()):
                old_code = row["backend_code"]
                if old_code and old_code != t.code:  # upstream gave it a new code
                    self._retire_code(ticket_id, old_code, "superseded", now_ms)
                    s.codes_retired += 1
                self.db.table("tickets").update(ticket_id, {**values, "updated_ms": now_ms})
                s.tickets_changed += 1
                self._ticket_changed(event_id, s)
        insert_tickets(self.db.conn, fresh)
        for event_id, t, ticket_id, _ in prepared:
            if t.code is None or t.blocked == ((ticket_id, t.code) in blocked):
                continue  # the block is as upstream says
            if ticket_id in held and held[ticket_id]["backend_id"] != backend_id:
                continue
            if self._set_block(ticket_id, t.code, t.blocked, now_ms, s):
                self._ticket_changed(event_id, s)
        return taken

    def _rows_by_id(
        self, table: str, columns: str, ids: Sequence[str], *, key: str = "id", where: str = "1"
    ) -> dict[str, Row]:
        """Rows of `table` whose `key` is one of `ids`, by that key, 500 ids a statement (the
        bound-parameter limit of older SQLite builds is 999)."""
        found: dict[str, Row] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            cursor = self.db.conn.execute(
                f"SELECT {columns} FROM {table} WHERE {where} AND {key}"
                f" IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            names = [d[0] for d in cursor.description]
            for values in cursor:
                row = dict(zip(names, values, strict=True))
                found[row[key]] = row
        return found

    def _revoke_unlisted(
        self, backend_id: str, event_id: str, listed: set[str], now_ms: int, s: PullSummary
    ) -> None:
        """A complete pull's verdict on the event's tickets it did not list: deleted upstream,
        so revoked here (kept, so a gate can say why)."""
        rows = self.db.execute(
            "SELECT id FROM tickets WHERE event_id = ? AND backend_id = ? AND status != 'REVOKED'",
            [event_id, backend_id],
        ).fetchall()
        for (ticket_id,) in rows:
            if ticket_id not in listed:
                self.db.table("tickets").update(
                    ticket_id, {"status": "REVOKED", "updated_ms": now_ms}
                )
                s.tickets_revoked += 1
                self._ticket_changed(event_id, s)

    def _set_block(
        self, ticket_id: str, code: str, blocked: bool, now_ms: int, s: PullSummary
    ) -> bool:
        """Whether the code's block changed."""
        held = self._one(
            "SELECT state FROM ticket_retired_codes WHERE ticket_id = ? AND code = ?",
            [ticket_id, code],
        )
        if blocked and held is None:
            self._retire_code(ticket_id, code, "blocked", now_ms)
            s.codes_retired += 1
            return True
        if not blocked and held is not None and held["state"] == "blocked":
            self.db.execute(
                "DELETE FROM ticket_retired_codes WHERE ticket_id = ? AND code = ?",
                [ticket_id, code],
            )
            self._touch(ticket_id, now_ms)
            s.tickets_changed += 1
            return True
        return False

    def _retire(self, event_id: str, code: Any, now_ms: int, s: PullSummary) -> bool:
        """A retired code from the backend's own lists, on the ticket that carries or carried
        it; False when no ticket here ever had it (it cannot admit here anyway)."""
        row = self._one(
            "SELECT id FROM tickets WHERE event_id = ? AND backend_code = ?"
            " UNION SELECT r.ticket_id FROM ticket_retired_codes r JOIN tickets t"
            " ON t.id = r.ticket_id WHERE t.event_id = ? AND r.code = ? LIMIT 1",
            [event_id, code.code, event_id, code.code],
        )
        if row is None:
            return False
        ticket_id = row["id"]
        if code.state == "blocked":
            if self._set_block(ticket_id, code.code, code.active, now_ms, s):
                self._ticket_changed(event_id, s)
            return True
        held = self._one(
            "SELECT state FROM ticket_retired_codes WHERE ticket_id = ? AND code = ?",
            [ticket_id, code.code],
        )
        if held is None:
            self._retire_code(ticket_id, code.code, "superseded", now_ms)
            s.codes_retired += 1
            self._ticket_changed(event_id, s)
        return True

    def _retire_code(self, ticket_id: str, code: str, state: str, now_ms: int) -> None:
        self.db.execute(
            "INSERT INTO ticket_retired_codes (ticket_id, code, state, at_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (ticket_id, code) DO UPDATE SET state = excluded.state",
            [ticket_id, code, state, now_ms],
        )
        self._touch(ticket_id, now_ms)

    def _ticket_changed(self, event_id: str, s: PullSummary) -> None:
        if event_id not in s.venues:
            row = self._one("SELECT venue_id FROM events WHERE id = ?", [event_id])
            if row is not None:
                s.venues[event_id] = row["venue_id"]

    def _touch(self, ticket_id: str, now_ms: int) -> None:
        """A change beside the ticket row (its retired codes) must still reach gates: the
        revision triggers watch `tickets`, so the row is touched."""
        self.db.execute("UPDATE tickets SET updated_ms = ? WHERE id = ?", [now_ms, ticket_id])

    # outbox -----------------------------------------------------------------------------------
    def owed_scans(self, backend_id: str, now_ms: int, limit: int) -> list[OwedScan]:
        """Scans due for a push, oldest first. A check still waiting for staff (attention,
        unconfirmed) is not due: its outcome is not known yet."""
        rows = self.db.execute(
            "SELECT o.scan_id, s.device_id, s.device_seq, be.upstream_ref, be.detail_json,"
            f" t.id, t.backend_code, s.direction, s.zone, s.verdict, s.reason, {SCAN_HUB_MS},"
            " json_extract(s.detail_json, '$.online'),"
            " json_extract(s.detail_json, '$.confirmed'),"
            f" ({_ENTRY_NUMBER}),"
            " coalesce(t.max_entries, CASE WHEN coalesce("
            "   json_extract(e.policy_json, '$.reentry_enabled'), 0) THEN 0 ELSE 1 END) = 1"
            " FROM backend_outbox o JOIN scans s ON s.id = o.scan_id"
            " JOIN tickets t ON t.id = s.ticket_id JOIN events e ON e.id = t.event_id"
            " JOIN backend_events be ON be.event_id = t.event_id AND be.backend_id = o.backend_id"
            " WHERE o.backend_id = ? AND o.pushed_ms IS NULL AND o.next_attempt_ms <= ?"
            " AND NOT (s.verdict = 'attention'"
            "          AND json_extract(s.detail_json, '$.confirmed') IS NULL)"
            " ORDER BY o.scan_id LIMIT ?",
            [backend_id, now_ms, limit],
        ).fetchall()
        owed = []
        for (
            scan_id,
            device_id,
            seq,
            event_ref,
            detail,
            ticket_id,
            code,
            direction,
            zone,
            verdict,
            reason,
            at_ms,
            online,
            confirmed,
            entry_number,
            single_entry,
        ) in rows:
            admitted = ScanFact.moved(verdict, confirmed)
            owed.append(
                OwedScan(
                    scan_id=scan_id,
                    idempotency_key=idempotency_key(device_id, seq),
                    event_ref=event_ref,
                    event_detail=json.loads(detail),
                    ticket_ref=ticket_id,
                    code=code,
                    direction=direction,
                    zone=zone,
                    admitted=admitted,
                    reason=reason,
                    at_ms=at_ms,
                    decided_offline=not online,
                    entry_number=entry_number if admitted and direction == "entry" else 0,
                    single_entry=bool(single_entry),
                )
            )
        return owed

    def record_push(self, pushed: PushedScans, now_ms: int) -> None:
        """Mark what upstream now has; the rest waits until `retry_at_ms(attempts)`."""
        backend_id = pushed.backend_id
        done = [o for o in pushed.outcomes if o.done]
        failed = [o for o in pushed.outcomes if not o.done]
        with self._writing():
            self.db.conn.executemany(
                "UPDATE backend_outbox SET pushed_ms = ?, attempts = attempts + 1,"
                " answer_json = ?, last_error = ? WHERE scan_id = ? AND pushed_ms IS NULL",
                [(now_ms, json.dumps(dict(o.answer)), o.error, o.scan_id) for o in done],
            )
            for o in failed:
                attempts = self.db.execute(
                    "UPDATE backend_outbox SET attempts = attempts + 1, last_error = ?"
                    " WHERE scan_id = ? RETURNING attempts",
                    [o.error, o.scan_id],
                ).fetchone()
                if attempts is not None:
                    self.db.execute(
                        "UPDATE backend_outbox SET next_attempt_ms = ? WHERE scan_id = ?",
                        [pushed.retry_at_ms(attempts[0]), o.scan_id],
                    )
            error = next((o.error for o in failed if o.error), None)
            if done:
                self.db.execute(
                    "UPDATE backends SET last_push_ok_ms = ? WHERE id = ?", [now_ms, backend_id]
                )
            if failed or done:
                self.db.execute(
                    "UPDATE backends SET last_push_error = ? WHERE id = ?", [error, backend_id]
                )

    def outbox_state(self, backend_id: str) -> OutboxState:
        owed, oldest, failing = self.db.execute(
            "SELECT count(*), min(s.scanned_ms + s.clock_offset_ms), sum(o.attempts > 0)"
            " FROM backend_outbox o JOIN scans s ON s.id = o.scan_id"
            " WHERE o.backend_id = ? AND o.pushed_ms IS NULL",
            [backend_id],
        ).fetchone()
        pushed = self.db.execute(
            "SELECT count(*) FROM backend_outbox WHERE backend_id = ? AND pushed_ms IS NOT NULL",
            [backend_id],
        ).fetchone()[0]
        row = self._one("SELECT last_push_error FROM backends WHERE id = ?", [backend_id])
        return OutboxState(
            owed, oldest, failing or 0, pushed, None if row is None else row["last_push_error"]
        )

    def record_webhook(
        self, backend_id: str, nonce: str, idempotency_key: str | None, now_ms: int
    ) -> str:
        """A genuine webhook taken once: "new", "replayed" (its nonce was seen) or "duplicate"
        (its idempotency key was acted on already: acknowledged, nothing done)."""
        with self._writing():
            self.db.execute("DELETE FROM backend_webhooks WHERE seen_ms < ?", [now_ms - 600_000])
            seen = self._one(
                "SELECT nonce FROM backend_webhooks WHERE backend_id = ? AND (nonce = ?"
                " OR idempotency_key = ?)",
                [backend_id, nonce, idempotency_key],
            )
            if seen is not None:
                return "replayed" if seen["nonce"] == nonce else "duplicate"
            self.db.execute(
                "INSERT INTO backend_webhooks (backend_id, nonce, idempotency_key, seen_ms)"
                " VALUES (?, ?, ?, ?)",
                [backend_id, nonce, idempotency_key, now_ms],
            )
        return "new"

    def upstream_answers(self, event_id: str) -> list[Row]:
        """What the backend answered for this event's pushed scans, where it was not a plain
        yes (pretix saw a duplicate, did not know the code...), for the reconciliation
        report."""
        return list(
            self.db.query(
                "SELECT o.scan_id, s.ticket_id, s.device_id, s.verdict, o.answer_json,"
                " o.pushed_ms FROM backend_outbox o JOIN scans s ON s.id = o.scan_id"
                " JOIN tickets t ON t.id = s.ticket_id"
                " WHERE t.event_id = ? AND o.pushed_ms IS NOT NULL"
                " AND coalesce(json_extract(o.answer_json, '$.status'), 'ok') != 'ok'"
                " ORDER BY o.scan_id",
                [event_id],
            )
        )
