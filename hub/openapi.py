"""The hub's OpenAPI 3.1 document. `OPERATIONS` lists every route by hand (a test compares it
with the app's router both ways, so it cannot drift); the document is built from it."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

ADMIN, DEVICE, NONE = "admin", "device", "none"

# (method, path) -> (summary, who may call it)
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/health"): ("Liveness check.", NONE),
    ("GET", "/health/db"): ("Database reachability check.", NONE),
    ("GET", "/api/hub"): ("The hub's public key, fingerprint and trusted manifest keys.", NONE),
    ("GET", "/openapi.json"): ("This document.", NONE),
    ("GET", "/metrics"): ("Prometheus metrics (text exposition format).", NONE),
    ("GET", "/api/admin/whoami"): ("The calling admin token's tenant, venue and role.", ADMIN),
    ("GET", "/api/admin/venues"): ("List the venues the token may see.", ADMIN),
    ("POST", "/api/admin/venues"): ("Create a venue.", ADMIN),
    ("GET", "/api/admin/venues/{venue_id}"): ("One venue.", ADMIN),
    ("GET", "/api/admin/venues/{venue_id}/zones"): ("The venue's zones.", ADMIN),
    ("POST", "/api/admin/venues/{venue_id}/zones"): ("Add a zone.", ADMIN),
    ("GET", "/api/admin/venues/{venue_id}/gates"): ("The venue's gates.", ADMIN),
    ("POST", "/api/admin/venues/{venue_id}/gates"): ("Add a gate.", ADMIN),
    ("GET", "/api/admin/devices"): ("List enrolled devices.", ADMIN),
    ("GET", "/api/admin/devices/{device_id}"): ("One device and its health.", ADMIN),
    ("POST", "/api/admin/devices/{device_id}/deactivate"): ("Deactivate a device.", ADMIN),
    ("PATCH", "/api/admin/devices/{device_id}"): ("Rename or move a device.", ADMIN),
    ("POST", "/api/admin/venues/{venue_id}/enrollments"): ("Create an enrollment code.", ADMIN),
    ("GET", "/api/admin/audit"): ("The audit log.", ADMIN),
    ("GET", "/api/admin/events/{event_id}"): ("One event with its ticket types.", ADMIN),
    ("GET", "/api/admin/events/{event_id}/reconciliation"): (
        "Reconciliation report: counts per outcome and every offline double entry.",
        ADMIN,
    ),
    ("GET", "/api/admin/tickets/{ticket_id}"): ("One ticket.", ADMIN),
    ("POST", "/api/admin/events/{event_id}/comps"): ("Issue a complimentary ticket.", ADMIN),
    ("POST", "/api/admin/tickets/lock"): ("Lock tickets (bulk).", ADMIN),
    ("POST", "/api/admin/tickets/unlock"): ("Unlock tickets (bulk).", ADMIN),
    ("POST", "/api/admin/tickets/status"): (
        "Cancel, refund or revoke tickets outright (bulk, all or nothing).",
        ADMIN,
    ),
    ("POST", "/api/admin/tickets/{ticket_id}/reissue"): ("Reissue: new generation.", ADMIN),
    ("POST", "/api/admin/tickets/{ticket_id}/transfer"): (
        "Transfer to a new holder: new generation, the old code stops working.",
        ADMIN,
    ),
    ("GET", "/api/admin/tickets/{ticket_id}/credential"): (
        "The ticket's native credential as text, PNG or SVG QR code (?format=).",
        ADMIN,
    ),
    ("POST", "/api/device/enroll"): ("Enroll a device with a one-time code.", NONE),
    ("GET", "/api/device/me"): ("The calling device as the hub knows it.", DEVICE),
    ("POST", "/api/device/heartbeat"): ("Device health report.", DEVICE),
    ("POST", "/api/device/scans"): (
        "Upload a batch of scans (idempotent; optional clock_offset_ms, peer_cursor); the "
        "answer carries the manifest revision and peer scans after the cursor.",
        DEVICE,
    ),
    ("GET", "/api/device/events/{event_id}/manifest"): (
        "Signed manifest, full or ?since=R delta; ETag / If-None-Match gives 304.",
        DEVICE,
    ),
    ("GET", "/api/device/hub-keys"): (
        "The hub keys to trust (key rotation), as a document signed by the current hub key.",
        DEVICE,
    ),
    ("POST", "/api/device/check"): ("Online admission check; the scan is stored.", DEVICE),
    ("GET", "/api/device/live"): ("WebSocket: live entry state from other gates.", DEVICE),
}

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable error code."},
                "message": {"type": "string", "description": "A sentence for people."},
            },
        }
    },
}
_SECURITY = {
    ADMIN: [{"adminToken": []}],
    DEVICE: [{"deviceSignature": []}],
    NONE: [],
}


def _operation(method: str, path: str, summary: str, auth: str) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "summary": summary,
        "security": _SECURITY[auth],
        "responses": {"200": {"description": "Success"}, "default": error},
    }
    if params:
        op["parameters"] = params
    return op


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), (summary, auth) in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, summary, auth)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Venue gate hub", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA},
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
    return web.json_response(document())
