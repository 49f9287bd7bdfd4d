"""Console pages: the venue's devices (gates' scanners). Add a gate: a one-time enrolment code
shown as a large QR for the gate's camera, counting down to its expiry; rename, move to another
gate or zone, deactivate (after a confirm page; its live sockets close at once); a device's
history (its scans, its enrolment, its audit rows).

Every change goes through the admin API's own code (hub/admin_routes.py issue_enrollment,
device_changes, deactivate): same checks, same store methods, same audit rows, with the
signed-in person as the actor. Viewing needs device.read, changing device.manage.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from markupsafe import Markup

from hub.admin_routes import deactivate, device_changes, issue_enrollment
from hub.auth import Principal
from hub.console.doors_feed import DOORS, gate_status, offset_words, reason_sentence, span_words
from hub.console.render import render
from hub.console.session import ConsoleRefused, console_user, flash
from hub.credentials import qr_svg_element
from hub.errors import ApiError
from hub.keys import CLOCK, DB, ENROLLMENT_TTL_MS
from hub.live import LIVE
from hub.paging import PageAsk
from hub.store_api import HubStorage
from hub.store_base import Row
from hub.store_search import AuditQuery, DeviceQuery

routes = web.RouteTableDef()
HISTORY_ROWS = 50
TTL_CHOICES_MIN = (5, 10, 30, 60)  # how long a new code may be spent; the hub's default first


async def _form(request: web.Request) -> dict[str, str]:
    """A posted form's text fields (a file or a repeated field is refused)."""
    form = await request.post()
    out: dict[str, str] = {}
    for name in form:
        values = form.getall(name)
        if len(values) != 1 or not isinstance(values[0], str):
            raise ConsoleRefused(400, f"The form's field {name} came in a shape it never has.")
        out[name] = values[0]
    return out


async def _scoped_device(request: web.Request, p: Principal) -> Row:
    """The path's device if this person may see it (their tenant, their venue), else 404."""
    device_id = request.match_info["device_id"]
    device = await request.app[DB].run(
        lambda s: s.get_device_scoped(device_id, p.tenant_id, p.venue_id)
    )
    if device is None:
        raise ConsoleRefused(404, "There is no such device.")
    return device


async def _places(request: web.Request, venue_id: str) -> tuple[list[Row], list[Row]]:
    """The venue's gates and zones, by name."""
    return await request.app[DB].run(lambda s: (s.list_gates(venue_id), s.list_zones(venue_id)))


def _device_view(
    request: web.Request, device: Row, gates: dict[str, Row], now_ms: int
) -> dict[str, Any]:
    gate = gates.get(device["gate_id"] or "")
    connected = any(c.device_id == device["id"] for c in request.app[LIVE].connections)
    refusal = request.app[DOORS].refusals.get(device["id"])
    last_seen = device["last_seen_ms"]
    return {
        **device,
        "gate": gate,
        "status": gate_status(device, connected, refusal, now_ms),
        "last_seen_ago": None if last_seen is None else span_words(now_ms - last_seen),
        "clock": offset_words(device["clock_offset_ms"]),
        "revisions": json.loads(device["manifest_revisions_json"]),
    }


@routes.get("/devices")
async def devices(request: web.Request) -> web.Response:
    """The chosen venue's devices, active ones first, each with its status."""
    p, page = await console_user(request, "device.read")
    venue, rows = page["venue"], list[Row]()
    gates: dict[str, Row] = {}
    if venue is not None:
        venue_id, ask = venue["id"], DeviceQuery(venue_id=venue["id"])
        rows, gate_rows = await request.app[DB].run(
            lambda s: (
                s.device_page(p.tenant_id, p.venue_id, ask, None).rows,
                s.list_gates(venue_id),
            )
        )
        gates = {g["id"]: g for g in gate_rows}
    now = request.app[CLOCK]()
    shown = [_device_view(request, d, gates, now) for d in rows]
    context = {
        "title": "Devices",
        "active": [d for d in shown if d["active"]],
        "deactivated": [d for d in shown if not d["active"]],
    }
    return render(request, "devices.html", page | context)


def _ttl_choices(request: web.Request) -> list[int]:
    default = request.app[ENROLLMENT_TTL_MS] // 60_000
    return [default, *(m for m in TTL_CHOICES_MIN if m != default)]


async def _new_form(
    request: web.Request, page: dict[str, Any], values: dict[str, str], problem: str | None = None
) -> web.Response:
    venue = page["venue"]
    if venue is None:
        raise ConsoleRefused(404, "There is no venue to add a gate to.")
    gates, zones = await _places(request, venue["id"])
    context = {
        "title": "Add a gate",
        "gates": gates,
        "zones": zones,
        "ttl_choices": _ttl_choices(request),
        "values": values,
        "problem": problem,
    }
    return render(request, "devices_new.html", page | context, status=400 if problem else 200)


@routes.get("/devices/new")
async def new_device(request: web.Request) -> web.Response:
    _, page = await console_user(request, "device.manage")
    return await _new_form(request, page, {})


@routes.post("/devices/new")
async def create_enrollment(request: web.Request) -> web.Response:
    """A one-time code for a new gate (the admin API's own issue_enrollment), shown once as
    a large QR with its expiry counting down, and as text to type."""
    p, page = await console_user(request, "device.manage")
    venue = page["venue"]
    if venue is None:
        raise ConsoleRefused(404, "There is no venue to add a gate to.")
    form = await _form(request)
    ttl = form.get("ttl_min") or None  # none: the hub's default; not a number: refused
    body: dict[str, Any] = {
        "name": form.get("name", ""),
        "gate_id": form.get("gate_id") or None,
        "zone": form.get("zone") or None,
        "ttl_s": int(ttl) * 60 if ttl and ttl.isdigit() and len(ttl) < 6 else ttl,
    }
    try:
        grant = await issue_enrollment(request, p, venue["id"], body)
    except ApiError as exc:
        if exc.status != 400:
            raise
        return await _new_form(request, page, form, exc.message)
    now = request.app[CLOCK]()
    gates, _ = await _places(request, venue["id"])
    gate = next((g for g in gates if g["id"] == grant.row["gate_id"]), None)
    context = {
        "title": f"Enrol {grant.row['name']}",
        "grant": grant,
        "gate": gate,
        "qr": Markup(qr_svg_element(grant.payload)),  # segno's markup: no text of ours in it
        "seconds_left": max(0, (grant.row["expires_ms"] - now) // 1000),
    }
    return render(request, "devices_enrolment.html", page | context)


@routes.get("/devices/{device_id}")
async def device(request: web.Request) -> web.Response:
    """One device: its state, its history, and (device.manage) the forms that change it."""
    p, page = await console_user(request, "device.read")
    row = await _scoped_device(request, p)
    device_id, venue_id = row["id"], row["venue_id"]
    audit_ask = PageAsk(None, HISTORY_ROWS)

    def read(s: HubStorage) -> dict[str, Any]:
        enrollment = s.device_enrollment(device_id)
        audit = s.audit_page(p.tenant_id, p.venue_id, AuditQuery(target=device_id), audit_ask).rows
        if enrollment is not None:
            of_code = AuditQuery(target=enrollment["id"])
            audit += s.audit_page(p.tenant_id, p.venue_id, of_code, audit_ask).rows
        return {
            "scans": s.latest_device_scans(device_id, HISTORY_ROWS),
            "enrollment": enrollment,
            "audit": sorted(audit, key=lambda a: a["id"], reverse=True),
            "gates": s.list_gates(venue_id),
            "zones": s.list_zones(venue_id),
            "events": {e["id"]: e for e in s.list_events(p.tenant_id, p.venue_id, venue_id)},
            "venue": s.get_venue(venue_id, p.tenant_id, p.venue_id),
        }

    facts = await request.app[DB].run(read)
    gates = {g["id"]: g for g in facts["gates"]}
    now = request.app[CLOCK]()
    context = {
        **facts,
        "title": row["name"],
        "device": _device_view(request, row, gates, now),
        "timezone": facts["venue"]["timezone"],
        "scans": [
            {**s, "sentence": reason_sentence(s["reason"]), "key": f"{s['device_id']}:{s['seq']}"}
            for s in facts["scans"]
        ],
        "audit": [{**a, "detail": json.loads(a["detail_json"])} for a in facts["audit"]],
    }
    return render(request, "devices_detail.html", page | context)


async def _change(request: web.Request, fields: tuple[str, ...], done: str) -> web.Response:
    """Rename or move: the posted fields as the admin API's change body, checked and stored
    by the same code; back to the device's page with a sentence."""
    p, _ = await console_user(request, "device.manage")
    row = await _scoped_device(request, p)
    form = await _form(request)
    body = {name: form.get(name, "").strip() or None for name in fields}
    if "name" in body and body["name"] is None:
        body["name"] = ""  # refused by the check below, with its words
    changes = await device_changes(request, row, body)
    now = request.app[CLOCK]()
    await request.app[DB].run(lambda s: s.update_device(row, changes, p.actor, now))
    flash(request, done)
    raise web.HTTPSeeOther(f"/devices/{row['id']}")


@routes.post("/devices/{device_id}/rename")
async def rename(request: web.Request) -> web.Response:
    return await _change(request, ("name",), "Renamed.")


@routes.post("/devices/{device_id}/move")
async def move(request: web.Request) -> web.Response:
    return await _change(request, ("gate_id", "zone"), "Moved: its next scans count there.")


@routes.get("/devices/{device_id}/deactivate")
async def confirm_deactivate(request: web.Request) -> web.Response:
    """The confirm step: what deactivating does, and the one button that does it."""
    p, page = await console_user(request, "device.manage")
    row = await _scoped_device(request, p)
    context = {"title": f"Deactivate {row['name']}?", "device": row}
    return render(request, "devices_deactivate.html", page | context)


@routes.post("/devices/{device_id}/deactivate")
async def deactivate_device(request: web.Request) -> web.Response:
    """Deactivate as the admin API does (audited; its live sockets closed at once)."""
    p, _ = await console_user(request, "device.manage")
    row = await _scoped_device(request, p)
    if not row["active"]:
        raise ConsoleRefused(409, f"{row['name']} is already deactivated.")
    await deactivate(request, row, p.actor)
    flash(request, f"{row['name']} is deactivated: its live link is closed, its requests refused.")
    raise web.HTTPSeeOther(f"/devices/{row['id']}")
