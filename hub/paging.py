"""Keyset pages: the one paging mechanism of every admin listing (tickets, venues, zones,
gates, devices, events and the audit log), for the store and the API alike.

A listing is ordered by a key that names each row once (a Keyset; its last column is the
row's id), and a page ends at its last row's key: the next page asks the query for the rows
after that key, a condition of the SQL beside the tenant and venue scope. So a row that
matches throughout is listed exactly once, even when rows are added, changed or removed
between two pages (an offset would then repeat or skip some).

A cursor is opaque to clients: the listing's tag and the format ("t1."), then each key value,
"."-separated: text as the hex of its UTF-8, a number in decimal. Any text of a listing's
`pattern` is a position (one not made here just starts or ends a page somewhere), so the
document's pattern says exactly which cursors are accepted, and the tag keeps a cursor of one
listing from being taken by another.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from hub.store_base import Row

DEFAULT_PAGE = 50
MAX_PAGE = 500
# A text key's UTF-8 at most: ids are at most 200 characters (hub/importer.py), names 200
# (the admin API, the importer), so 800 bytes; and a cursor stays well inside a request line.
MAX_KEY_BYTES = 1024
_FORMAT = "1"  # the cursor's format, after the tag, so a later one can tell it apart


class BadCursor(ValueError):
    """A cursor this listing did not hand out."""


class Kind(Enum):
    """How a key column is written in a cursor, as a pattern (ECMA-262 and Python alike)."""

    ID = rf"(?:[0-9a-f]{{2}}){{1,{MAX_KEY_BYTES}}}"  # text, never empty
    TEXT = rf"(?:[0-9a-f]{{2}}){{0,{MAX_KEY_BYTES}}}"  # text, maybe empty
    INT = r"-?[0-9]{1,18}"  # a whole number of 64 bits


class Key(NamedTuple):
    """One column of a listing's order: its SQL, the row field holding it, its kind."""

    column: str
    field: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class PageAsk:
    """Which page: the first, or the one after `cursor` (a Page's next_cursor); `limit` rows
    at most (ValueError outside 1 to MAX_PAGE)."""

    cursor: str | None = None
    limit: int = DEFAULT_PAGE

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_PAGE}")


class Page(NamedTuple):
    rows: list[Row]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True, slots=True)
class Keyset:
    """A listing's order, unique per row (NOT NULL columns, the id last), ascending or
    newest first (`descending`), and the cursors that continue it."""

    tag: str
    keys: tuple[Key, ...]
    descending: bool = False

    @property
    def pattern(self) -> str:
        parts = r"\.".join(key.kind.value for key in self.keys)
        return rf"^{self.tag}{_FORMAT}\.{parts}$"

    def cursor_for(self, row: Row) -> str:
        values = (_written(row[key.field], key.kind) for key in self.keys)
        return f"{self.tag}{_FORMAT}." + ".".join(values)

    def position(self, cursor: str) -> list[int | str]:
        """The key a cursor continues after; BadCursor for a text not of `pattern`."""
        if re.fullmatch(self.pattern, cursor) is None:
            raise BadCursor(cursor)
        parts = cursor.split(".")[1:]
        return [_read(part, key.kind) for part, key in zip(parts, self.keys, strict=True)]

    def paged(
        self, sql: str, params: Sequence[Any], ask: PageAsk | None, *, use_index: bool = True
    ) -> tuple[str, list[Any]]:
        """A listing's query (a WHERE clause ends it) made to read the page `ask` names, in
        this order; None reads every row. `use_index=False` sorts the matches instead of
        walking an index in this order (for a search matching few rows)."""
        params = list(params)
        columns = ", ".join(key.column for key in self.keys)
        if ask is not None and ask.cursor is not None:
            position = self.position(ask.cursor)
            marks = ", ".join("?" * len(position))
            sql += f" AND ({columns}) {'<' if self.descending else '>'} ({marks})"
            params += position
        order = ", ".join(
            ("" if use_index else "+") + key.column + (" DESC" if self.descending else "")
            for key in self.keys
        )
        sql += f" ORDER BY {order}"
        if ask is not None:
            sql += " LIMIT ?"
            params.append(ask.limit + 1)  # one more than a page tells whether another follows
        return sql, params

    def page(self, rows: list[Row], ask: PageAsk | None) -> Page:
        """The page of what `paged`'s query read."""
        if ask is None or len(rows) <= ask.limit:
            return Page(rows, None)
        return Page(rows[: ask.limit], self.cursor_for(rows[ask.limit - 1]))


def _written(value: Any, kind: Kind) -> str:
    if kind is Kind.INT:
        return str(int(value))
    return str(value).encode("utf-8").hex()


def _read(part: str, kind: Kind) -> int | str:
    if kind is Kind.INT:
        return int(part)
    return bytes.fromhex(part).decode("utf-8", errors="replace")
