"""Admin API: venues, zones, gates, devices and enrollment codes, scoped by bearer token; the
query parameters every admin listing reads, its page among them (hub/paging.py)."""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from hub import api_rows as rows
from hub.auth import Principal, require_admin, scoped_venue
from hub.credentials import qr_image
from hub.errors import (
    ApiError,
    Body,
    Fields,
    accepts,
    integer,
    not_found,
    read_json_object,
    text,
    texts,
)
from hub.keys import CLOCK, DB, ENROLLMENT_TTL_MS, HUB_KEYS, HUB_URL
from hub.live import LIVE
from hub.logs import iso_utc
from hub.paging import DEFAULT_PAGE, MAX_PAGE, BadCursor, Keyset, PageAsk
from hub.store_api import NewEnrollment, NewGate
from hub.store_search import (
    AUDIT,
    DEVICES,
    GATES,
    MAX_FILTER,
    MAX_MS,
    VENUES,
    ZONES,
    AuditQuery,
    DeviceQuery,
)
from manifests.admission_types import Direction
from protocol.signing import enrollment_uri, key_fingerprint

routes = web.RouteTableDef()
T = TypeVar("T")
MAX_ENROLLMENT_TTL_S = 24 * 3600
VENUE = Body(name=text(), timezone=text(64))
ZONE = Body(name=text(100))
GATE = Body(
    name=text(100),
    direction=text(required=False, choices=tuple(str(d) for d in Direction)),
    zones=texts(),
)
DEVICE_CHANGE = Body(  # null clears a gate or zone
    at_least_one=True,
    name=text(100, required=False, nullable=False),
    gate_id=text(64, required=False),
    zone=text(100, required=False),
)
ENROLLMENT = Body(
    name=text(100),
    gate_id=text(64, required=False),
    zone=text(100, required=False),
    ttl_s=integer(30, MAX_ENROLLMENT_TTL_S, required=False),
)
PAGE_QUERY = ("limit", "cursor")
DEVICE_QUERY = ("venue_id", "active", *PAGE_QUERY)
AUDIT_QUERY = ("action", "target", "since", "until", *PAGE_QUERY)


def query_params(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query's parameters, each named in `allowed` and given once (else a 400)."""
    for name in request.query:
        if name not in allowed:
            raise ApiError(
                400, "invalid_query", f"Unknown query parameter {name}: use {', '.join(allowed)}."
            )
        if len(request.query.getall(name)) > 1:
            raise ApiError(400, "invalid_query", f"Give query parameter {name} once.")
    return dict(request.query)


async def venue_filter(request: web.Request, p: Principal, query: dict[str, str]) -> str | None:
    """?venue_id=, when given: a venue this token may see, or 404."""
    venue_id = query.get("venue_id")
    if venue_id is not None:
        await scoped_venue(request, p, venue_id)
    return venue_id


def text_filter(query: Mapping[str, str], name: str, max_len: int = MAX_FILTER) -> str | None:
    """?name=, when given: at most `max_len` characters, else a 400."""
    given = query.get(name)
    if given is not None and len(given) > max_len:
        raise ApiError(400, "invalid_query", f"{name} must be at most {max_len} characters.")
    return given


def _whole(given: str, high: int) -> int | None:
    """A whole number from 0 to `high` written plainly (as the document's integers), else
    None."""
    plain = re.fullmatch(r"0|[1-9][0-9]*", given) and len(given) <= len(str(high))
    return int(given) if plain and int(given) <= high else None


def _time(query: Mapping[str, str], name: str) -> int | None:
    given = query.get(name)
    ms = None if given is None else _whole(given, MAX_MS)
    if given is not None and ms is None:
        raise ApiError(
            400, "invalid_query", f"{name} must be a time in milliseconds from 0 to {MAX_MS}."
        )
    return ms


def page_ask(query: Mapping[str, str], keyset: Keyset) -> PageAsk:
    """?limit= (1 to MAX_PAGE) and ?cursor= (a next_cursor of this listing), else a 400."""
    given = query.get("limit")
    limit = DEFAULT_PAGE if given is None else _whole(given, MAX_PAGE)
    if not limit:
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_PAGE}.")
    cursor = query.get("cursor")
    if cursor is not None:
        try:
            keyset.position(cursor)
        except BadCursor:
            raise ApiError(
                400,
                "invalid_cursor",
                "cursor must be a next_cursor this listing answered: start again without one.",
            ) from None
    return PageAsk(cursor, limit)


def page_json(name: str, items: list[dict[str, Any]], next_cursor: str | None) -> web.Response:
    """A page's answer: its items under the listing's key, and the cursor of the next page
    (null: this was the last)."""
    return web.json_response({name: items, "next_cursor": next_cursor})


async def _unique(write: Awaitable[T], what: str) -> T:
    """Wait for a store write; a uniqueness clash becomes 409 instead of a 500."""
    try:
        return await write
    except sqlite3.IntegrityError:
        raise ApiError(409, "already_exists", f"A {what} with that name already exists.") from None


async def scoped_device(request: web.Request, principal: Principal) -> dict[str, Any]:
    device_id = request.match_info["device_id"]
    device = await request.app[DB].run(
        lambda store: store.get_device_scoped(device_id, principal.tenant_id, principal.venue_id)
    )
    if device is None:
        raise not_found("device")
    return device


async def known_zones(request: web.Request, venue_id: str, zones: list[str]) -> None:
    names = {z["name"] for z in await request.app[DB].run(lambda s: s.list_zones(venue_id))}
    for zone in zones:
        if zone not in names:  # a name the venue lacks, like an unknown id: not found
            raise ApiError(404, "unknown_zone", f"Zone {zone} is not defined at this venue.")


async def known_gate(request: web.Request, gate_id: str, venue_id: str) -> bool:
    return await request.app[DB].run(lambda s: s.get_gate(gate_id, venue_id)) is not None


async def _venue_listing(request: web.Request, keyset: Keyset) -> tuple[Principal, str, PageAsk]:
    """The token, the path's venue (404 unless the token may see it) and the page asked."""
    p = await require_admin(request, "venue.read")
    ask = page_ask(query_params(request, PAGE_QUERY), keyset)
    venue = await scoped_venue(request, p, request.match_info["venue_id"])
    return p, venue["id"], ask


@routes.get("/api/admin/whoami")
async def whoami(request: web.Request) -> web.Response:
    p = await require_admin(request, "venue.read")
    return web.json_response({"tenant_id": p.tenant_id, "venue_id": p.venue_id, "role": p.role})


@routes.get("/api/admin/venues")
async def list_venues(request: web.Request) -> web.Response:
    """A page of the venues the token may see, by name."""
    p = await require_admin(request, "venue.read")
    ask = page_ask(query_params(request, PAGE_QUERY), VENUES)
    page = await request.app[DB].run(lambda s: s.venue_page(p.tenant_id, p.venue_id, ask))
    return page_json("venues", [rows.VENUE.json(v) for v in page.rows], page.next_cursor)


@routes.post("/api/admin/venues")
@accepts(VENUE)
async def create_venue(request: web.Request) -> web.Response:
    p = await require_admin(request, "venue.create")
    if p.venue_id is not None:
        raise ApiError(403, "forbidden_scope", "A venue-scoped token cannot create venues.")
    f = Fields(await read_json_object(request), VENUE)
    name, timezone = f.need_text("name"), f.need_text("timezone")
    now = request.app[CLOCK]()
    row = await _unique(
        request.app[DB].run(lambda s: s.create_venue(p.tenant_id, name, timezone, p.actor, now)),
        "venue",
    )
    return web.json_response(rows.VENUE.json(row), status=201)


@routes.get("/api/admin/venues/{venue_id}")
async def get_venue(request: web.Request) -> web.Response:
    p = await require_admin(request, "venue.read")
    venue = await scoped_venue(request, p, request.match_info["venue_id"])
    return web.json_response(rows.VENUE.json(venue))


@routes.get("/api/admin/venues/{venue_id}/zones")
async def list_zones(request: web.Request) -> web.Response:
    """A page of the venue's zones, by name."""
    p, venue_id, ask = await _venue_listing(request, ZONES)
    page = await request.app[DB].run(lambda s: s.zone_page(p.tenant_id, p.venue_id, venue_id, ask))
    return page_json("zones", [rows.ZONE.json(z) for z in page.rows], page.next_cursor)


@routes.post("/api/admin/venues/{venue_id}/zones")
@accepts(ZONE)
async def create_zone(request: web.Request) -> web.Response:
    p = await require_admin(request, "venue.configure")
    venue = await scoped_venue(request, p, request.match_info["venue_id"])
    name = Fields(await read_json_object(request), ZONE).need_text("name")
    now = request.app[CLOCK]()
    row = await _unique(
        request.app[DB].run(lambda s: s.create_zone(p.tenant_id, venue["id"], name, p.actor, now)),
        "zone",
    )
    return web.json_response(rows.ZONE.json(row), status=201)


@routes.get("/api/admin/venues/{venue_id}/gates")
async def list_gates(request: web.Request) -> web.Response:
    """A page of the venue's gates, by name."""
    p, venue_id, ask = await _venue_listing(request, GATES)
    page = await request.app[DB].run(lambda s: s.gate_page(p.tenant_id, p.venue_id, venue_id, ask))
    return page_json("gates", [rows.GATE.json(g) for g in page.rows], page.next_cursor)


@routes.post("/api/admin/venues/{venue_id}/gates")
@accepts(GATE)
async def create_gate(request: web.Request) -> web.Response:
    p = await require_admin(request, "venue.configure")
    venue = await scoped_venue(request, p, request.match_info["venue_id"])
    f = Fields(await read_json_object(request), GATE)
    name = f.need_text("name")
    direction = f.text("direction") or Direction.ENTRY
    zones = f.text_list("zones")
    await known_zones(request, venue["id"], zones)
    gate, now = NewGate(venue["id"], name, direction, zones), request.app[CLOCK]()
    row = await _unique(
        request.app[DB].run(lambda s: s.create_gate(p.tenant_id, gate, p.actor, now)), "gate"
    )
    return web.json_response(rows.GATE.json(row), status=201)


@routes.get("/api/admin/devices")
async def list_devices(request: web.Request) -> web.Response:
    """A page of the devices the token may see (of one venue with ?venue_id=, active or
    deactivated ones with ?active=), by name."""
    p = await require_admin(request, "device.read")
    query = query_params(request, DEVICE_QUERY)
    active_text = query.get("active")
    if active_text not in (None, "true", "false"):
        raise ApiError(400, "invalid_query", "Query active must be 'true' or 'false'.")
    active = None if active_text is None else active_text == "true"
    ask = page_ask(query, DEVICES)
    asked = DeviceQuery(await venue_filter(request, p, query), active)
    page = await request.app[DB].run(lambda s: s.device_page(p.tenant_id, p.venue_id, asked, ask))
    return page_json("devices", [rows.DEVICE.json(d) for d in page.rows], page.next_cursor)


@routes.get("/api/admin/devices/{device_id}")
async def get_device(request: web.Request) -> web.Response:
    p = await require_admin(request, "device.read")
    return web.json_response(rows.DEVICE.json(await scoped_device(request, p)))


async def deactivate(request: web.Request, device: dict[str, Any], actor: str) -> dict[str, Any]:
    """Deactivate a device (audited) and close its live sockets: it must stop hearing
    entries now. The admin API and the console both deactivate through here."""
    now = request.app[CLOCK]()
    updated = await request.app[DB].run(lambda s: s.deactivate_device(device, actor, now))
    request.app[LIVE].drop_device(device["id"])
    return updated


@routes.post("/api/admin/devices/{device_id}/deactivate")
async def deactivate_device(request: web.Request) -> web.Response:
    p = await require_admin(request, "device.manage")
    device = await scoped_device(request, p)
    return web.json_response(rows.DEVICE.json(await deactivate(request, device, p.actor)))


@routes.patch("/api/admin/devices/{device_id}")
@accepts(DEVICE_CHANGE)
async def update_device(request: web.Request) -> web.Response:
    """Rename a device or move it to another gate or zone of its venue; null clears."""
    p = await require_admin(request, "device.manage")
    device = await scoped_device(request, p)
    changes = await device_changes(request, device, await read_json_object(request))
    now = request.app[CLOCK]()
    updated = await request.app[DB].run(lambda s: s.update_device(device, changes, p.actor, now))
    return web.json_response(rows.DEVICE.json(updated))


async def device_changes(
    request: web.Request, device: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """The changes a DEVICE_CHANGE body asks of a device, checked: a gate or zone must be of
    the device's venue (404 otherwise). The admin API and the console both read them here."""
    f = Fields(body, DEVICE_CHANGE)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = f.text("name")
    if "gate_id" in body:
        gate_id = f.text("gate_id")
        if gate_id is not None and not await known_gate(request, gate_id, device["venue_id"]):
            raise not_found("gate")
        changes["gate_id"] = gate_id
    if "zone" in body:
        zone = f.text("zone")
        if zone is not None:
            await known_zones(request, device["venue_id"], [zone])
        changes["zone"] = zone
    if not changes:
        raise ApiError(400, "missing_field", "Send at least one of name, gate_id, zone.")
    return changes


@routes.post("/api/admin/venues/{venue_id}/enrollments")
@accepts(ENROLLMENT)
async def create_enrollment(request: web.Request) -> web.Response:
    """A one-time, short-lived code (and its QR) a device spends to enrol with its own key."""
    p = await require_admin(request, "device.manage")
    venue = await scoped_venue(request, p, request.match_info["venue_id"])
    grant = await issue_enrollment(request, p, venue["id"], await read_json_object(request))
    body = {
        "id": grant.row["id"],
        "code": grant.code,
        "expires_ms": grant.row["expires_ms"],
        "expires_at": iso_utc(grant.row["expires_ms"] / 1000),
        "payload": grant.payload,
        "hub_key_fingerprint": grant.fingerprint,
        "qr_png_base64": base64.b64encode(qr_image(grant.payload, "png")).decode("ascii"),
    }
    return web.json_response(body, status=201)


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A one-time code just made: its row (stored with the code hashed), the code, and what
    its QR holds (where the hub is, the code, the hub key's fingerprint)."""

    row: dict[str, Any]
    code: str
    payload: str
    fingerprint: str


async def issue_enrollment(
    request: web.Request, p: Principal, venue_id: str, body: dict[str, Any]
) -> Enrollment:
    """Make a one-time code for a device at the (scoped) venue from an ENROLLMENT body: its
    gate and zone must be the venue's (404 otherwise); audited. The admin API and the
    console both issue codes here."""
    f = Fields(body, ENROLLMENT)
    name, gate_id, zone = f.need_text("name"), f.text("gate_id"), f.text("zone")
    ttl_s = f.integer("ttl_s")
    if gate_id is not None and not await known_gate(request, gate_id, venue_id):
        raise not_found("gate")
    if zone is not None:
        await known_zones(request, venue_id, [zone])
    ttl_ms = ttl_s * 1000 if ttl_s is not None else request.app[ENROLLMENT_TTL_MS]
    grant, now = NewEnrollment(venue_id, name, ttl_ms, gate_id, zone), request.app[CLOCK]()
    row, code = await request.app[DB].run(
        lambda s: s.create_enrollment(p.tenant_id, grant, p.actor, now)
    )
    fingerprint = key_fingerprint(request.app[HUB_KEYS]().public)
    return Enrollment(
        row, code, enrollment_uri(request.app[HUB_URL], code, fingerprint), fingerprint
    )


@routes.get("/api/admin/audit")
async def audit(request: web.Request) -> web.Response:
    """A page of the audit log the token may see, newest first: of one ?action= or ?target=,
    from ?since= (ms, at or after) until ?until= (ms, before)."""
    p = await require_admin(request, "audit.read")
    query = query_params(request, AUDIT_QUERY)
    asked = AuditQuery(
        action=text_filter(query, "action"),
        target=text_filter(query, "target"),
        since_ms=_time(query, "since"),
        until_ms=_time(query, "until"),
    )
    ask = page_ask(query, AUDIT)
    page = await request.app[DB].run(lambda s: s.audit_page(p.tenant_id, p.venue_id, asked, ask))
    return page_json("entries", [rows.AUDIT_ENTRY.json(e) for e in page.rows], page.next_cursor)
