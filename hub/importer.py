"""`gate-hub import`: events, ticket types and tickets from CSV or JSON Lines files.

Every file is read and checked before anything is written; every problem is reported as
`file:line:column: message` (in file and line order) and then nothing is imported. CSV files
hold one kind each, told apart by their header (events have `start`, ticket types `code` +
`name`, tickets `ticket_id`), and may be what Excel saves: UTF-8 with or without a BOM, or
Windows-1252 (said in a note), CRLF line ends, `,` `;` or tab between cells (sniffed from the
header line). JSON Lines files hold one object per line with a `kind` of event, ticket_type
or ticket.

An id already at the hub for this tenant is updated from the file (upsert): columns the file
has replace the stored values, columns it leaves out keep theirs, and a row that changes
nothing is counted as unchanged. Ids another tenant holds are refused, never touched.

A ticket's id at the hub is a UUID, since its native credential carries those 16 bytes: a
UUID ticket_id is kept (in its one lower-case spelling); any other is mapped to
`hub_ticket_id(tenant, id)` and kept as given in `external_id`. The mapping needs no lookup,
so a re-import reaches the same rows, and two tenants' same ids stay two tickets.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from hub.errors import matches
from hub.progress import Progress
from hub.schema import (
    ATTENTION_MAX_LEN,
    ATTENTION_PATTERN,
    EXTERNAL_ID_MAX_LEN,
    EXTERNAL_ID_PATTERN,
    MAX_ENTRIES_LOW,
    ORDER_REF_MAX_LEN,
    ORDER_REF_PATTERN,
    TICKET_FIELDS,
    WILL_CALL_NAME_MAX_LEN,
    WILL_CALL_NAME_PATTERN,
)
from hub.store_api import CatalogueImport, HubStorage
from hub.store_base import Row, new_id
from hub.store_tickets import RowChange
from hub.store_will_call import WillCallHold
from manifests.model import TicketStatus
from manifests.policy import TEMPLATES, ScanPolicy
from protocol.limits import MAX_COUNT

P = ParamSpec("P")
T = TypeVar("T")

COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind -> (required, optional)
    "event": (
        ("event_id", "venue_id", "name", "timezone", "start", "end"),
        ("doors", "days", "code", "policy", "comp_limit"),
    ),
    "ticket_type": (("event_id", "code", "name"), ("zone",)),
    "ticket": (
        ("ticket_id", "event_id"),
        (
            "ticket_type",
            "status",
            "generation",
            "zone",
            "seat",
            "holder_name",
            "valid_days",
            *TICKET_FIELDS,
            "will_call",  # hold the ticket's order at will-call under this name (hub/will_call.py)
        ),
    ),
}
KIND_NAMES = {"event": "events", "ticket_type": "ticket types", "ticket": "tickets"}
MAX_PROBLEMS = 50  # shown; the rest are counted
STATUSES = tuple(str(s) for s in TicketStatus)
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CHUNK = 500  # ids per scoped lookup: SQLite caps the parameters of one statement
# the file's column -> the stored column it sets
_EVENT_COLUMNS = {
    "venue_id": "venue_id",
    "name": "name",
    "timezone": "timezone",
    "start": "start_ms",
    "end": "end_ms",
    "doors": "doors_ms",
    "days": "days_json",
    "policy": "policy_json",
    "comp_limit": "comp_limit",
}
_TICKET_COLUMNS = {
    "ticket_type": "ticket_type_id",
    "status": "status",
    "generation": "generation",
    "zone": "zone",
    "seat": "seat",
    "holder_name": "holder_name",
    "valid_days": "valid_days_json",
    **{name: name for name in TICKET_FIELDS},
}
_KEEP_WHEN_EMPTY = {"status", "generation"}  # an empty cell keeps the stored value
# The namespace of hub ids made from other ticket ids: fixed forever, or a re-import would add
# every such ticket again under a new id.
TICKET_ID_NAMESPACE = uuid.UUID("89293083-b67f-42cf-aa96-0eaa905d158c")


def hub_ticket_id(tenant_id: str, external_id: str) -> str:
    """The hub's id of a ticket the tenant's files call `external_id` (not a UUID)."""
    return str(uuid.uuid5(TICKET_ID_NAMESPACE, f"{tenant_id}\x1f{external_id}"))


@dataclass(frozen=True, order=True)
class Problem:
    order: int  # the file's place among the files given
    line: int
    column: int
    file: str = field(compare=False)
    message: str = field(compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class CatalogueError(Exception):
    """Every problem found in the files (the first MAX_PROBLEMS shown), one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        ordered = sorted(problems)
        shown = [str(p) for p in ordered[:MAX_PROBLEMS]]
        if len(ordered) > MAX_PROBLEMS:
            shown.append(f"... and {len(ordered) - MAX_PROBLEMS} more problems")
        super().__init__("\n".join(shown))
        self.problems = ordered


class _Bad(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


@dataclass
class Record:
    kind: str
    values: dict[str, Any]
    file: str
    order: int
    line: int
    column_of: Callable[[str], int]
    problems: list[Problem] = field(default_factory=list)

    def fail(self, field: str | None, message: str) -> _Bad:
        column = self.column_of(field or "")
        return _Bad(Problem(self.order, self.line, column, self.file, message))

    def report(self, field: str | None, message: str) -> None:
        self.problems.append(self.fail(field, message).problem)

    def take(
        self, check: Callable[Concatenate[Record, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T | None:
        """`check(self, ...)`, or None with its problem kept, so one row reports them all."""
        try:
            return check(self, *args, **kwargs)
        except _Bad as bad:
            self.problems.append(bad.problem)
            return None

    def get(self, field: str) -> Any:
        value = self.values.get(field)
        return None if value == "" else value

    def has(self, field: str) -> bool:
        """Whether the file has this column (a JSON line this key)."""
        return field in self.values


def read_records(path: Path, order: int, notes: list[str]) -> Iterator[Record | Problem]:
    """The file's records, and a Problem for each row or column that cannot be read; raises
    _Bad when the file as a whole cannot be (unreadable, or a header that fits no kind)."""
    name = str(path)
    text = _decode(path, order, notes)
    if path.suffix.lower() == ".csv":
        yield from _csv_records(name, order, text)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _jsonl_records(name, order, text)
    else:
        message = "the file name must end in .csv or .jsonl: save it as CSV (or JSON Lines)"
        raise _Bad(Problem(order, 1, 1, name, message))


def _decode(path: Path, order: int, notes: list[str]) -> str:
    """UTF-8 (a BOM is skipped), UTF-16 with a BOM, else Windows-1252 with a note: what Excel
    writes as "CSV UTF-8", "Unicode Text" and "CSV (Comma delimited)"."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Bad(Problem(order, 1, 1, name, f"cannot read the file: {exc.strerror}")) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start
    line = data.count(b"\n", 0, at) + 1
    column = at - (data.rfind(b"\n", 0, at) + 1) + 1
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        message = (
            f"the file is not text in UTF-8 or Windows-1252 (byte 0x{data[at]:02x}): save it "
            'as "CSV UTF-8 (Comma delimited)" and import it again'
        )
        raise _Bad(Problem(order, line, column, name, message))
    notes.append(
        f"{name} is not UTF-8 (byte 0x{data[at]:02x} on line {line}), so it was read as "
        'Windows-1252, as Excel\'s "CSV (Comma delimited)" writes it: check that names with '
        'accents look right, or save the file as "CSV UTF-8" to be sure'
    )
    return text


def _expected_columns() -> str:
    parts = []
    for kind, (required, optional) in COLUMNS.items():
        parts.append(
            f"{KIND_NAMES[kind]} need {', '.join(required)} (optional: {', '.join(optional)})"
        )
    return "; ".join(parts)


def _header_problem(name: str, order: int, header: list[str]) -> Problem:
    found = ", ".join(h for h in header if h) or "nothing"
    closest = max(COLUMNS, key=lambda k: len(set(COLUMNS[k][0]) & set(header)))
    missing = [c for c in COLUMNS[closest][0] if c not in header]
    hint = ""
    if len(missing) < len(COLUMNS[closest][0]):
        hint = f" (as {KIND_NAMES[closest]} it lacks {', '.join(missing)})"
    message = (
        f"the header fits no kind of file: found {found}{hint}. The first line must name the "
        f"columns: {_expected_columns()}"
    )
    return Problem(order, 1, 1, name, message)


def _column_name(text: str) -> str:
    return "_".join(text.strip().lower().split())


def _csv_records(name: str, order: int, text: str) -> Iterator[Record | Problem]:
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)  # a tie (no separator at all) is ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [_column_name(h) for h in next(reader, [])]
    kind = next((k for k, (req, _) in COLUMNS.items() if set(req) <= set(header)), None)
    if kind is None:
        raise _Bad(_header_problem(name, order, header))
    required, optional = COLUMNS[kind]
    for index, column in enumerate(header, start=1):
        if column not in required + optional:
            message = (
                f"unknown column {column!r} for {KIND_NAMES[kind]}: remove it or name it as one "
                f"of {', '.join(required + optional)}"
            )
            yield Problem(order, 1, index, name, message)

    def column_of(field: str) -> int:
        return header.index(field) + 1 if field in header else 1

    shown = "tab" if delimiter == "\t" else delimiter
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            at = min(len(cells), len(header)) + 1
            message = (
                f"expected {len(header)} cells as in the header, found {len(cells)}: add the "
                f"missing separators ({shown}) or remove extra ones; a cell holding {shown} "
                'must be in double quotes "..."'
            )
            yield Problem(order, reader.line_num, at, name, message)
            continue
        values = {h: c.strip() for h, c in zip(header, cells, strict=True)}
        yield Record(kind, values, name, order, reader.line_num, column_of)


def _jsonl_records(name: str, order: int, text: str) -> Iterator[Record | Problem]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue

        def column_of(field: str, line: str = line) -> int:
            return line.find(f'"{field}"') + 1 if field and f'"{field}"' in line else 1

        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON: {exc.msg}: each line must be one JSON object"
            yield Problem(order, number, exc.colno, name, message)
            continue
        if not isinstance(values, dict):
            yield Problem(order, number, 1, name, "each line must be one JSON object {...}")
            continue
        kind = values.pop("kind", None)
        if kind not in COLUMNS:
            message = 'kind must be "event", "ticket_type" or "ticket": set it on every line'
            yield Problem(order, number, column_of("kind"), name, message)
            continue
        required, optional = COLUMNS[kind]
        unknown = [f for f in values if f not in required + optional]
        for key in unknown:
            message = (
                f"unknown field {key!r} for a {kind}: remove it or name it as one of "
                f"{', '.join(required + optional)}"
            )
            yield Problem(order, number, column_of(key), name, message)
        if not unknown:
            yield Record(kind, values, name, order, number, column_of)


# field checks: each returns the value or raises rec.fail(...) saying what to write ------------
def _text(rec: Record, field: str, *, required: bool = True, id_like: bool = False) -> str | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise rec.fail(field, f"{field} is empty: fill it in, every row needs one")
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise rec.fail(field, f"{field} must be text of at most 200 characters: shorten it")
    if id_like and not _ID_RE.match(value):
        raise rec.fail(
            field,
            f"{field} {value!r} is not an id: use 1 to 64 letters, digits or _ . : - (no spaces)",
        )
    return value


def _line(rec: Record, field: str, max_len: int, pattern: str, what: str) -> str | None:
    """An optional one-line text (stored stripped) within `max_len` and `pattern`, the same
    bounds the admin API declares; `what` says in words which characters may be used."""
    value = rec.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len or not matches(pattern, value):
        raise rec.fail(
            field,
            f"{field} must be {what} of at most {max_len} characters: shorten it or take out "
            "other characters (line breaks too)",
        )
    return value.strip()


def _int(rec: Record, field: str, low: int, high: int) -> int | None:
    value = rec.get(field)
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise rec.fail(
            field,
            f"{field} must be a whole number from {low} to {high}, not {value!r}: write the "
            "number without decimals, spaces or thousands separators",
        )
    return value


def _dates(rec: Record, field: str) -> list[str]:
    value = rec.get(field)
    items = re.split(r"[;,\s]+", value.strip()) if isinstance(value, str) else value or []
    how = "write dates as YYYY-MM-DD, separated by ; (2026-07-01;2026-07-02)"
    if not isinstance(items, list):
        raise rec.fail(field, f"{field} must list dates: {how}")
    try:
        return sorted({date.fromisoformat(str(item).strip()).isoformat() for item in items})
    except ValueError:
        raise rec.fail(field, f"{field} {value!r} is not a list of dates: {how}") from None


def _time_ms(rec: Record, field: str, tz: ZoneInfo, required: bool = True) -> int | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise rec.fail(
                field, f"{field} is empty: give the date and time, e.g. 2026-07-01T18:00"
            )
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)  # epoch milliseconds
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise rec.fail(
            field,
            f"{field} {value!r} is not an ISO 8601 date-time: write 2026-07-01T18:00 (the "
            "event's local time) or 2026-07-01T18:00+02:00",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)  # local time at the event
    return int(moment.timestamp() * 1000)


def _zone(rec: Record) -> tuple[str, ZoneInfo] | None:
    name = _text(rec, "timezone")
    assert name is not None
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    near = sorted(z for z in available_timezones() if z.lower().endswith("/" + name.lower()))
    hint = f"{' or '.join(near)}" if near else "Europe/Berlin, America/New_York or UTC"
    raise rec.fail(
        "timezone", f"timezone {name} is not a time zone name: write an IANA name such as {hint}"
    )


def _venue(rec: Record, venues: Sequence[Row]) -> str:
    """A venue of the tenant by id, or by a name that fits one venue (in any case)."""
    text = str(_text(rec, "venue_id"))
    found = [v for v in venues if text in (v["id"], v["name"])] or [
        v for v in venues if v["name"].casefold() == text.casefold()
    ]
    if len(found) == 1:
        return str(found[0]["id"])
    known = ", ".join(f"{v['name']} ({v['id']})" for v in venues) or "none yet"
    raise rec.fail(
        "venue_id",
        f"no venue {text} for this tenant: write one of its venues' ids or names ({known})",
    )


def _policy(rec: Record) -> dict[str, Any]:
    value = rec.get("policy")
    if value is None:
        return TEMPLATES["standard"].to_json()
    if isinstance(value, str) and value.strip().lower() in TEMPLATES:
        return TEMPLATES[value.strip().lower()].to_json()
    names = ", ".join(TEMPLATES)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            message = f"policy {value!r} is not a template or JSON: write one of {names}"
            raise rec.fail("policy", message) from None
    if not isinstance(value, dict):
        raise rec.fail("policy", f"policy must be a template ({names}) or a JSON object")
    known = {f.name: f.type for f in fields(ScanPolicy)}
    for key, item in value.items():
        kind = known.get(key)
        ok = kind is not None and (
            (kind == "bool" and isinstance(item, bool))
            or (
                kind.startswith("int")
                and (isinstance(item, int) and not isinstance(item, bool) and item >= 0)
            )
            or (kind == "int | None" and item is None)
        )
        if not ok:
            raise rec.fail(
                "policy",
                f"policy setting {key!r} is unknown or has the wrong type: use only "
                f"{', '.join(known)} (true/false or whole numbers)",
            )
    return ScanPolicy.from_json(value).to_json()


def _status(rec: Record) -> str | None:
    value = rec.get("status")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().upper() in STATUSES:
        return value.strip().upper()
    raise rec.fail(
        "status",
        f"status {value!r} is not a ticket status: write one of {', '.join(STATUSES)} "
        "(in any case)",
    )


def _ticket_id(rec: Record, tenant_id: str) -> tuple[str, str | None]:
    """The ticket's hub id and its id as given when that is not a UUID. A UUID is kept in its
    one canonical spelling (the credential carries its 16 bytes, and gates look tickets up by
    that spelling); any other id is mapped to one (hub_ticket_id)."""
    text = str(_text(rec, "ticket_id"))
    try:
        return str(uuid.UUID(text)), None
    except ValueError:
        pass
    given = _line(rec, "ticket_id", EXTERNAL_ID_MAX_LEN, EXTERNAL_ID_PATTERN, "printable ASCII")
    assert given is not None
    return hub_ticket_id(tenant_id, given), given


# the plan: what a run adds, changes and leaves ------------------------------------------------
def _count(n: int, kind: str) -> str:
    one = {"event": "event", "ticket_type": "ticket type", "ticket": "ticket"}[kind]
    return f"{n} {one if n == 1 else KIND_NAMES[kind]}"


@dataclass
class Catalogue:
    """The rows to add, the changes to rows already at the hub, and how many rows of the
    files are already there as written (per kind); `notes` say how files were read."""

    events: list[dict[str, Any]]
    ticket_types: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    changes: list[RowChange] = field(default_factory=list)
    unchanged: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    will_call: list[WillCallHold] = field(default_factory=list)  # holds to add or rename
    will_call_unchanged: int = 0

    def summary(self) -> str:
        """`1 event (1 added), 3 tickets (1 added, 1 updated, 1 unchanged)`: the kinds the
        files have rows of."""
        added = {"event": self.events, "ticket_type": self.ticket_types, "ticket": self.tickets}
        updated = Counter(c.kind for c in self.changes)
        parts = []
        for kind, rows in added.items():
            counts = {
                "added": len(rows),
                "updated": updated[kind],
                "unchanged": self.unchanged[kind],
            }
            detail = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
            if detail:
                parts.append(f"{_count(sum(counts.values()), kind)} ({detail})")
        held = len(self.will_call) + self.will_call_unchanged
        if held:
            orders = "order" if held == 1 else "orders"
            parts.append(
                f"{held} will-call {orders} ({len(self.will_call)} held or renamed, "
                f"{self.will_call_unchanged} unchanged)"
            )
        return ", ".join(parts) or "nothing: the files have no rows"


def _change(
    rec: Record, kind: str, existing: Row, row: Mapping[str, Any], columns: Mapping[str, str]
) -> RowChange | None:
    """The stored columns the file gives (see _KEEP_WHEN_EMPTY) whose value it changes."""
    diff: dict[str, tuple[Any, Any]] = {}
    for column, stored in columns.items():
        if not rec.has(column) or (stored in _KEEP_WHEN_EMPTY and rec.get(column) is None):
            continue
        old, new = existing[stored], row[stored]
        same = json.loads(old) == json.loads(new) if stored.endswith("_json") else old == new
        if not same:
            diff[stored] = (old, new)
    return RowChange(kind, existing["id"], existing["venue_id"], diff) if diff else None


@dataclass
class _EventFacts:
    id: str
    venue_id: str
    days: set[str]
    types: dict[str, dict[str, Any]]  # name -> ticket type row
    new_types: set[str] = field(default_factory=set)  # names added by this import

    def type_for(self, text: str) -> dict[str, Any] | None:
        """A ticket type by its name, its code, or a name that differs only in case."""
        if text in self.types:
            return self.types[text]
        by_code = [t for t in self.types.values() if str(t["code"]) == text.strip()]
        folded = [t for n, t in self.types.items() if n.casefold() == text.casefold()]
        found = by_code or folded
        return found[0] if len(found) == 1 else None

    def type_list(self) -> str:
        listed = ", ".join(f"{t['code']} {t['name']}" for t in self.types.values())
        return listed or "none yet: add them in a ticket types file"


class _Builder:
    """Checks the records against each other and the hub, collecting every problem."""

    def __init__(self, store: HubStorage, tenant_id: str) -> None:
        self.store, self.tenant_id = store, tenant_id
        self.out = Catalogue([], [], [])
        self.facts: dict[str, _EventFacts] = {}
        self.bad_events: set[str] = set()  # rows in this import with problems: no echo
        self.holds: list[tuple[Record, WillCallHold]] = []  # will_call cells, checked

    def events(self, records: list[Record]) -> None:
        used_codes = self.store.event_codes()
        venues = self.store.list_venues(self.tenant_id)
        seen: dict[str, int] = {}
        for rec in records:
            event_id = rec.take(_text, "event_id", id_like=True)
            existing = None
            if event_id is not None:
                existing = self.store.get_event(event_id, self.tenant_id)
                if event_id in seen:
                    rec.report(
                        "event_id",
                        f"event {event_id} appears twice (also line {seen[event_id]}): keep "
                        "one row per event",
                    )
                elif existing is None and self.store.event_exists(event_id):
                    rec.report(
                        "event_id",
                        f"event id {event_id} is taken by another tenant on this hub: event "
                        "ids are unique across the hub, so choose another one",
                    )
                seen.setdefault(event_id, rec.line)
            venue_id = rec.take(_venue, venues)
            if existing is not None and venue_id not in (None, existing["venue_id"]):
                rec.report(
                    "venue_id",
                    f"event {event_id} is at venue {existing['venue_id']}: an import cannot "
                    "move it to another venue; write that venue",
                )
            zone = rec.take(_zone)
            tz = zone[1] if zone else ZoneInfo("UTC")  # still check the times' spelling
            start, end = rec.take(_time_ms, "start", tz), rec.take(_time_ms, "end", tz)
            if start is not None and end is not None and end < start:
                rec.report("end", "end is before start: check both times and the time zone")
            code = rec.take(_int, "code", 1, 2**32 - 1)
            if existing is not None:
                if code not in (None, existing["code"]):
                    rec.report(
                        "code",
                        f"event {event_id} has code {existing['code']} at the hub: another "
                        "code would void every ticket code issued for it; leave code empty "
                        f"or write {existing['code']}",
                    )
                code = existing["code"]
            elif code in used_codes:
                rec.report(
                    "code",
                    f"event code {code} is already used by another event: leave code empty "
                    "for a free one, or choose another",
                )
            row: dict[str, Any] = {
                "id": event_id,
                "venue_id": venue_id,
                "code": code,
                "name": rec.take(_text, "name"),
                "timezone": zone[0] if zone else None,
                "start_ms": start,
                "end_ms": end,
                "doors_ms": rec.take(_time_ms, "doors", tz, required=False),
                "days_json": json.dumps(rec.take(_dates, "days")),
                "policy_json": json.dumps(rec.take(_policy)),
                "comp_limit": rec.take(_int, "comp_limit", 0, 1_000_000),
            }
            if rec.problems:
                self.bad_events.add(str(event_id))
                continue
            assert event_id is not None and venue_id is not None
            if existing is None:
                while code is None or code in used_codes:
                    code = secrets.randbelow(2**32 - 1) + 1
                row["code"] = code
                self.out.events.append(row)
                types: dict[str, dict[str, Any]] = {}
            else:
                self._keep("event", _change(rec, "event", existing, row, _EVENT_COLUMNS))
                types = {t["name"]: dict(t) for t in self.store.ticket_types_of(event_id)}
            used_codes.add(row["code"])
            days = set(json.loads(row["days_json"]))
            self.facts[event_id] = _EventFacts(event_id, venue_id, days, types)

    def _keep(self, kind: str, change: RowChange | None) -> None:
        if change is None:
            self.out.unchanged[kind] += 1
        else:
            self.out.changes.append(change)

    def event_of(self, rec: Record) -> _EventFacts | None:
        """The event a row names, from this import or this tenant's at the hub; None (with
        a problem unless the event's own row had problems) when there is none."""
        event_id = rec.take(_text, "event_id")
        if event_id is None or event_id in self.bad_events:
            return None
        if event_id not in self.facts:
            existing = self.store.get_event(event_id, self.tenant_id)
            if existing is None:
                rec.report(
                    "event_id",
                    f"no event {event_id} in this import or at the hub for this tenant: add it "
                    "to the events file, or correct event_id",
                )
                return None
            types = {t["name"]: dict(t) for t in self.store.ticket_types_of(event_id)}
            days = set(json.loads(existing["days_json"]))
            self.facts[event_id] = _EventFacts(event_id, existing["venue_id"], days, types)
        return self.facts[event_id]

    def ticket_types(self, records: list[Record]) -> None:
        for rec in records:
            event = self.event_of(rec)
            code, name = rec.take(_int, "code", 1, 65535), rec.take(_text, "name")
            zone = rec.take(_text, "zone", required=False)
            if code is None and rec.get("code") is None:
                rec.report("code", "code is empty: give the type a whole number from 1 to 65535")
            if event is None or code is None or name is None or rec.problems:
                continue
            same = next((t for t in event.types.values() if t["code"] == code), None)
            where = f"at event {event.id}"
            if same is not None and same["name"] in event.new_types:
                rec.report("code", f"ticket type code {code} appears twice {where}: keep one row")
            elif same is not None and same["name"] != name:
                rec.report(
                    "name",
                    f"ticket type {code} {where} is named {same['name']}: an import cannot "
                    f"rename a ticket type (gates show the name); write {same['name']}",
                )
            elif same is None and name in event.types:
                other = event.types[name]["code"]
                rec.report(
                    "name",
                    f"ticket type name {name} has code {other} {where}: give each type its "
                    "own name",
                )
            elif same is not None:
                change = None
                if rec.has("zone") and same["zone"] != zone:
                    change = RowChange(
                        "ticket_type", same["id"], event.venue_id, {"zone": (same["zone"], zone)}
                    )
                self._keep("ticket_type", change)
            else:
                row = {
                    "id": new_id(),
                    "event_id": event.id,
                    "code": code,
                    "name": name,
                    "zone": zone,
                }
                event.types[name] = row
                event.new_types.add(name)
                self.out.ticket_types.append(row)

    def tickets(self, records: list[Record], report: Progress) -> None:
        pending: list[tuple[Record, dict[str, Any]]] = []
        seen: dict[str, int] = {}
        for n, rec in enumerate(records):
            if n % PROGRESS_EVERY == 0:
                report("checking tickets", n, len(records))
            ticket_id, external_id = rec.take(_ticket_id, self.tenant_id) or (None, None)
            if ticket_id is not None and ticket_id in seen:
                rec.report(
                    "ticket_id",
                    f"ticket {external_id or ticket_id} appears twice (also line "
                    f"{seen[ticket_id]}): keep one row per ticket",
                )
            elif ticket_id is not None:
                seen[ticket_id] = rec.line
            event = self.event_of(rec)
            type_text = rec.get("ticket_type")
            ticket_type = None
            if event is not None and type_text is not None:
                ticket_type = event.type_for(str(type_text))
                if ticket_type is None:
                    rec.report(
                        "ticket_type",
                        f"no ticket type {type_text} at event {event.id}: give one of its types "
                        f"by code or name ({event.type_list()})",
                    )
            valid_days = rec.take(_dates, "valid_days")
            if (
                event is not None
                and valid_days
                and event.days
                and not set(valid_days) <= event.days
            ):
                rec.report(
                    "valid_days",
                    f"valid_days must be days of the event ({', '.join(sorted(event.days))}): "
                    "remove the others",
                )
            row = {
                "id": ticket_id,
                "external_id": external_id,
                "event_id": event.id if event else None,
                "ticket_type_id": ticket_type["id"] if ticket_type else None,
                "status": rec.take(_status) or str(TicketStatus.ACTIVE),
                "generation": rec.take(_int, "generation", 0, 1_000_000) or 0,
                "zone": rec.take(_text, "zone", required=False)
                or (ticket_type["zone"] if ticket_type else None),
                "seat": rec.take(_text, "seat", required=False),
                "holder_name": rec.take(_text, "holder_name", required=False),
                "valid_days_json": json.dumps(valid_days),
                "order_ref": rec.take(
                    _line, "order_ref", ORDER_REF_MAX_LEN, ORDER_REF_PATTERN, "printable ASCII"
                ),
                "attention": rec.take(
                    _line, "attention", ATTENTION_MAX_LEN, ATTENTION_PATTERN, "one line of text"
                ),
                "max_entries": rec.take(_int, "max_entries", MAX_ENTRIES_LOW, MAX_COUNT),
            }
            held = rec.take(
                _line,
                "will_call",
                WILL_CALL_NAME_MAX_LEN,
                WILL_CALL_NAME_PATTERN,
                "one line of text",
            )
            if held is not None and row["order_ref"] is None:
                rec.report(
                    "will_call",
                    "will_call holds the ticket's order, and this row has no order_ref: fill in "
                    "order_ref, or leave will_call empty",
                )
            if event is not None and not rec.problems:
                pending.append((rec, row))
                if held is not None:
                    hold = WillCallHold(event.id, event.venue_id, str(row["order_ref"]), held)
                    self.holds.append((rec, hold))
        report("checking tickets", len(records), len(records))
        self._place_tickets(pending)

    def _place_tickets(self, pending: list[tuple[Record, dict[str, Any]]]) -> None:
        """New tickets are added; this tenant's are updated; another tenant's are refused."""
        ids = [row["id"] for _, row in pending]
        ours: dict[str, Row] = {}
        for i in range(0, len(ids), _CHUNK):
            ours |= self.store.get_tickets(ids[i : i + _CHUNK], self.tenant_id)
        theirs = self.store.existing_ticket_ids(ids) - set(ours)
        for rec, row in pending:
            existing = ours.get(row["id"])
            ticket = row["external_id"] or row["id"]  # as the file names it
            if row["id"] in theirs:
                rec.report(
                    "ticket_id",
                    f"ticket {ticket} belongs to another tenant on this hub: ticket ids are "
                    "unique across the hub; check that this is your export",
                )
            elif existing is None:
                self.out.tickets.append(row)
            elif existing["event_id"] != row["event_id"]:
                rec.report(
                    "event_id",
                    f"ticket {ticket} belongs to event {existing['event_id']}: an import "
                    "cannot move a ticket to another event",
                )
            elif rec.get("generation") is not None and row["generation"] < existing["generation"]:
                rec.report(
                    "generation",
                    f"ticket {ticket} was reissued at the hub (generation "
                    f"{existing['generation']}): write {existing['generation']} or more, or "
                    "leave generation empty, so the voided codes stay void",
                )
            else:
                self._keep("ticket", _change(rec, "ticket", existing, row, _TICKET_COLUMNS))

    def will_call(self) -> None:
        """One name per order across its rows; a hold already picked up keeps its name (the
        hand-over is on record). Holds that change nothing are counted, not written."""
        first: dict[tuple[str, str], tuple[Record, WillCallHold]] = {}
        for rec, hold in self.holds:
            key = (hold.event_id, hold.order_ref)
            seen = first.setdefault(key, (rec, hold))
            if seen[1].name != hold.name:
                rec.report(
                    "will_call",
                    f"order {hold.order_ref} is held under {seen[1].name!r} on line "
                    f"{seen[0].line}: give every ticket of an order the same will_call name",
                )
        for rec, hold in first.values():
            stored = self.store.will_call(hold.event_id, hold.order_ref)
            if stored is not None and stored["name"] == hold.name:
                self.out.will_call_unchanged += 1
            elif stored is not None and stored["released_ms"] is not None:
                rec.report(
                    "will_call",
                    f"order {hold.order_ref} was already picked up from will-call under "
                    f"{stored['name']!r}: write that name, or leave will_call empty",
                )
            elif not rec.problems:
                self.out.will_call.append(hold)


PROGRESS_EVERY = 2000  # rows between two progress reports


def _quiet(what: str, done: int, total: int | None) -> None:
    """No progress shown (not on a terminal, or a caller that does not ask)."""


def build_catalogue(
    store: HubStorage, tenant_id: str, paths: list[Path], progress: Progress | None = None
) -> Catalogue:
    """Read and check every file; raises CatalogueError with every problem found. A file
    that cannot be read at all (or whose header fits no kind) stops the check there, since
    the rows of the other files would only report the ids it would have brought."""
    by_kind: dict[str, list[Record]] = {kind: [] for kind in COLUMNS}
    problems: list[Problem] = []
    notes: list[str] = []
    unreadable = False
    report = progress or _quiet
    for order, path in enumerate(paths):
        try:
            for n, item in enumerate(read_records(path, order, notes), 1):
                if n % PROGRESS_EVERY == 0:
                    report(f"reading {path.name}", n, None)
                if isinstance(item, Problem):
                    problems.append(item)
                else:
                    by_kind[item.kind].append(item)
        except _Bad as bad:
            problems.append(bad.problem)
            unreadable = True
    if unreadable:
        raise CatalogueError(problems)
    builder = _Builder(store, tenant_id)
    builder.events(by_kind["event"])
    builder.ticket_types(by_kind["ticket_type"])
    builder.tickets(by_kind["ticket"], report)
    builder.will_call()
    problems += [p for records in by_kind.values() for rec in records for p in rec.problems]
    if problems:
        raise CatalogueError(problems)
    builder.out.notes = notes
    return builder.out


def import_files(
    store: HubStorage,
    tenant_id: str,
    paths: list[Path],
    actor: str,
    now_ms: int,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Catalogue:
    """Check every file, then add and update everything in one transaction (or nothing, with
    `dry_run`). `progress` hears each phase (hub/progress.py)."""
    catalogue = build_catalogue(store, tenant_id, paths, progress)
    if not dry_run:
        (progress or _quiet)("storing", 0, None)
        rows = CatalogueImport(
            catalogue.events,
            catalogue.ticket_types,
            catalogue.tickets,
            catalogue.changes,
            catalogue.will_call,
        )
        store.import_catalogue(tenant_id, rows, actor, now_ms)
    return catalogue
