"""HubStore's listings: a tenant's events, and its tickets found by id, external id, order
reference, holder name or status, a page at a time.

Scoped inside the SQL like every admin read (hub/storage.py): the tenant (and the venue of a
venue-scoped token) is a condition of the query, so another tenant's rows are never read.
Ticket pages are keyset pages in ticket id order: a cursor names the last id of its page, so
a ticket that matches throughout is listed exactly once, even when tickets are added,
changed or removed between two pages (an offset would then repeat or skip some).
No index was added for these searches: one on `tickets` would slow every import, and a
holder-name substring cannot use one anyway; an event or status filter uses the existing
`tickets_event` and `tickets_event_status` indexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from hub.store_base import Row, StoreBase
from hub.store_tickets import _TICKET_SCOPE
from manifests.model import TicketStatus

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_SEARCH = 200  # characters of a search, as long as a holder name
STATUSES = tuple(str(s) for s in TicketStatus)
_CURSOR_PREFIX = "t1."  # the cursor's format, so a later one can tell it apart
MAX_ID_BYTES = 1024  # ids are at most 200 characters (hub/importer.py)
# An opaque cursor: the format, then the hex of the position (ECMA-262 and Python alike).
CURSOR_PATTERN = rf"^t1\.(?:[0-9a-f]{{2}}){{1,{MAX_ID_BYTES}}}$"
# A status in any case ("active", "Active"), for the document.
STATUS_PATTERN = "^(?:{})$".format(
    "|".join("".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in s) for s in STATUSES)
)


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


class BadCursor(ValueError):
    """A cursor this store did not hand out."""


def ticket_status(text: str) -> TicketStatus:
    """A ticket status in any case ("active", "Active"); ValueError names the allowed ones."""
    try:
        return TicketStatus(text.upper())
    except ValueError:
        raise ValueError(
            f"unknown ticket status {text!r}: one of {', '.join(STATUSES)} (any case)"
        ) from None


def _cursor_for(ticket_id: str) -> str:
    return _CURSOR_PREFIX + ticket_id.encode("utf-8").hex()


def _after(cursor: str) -> str:
    """The ticket id a cursor continues after. Any text of CURSOR_PATTERN is a position (one
    not made here just starts or ends a page somewhere), so the document's pattern says
    exactly which cursors are accepted."""
    if re.fullmatch(CURSOR_PATTERN, cursor) is None:
        raise BadCursor(cursor)
    return bytes.fromhex(cursor[len(_CURSOR_PREFIX) :]).decode("utf-8", errors="replace")


def _like_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _has_casefolded(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle.casefold() in haystack.casefold()


class SearchStore(StoreBase):
    def list_events(
        self, tenant_id: str, scope_venue: str | None = None, venue_id: str | None = None
    ) -> list[Row]:
        """The tenant's events (of the scoped venue, and of `venue_id` when given), by start."""
        sql = "SELECT e.* FROM events e JOIN venues v ON v.id = e.venue_id WHERE v.tenant_id = ?"
        params: list[Any] = [tenant_id]
        for venue in (scope_venue, venue_id):
            if venue is not None:
                sql += " AND e.venue_id = ?"
                params.append(venue)
        return list(self.db.query(sql + " ORDER BY e.start_ms, e.name, e.id", params))

    def search_tickets(
        self, tenant_id: str, scope_venue: str | None, query: TicketQuery
    ) -> TicketPage:
        """One page of the tenant's tickets in id order. Raises BadCursor for a cursor not
        made here."""
        text, status, event_id, venue_id, cursor, limit = (
            query.text,
            query.status,
            query.event_id,
            query.venue_id,
            query.cursor,
            query.limit,
        )
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_PAGE}")
        sql = _TICKET_SCOPE
        params: list[Any] = [tenant_id]
        for column, value in (
            ("e.venue_id", scope_venue),
            ("e.venue_id", venue_id),
            ("t.event_id", event_id),
            ("t.status", None if status is None else str(status)),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        needle = (text or "").strip()
        if needle:
            sql += (
                " AND (t.id = ? OR lower(t.external_id) = lower(?)"
                f" OR lower(t.order_ref) = lower(?) OR {self._name_has(needle)})"
            )
            name = _like_pattern(needle) if needle.isascii() else needle
            params += [needle, needle, needle, name]
        if cursor is not None:
            sql += " AND t.id > ?"
            params.append(_after(cursor))
        # A text search (few matches, as a rule) reads the rows in table order and sorts the
        # matches: 40 ms at 100k tickets, not the 100 ms of a walk along the id index (a row
        # fetch per ticket). A listing walks the index, which stops at the page's end.
        order = "+t.id" if needle else "t.id"
        sql += f" ORDER BY {order} LIMIT ?"
        params.append(limit + 1)
        rows = list(self.db.query(sql, params))
        if len(rows) <= limit:
            return TicketPage(rows, None)
        return TicketPage(rows[:limit], _cursor_for(rows[limit - 1]["id"]))

    def _name_has(self, needle: str) -> str:
        """The SQL condition that the holder's name holds the needle in any case: SQLite's LIKE
        for an ASCII needle (its case folding is ASCII's; 2x faster), Python's casefold for
        any other, so "MÜLLER" finds "Müller"."""
        if needle.isascii():
            return "t.holder_name LIKE ? ESCAPE '\\'"
        self.db.conn.create_function("name_has", 2, _has_casefolded, deterministic=True)
        return "name_has(t.holder_name, ?)"
