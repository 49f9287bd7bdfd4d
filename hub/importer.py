"""`gate-hub import`: events, ticket types and tickets from CSV or JSON Lines files.

Every file is read and checked before anything is written; the first problem is reported as
`file:line:column: message` and nothing is imported. CSV files hold one kind each, told apart
by their header (events have `start`, ticket types `code` + `name`, tickets `ticket_id`);
JSON Lines files hold one object per line with a `kind` of event, ticket_type or ticket.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.errors import matches
from hub.schema import (
    ATTENTION_MAX_LEN,
    ATTENTION_PATTERN,
    MAX_ENTRIES_LOW,
    ORDER_REF_MAX_LEN,
    ORDER_REF_PATTERN,
    TICKET_FIELDS,
)
from hub.store_api import HubStorage
from hub.store_base import new_id
from manifests.model import TicketStatus
from manifests.policy import TEMPLATES, ScanPolicy
from protocol.limits import MAX_COUNT

COLUMNS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "event": (
        {"event_id", "venue_id", "name", "timezone", "start", "end"},
        {"doors", "days", "code", "policy", "comp_limit"},
    ),
    "ticket_type": ({"event_id", "code", "name"}, {"zone"}),
    "ticket": (
        {"ticket_id", "event_id"},
        {"ticket_type", "status", "generation", "zone", "seat", "holder_name", "valid_days"}
        | set(TICKET_FIELDS),
    ),
}
_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class CatalogueError(Exception):
    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{file}:{line}:{column}: {message}")


@dataclass
class Record:
    kind: str
    values: dict[str, Any]
    file: str
    line: int
    column_of: Callable[[str], int]

    def fail(self, field: str | None, message: str) -> CatalogueError:
        return CatalogueError(self.file, self.line, self.column_of(field or ""), message)

    def get(self, field: str) -> Any:
        value = self.values.get(field)
        return None if value == "" else value


def read_records(path: Path) -> Iterator[Record]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(name, 1, 1, f"cannot read file: {exc}") from None
    if path.suffix.lower() == ".csv":
        yield from _csv_records(name, text)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _jsonl_records(name, text)
    else:
        raise CatalogueError(name, 1, 1, "file must end in .csv or .jsonl")


def _csv_records(name: str, text: str) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    kind = next((k for k, (req, _) in COLUMNS.items() if req <= set(header)), None)
    if kind is None:
        raise CatalogueError(name, 1, 1, "header does not match events, ticket types or tickets")
    required, optional = COLUMNS[kind]
    for index, column in enumerate(header, start=1):
        if column not in required | optional:
            raise CatalogueError(name, 1, index, f"unknown column {column!r} for {kind}s")

    def column_of(field: str) -> int:
        return header.index(field) + 1 if field in header else 1

    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            at = min(len(cells), len(header)) + 1
            message = f"expected {len(header)} cells, found {len(cells)}"
            raise CatalogueError(name, reader.line_num, at, message)
        values = {h: c.strip() for h, c in zip(header, cells, strict=True)}
        yield Record(kind, values, name, reader.line_num, column_of)


def _jsonl_records(name: str, text: str) -> Iterator[Record]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CatalogueError(name, number, exc.colno, f"invalid JSON: {exc.msg}") from None

        def column_of(field: str, line: str = line) -> int:
            return line.find(f'"{field}"') + 1 if field and f'"{field}"' in line else 1

        if not isinstance(values, dict):
            raise CatalogueError(name, number, 1, "each line must be a JSON object")
        kind = values.pop("kind", None)
        if kind not in COLUMNS:
            raise CatalogueError(
                name, number, column_of("kind"), "kind must be event, ticket_type or ticket"
            )
        required, optional = COLUMNS[kind]
        for field in values:
            if field not in required | optional:
                raise CatalogueError(name, number, column_of(field), f"unknown field {field!r}")
        yield Record(kind, values, name, number, column_of)


@dataclass
class Catalogue:
    events: list[dict[str, Any]]
    ticket_types: list[dict[str, Any]]
    tickets: list[dict[str, Any]]


def _text(rec: Record, field: str, *, required: bool = True, id_like: bool = False) -> str | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise rec.fail(field, f"{field} is required")
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise rec.fail(field, f"{field} must be text of at most 200 characters")
    if id_like and not _ID_RE.match(value):
        raise rec.fail(field, f"{field} must be an id (letters, digits, _ . : -)")
    return value


def _line(rec: Record, field: str, max_len: int, pattern: str, what: str) -> str | None:
    """An optional one-line text (stored stripped) within `max_len` and `pattern`, the same
    bounds the admin API declares; `what` says in words which characters may be used."""
    value = rec.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len or not matches(pattern, value):
        raise rec.fail(field, f"{field} must be {what} of at most {max_len} characters")
    return value.strip()


def _int(rec: Record, field: str, low: int, high: int) -> int | None:
    value = rec.get(field)
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise rec.fail(field, f"{field} must be a whole number from {low} to {high}")
    return value


def _dates(rec: Record, field: str) -> list[str]:
    value = rec.get(field)
    items = value.split(";") if isinstance(value, str) else value or []
    if not isinstance(items, list):
        raise rec.fail(field, f"{field} must list ISO dates")
    try:
        return sorted({date.fromisoformat(str(item).strip()).isoformat() for item in items})
    except ValueError:
        raise rec.fail(field, f"{field} must list ISO dates (YYYY-MM-DD)") from None


def _time_ms(rec: Record, field: str, tz: ZoneInfo, required: bool = True) -> int | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise rec.fail(field, f"{field} is required")
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)  # epoch milliseconds
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise rec.fail(field, f"{field} must be an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)  # local time at the event
    return int(moment.timestamp() * 1000)


def _policy(rec: Record) -> dict[str, Any]:
    value = rec.get("policy")
    if value is None:
        return TEMPLATES["standard"].to_json()
    if isinstance(value, str) and value in TEMPLATES:
        return TEMPLATES[value].to_json()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            names = ", ".join(TEMPLATES)
            raise rec.fail("policy", f"policy must be a template ({names}) or JSON") from None
    if not isinstance(value, dict):
        raise rec.fail("policy", "policy must be a JSON object")
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
            raise rec.fail("policy", f"policy setting {key!r} is unknown or has the wrong type")
    return ScanPolicy.from_json(value).to_json()


def _events(store: HubStorage, tenant_id: str, records: list[Record]) -> list[dict[str, Any]]:
    used_codes = store.event_codes()
    venues = {v["id"] for v in store.list_venues(tenant_id)}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rec in records:
        event_id = _text(rec, "event_id", id_like=True)
        if event_id in seen or store.event_exists(str(event_id)):
            raise rec.fail("event_id", f"event {event_id} already exists")
        seen.add(str(event_id))
        venue_id = _text(rec, "venue_id")
        if venue_id not in venues:
            raise rec.fail("venue_id", f"no venue {venue_id} for this tenant")
        tz_name = str(_text(rec, "timezone"))
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise rec.fail("timezone", f"unknown time zone {tz_name}") from None
        start, end = _time_ms(rec, "start", tz), _time_ms(rec, "end", tz)
        assert start is not None and end is not None
        if end < start:
            raise rec.fail("end", "end is before start")
        code = _int(rec, "code", 1, 2**32 - 1)
        if code in used_codes:
            raise rec.fail("code", f"event code {code} is already in use")
        while code is None or code in used_codes:
            code = secrets.randbelow(2**32 - 1) + 1
        used_codes.add(code)
        rows.append(
            {
                "id": event_id,
                "venue_id": venue_id,
                "code": code,
                "name": _text(rec, "name"),
                "timezone": tz_name,
                "start_ms": start,
                "end_ms": end,
                "doors_ms": _time_ms(rec, "doors", tz, required=False),
                "days_json": json.dumps(_dates(rec, "days")),
                "policy_json": json.dumps(_policy(rec)),
                "comp_limit": _int(rec, "comp_limit", 0, 1_000_000),
            }
        )
    return rows


@dataclass
class _EventFacts:
    days: set[str]
    types: dict[str, dict[str, Any]]  # name -> ticket type row


def build_catalogue(store: HubStorage, tenant_id: str, paths: list[Path]) -> Catalogue:
    """Read and check every file; raises CatalogueError at the first problem."""
    by_kind: dict[str, list[Record]] = {kind: [] for kind in COLUMNS}
    for path in paths:
        for rec in read_records(path):
            by_kind[rec.kind].append(rec)
    events = _events(store, tenant_id, by_kind["event"])
    facts = {e["id"]: _EventFacts(set(json.loads(e["days_json"])), {}) for e in events}

    def event_of(rec: Record) -> _EventFacts:
        event_id = str(_text(rec, "event_id"))
        if event_id not in facts:
            existing = store.get_event(event_id, tenant_id)
            if existing is None:
                raise rec.fail("event_id", f"no event {event_id} in this import or at the hub")
            types = {t["name"]: t for t in store.ticket_types_of(event_id)}
            facts[event_id] = _EventFacts(set(json.loads(existing["days_json"])), types)
        return facts[event_id]

    ticket_types: list[dict[str, Any]] = []
    for rec in by_kind["ticket_type"]:
        event = event_of(rec)
        code, name = _int(rec, "code", 1, 65535), str(_text(rec, "name"))
        if code is None:
            raise rec.fail("code", "code is required")
        if name in event.types or code in {t["code"] for t in event.types.values()}:
            raise rec.fail("name", f"ticket type {name} (code {code}) already exists")
        row = {
            "id": new_id(),
            "event_id": rec.get("event_id"),
            "code": code,
            "name": name,
            "zone": _text(rec, "zone", required=False),
        }
        event.types[name] = row
        ticket_types.append(row)

    tickets: list[dict[str, Any]] = []
    seen: dict[str, Record] = {}
    statuses = {str(s) for s in TicketStatus}
    for rec in by_kind["ticket"]:
        ticket_id = str(_text(rec, "ticket_id", id_like=True))
        if ticket_id in seen:
            raise rec.fail("ticket_id", f"ticket {ticket_id} appears twice")
        seen[ticket_id] = rec
        event = event_of(rec)
        type_name = _text(rec, "ticket_type", required=False)
        if type_name is not None and type_name not in event.types:
            raise rec.fail("ticket_type", f"no ticket type {type_name} at this event")
        status = _text(rec, "status", required=False) or str(TicketStatus.ACTIVE)
        if status not in statuses:
            raise rec.fail("status", f"unknown status {status}")
        valid_days = _dates(rec, "valid_days")
        if event.days and not set(valid_days) <= event.days:
            raise rec.fail("valid_days", "valid_days must be days of the event")
        ticket_type = event.types.get(type_name) if type_name else None
        tickets.append(
            {
                "id": ticket_id,
                "event_id": rec.get("event_id"),
                "ticket_type_id": ticket_type["id"] if ticket_type else None,
                "status": status,
                "generation": _int(rec, "generation", 0, 1_000_000) or 0,
                "zone": _text(rec, "zone", required=False)
                or (ticket_type["zone"] if ticket_type else None),
                "seat": _text(rec, "seat", required=False),
                "holder_name": _text(rec, "holder_name", required=False),
                "valid_days_json": json.dumps(valid_days),
                "order_ref": _line(
                    rec, "order_ref", ORDER_REF_MAX_LEN, ORDER_REF_PATTERN, "printable ASCII"
                ),
                "attention": _line(
                    rec, "attention", ATTENTION_MAX_LEN, ATTENTION_PATTERN, "one line of text"
                ),
                "max_entries": _int(rec, "max_entries", MAX_ENTRIES_LOW, MAX_COUNT),
            }
        )
    clashes = store.existing_ticket_ids(seen)
    if clashes:
        first = min((seen[i] for i in clashes), key=lambda r: (r.file, r.line))
        raise first.fail("ticket_id", f"ticket {first.get('ticket_id')} already exists")
    return Catalogue(events, ticket_types, tickets)


def import_files(
    store: HubStorage, tenant_id: str, paths: list[Path], actor: str, now_ms: int
) -> Catalogue:
    catalogue = build_catalogue(store, tenant_id, paths)
    store.import_catalogue(
        tenant_id=tenant_id,
        events=catalogue.events,
        ticket_types=catalogue.ticket_types,
        tickets=catalogue.tickets,
        actor=actor,
        now_ms=now_ms,
    )
    return catalogue
