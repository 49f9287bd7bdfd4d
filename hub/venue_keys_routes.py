"""The admin API of a venue's TicketToken keys (the same as `gate-hub venue-keys`): list, set,
rotate, activate, retire. A key goes in once and never comes out: answers show its
fingerprint, state and times. Changing keys is the tenant admin's (a key opens every code of
the venue); a venue manager may see the list."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hub.auth import Principal, require_admin, scoped_venue
from hub.errors import ApiError, Body, Fields, accepts, integer, raw, read_json_object
from hub.keys import CLOCK, DB, SECRETS
from hub.schema import LEGACY_MS_HIGH, LEGACY_MS_LOW
from hub.venue_keys import (
    AES_KEY_PATTERN,
    CURRENT,
    FORMATS,
    HMAC_SECRET_PATTERN,
    NEXT,
    TIMES,
    NewKeys,
    VenueKeysRefused,
    key_set_view,
)

routes = web.RouteTableDef()

PATH = "/api/admin/venues/{venue_id}/legacy-keys"
_KEY = {"type": ["string", "null"], "pattern": AES_KEY_PATTERN}
KEY_SET = Body(
    any_of=tuple(FORMATS.values()),
    format_a_key=raw(_KEY, required=False),
    format_b_key=raw(_KEY, required=False),
    format_c_secret_hex=raw({**_KEY, "pattern": HMAC_SECRET_PATTERN}, required=False),
    rotation_interval_ms=integer(LEGACY_MS_LOW, LEGACY_MS_HIGH, required=False),
    format_c_validity_ms=integer(LEGACY_MS_LOW, LEGACY_MS_HIGH, required=False),
)


def _refused(exc: VenueKeysRefused, status: int) -> ApiError:
    """The refusal as a sentence (a field's name keeps its spelling)."""
    text = str(exc)
    if "_" not in text.split(" ", 1)[0]:
        text = text[:1].upper() + text[1:]
    return ApiError(status, exc.code, f"{text}.")


def _store_refused(exc: VenueKeysRefused) -> ApiError:
    """A change the key sets' states do not allow: 409, or 404 for a set the venue lacks."""
    return _refused(exc, 404 if exc.code == "no_such_key_set" else 409)


async def _venue(request: web.Request, permission: str) -> tuple[Principal, dict[str, Any]]:
    p = await require_admin(request, permission)
    return p, await scoped_venue(request, p, request.match_info["venue_id"])


@routes.get(PATH)
async def list_key_sets(request: web.Request) -> web.Response:
    _, venue = await _venue(request, "venue_keys.read")
    rows = await request.app[DB].run(lambda s: s.venue_key_sets(venue["id"]))
    return web.json_response({"venue_id": venue["id"], "key_sets": [key_set_view(r) for r in rows]})


async def _add(request: web.Request, state: str) -> web.Response:
    p, venue = await _venue(request, "venue_keys.manage")
    f = Fields(await read_json_object(request), KEY_SET)
    try:
        given = NewKeys.checked(
            (f.body.get(name) for name in FORMATS.values()), (f.integer(name) for name in TIMES)
        )
    except VenueKeysRefused as exc:
        raise _refused(exc, 400) from None
    box, now = request.app[SECRETS], request.app[CLOCK]()
    keys = given.kept(box, venue["id"], state)
    try:
        row = await request.app[DB].run(
            lambda s: s.add_venue_key_set(p.tenant_id, keys, p.actor, now)
        )
    except VenueKeysRefused as exc:
        raise _store_refused(exc) from None
    return web.json_response(key_set_view(row), status=201)


@routes.post(PATH)
@accepts(KEY_SET)
async def set_keys(request: web.Request) -> web.Response:
    """The venue's first keys, current at once (TicketToken issues with them already)."""
    return await _add(request, CURRENT)


@routes.post(PATH + "/rotate")
@accepts(KEY_SET)
async def rotate_keys(request: web.Request) -> web.Response:
    """New keys announced as next: gates trust them from their next sync."""
    return await _add(request, NEXT)


@routes.post(PATH + "/activate")
async def activate_keys(request: web.Request) -> web.Response:
    p, venue = await _venue(request, "venue_keys.manage")
    now = request.app[CLOCK]()
    try:
        rows = await request.app[DB].run(
            lambda s: s.activate_venue_key_set(p.tenant_id, venue["id"], p.actor, now)
        )
    except VenueKeysRefused as exc:
        raise _store_refused(exc) from None
    return web.json_response({"key_sets": [key_set_view(r) for r in rows]})


@routes.delete(PATH + "/{key_set}")
async def retire_keys(request: web.Request) -> web.Response:
    """Remove a retired key set (or a next one never activated)."""
    p, venue = await _venue(request, "venue_keys.manage")
    text = request.match_info["key_set"]
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise ApiError(404, "no_such_key_set", "No such key set.")
    now = request.app[CLOCK]()
    try:
        row = await request.app[DB].run(
            lambda s: s.remove_venue_key_set(p.tenant_id, venue["id"], int(text), p.actor, now)
        )
    except VenueKeysRefused as exc:
        raise _store_refused(exc) from None
    return web.json_response(key_set_view(row))
