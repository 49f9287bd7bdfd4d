"""The rows the admin API answers (a venue, a gate, a device, an event, a ticket, a will-call
order, a backend and its outbox, an audit entry), each kind's fields listed once: a field's
JSON Schema and how it is read from the store's row. A handler's answer (`TICKET.json(row)`)
and the schema hub/openapi.py shows for it (`TICKET.schema`) are the same list, so the two
cannot drift. Every field is required in the schema and comes in the listed order, in both."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, NamedTuple

from hub.logs import iso_utc
from hub.store_will_call import id_checked_now
from protocol.signing import b64encode, key_fingerprint

Schema = dict[str, Any]
S: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
B: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}


def nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


def array(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def obj(**props: Schema) -> Schema:
    """An object with every listed property required (more may come)."""
    return {"type": "object", "required": list(props), "properties": props}


def extended(base: Schema, **props: Schema) -> Schema:
    """An obj() with more required properties."""
    return {
        **base,
        "required": [*base["required"], *props],
        "properties": {**base["properties"], **props},
    }


NS, NINT = nullable(S), nullable(INT)


class From(NamedTuple):
    """A field the row does not hold under the field's name: its schema, and how its value
    is read (or worked out) from the row."""

    schema: Schema
    read: Callable[[Mapping[str, Any]], Any]


def decoded(column: str) -> Callable[[Mapping[str, Any]], Any]:
    """Reads a column stored as JSON text."""
    return lambda row: json.loads(row[column])


def iso_of(column: str) -> Callable[[Mapping[str, Any]], str | None]:
    """Reads a column of epoch milliseconds as an ISO 8601 UTC time (None stays None)."""
    return lambda row: None if row[column] is None else iso_utc(row[column] / 1000)


class RowKind:
    """One kind of row: each field a schema (the row's column of that name, as it is) or a
    From."""

    def __init__(self, **fields: Schema | From) -> None:
        self.fields = {
            name: spec if isinstance(spec, From) else From(spec, itemgetter(name))
            for name, spec in fields.items()
        }
        self.schema = obj(**{name: field.schema for name, field in self.fields.items()})

    def json(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {name: field.read(row) for name, field in self.fields.items()}


def _settings(backend: Mapping[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(backend["settings_json"])
    return settings


VENUE = RowKind(id=S, name=S, timezone=S, created_ms=INT)
ZONE = RowKind(id=S, name=S)
GATE = RowKind(
    id=S,
    venue_id=S,
    name=S,
    direction={"enum": ["entry", "exit"]},
    zones=From(array(S), decoded("zones_json")),
)
DEVICE = RowKind(
    id=S,
    venue_id=S,
    hardware_id=S,
    name=S,
    gate_id=NS,
    zone=NS,
    active=From(B, lambda device: bool(device["active"])),
    public_key=From(S, lambda device: b64encode(device["public_key"])),
    key_fingerprint=From(S, lambda device: key_fingerprint(device["public_key"])),
    enrolled_ms=INT,
    deactivated_ms=NINT,
    last_seen_ms=NINT,
    app_version=NS,
    manifest_revisions=From(OBJ, decoded("manifest_revisions_json")),
    pending_uploads=NINT,
    clock_offset_ms=NINT,
    hub_keys_version=NINT,  # ready for `gate-hub key activate`?
)
TICKET_TYPE = RowKind(code=S, name=S, zone=NS)
EVENT = RowKind(
    id=S,
    venue_id=S,
    code=INT,
    name=S,
    timezone=S,
    start_ms=INT,
    end_ms=INT,
    doors_ms=NINT,
    days=From(array(S), decoded("days_json")),
    policy=From(OBJ, decoded("policy_json")),
    comp_limit=NINT,
    # the event's ticket types, which the caller adds to the event's row
    ticket_types=From(
        array(TICKET_TYPE.schema),
        lambda event: [TICKET_TYPE.json(t) for t in event["ticket_types"]],
    ),
)
TICKET = RowKind(
    id=S,
    external_id=NS,  # the import file's ticket id when that is not a UUID (id derives from it)
    event_id=S,
    venue_id=S,
    status=S,
    generation=INT,
    ticket_type=From(NS, itemgetter("ticket_type_name")),
    zone=NS,
    seat=NS,
    holder_name=NS,
    valid_days=From(nullable(array(S)), decoded("valid_days_json")),
    lock_reason=NS,
    locked_by=NS,
    locked_ms=NINT,
    comp_reason=NS,
    comp_issuer=NS,
    order_ref=NS,
    attention=NS,
    max_entries=NINT,
)
WILL_CALL = RowKind(
    event_id=S,
    order_ref=S,
    name=S,
    ticket_count=From(INT, itemgetter("tickets")),
    held_by=S,
    held_ms=INT,
    id_checked_by=NS,
    id_checked_ms=NINT,
    id_checked=From(B, id_checked_now),
    picked_up=From(B, lambda hold: hold["released_ms"] is not None),
    released_by=NS,
    released_ms=NINT,
    releases=INT,
)
# What anyone may see of a backend: where it is and what it fronts, never its token.
BACKEND_VIEW = RowKind(
    id=S,
    name=S,
    kind=S,
    venue_id=NS,
    url=From(S, lambda backend: _settings(backend).get("url")),
    organizer=From(NS, lambda backend: _settings(backend).get("organizer")),
    events=From(array(S), lambda backend: _settings(backend).get("events") or []),
    auth=From(NS, lambda backend: _settings(backend).get("auth")),
)
BACKEND = RowKind(
    **BACKEND_VIEW.fields,
    last_pull_at=From(NS, iso_of("last_pull_ms")),
    last_pull_ok_at=From(NS, iso_of("last_pull_ok_ms")),
    last_pull_error=NS,
    last_push_ok_at=From(NS, iso_of("last_push_ok_ms")),
    last_push_error=NS,
)
# A backend's push backlog (hub/store_backends.py OutboxState).
OUTBOX = RowKind(
    owed=INT, oldest_owed_at=From(NS, iso_of("oldest_owed_ms")), failing=INT, pushed=INT
)
AUDIT_ENTRY = RowKind(
    id=INT,
    venue_id=NS,
    actor=S,
    action=S,
    target=NS,
    at_ms=INT,
    detail=From(OBJ, decoded("detail_json")),
)
