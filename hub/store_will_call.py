"""HubStore's will-call half (hub/will_call.py says what will-call is): orders held at the box
office under a name, their ID check and their pick-up, each change audited in its transaction.

The caller scoped the event (get_event with the principal's tenant and venue); the tickets of
an order are read through the tickets' own tenant scope as well. The will-call name stays out
of the audit log, as holder names do (hub/store_tickets.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.store_base import Row
from hub.store_search import _has_casefolded, _like_pattern
from hub.store_tickets import _TICKET_SCOPE, TicketStore
from manifests.model import ADMITTING_STATUSES

if TYPE_CHECKING:
    from hub.store_api import CatalogueImport, WillCallStep

ORDER_NOT_FOUND = "order_not_found"
NOT_ON_WILL_CALL = "not_on_will_call"
ID_NOT_CHECKED = "id_not_checked"
ALREADY_PICKED_UP = "already_picked_up"
_ADMITTING = ", ".join(f"'{s}'" for s in sorted(ADMITTING_STATUSES))
# A hold with `tickets`: how many of its order's tickets admit (what the fan collects).
_HOLDS = (
    "SELECT w.*, (SELECT count(*) FROM tickets t WHERE t.event_id = w.event_id"
    f" AND t.order_ref = w.order_ref AND t.status IN ({_ADMITTING})) AS tickets"
)


@dataclass(frozen=True)
class WillCallHold:
    """An order an import puts on will-call (or renames there): `name` is who collects it."""

    event_id: str
    venue_id: str
    order_ref: str
    name: str


def by_name(rows: Sequence[Row]) -> list[Row]:
    """Alphabetical by name as people look it up on a list: any case, accents after the
    letter they sit on (Ágnes among the A's), then by order reference."""
    return sorted(rows, key=lambda r: (_sort_key(r["name"]), r["name"], r["order_ref"]))


def _sort_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def id_checked_now(hold: Mapping[str, Any]) -> bool:
    """Whether the photo ID was checked for the coming hand-over: after the last one, if any."""
    checked = hold["id_checked_ms"]
    released = hold["released_ms"]
    return checked is not None and (released is None or checked >= released)


class WillCallStore(TicketStore):
    # reads -------------------------------------------------------------------------------
    def will_call(self, event_id: str, order_ref: str) -> Row | None:
        """The event's will-call hold of this order (with its ticket count), or None."""
        return self._one(
            _HOLDS + " FROM will_call w WHERE w.event_id = ? AND w.order_ref = ?",
            [event_id, order_ref],
        )

    def will_call_list(self, event_id: str) -> list[Row]:
        """Every order the event holds at will-call, alphabetical by name."""
        return by_name(
            list(self.db.query(_HOLDS + " FROM will_call w WHERE w.event_id = ?", [event_id]))
        )

    def order_tickets(self, event_id: str, order_ref: str, tenant_id: str) -> list[Row]:
        """The tenant's tickets of the event with this order reference, by seat then id."""
        sql = _TICKET_SCOPE + " AND t.event_id = ? AND t.order_ref = ? ORDER BY t.seat, t.id"
        return list(self.db.query(sql, [tenant_id, event_id, order_ref]))

    def find_will_calls(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, text: str, limit: int = 50
    ) -> list[Row]:
        """Will-call orders at the venue (of the tenant, of the scoped venue) whose order
        reference is `text` (whole, any case) or whose name holds it (any case), alphabetical
        by name, with their event's name and start."""
        needle = text.strip()
        if not needle:
            return []
        if needle.isascii():
            named, name = "w.name LIKE ? ESCAPE '\\'", _like_pattern(needle)
        else:
            self.db.conn.create_function("name_has", 2, _has_casefolded, deterministic=True)
            named, name = "name_has(w.name, ?)", needle
        sql = (
            _HOLDS + ", e.name AS event_name, e.start_ms AS event_start_ms FROM will_call w"
            " JOIN events e ON e.id = w.event_id JOIN venues v ON v.id = e.venue_id"
            " WHERE v.tenant_id = ? AND e.venue_id = ?"
            f" AND (lower(w.order_ref) = lower(?) OR {named})"
        )
        params: list[Any] = [tenant_id, venue_id, needle, name]
        if scope_venue is not None:
            sql += " AND e.venue_id = ?"
            params.append(scope_venue)
        sql += " ORDER BY lower(w.name), w.order_ref LIMIT ?"
        return by_name(list(self.db.query(sql, [*params, limit])))

    # changes -----------------------------------------------------------------------------
    def hold_will_call(self, step: WillCallStep, name: str) -> Row | str:
        """Hold the order at will-call under `name` (or rename its hold, which voids an ID check
        made against the old name). ORDER_NOT_FOUND when no ticket of the event has this
        order reference; ALREADY_PICKED_UP for a hold already handed over (its name is history)."""
        event, order_ref = step.event, step.order_ref
        if not self.order_tickets(event["id"], order_ref, step.tenant_id):
            return ORDER_NOT_FOUND
        with self._writing():
            refused = self._hold(
                WillCallHold(event["id"], event["venue_id"], order_ref, name),
                step.tenant_id,
                step.actor,
                step.now_ms,
                {},
            )
        return refused if refused is not None else self._hold_after(step)

    def _hold(
        self,
        hold: WillCallHold,
        tenant_id: str,
        actor: str,
        now_ms: int,
        detail: Mapping[str, Any],
    ) -> str | None:
        """Write one hold inside the caller's transaction; audited as will_call.hold unless
        it changes nothing."""
        key = [hold.event_id, hold.order_ref]
        existing = self._one("SELECT * FROM will_call WHERE event_id = ? AND order_ref = ?", key)
        if existing is not None and existing["name"] == hold.name:
            return None
        if existing is not None and existing["released_ms"] is not None:
            return ALREADY_PICKED_UP
        if existing is None:
            self.db.table("will_call").insert(
                {
                    "event_id": hold.event_id,
                    "order_ref": hold.order_ref,
                    "name": hold.name,
                    "held_by": actor,
                    "held_ms": now_ms,
                }
            )
        else:
            self.db.execute(
                "UPDATE will_call SET name = ?, held_by = ?, held_ms = ?, id_checked_by = NULL,"
                " id_checked_ms = NULL WHERE event_id = ? AND order_ref = ?",
                [hold.name, actor, now_ms, *key],
            )
        audit = {"event_id": hold.event_id, "name": "changed" if existing else "set", **detail}
        self._audit(
            tenant_id, hold.venue_id, actor, "will_call.hold", hold.order_ref, audit, now_ms
        )
        return None

    def _hold_after(self, step: WillCallStep) -> Row:
        """The hold as the step left it (a step that answers the hold never removes it)."""
        hold = self.will_call(step.event["id"], step.order_ref)
        assert hold is not None
        return hold

    def _audit_step(self, step: WillCallStep, action: str, **detail: Any) -> None:
        """Audit the step inside the caller's transaction, naming the order and its event."""
        event = step.event
        self._audit(
            step.tenant_id,
            event["venue_id"],
            step.actor,
            action,
            step.order_ref,
            {"event_id": event["id"], **detail},
            step.now_ms,
        )

    def drop_will_call(self, step: WillCallStep) -> str | None:
        """Take the order off will-call: NOT_ON_WILL_CALL, or ALREADY_PICKED_UP (a hand-over
        stays on record), else None."""
        hold = self.will_call(step.event["id"], step.order_ref)
        if hold is None:
            return NOT_ON_WILL_CALL
        if hold["released_ms"] is not None:
            return ALREADY_PICKED_UP
        with self._writing():
            self.db.execute(
                "DELETE FROM will_call WHERE event_id = ? AND order_ref = ?"
                " AND released_ms IS NULL",
                [step.event["id"], step.order_ref],
            )
            self._audit_step(step, "will_call.drop")
        return None

    def check_will_call_id(self, step: WillCallStep) -> Row | str:
        """Record that the step's actor saw photo ID matching the hold's name, now
        (NOT_ON_WILL_CALL when there is no hold)."""
        with self._writing():
            changed = self.db.execute(
                "UPDATE will_call SET id_checked_by = ?, id_checked_ms = ?"
                " WHERE event_id = ? AND order_ref = ?",
                [step.actor, step.now_ms, step.event["id"], step.order_ref],
            ).rowcount
            if not changed:
                return NOT_ON_WILL_CALL
            self._audit_step(step, "will_call.id_check")
        return self._hold_after(step)

    def release_will_call(self, step: WillCallStep, *, reprint: bool = False) -> Row | str:
        """Hand the order over: picked up now by the step's actor. Refused (nothing written)
        with NOT_ON_WILL_CALL, ID_NOT_CHECKED (no ID check since the last hand-over), or
        ALREADY_PICKED_UP unless `reprint` confirms handing it over again."""
        with self._writing():
            hold = self.will_call(step.event["id"], step.order_ref)
            if hold is None:
                return NOT_ON_WILL_CALL
            if hold["released_ms"] is not None and not reprint:
                return ALREADY_PICKED_UP
            if not id_checked_now(hold):
                return ID_NOT_CHECKED
            self.db.execute(
                "UPDATE will_call SET released_by = ?, released_ms = ?, releases = releases + 1"
                " WHERE event_id = ? AND order_ref = ?",
                [step.actor, step.now_ms, step.event["id"], step.order_ref],
            )
            if hold["released_ms"] is None:
                self._audit_step(step, "will_call.release", tickets=hold["tickets"])
            else:
                previous = {"by": hold["released_by"], "at_ms": hold["released_ms"]}
                self._audit_step(
                    step, "will_call.reprint", tickets=hold["tickets"], previous=previous
                )
        return self._hold_after(step)

    def audit_will_call_print(self, step: WillCallStep, what: str) -> None:
        """Record that the released tickets' codes were printed or shown (`what`: a4, 80mm,
        screen): each handing out of codes is on record, not only the release."""
        with self._writing():
            self._audit_step(step, "will_call.print", format=what)

    def import_catalogue(
        self, tenant_id: str, catalogue: CatalogueImport, actor: str, now_ms: int
    ) -> None:
        """TicketStore's import and the catalogue's will-call holds, in one transaction: all
        or none. The importer checked the holds (no picked-up hold renamed), so none is
        refused here."""
        with self._writing():
            super().import_catalogue(tenant_id, catalogue, actor, now_ms)
            for hold in catalogue.holds:
                refused = self._hold(hold, tenant_id, actor, now_ms, {"source": "import"})
                if refused is not None:
                    raise ValueError(f"will-call hold of {hold.order_ref} refused: {refused}")
