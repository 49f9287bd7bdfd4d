"""Who is calling: admin bearer tokens (tenant + optional venue + role) and signed devices.

Scoping is enforced by passing the token's tenant and venue into every store lookup, so an id
from elsewhere is "not found" rather than "forbidden": it does not even reveal it exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hub.errors import ApiError, not_found
from hub.keys import CLOCK, DB, MEMORY, NONCES
from protocol.signing import device_id_of, verify_request
from protocol.wire import DEVICE_DEACTIVATED, UNKNOWN_DEVICE

log = logging.getLogger("hub.device")

# Told of each refused request of an enrolled device (the request, the device's id, the
# code), on the event loop: the console's doors page says why a gate is refused.
RefusalListener = Callable[[web.Request, str, str], None]
REFUSAL_LISTENERS: web.AppKey[list[RefusalListener]] = web.AppKey("refusal_listeners")

ADMIN, VENUE_MANAGER, BOX_OFFICE, VENUE_STAFF = (
    "admin",
    "venue_manager",
    "box_office",
    "venue_staff",
)
ROLES = (ADMIN, VENUE_MANAGER, BOX_OFFICE, VENUE_STAFF)

# What each permission allows; handlers name the permission, never the roles.
PERMISSIONS: dict[str, frozenset[str]] = {
    "venue.create": frozenset({ADMIN}),
    "venue.read": frozenset(ROLES),
    "venue.configure": frozenset({ADMIN, VENUE_MANAGER}),
    "device.read": frozenset({ADMIN, VENUE_MANAGER, VENUE_STAFF}),
    "device.manage": frozenset({ADMIN, VENUE_MANAGER}),
    "audit.read": frozenset({ADMIN, VENUE_MANAGER}),
    "ticket.read": frozenset(ROLES),
    "ticket.manage": frozenset({ADMIN, VENUE_MANAGER, BOX_OFFICE}),
    "backend.read": frozenset({ADMIN, VENUE_MANAGER}),
    "backend.manage": frozenset({ADMIN}),  # a backend feeds every venue of a tenant
    "venue_keys.read": frozenset({ADMIN, VENUE_MANAGER}),  # fingerprints, never a key
    "venue_keys.manage": frozenset({ADMIN}),  # a venue's TicketToken keys open all its codes
}


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    tenant_id: str
    venue_id: str | None  # None: every venue of the tenant
    role: str
    kind: str = "token"  # "user": a person signed in to the console; token_id is the username

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.token_id}"


async def require_admin(request: web.Request, permission: str) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_token", "Send an admin token as 'Authorization: Bearer'.")
    row = await request.app[DB].run(lambda store: store.token_for(token.strip()))
    if row is None:
        raise ApiError(401, "invalid_token", "The admin token is not valid.")
    principal = Principal(row["id"], row["tenant_id"], row["venue_id"], row["role"])
    if principal.role not in PERMISSIONS[permission]:
        raise ApiError(403, "forbidden_role", f"Role {principal.role} may not do this.")
    return principal


async def scoped_venue(request: web.Request, principal: Principal, venue_id: str) -> dict[str, Any]:
    venue = await request.app[DB].run(
        lambda store: store.get_venue(venue_id, principal.tenant_id, principal.venue_id)
    )
    if venue is None:
        raise not_found("venue")
    return venue


async def authenticate_device(
    request: web.Request, *, allow_inactive: bool = False
) -> tuple[dict[str, Any], bytes]:
    """The calling device and the raw body, once its signature, timestamp and nonce pass.

    A deactivated device is refused with 403 even with a perfect signature (unless the
    caller asks to see it, to keep its scans for audit before refusing).
    """
    device_id = device_id_of(request.headers)
    if device_id is None:
        refused(request, None, "missing_signature")
        raise ApiError(401, "missing_signature", "Device requests must be signed.")
    device = await device_row(request.app, device_id)
    if device is None:
        refused(request, device_id, UNKNOWN_DEVICE)
        raise ApiError(401, UNKNOWN_DEVICE, "This device is not enrolled at this hub.")
    body = await request.read()
    now_ms, nonces = request.app[CLOCK](), request.app[NONCES]
    error = verify_request(
        method=request.method,
        path=request.raw_path,
        headers=request.headers,
        body=body,
        device_public_key=device["public_key"],
        now_ms=now_ms,
        seen_nonce=lambda nonce: not nonces.remember(device_id, nonce, now_ms),
    )
    if error is not None:
        refused(request, device_id, error)
        raise ApiError(401, error, _SIGNING_MESSAGES.get(error, "Request signature refused."))
    if not device["active"]:  # refused here, or by the caller once its scans are kept
        refused(request, device_id, DEVICE_DEACTIVATED)
        if not allow_inactive:
            raise device_deactivated()
    return device, body


def refused(request: web.Request, device_id: str | None, code: str) -> None:
    """The operator's line for a refused device request: who (the id it claims, cut short)
    and the code; never its signature, headers or body."""
    who = None if device_id is None else device_id[:64]
    log.info(
        "device refused",
        extra={"device": who, "code": code, "method": request.method, "path": request.path},
    )
    if device_id is not None and code != UNKNOWN_DEVICE:
        for listener in request.app.get(REFUSAL_LISTENERS, ()):
            listener(request, device_id, code)


async def device_row(app: web.Application, device_id: str) -> dict[str, Any] | None:
    """A device's row from the store's memory, else from a turn of the database thread."""
    device = app[MEMORY].remembered_device(device_id)
    if device is None:
        device = await app[DB].run(lambda store: store.get_device(device_id))
    return device


def device_deactivated() -> ApiError:
    return ApiError(403, DEVICE_DEACTIVATED, "This device has been deactivated.")


_SIGNING_MESSAGES = {
    "missing_signature": "Device requests must be signed.",
    "bad_signature": "Request signature does not match.",
    "stale_timestamp": "Request time is more than 5 minutes off the hub clock.",
    "replayed_nonce": "This request was already received once (replay).",
}
