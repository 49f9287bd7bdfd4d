"""Manifests for devices (full or delta, signed, cached by ETag) and credentials for the box
office (text, PNG or SVG QR code)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.auth import authenticate_device, require_admin
from hub.credentials import QR_TYPES, NoNativeCredential, qr_image, ticket_credential
from hub.errors import ApiError, not_found
from hub.keys import CLOCK, DB
from hub.manifest_build import ManifestBuilder, ManifestWorker, scope_tag
from hub.metrics import METRICS
from hub.store_api import HubStorage
from manifests.model import Scope
from manifests.signing import envelope_key_id

# Headers and credentials, used on the app's database thread (it shares the app's store).
MANIFESTS = web.AppKey("manifests", ManifestBuilder)
BUILDS = web.AppKey("manifest_builds", ManifestWorker)  # signed manifests, on a worker thread
MANIFEST_TYPE = "application/vnd.venue-gate.manifest"
routes = web.RouteTableDef()


def device_scope(store: HubStorage, device: dict[str, Any]) -> Scope:
    """The device's venue, gate and the zones that gate leads into (else its own zone)."""
    zones: tuple[str, ...] = ()
    if device["gate_id"] is not None:
        gate = store.get_gate(device["gate_id"], device["venue_id"])
        if gate is not None:
            zones = tuple(json.loads(gate["zones_json"]))
    if not zones and device["zone"]:
        zones = (device["zone"],)
    return Scope(device["venue_id"], device["gate_id"], zones)


def device_event(store: HubStorage, device: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The event, if it is at the device's venue (else not found: a device learns nothing
    about other venues)."""
    event = store.event_by_id(event_id)
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
    since, now_ms = _since(request), request.app[CLOCK]()
    event_id = request.match_info["event_id"]

    def current(store: HubStorage) -> tuple[dict[str, Any], Scope, int]:
        event = device_event(store, device, event_id)
        return event, device_scope(store, device), store.event_revision(event["id"])

    event, scope, revision = await request.app[DB].run(current)
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


@routes.get("/api/admin/tickets/{ticket_id}/credential")
async def credential(request: web.Request) -> web.Response:
    """The ticket's native credential for its current generation (issued on first ask), as
    text or as a QR code image to print at the box office."""
    p = await require_admin(request, "ticket.manage")
    fmt = request.query.get("format", "text")
    if fmt != "text" and fmt not in QR_TYPES:
        raise ApiError(400, "invalid_format", "format must be text, png or svg.")
    ticket_id, now = request.match_info["ticket_id"], request.app[CLOCK]()
    builder = request.app[MANIFESTS]

    def issue(store: HubStorage) -> tuple[dict[str, Any], str]:
        try:
            found = ticket_credential(store, builder, ticket_id, p.tenant_id, p.venue_id, now)
        except NoNativeCredential:
            raise ApiError(
                409, "no_native_credential", "This ticket's id cannot carry a native credential."
            ) from None
        if found is None:
            raise not_found("ticket")
        return found

    ticket, text = await request.app[DB].run(issue)
    headers = {"X-Ticket-Generation": str(ticket["generation"])}
    if fmt == "text":
        return web.Response(text=text, content_type="text/plain", headers=headers)
    return web.Response(body=qr_image(text, fmt), content_type=QR_TYPES[fmt], headers=headers)
