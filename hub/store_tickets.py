"""HubStore's ticket half: events, ticket types, tickets and the venue operations on them
(comps, locks, reissue, post-event expiry)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from hub.schema import TICKET_FIELDS
from hub.store_base import Row, StoreBase, new_id
from manifests.model import ADMITTING_STATUSES, TicketStatus
from manifests.policy import EXPIRY_AFTER_END_MS

if TYPE_CHECKING:
    from hub.store_api import CatalogueImport, NewComp

COMP_LIMIT_REACHED = "comp_limit_reached"
NOT_REISSUABLE = "ticket_not_reissuable"
NOT_WITHDRAWABLE = "invalid_transition"
REISSUE_REASON = "duplicate_ticket"
EXPIRING_STATUSES = (TicketStatus.ACTIVE, TicketStatus.TRANSFERRED)

_TICKET_SCOPE = (
    "SELECT t.*, e.venue_id AS venue_id, tt.name AS ticket_type_name FROM tickets t"
    " JOIN events e ON e.id = t.event_id JOIN venues v ON v.id = e.venue_id"
    " LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id"
    " WHERE v.tenant_id = ?"
)
_IMPORTED = {"event": "events", "ticket_type": "ticket_types", "ticket": "tickets"}
_PRIVATE = ("holder_name", "attention")  # names stay out of the audit log


def insert_tickets(conn: sqlite3.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """New tickets, all with the columns of the first, in one statement and in key order
    (each lands at the end of the indexes, not on a random page). What the insert trigger
    does per row is done once for all of them (schema step 16): each of their events moves
    one revision, and each ticket's change is recorded at the revision it first appears in.
    New rows take rowids above the largest one (SQLite's rule while that is below 2**63 - 1),
    which is how the statements after the insert find them."""
    if not rows:
        return
    columns = list(rows[0])
    values = sorted(([r[c] for c in columns] for r in rows), key=itemgetter(columns.index("id")))
    before = conn.execute("SELECT coalesce(max(rowid), 0) FROM tickets").fetchone()[0]
    conn.execute("INSERT INTO ticket_bulk_inserts (id) VALUES (1)")
    try:
        conn.executemany(
            f"INSERT INTO tickets ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            values,
        )
    finally:
        conn.execute("DELETE FROM ticket_bulk_inserts")
    conn.execute(
        "INSERT INTO event_revisions (event_id, revision)"
        " SELECT DISTINCT event_id, 1 FROM tickets WHERE rowid > ?"
        " ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1",
        [before],
    )
    conn.execute(
        "INSERT INTO ticket_changes (event_id, ticket_id, revision)"
        " SELECT t.event_id, t.id, r.revision + 1 FROM tickets t"
        " JOIN event_revisions r ON r.event_id = t.event_id WHERE t.rowid > ?"
        " ORDER BY t.event_id, t.id"
        " ON CONFLICT (event_id, ticket_id) DO UPDATE SET revision = excluded.revision",
        [before],
    )


@dataclass(frozen=True)
class RowChange:
    """An imported row of this tenant's that is at the hub already: `changes` maps each
    column the import sets to (stored value, new value)."""

    kind: str  # event, ticket_type or ticket
    id: str
    venue_id: str
    changes: Mapping[str, tuple[Any, Any]]

    def audit_detail(self) -> dict[str, Any]:
        return {
            column: "changed" if column in _PRIVATE else [old, new]
            for column, (old, new) in self.changes.items()
        }


class TicketStore(StoreBase):
    # events and ticket types --------------------------------------------------------------
    def event_exists(self, event_id: str) -> bool:
        """Unscoped: ids are global, so an import must not reuse any tenant's id."""
        return self._one("SELECT id FROM events WHERE id = ?", [event_id]) is not None

    def event_codes(self) -> set[int]:
        return {r["code"] for r in self.db.query("SELECT code FROM events")}

    def import_catalogue(
        self, tenant_id: str, catalogue: CatalogueImport, actor: str, now_ms: int
    ) -> None:
        """Insert the new rows and apply the changes to this tenant's rows, in one
        transaction: all of them or none (the holds are WillCallStore's, which extends this).
        Each change is audited (`event.update`, `ticket_type.update`, `ticket.update`, with
        `"source": "import"`); the revision triggers put changed tickets in every device's
        next manifest delta, and a changed event in its next header."""
        events, ticket_types, tickets = catalogue.events, catalogue.ticket_types, catalogue.tickets
        with self._writing():
            for event in events:
                self.db.table("events").insert({**event, "created_ms": now_ms})
            if ticket_types:
                self.db.table("ticket_types").insert_all(dict(t) for t in ticket_types)
            if tickets:
                rows = ({**t, "updated_ms": now_ms} for t in tickets)
                self.db.table("tickets").insert_all(rows, batch_size=500)
            for change in catalogue.changes:
                values = {column: new for column, (_, new) in change.changes.items()}
                if change.kind == "ticket":
                    values["updated_ms"] = now_ms
                self.db.table(_IMPORTED[change.kind]).update(change.id, values)
                detail = {**change.audit_detail(), "source": "import"}
                action = f"{change.kind}.update"
                self._audit(tenant_id, change.venue_id, actor, action, change.id, detail, now_ms)
            detail = {"events": len(events), "types": len(ticket_types), "tickets": len(tickets)}
            detail["updated"] = len(catalogue.changes)
            self._audit(tenant_id, None, actor, "catalogue.import", "-", detail, now_ms)

    def get_event(
        self, event_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None:
        event = self._one(
            "SELECT e.* FROM events e JOIN venues v ON v.id = e.venue_id"
            " WHERE e.id = ? AND v.tenant_id = ?",
            [event_id, tenant_id],
        )
        if event is None or (scope_venue is not None and event["venue_id"] != scope_venue):
            return None
        return event

    def ticket_types_of(self, event_id: str) -> list[Row]:
        return list(
            self.db.query("SELECT * FROM ticket_types WHERE event_id = ? ORDER BY code", [event_id])
        )

    # tickets ------------------------------------------------------------------------------
    def existing_ticket_ids(self, ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        chunk: list[str] = []
        for ticket_id in [*ids, None]:
            if ticket_id is not None:
                chunk.append(ticket_id)
            if chunk and (ticket_id is None or len(chunk) == 500):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id FROM tickets WHERE id IN ({marks})"
                found |= {r["id"] for r in self.db.query(sql, chunk)}
                chunk = []
        return found

    def get_tickets(
        self, ticket_ids: Sequence[str], tenant_id: str, scope_venue: str | None = None
    ) -> dict[str, Row]:
        """The tickets among `ticket_ids` this tenant (and venue) may see, by id."""
        if not ticket_ids:
            return {}
        marks = ",".join("?" * len(ticket_ids))
        sql = _TICKET_SCOPE + f" AND t.id IN ({marks})"
        params: list[Any] = [tenant_id, *ticket_ids]
        if scope_venue is not None:
            sql += " AND e.venue_id = ?"
            params.append(scope_venue)
        return {r["id"]: r for r in self.db.query(sql, params)}

    def get_ticket(
        self, ticket_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None:
        return self.get_tickets([ticket_id], tenant_id, scope_venue).get(ticket_id)

    def issue_comp(
        self, event: Row, tenant_id: str, comp: NewComp, actor: str, now_ms: int
    ) -> Row | str:
        """A complimentary ticket, unless the event's comp limit is reached."""
        with self._writing():
            if event["comp_limit"] is not None:
                issued = self.db.execute(
                    "SELECT count(*) FROM tickets WHERE event_id = ? AND comp_reason IS NOT NULL",
                    [event["id"]],
                ).fetchone()[0]
                if issued >= event["comp_limit"]:
                    return COMP_LIMIT_REACHED
            row = {
                "id": new_id(),
                "event_id": event["id"],
                "ticket_type_id": comp.ticket_type_id,
                "status": str(TicketStatus.ACTIVE),
                "generation": 0,
                "zone": comp.zone,
                "seat": comp.seat,
                "holder_name": comp.holder_name,
                "comp_reason": comp.reason,
                "comp_issuer": actor,
                "updated_ms": now_ms,
                **_ticket_fields(comp.fields),
            }
            self.db.table("tickets").insert(row)
            detail = {"reason": comp.reason, "event_id": event["id"]}
            self._audit(
                tenant_id, event["venue_id"], actor, "ticket.comp", row["id"], detail, now_ms
            )
        return self.get_ticket(row["id"], tenant_id) or row

    def update_ticket_fields(
        self, ticket: Row, tenant_id: str, changes: Mapping[str, Any], actor: str, now_ms: int
    ) -> Row:
        """Set or clear (None) a ticket's order_ref, attention or max_entries, already checked.
        The revision trigger puts the ticket in every device's next manifest delta. The audit
        log keeps order_ref and max_entries, but of a note only that it changed: a note may
        name someone, and names stay out of the audit log."""
        fields = _ticket_fields(changes)
        detail: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "attention":
                detail[name] = "cleared" if value is None else "set"
            else:
                detail[name] = [ticket[name], value]
        with self._writing():
            self.db.table("tickets").update(ticket["id"], {**fields, "updated_ms": now_ms})
            self._audit(
                tenant_id, ticket["venue_id"], actor, "ticket.update", ticket["id"], detail, now_ms
            )
        fresh = self.get_ticket(ticket["id"], tenant_id)
        assert fresh is not None
        return fresh

    def set_locks(
        self,
        tickets: Sequence[Row],
        tenant_id: str,
        reason: str | None,
        actor: str,
        now_ms: int,
    ) -> None:
        """Lock (reason given) or unlock (reason None) every ticket, in one transaction."""
        action = "ticket.lock" if reason is not None else "ticket.unlock"
        with self._writing():
            for ticket in tickets:
                self.db.table("tickets").update(
                    ticket["id"],
                    {
                        "lock_reason": reason,
                        "locked_by": actor if reason is not None else None,
                        "locked_ms": now_ms if reason is not None else None,
                        "updated_ms": now_ms,
                    },
                )
                detail = {"reason": reason, "previous": ticket["lock_reason"]}
                self._audit(
                    tenant_id, ticket["venue_id"], actor, action, ticket["id"], detail, now_ms
                )

    def withdraw_tickets(
        self,
        tickets: Sequence[Row],
        tenant_id: str,
        status: TicketStatus,
        note: str,
        actor: str,
        now_ms: int,
    ) -> str | None:
        """Cancel, refund or revoke every ticket in one transaction, or none: the first ticket
        not in an admitting status is returned and nothing changes. The revision triggers put
        the change in every device's next manifest delta."""
        for ticket in tickets:
            if ticket["status"] not in ADMITTING_STATUSES:
                return str(ticket["id"])
        with self._writing():
            for ticket in tickets:
                self.db.table("tickets").update(
                    ticket["id"], {"status": str(status), "updated_ms": now_ms}
                )
                detail = {"status": str(status), "previous": ticket["status"], "note": note}
                self._audit(
                    tenant_id,
                    ticket["venue_id"],
                    actor,
                    "ticket.status",
                    ticket["id"],
                    detail,
                    now_ms,
                )
        return None

    def reissue_ticket(
        self,
        ticket: Row,
        tenant_id: str,
        actor: str,
        now_ms: int,
        *,
        new_holder: str | None = None,
    ) -> Row | str:
        """New code for the same ticket: the generation goes up, so every code of the old
        generation is refused as superseded; the old one is recorded as a duplicate_ticket.
        With `new_holder` it is a transfer: the ticket becomes TRANSFERRED to that holder and
        the seller's code stops working (the backend left it valid)."""
        if ticket["status"] not in ADMITTING_STATUSES:
            return NOT_REISSUABLE
        changes: dict[str, Any] = {"generation": ticket["generation"] + 1, "updated_ms": now_ms}
        detail: dict[str, Any] = {"revoked_generation": ticket["generation"]}
        if new_holder is None:
            action, detail["reason"] = "ticket.reissue", REISSUE_REASON
        else:
            action = "ticket.transfer"
            changes |= {"status": str(TicketStatus.TRANSFERRED), "holder_name": new_holder}
            detail["from_status"] = ticket["status"]  # holder names stay out of the audit log
        with self._writing():
            self.db.table("tickets").update(ticket["id"], changes)
            self._audit(tenant_id, ticket["venue_id"], actor, action, ticket["id"], detail, now_ms)
        fresh = self.get_ticket(ticket["id"], tenant_id)
        assert fresh is not None
        return fresh

    def expire_tickets(self, now_ms: int) -> int:
        """Post-event job: ACTIVE/TRANSFERRED tickets become EXPIRED 24 h after the end."""
        statuses = [str(s) for s in EXPIRING_STATUSES]
        cutoff = now_ms - EXPIRY_AFTER_END_MS
        with self._writing():
            due = list(
                self.db.query(
                    "SELECT e.id, e.venue_id, v.tenant_id, count(t.id) AS n FROM events e"
                    " JOIN venues v ON v.id = e.venue_id JOIN tickets t ON t.event_id = e.id"
                    " WHERE e.end_ms <= ? AND t.status IN (?, ?) GROUP BY e.id",
                    [cutoff, *statuses],
                )
            )
            for event in due:
                self.db.execute(
                    "UPDATE tickets SET status = ?, updated_ms = ?"
                    " WHERE event_id = ? AND status IN (?, ?)",
                    [str(TicketStatus.EXPIRED), now_ms, event["id"], *statuses],
                )
                self._audit(
                    event["tenant_id"],
                    event["venue_id"],
                    "system:expiry",
                    "tickets.expire",
                    event["id"],
                    {"expired": event["n"]},
                    now_ms,
                )
        return sum(e["n"] for e in due)


def _ticket_fields(given: Mapping[str, Any]) -> dict[str, Any]:
    """Only TICKET_FIELDS: a caller's slip cannot write another column through them."""
    unknown = set(given) - set(TICKET_FIELDS)
    if unknown:
        raise ValueError(f"not a ticket field: {sorted(unknown)}")
    return dict(given)
