"""HubStore's listings, a page at a time (hub/paging.py): venues, their zones and gates,
devices, events, the audit log, and tickets found by id, external id, order reference,
holder name or status.

Scoped inside the SQL like every admin read (hub/storage.py): the tenant (and the venue of a
venue-scoped token) is a condition of the query, so another tenant's rows are never read.
Each listing's order is its Keyset below; a page continues after its cursor's key, so a row
is listed once even when rows are added between two pages.
No index was added for these searches: one on `tickets` would slow every import, and a
holder-name substring cannot use one anyway; an event or status filter uses the existing
`tickets_event` and `tickets_event_status` indexes. The audit log has no index but its id:
newest first walks it back from the end, and a page stops once it has its rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from hub.paging import DEFAULT_PAGE, Key, Keyset, Kind, Page, PageAsk
from hub.paging import MAX_PAGE as MAX_PAGE  # re-exported: the CLI and tests read them here
from hub.paging import BadCursor as BadCursor
from hub.store_base import Row, StoreBase
from hub.store_tickets import _TICKET_SCOPE
from manifests.model import TicketStatus

MAX_SEARCH = 200  # characters of a search, as long as a holder name
MAX_FILTER = 200  # characters of an audit action or target filter, as long as an id
MAX_MS = 10**15 - 1  # the latest time a filter names, in ms (the year 33658)
STATUSES = tuple(str(s) for s in TicketStatus)
# A status in any case ("active", "Active"), for the document.
STATUS_PATTERN = "^(?:{})$".format(
    "|".join("".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in s) for s in STATUSES)
)


def _by_name(alias: str) -> Keyset:
    """By name, then id, for the table queried as `alias` (also the cursor's tag)."""
    return Keyset(
        alias, (Key(f"{alias}.name", "name", Kind.TEXT), Key(f"{alias}.id", "id", Kind.ID))
    )


TICKETS = Keyset("t", (Key("t.id", "id", Kind.ID),))
VENUES, ZONES, GATES, DEVICES = (_by_name(alias) for alias in "vzgd")
EVENTS = Keyset(  # by start
    "e",
    (
        Key("e.start_ms", "start_ms", Kind.INT),
        Key("e.name", "name", Kind.TEXT),
        Key("e.id", "id", Kind.ID),
    ),
)
AUDIT = Keyset("a", (Key("a.id", "id", Kind.INT),), descending=True)  # newest first


@dataclass(frozen=True, slots=True)
class TicketQuery:
    """What a ticket listing asks for: `text` finds a ticket by its id, external id (the
    import file's, hub/importer.py) or order reference (whole, any case) or by a part of its
    holder's name (any case, also beyond ASCII); the others narrow it; `cursor` continues
    after a page (a TicketPage's next_cursor)."""

    text: str | None = None
    status: TicketStatus | None = None
    event_id: str | None = None
    venue_id: str | None = None
    cursor: str | None = None
    limit: int = DEFAULT_PAGE


class TicketPage(NamedTuple):
    tickets: list[Row]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Which devices: of one venue, active or deactivated ones (each when given)."""

    venue_id: str | None = None
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit entries: of one action, of one target, at or after `since_ms`, before
    `until_ms` (each when given)."""

    action: str | None = None
    target: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


def ticket_status(text: str) -> TicketStatus:
    """A ticket status in any case ("active", "Active"); ValueError names the allowed ones."""
    try:
        return TicketStatus(text.upper())
    except ValueError:
        raise ValueError(
            f"unknown ticket status {text!r}: one of {', '.join(STATUSES)} (any case)"
        ) from None


def _narrowed(sql: str, params: list[Any], conditions: Iterable[tuple[str, Any]]) -> str:
    """`sql` with each condition whose value is given (not None) added, its value to `params`."""
    for condition, value in conditions:
        if value is not None:
            sql += f" AND {condition}"
            params.append(value)
    return sql


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _has_casefolded(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle.casefold() in haystack.casefold()


class SearchStore(StoreBase):
    def _page(
        self,
        keyset: Keyset,
        sql: str,
        params: list[Any],
        ask: PageAsk | None,
        where: Iterable[tuple[str, Any]] = (),
        *,
        use_index: bool = True,
    ) -> Page:
        """The page `ask` names (every row for None) of a listing's query narrowed by `where`
        (hub/paging.py), in its order. Raises BadCursor for a cursor not of its pattern."""
        sql = _narrowed(sql, params, where)
        sql, params = keyset.paged(sql, params, ask, use_index=use_index)
        return keyset.page(list(self.db.query(sql, params)), ask)

    def venue_page(self, tenant_id: str, scope_venue: str | None, ask: PageAsk | None) -> Page:
        """The tenant's venues (the scoped one only, when scoped), by name."""
        sql = "SELECT v.* FROM venues v WHERE v.tenant_id = ?"
        return self._page(VENUES, sql, [tenant_id], ask, [("v.id = ?", scope_venue)])

    def list_venues(self, tenant_id: str, scope_venue: str | None = None) -> list[Row]:
        return self.venue_page(tenant_id, scope_venue, None).rows

    def zone_page(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, ask: PageAsk | None
    ) -> Page:
        """A venue's zones, by name: none when the venue is not the tenant's (or not the
        scoped one)."""
        return self._venue_part(ZONES, "zones", tenant_id, scope_venue, venue_id, ask)

    def gate_page(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, ask: PageAsk | None
    ) -> Page:
        """A venue's gates, by name, scoped as zone_page."""
        return self._venue_part(GATES, "gates", tenant_id, scope_venue, venue_id, ask)

    def _venue_part(
        self,
        keyset: Keyset,
        table: str,
        tenant_id: str,
        scope_venue: str | None,
        venue_id: str,
        ask: PageAsk | None,
    ) -> Page:
        alias = keyset.tag
        sql = (
            f"SELECT {alias}.* FROM {table} {alias} JOIN venues v ON v.id = {alias}.venue_id"
            f" WHERE v.tenant_id = ? AND {alias}.venue_id = ?"
        )
        scope = [(f"{alias}.venue_id = ?", scope_venue)]
        return self._page(keyset, sql, [tenant_id, venue_id], ask, scope)

    def device_page(
        self, tenant_id: str, scope_venue: str | None, query: DeviceQuery, ask: PageAsk | None
    ) -> Page:
        """The tenant's devices (of the scoped venue), by name, as `query` asks."""
        active = None if query.active is None else int(query.active)
        sql = "SELECT d.* FROM devices d WHERE d.tenant_id = ?"
        where = [
            ("d.venue_id = ?", scope_venue),
            ("d.venue_id = ?", query.venue_id),
            ("d.active = ?", active),
        ]
        return self._page(DEVICES, sql, [tenant_id], ask, where)

    def list_devices(
        self, tenant_id: str, scope_venue: str | None = None, active: bool | None = None
    ) -> list[Row]:
        return self.device_page(tenant_id, scope_venue, DeviceQuery(active=active), None).rows

    def event_page(
        self, tenant_id: str, scope_venue: str | None, venue_id: str | None, ask: PageAsk | None
    ) -> Page:
        """The tenant's events (of the scoped venue, and of `venue_id` when given), by start."""
        sql = "SELECT e.* FROM events e JOIN venues v ON v.id = e.venue_id WHERE v.tenant_id = ?"
        where = [("e.venue_id = ?", scope_venue), ("e.venue_id = ?", venue_id)]
        return self._page(EVENTS, sql, [tenant_id], ask, where)

    def list_events(
        self, tenant_id: str, scope_venue: str | None = None, venue_id: str | None = None
    ) -> list[Row]:
        return self.event_page(tenant_id, scope_venue, venue_id, None).rows

    def audit_page(
        self, tenant_id: str, scope_venue: str | None, query: AuditQuery, ask: PageAsk | None
    ) -> Page:
        """The tenant's audit entries (of the scoped venue), newest first, as `query` asks."""
        where = [
            ("a.venue_id = ?", scope_venue),
            ("a.action = ?", query.action),
            ("a.target = ?", query.target),
            ("a.at_ms >= ?", query.since_ms),
            ("a.at_ms < ?", query.until_ms),
        ]
        sql = "SELECT a.* FROM audit_log a WHERE a.tenant_id = ?"
        return self._page(AUDIT, sql, [tenant_id], ask, where)

    def search_tickets(
        self, tenant_id: str, scope_venue: str | None, query: TicketQuery
    ) -> TicketPage:
        """One page of the tenant's tickets in id order. Raises BadCursor for a cursor not
        made here, ValueError for a limit outside 1 to MAX_PAGE."""
        ask = PageAsk(query.cursor, query.limit)
        sql, params = _TICKET_SCOPE, [tenant_id]
        needle = (query.text or "").strip()
        if needle:
            sql += (
                " AND (t.id = ? OR lower(t.external_id) = lower(?)"
                f" OR lower(t.order_ref) = lower(?) OR {self._name_has(needle)})"
            )
            name = _like_pattern(needle) if needle.isascii() else needle
            params += [needle, needle, needle, name]
        # A text search (few matches, as a rule) reads the rows in table order and sorts the
        # matches: 40 ms at 100k tickets, not the 100 ms of a walk along the id index (a row
        # fetch per ticket). A listing walks the index, which stops at the page's end.
        where = [
            ("e.venue_id = ?", scope_venue),
            ("e.venue_id = ?", query.venue_id),
            ("t.event_id = ?", query.event_id),
            ("t.status = ?", None if query.status is None else str(query.status)),
        ]
        return TicketPage(*self._page(TICKETS, sql, params, ask, where, use_index=not needle))

    def _name_has(self, needle: str) -> str:
        """The SQL condition that the holder's name holds the needle in any case: SQLite's LIKE
        for an ASCII needle (its case folding is ASCII's; 2x faster), Python's casefold for
        any other, so "MÜLLER" finds "Müller"."""
        if needle.isascii():
            return "t.holder_name LIKE ? ESCAPE '\\'"
        self.db.conn.create_function("name_has", 2, _has_casefolded, deterministic=True)
        return "name_has(t.holder_name, ?)"
