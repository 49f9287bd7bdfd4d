"""The hub's OpenAPI 3.1 document. `OPERATIONS` lists every route by hand with what it answers
(a test compares it with the app's router both ways, and the contract fuzzer checks every
answer against it); each request body comes from what its handler declares: the wire Struct
it decodes (`decodes`, protocol/wire.py) or the Body it checks (hub/errors.accepts), the same
object that checks the request, so the two cannot drift. The device messages' answers and the
error body are the wire Structs' schemas too."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import msgspec
from aiohttp import web

from hub import api_rows as rows
from hub.api_rows import INT, NINT, NS, OBJ, S, array, extended, obj
from hub.errors import request_body
from hub.paging import DEFAULT_PAGE, MAX_PAGE, Keyset
from hub.schema import LEGACY_KEY_STATES
from hub.store_search import (
    AUDIT,
    DEVICES,
    EVENTS,
    GATES,
    MAX_FILTER,
    MAX_MS,
    MAX_SEARCH,
    STATUS_PATTERN,
    TICKETS,
    VENUES,
    ZONES,
)
from hub.venue_keys import FORMATS
from protocol.wire import (
    ENROLL_ONE_OF,
    CheckAnswer,
    Enroll,
    ErrorBody,
    HeartbeatAnswer,
    OwnDevice,
    ScanBatchAnswer,
)

ADMIN, DEVICE, NONE = "admin", "device", "none"

H = TypeVar("H", bound=Callable[..., Any])


def decodes(struct: type[msgspec.Struct]) -> Callable[[H], H]:
    """Marks a handler with the wire Struct it decodes its body into, so the document shows
    exactly that."""

    def mark(handler: H) -> H:
        handler.wire_body = struct  # type: ignore[attr-defined]
        return handler

    return mark


@functools.cache
def struct_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The Struct's JSON Schema with every reference written out in place, as the document
    and its readers (schemathesis among them) take a body schema whole."""
    (ref,), components = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(components[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    schema: dict[str, Any] = inline(ref)
    one_of = ONE_OF.get(struct)
    if one_of:  # what msgspec's schema cannot say: exactly one of these, not null
        schema["oneOf"] = [
            {"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in one_of
        ]
    return schema


# Request Structs that take exactly one of some fields (checked by the hub first).
ONE_OF: dict[type[msgspec.Struct], tuple[str, ...]] = {Enroll: ENROLL_ONE_OF}


# The rows' schemas, from the one list of each row's fields (hub/api_rows.py).
VENUE, ZONE, GATE, DEVICE_ROW = (k.schema for k in (rows.VENUE, rows.ZONE, rows.GATE, rows.DEVICE))
EVENT, TICKET, WILL_CALL = (k.schema for k in (rows.EVENT, rows.TICKET, rows.WILL_CALL))
BACKEND, AUDIT_ENTRY = rows.BACKEND.schema, rows.AUDIT_ENTRY.schema
BACKEND_STATUS = extended(BACKEND, outbox=rows.OUTBOX.schema)
KEY_SET = obj(
    key_set=INT,
    venue_id=S,
    state={"enum": list(LEGACY_KEY_STATES)},
    formats=array({"enum": list(FORMATS)}),
    fingerprints={**OBJ, "additionalProperties": {**S, "pattern": "^[0-9a-f]{8}$"}},
    rotation_interval_ms=INT,
    format_c_validity_ms=INT,
    created_ms=INT,
    activated_ms=NINT,
    retired_ms=NINT,
)
HUB = obj(public_key=S, fingerprint=S, key_id=INT, trusted_keys=OBJ, keys_version=INT)
STATUS_OK = obj(status={"const": "ok"})


def json_body(schema: dict[str, Any], status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": "Success", "content": {_JSON: {"schema": schema}}}}


def media(*types: str, status: int = 200) -> dict[str, Any]:
    content = {t: {"schema": {"type": "string"}} for t in types}
    return {str(status): {"description": "Success", "content": content}}


_JSON = "application/json"
MANIFEST_TYPE = "application/vnd.venue-gate.manifest"
KEY_SET_TYPE = "application/vnd.venue-gate.hub-keys"
NOT_MODIFIED = {"304": {"description": "Not modified: the device holds this revision."}}
SWITCHING = {"101": {"description": "Switching to the WebSocket protocol."}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _paged(keyset: Keyset, rows: str) -> list[dict[str, Any]]:
    """The two parameters of every listing's page (hub/paging.py)."""
    return [
        _query(
            "limit",
            {**INT, "minimum": 1, "maximum": MAX_PAGE},
            f"{rows} per page (default {DEFAULT_PAGE}).",
        ),
        _query("cursor", {**S, "pattern": keyset.pattern}, "The next_cursor of the previous page."),
    ]


def _time(name: str, description: str) -> dict[str, Any]:
    return _query(name, {**INT, "minimum": 0, "maximum": MAX_MS}, description)


# TicketToken's webhook signature (hub/backends/tickettoken.verify_webhook).
WEBHOOK_HEADERS = [
    {"name": "x-internal-signature", "in": "header", "required": True,
     "schema": {**S, "pattern": "^[0-9a-fA-F]{64}$"}},
    {"name": "x-webhook-timestamp", "in": "header", "required": True,
     "schema": {**S, "pattern": "^[0-9]{1,15}$"}},
    {"name": "x-webhook-nonce", "in": "header", "required": True,
     "schema": {**S, "minLength": 1, "maxLength": 200}},
    {"name": "x-idempotency-key", "in": "header", "required": False, "schema": S},
]  # fmt: skip


class Operation(NamedTuple):
    """One route as the document shows it: what it does, who may call it, what a success
    answers (status -> response object) and its query or header parameters."""

    summary: str
    auth: str
    answers: dict[str, Any]
    params: Sequence[dict[str, Any]] = ()


def listing(
    summary: str, rows: str, row: dict[str, Any], keyset: Keyset, *filters: dict[str, Any]
) -> Operation:
    """An admin listing a page at a time (hub/paging.py): its rows and the next page's cursor,
    its filters, then limit and cursor."""
    answer = obj(**{rows: array(row)}, next_cursor=NS)
    return Operation(
        summary, ADMIN, json_body(answer), [*filters, *_paged(keyset, rows.capitalize())]
    )


# Every route (a test compares them with the app's router both ways), in the document's order.
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/health"): Operation("Liveness check.", NONE, json_body(STATUS_OK)),
    ("GET", "/health/db"): Operation("Database reachability check.", NONE, json_body(STATUS_OK)),
    ("GET", "/api/hub"): Operation(
        "The hub's public key, fingerprint and trusted manifest keys.", NONE, json_body(HUB)
    ),
    ("GET", "/openapi.json"): Operation(
        "This document.", NONE, json_body(obj(openapi=S, paths=OBJ))
    ),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics (text exposition format).", NONE, media("text/plain")
    ),
    ("GET", "/api/admin/backends"): Operation(
        "List the ticketing systems the hub fronts.",
        ADMIN,
        json_body(obj(backends=array(BACKEND))),
    ),
    ("POST", "/api/admin/backends"): Operation(
        "Connect a ticketing system (pretix).", ADMIN, json_body(BACKEND, 201)
    ),
    ("GET", "/api/admin/backends/{backend_id}"): Operation(
        "A backend and its push backlog.", ADMIN, json_body(BACKEND_STATUS)
    ),
    ("DELETE", "/api/admin/backends/{backend_id}"): Operation(
        "Stop fronting a backend.",
        ADMIN,
        json_body(obj(removed=S, dropped_owed_scans=INT, tickets_kept=INT)),
    ),
    ("POST", "/api/admin/backends/{backend_id}/pull"): Operation(
        "Pull from a backend now.", ADMIN, json_body(obj(pull=S), 202)
    ),
    ("GET", "/api/admin/venues/{venue_id}/legacy-keys"): Operation(
        "The venue's TicketToken key sets gates trust: state, fingerprints, times (never a key).",
        ADMIN,
        json_body(obj(venue_id=S, key_sets=array(KEY_SET))),
    ),
    ("POST", "/api/admin/venues/{venue_id}/legacy-keys"): Operation(
        "Set the venue's first TicketToken keys (formats A, B, C), current at once.",
        ADMIN,
        json_body(KEY_SET, 201),
    ),
    ("POST", "/api/admin/venues/{venue_id}/legacy-keys/rotate"): Operation(
        "Announce new TicketToken keys as next: gates trust them from their next sync.",
        ADMIN,
        json_body(KEY_SET, 201),
    ),
    ("POST", "/api/admin/venues/{venue_id}/legacy-keys/activate"): Operation(
        "Make the next TicketToken keys current; the current ones are retired, still trusted.",
        ADMIN,
        json_body(obj(key_sets=array(KEY_SET))),
    ),
    ("DELETE", "/api/admin/venues/{venue_id}/legacy-keys/{key_set}"): Operation(
        "Remove a retired (or never activated next) TicketToken key set.",
        ADMIN,
        json_body(KEY_SET),
    ),
    ("POST", "/api/backends/{backend_id}/webhook/{topic}"): Operation(
        "A TicketToken webhook (HMAC-signed by its payment-service): pull that tenant now.",
        NONE,
        json_body(obj(status=S), 202),
        WEBHOOK_HEADERS,
    ),
    ("GET", "/api/admin/whoami"): Operation(
        "The calling admin token's tenant, venue and role.",
        ADMIN,
        json_body(obj(tenant_id=S, venue_id=NS, role=S)),
    ),
    ("GET", "/api/admin/venues"): listing(
        "List the venues the token may see, a page at a time.", "venues", VENUE, VENUES
    ),
    ("POST", "/api/admin/venues"): Operation("Create a venue.", ADMIN, json_body(VENUE, 201)),
    ("GET", "/api/admin/venues/{venue_id}"): Operation("One venue.", ADMIN, json_body(VENUE)),
    ("GET", "/api/admin/venues/{venue_id}/zones"): listing(
        "The venue's zones, a page at a time.", "zones", ZONE, ZONES
    ),
    ("POST", "/api/admin/venues/{venue_id}/zones"): Operation(
        "Add a zone.", ADMIN, json_body(ZONE, 201)
    ),
    ("GET", "/api/admin/venues/{venue_id}/gates"): listing(
        "The venue's gates, a page at a time.", "gates", GATE, GATES
    ),
    ("POST", "/api/admin/venues/{venue_id}/gates"): Operation(
        "Add a gate.", ADMIN, json_body(GATE, 201)
    ),
    ("GET", "/api/admin/devices"): listing(
        "List enrolled devices, a page at a time.",
        "devices",
        DEVICE_ROW,
        DEVICES,
        _query("venue_id", {**S, "maxLength": 64}, "Only this venue's devices."),
        _query("active", {"enum": ["true", "false"]}, "Only active or deactivated devices."),
    ),
    ("GET", "/api/admin/devices/{device_id}"): Operation(
        "One device and its health.", ADMIN, json_body(DEVICE_ROW)
    ),
    ("POST", "/api/admin/devices/{device_id}/deactivate"): Operation(
        "Deactivate a device.", ADMIN, json_body(DEVICE_ROW)
    ),
    ("PATCH", "/api/admin/devices/{device_id}"): Operation(
        "Rename or move a device.", ADMIN, json_body(DEVICE_ROW)
    ),
    ("POST", "/api/admin/venues/{venue_id}/enrollments"): Operation(
        "Create an enrollment code.",
        ADMIN,
        json_body(
            obj(
                id=S,
                code=S,
                expires_ms=INT,
                expires_at={**S, "format": "date-time"},
                payload=S,
                hub_key_fingerprint=S,
                qr_png_base64=S,
            ),
            201,
        ),
    ),
    ("GET", "/api/admin/audit"): listing(
        "The audit log, newest first, a page at a time.",
        "entries",
        AUDIT_ENTRY,
        AUDIT,
        _query("action", {**S, "maxLength": MAX_FILTER}, "Only entries of this action."),
        _query("target", {**S, "maxLength": MAX_FILTER}, "Only entries about this target."),
        _time("since", "Only entries at or after this time (epoch milliseconds)."),
        _time("until", "Only entries before this time (epoch milliseconds)."),
    ),
    ("GET", "/api/admin/events"): listing(
        "List the events the token may see, by start time, a page at a time.",
        "events",
        EVENT,
        EVENTS,
        _query("venue_id", {**S, "maxLength": 64}, "Only this venue's events."),
    ),
    ("GET", "/api/admin/events/{event_id}"): Operation(
        "One event with its ticket types.", ADMIN, json_body(EVENT)
    ),
    ("GET", "/api/admin/events/{event_id}/reconciliation"): Operation(
        "Reconciliation report: counts per outcome and every offline double entry.",
        ADMIN,
        json_body(
            obj(
                event_id=S,
                counts={**OBJ, "additionalProperties": INT},
                double_entries=array(OBJ),
                backend_answers=array(OBJ),
            )
        ),
    ),
    ("GET", "/api/admin/tickets"): listing(
        "Search the tickets the token may see (id, order reference, holder name, status), "
        "a page at a time in id order.",
        "tickets",
        TICKET,
        TICKETS,
        _query(
            "search",
            {**S, "maxLength": MAX_SEARCH},
            "A ticket id or order reference (whole, any case) or part of a holder's name "
            "(any case).",
        ),
        _query("status", {**S, "pattern": STATUS_PATTERN}, "Only tickets of this status."),
        _query("event_id", {**S, "maxLength": 64}, "Only this event's tickets."),
        _query("venue_id", {**S, "maxLength": 64}, "Only this venue's tickets."),
    ),
    ("GET", "/api/admin/tickets/{ticket_id}"): Operation("One ticket.", ADMIN, json_body(TICKET)),
    ("PATCH", "/api/admin/tickets/{ticket_id}"): Operation(
        "Set or clear (null) a ticket's order reference, attention note or entry limit.",
        ADMIN,
        json_body(TICKET),
    ),
    ("POST", "/api/admin/events/{event_id}/comps"): Operation(
        "Issue a complimentary ticket.", ADMIN, json_body(TICKET, 201)
    ),
    ("POST", "/api/admin/tickets/lock"): Operation(
        "Lock tickets (bulk).", ADMIN, json_body(obj(locked=array(S), reason=S))
    ),
    ("POST", "/api/admin/tickets/unlock"): Operation(
        "Unlock tickets (bulk).", ADMIN, json_body(obj(unlocked=array(S)))
    ),
    ("POST", "/api/admin/tickets/status"): Operation(
        "Cancel, refund or revoke tickets outright (bulk, all or nothing).",
        ADMIN,
        json_body(obj(tickets=array(S), status=S)),
    ),
    ("POST", "/api/admin/tickets/{ticket_id}/reissue"): Operation(
        "Reissue: new generation.", ADMIN, json_body(TICKET)
    ),
    ("POST", "/api/admin/tickets/{ticket_id}/transfer"): Operation(
        "Transfer to a new holder: new generation, the old code stops working.",
        ADMIN,
        json_body(TICKET),
    ),
    ("GET", "/api/admin/tickets/{ticket_id}/credential"): Operation(
        "The ticket's native credential as text, PNG or SVG QR code (?format=).",
        ADMIN,
        media("text/plain", "image/png", "image/svg+xml"),
        [_query("format", {"enum": ["text", "png", "svg"]}, "text (default), png or svg.")],
    ),
    ("GET", "/api/admin/events/{event_id}/will-call"): Operation(
        "The event's will-call orders, alphabetical by name, with ID check and pick-up.",
        ADMIN,
        json_body(obj(event_id=S, will_call=array(WILL_CALL))),
    ),
    ("POST", "/api/admin/events/{event_id}/will-call"): Operation(
        "Hold an order (order_ref) at will-call under a name, or rename its hold.",
        ADMIN,
        json_body(WILL_CALL),
    ),
    ("GET", "/api/admin/events/{event_id}/will-call/{order_ref}"): Operation(
        "One will-call order with its tickets.",
        ADMIN,
        json_body(extended(WILL_CALL, tickets=array(TICKET))),
    ),
    ("DELETE", "/api/admin/events/{event_id}/will-call/{order_ref}"): Operation(
        "Take an order off will-call (not once picked up).", ADMIN, json_body(obj(removed=S))
    ),
    ("POST", "/api/admin/events/{event_id}/will-call/{order_ref}/id-check"): Operation(
        "Record that the caller saw photo ID matching the will-call name.",
        ADMIN,
        json_body(WILL_CALL),
    ),
    ("POST", "/api/admin/events/{event_id}/will-call/{order_ref}/release"): Operation(
        "Hand the order over after its ID check: picked up, with its tickets' codes; a second "
        "release needs reprint: true.",
        ADMIN,
        json_body(obj(will_call=WILL_CALL, tickets=array(extended(TICKET, credential=S)))),
    ),
    ("POST", "/api/device/enroll"): Operation(
        "Enroll a device with a one-time code.", NONE, json_body(struct_schema(OwnDevice), 201)
    ),
    ("GET", "/api/device/me"): Operation(
        "The calling device as the hub knows it.", DEVICE, json_body(struct_schema(OwnDevice))
    ),
    ("POST", "/api/device/heartbeat"): Operation(
        "Device health report.", DEVICE, json_body(struct_schema(HeartbeatAnswer))
    ),
    ("POST", "/api/device/scans"): Operation(
        "Upload a batch of scans (idempotent; optional clock_offset_ms, peer_cursor); the "
        "answer carries the manifest revision and peer scans after the cursor.",
        DEVICE,
        json_body(struct_schema(ScanBatchAnswer)),
    ),
    ("GET", "/api/device/events/{event_id}/manifest"): Operation(
        "Signed manifest, full or ?since=R delta; ETag / If-None-Match gives 304.",
        DEVICE,
        {**media(MANIFEST_TYPE), **NOT_MODIFIED},
        [_query("since", {**S, "pattern": "^[0-9]{1,15}$"}, "Delta from this revision.")],
    ),
    ("GET", "/api/device/hub-keys"): Operation(
        "The hub keys to trust (key rotation), as a document signed by the current hub key.",
        DEVICE,
        media(KEY_SET_TYPE),
    ),
    ("POST", "/api/device/check"): Operation(
        "Online admission check; the scan is stored.", DEVICE, json_body(struct_schema(CheckAnswer))
    ),
    ("GET", "/api/device/live"): Operation(
        "WebSocket: live entry state from other gates.", DEVICE, SWITCHING
    ),
}

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    ADMIN: [{"adminToken": []}],
    DEVICE: [{"deviceSignature": []}],
    NONE: [],
}


def _operation(
    method: str, path: str, operation: Operation, body: dict[str, Any] | None
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {**S, "minLength": 1}}
        for name in re.findall(r"{(\w+)}", path)
    ]
    params += operation.params
    error = {
        "description": "Error",
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "summary": operation.summary,
        "security": _SECURITY[operation.auth],
        "responses": {**operation.answers, "default": error},
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {_JSON: {"schema": body}}}
    return op


def request_bodies(app: web.Application) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> the schema of the body its handler declares (a wire Struct or a
    Body), for every route that reads one."""
    out = {}
    for route in app.router.routes():
        if route.resource is None:
            continue
        struct = getattr(route.handler, "wire_body", None)
        body = request_body(route.handler)
        if struct is not None:
            out[(route.method, route.resource.canonical)] = struct_schema(struct)
        elif body is not None:
            out[(route.method, route.resource.canonical)] = body.schema()
    return out


def document(app: web.Application) -> dict[str, Any]:
    bodies = request_bodies(app)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), operation in OPERATIONS.items():
        body = bodies.get((method, path))
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, operation, body)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Venue gate hub", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {"Error": struct_schema(ErrorBody)},
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer"},
                "deviceSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Signature",
                    "description": "Ed25519 request signature with X-Device-Id, X-Timestamp "
                    "and X-Nonce (protocol/signing.py).",
                },
            },
        },
    }


routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))
