"""Manifests for devices (full or delta, signed, cached by ETag) and credentials for the box
office (text, PNG or SVG QR code)."""

from __future__ import annotations

import io
import json
from typing import Any

import segno
from aiohttp import web

from hub.auth import authenticate_device, require_admin
from hub.errors import ApiError, not_found
from hub.keys import CLOCK, STORE
from hub.manifest_build import ManifestBuilder, ManifestWorker, scope_tag
from hub.metrics import METRICS
from manifests.model import Scope
from manifests.signing import envelope_key_id

MANIFESTS = web.AppKey("manifests", ManifestBuilder)  # headers and credentials, on the loop
BUILDS = web.AppKey("manifest_builds", ManifestWorker)  # signed manifests, on a worker thread
MANIFEST_TYPE = "application/vnd.venue-gate.manifest"
routes = web.RouteTableDef()


def device_scope(request: web.Request, device: dict[str, Any]) -> Scope:
    """The device's venue, gate and the zones that gate leads into (else its own zone)."""
    zones: tuple[str, ...] = ()
    if device["gate_id"] is not None:
        gate = request.app[STORE].get_gate(device["gate_id"], device["venue_id"])
        if gate is not None:
            zones = tuple(json.loads(gate["zones_json"]))
    if not zones and device["zone"]:
        zones = (device["zone"],)
    return Scope(device["venue_id"], device["gate_id"], zones)


def device_event(
    request: web.Request, device: dict[str, Any], event_id: str | None = None
) -> dict[str, Any]:
    """The event (named in the path by default), if it is at the device's venue (else not
    found: a device learns nothing about other venues)."""
    event = request.app[STORE].event_by_id(event_id or request.match_info["event_id"])
    if event is None or event["venue_id"] != device["venue_id"]:
        raise not_found("event")
    return event


def _since(request: web.Request) -> int | None:
    text = request.query.get("since")
    if text is None:
        return None
    if not text.isdigit() or len(text) > 15:
        raise ApiError(400, "invalid_since", "since must be a manifest revision number.")
    return int(text)


def etag(revision: int, scope: Scope) -> str:
    return f'"r{revision}-{scope_tag(scope)}"'


@routes.get("/api/device/events/{event_id}/manifest")
async def manifest(request: web.Request) -> web.StreamResponse:
    """The signed manifest for this device; `?since=R` asks for a delta from revision R.
    `If-None-Match` with the current ETag (or `since` = current) answers 304, at the cost of
    one indexed read. Building runs on a worker thread (hub/manifest_build.ManifestWorker)."""
    device, _ = await authenticate_device(request)
    event = device_event(request, device)
    since = _since(request)
    store, now_ms = request.app[STORE], request.app[CLOCK]()
    scope = device_scope(request, device)
    revision = store.event_revision(event["id"])
    tag = etag(revision, scope)
    if request.headers.get("If-None-Match") == tag or since == revision:
        return web.Response(status=304, headers={"ETag": tag, "X-Manifest-Revision": str(revision)})
    served = await request.app[BUILDS].serve(event["id"], scope, since, revision, now_ms)
    if served is None:
        raise not_found("event")
    headers = {
        "ETag": etag(served.revision, scope),
        "X-Manifest-Kind": served.kind,
        "X-Manifest-Revision": str(served.revision),
        "X-Manifest-Key-Id": str(envelope_key_id(served.envelope)),
        "Cache-Control": "no-cache",
    }
    if served.base_revision is not None:
        headers["X-Manifest-Base-Revision"] = str(served.base_revision)
    elif since is not None:
        # The device asked for a delta we cannot build (revision unknown or too old).
        headers["X-Manifest-Delta"] = "unavailable"
    request.app[METRICS].manifest_bytes[served.kind] += len(served.envelope)
    return web.Response(body=served.envelope, content_type=MANIFEST_TYPE, headers=headers)


_QR_FORMATS = {"text", "png", "svg"}


@routes.get("/api/admin/tickets/{ticket_id}/credential")
async def credential(request: web.Request) -> web.Response:
    """The ticket's native credential for its current generation (issued on first ask), as
    text or as a QR code image to print at the box office."""
    p = require_admin(request, "ticket.manage")
    fmt = request.query.get("format", "text")
    if fmt not in _QR_FORMATS:
        raise ApiError(400, "invalid_format", "format must be text, png or svg.")
    store = request.app[STORE]
    ticket = store.get_ticket(request.match_info["ticket_id"], p.tenant_id, p.venue_id)
    if ticket is None:
        raise not_found("ticket")
    source = store.manifest_source(ticket["event_id"], with_tickets=False)
    assert source is not None
    try:
        text = request.app[MANIFESTS].credential_for(source, ticket, request.app[CLOCK]())
    except ValueError:
        raise ApiError(
            409, "no_native_credential", "This ticket's id cannot carry a native credential."
        ) from None
    headers = {"X-Ticket-Generation": str(ticket["generation"])}
    if fmt == "text":
        return web.Response(text=text, content_type="text/plain", headers=headers)
    qr = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    if fmt == "png":
        qr.save(out, kind="png", scale=6, border=4)
        return web.Response(body=out.getvalue(), content_type="image/png", headers=headers)
    qr.save(out, kind="svg", scale=6, border=4)
    return web.Response(body=out.getvalue(), content_type="image/svg+xml", headers=headers)
