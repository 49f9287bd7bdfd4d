"""Console page: the doors, live. Per gate: online or not, last heartbeat, the ticket list it
holds against the hub's, scans waiting on it, its clock, why the hub refuses it; per zone and
for the venue: admitted, inside now, exits, denials by reason, entries per minute over the
last two hours. The page updates itself from `/doors/stream` (server-sent events, the session
cookie), fed by hub/console/doors_feed.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from hub.auth import Principal
from hub.console.doors_feed import DOORS, DoorsFeed
from hub.console.doors_feed import install as install_feed
from hub.console.render import render
from hub.console.session import ConsoleRefused, console_user, current_session
from hub.keys import CLOCK, DB
from hub.store_base import Row
from manifests.policy import event_to_hold

routes = web.RouteTableDef()
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
SESSION_CHECK_S = 30.0  # a stream ends this soon after its session does (signed out, expired)
RETRY_MS = 3000  # how soon a browser reconnects a dropped stream


def setup(app: web.Application) -> None:
    install_feed(app)


async def _venue_events(request: web.Request, p: Principal, venue: Row) -> list[Row]:
    venue_id = venue["id"]
    return await request.app[DB].run(lambda s: s.list_events(p.tenant_id, p.venue_id, venue_id))


def chosen_event(events: list[Row], asked: str | None, now_ms: int) -> Row | None:
    """The event asked for (one of the venue's, else a 404 page), else the one the venue's
    gates hold now (hub/device_routes.py tells gates the same), else the last to start."""
    by_id = {e["id"]: e for e in events}
    if asked:
        if asked not in by_id:
            raise ConsoleRefused(404, "There is no such event at this venue.")
        return by_id[asked]
    held = event_to_hold(((e["id"], e["start_ms"], e["end_ms"]) for e in events), now_ms)
    if held is not None:
        return by_id[held]
    started = [e for e in events if e["start_ms"] <= now_ms]
    return max(started, key=lambda e: e["start_ms"], default=None)


async def _feed(request: web.Request) -> tuple[dict[str, Any], list[Row], DoorsFeed | None]:
    """The signed-in page context, the venue's events and the feed the page shows (None:
    the tenant has no venue)."""
    p, page = await console_user(request, "device.read")
    venue = page["venue"]
    if venue is None:
        return page, [], None
    events = await _venue_events(request, p, venue)
    event = chosen_event(events, request.query.get("event"), request.app[CLOCK]())
    return page, events, request.app[DOORS].feed(venue, event)


@routes.get("/doors")
async def doors(request: web.Request) -> web.Response:
    page, events, feed = await _feed(request)
    if feed is None:
        return render(request, "doors.html", page | {"title": "Doors", "view": None})
    view = await feed.current()
    query = {"venue": feed.venue["id"], **({"event": feed.event_id} if feed.event_id else {})}
    context = {
        "title": "Doors",
        "view": view,
        "events": events,
        "stream_url": "/doors/stream?" + urlencode(query),
    }
    return render(request, "doors.html", page | context)


@routes.get("/doors/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    """The page's live parts as server-sent events (`event: doors`, data: JSON of the parts'
    HTML) as the feed renders them (at most one every UPDATE_GAP_S); only this venue's
    (and event's) feed."""
    _, _, feed = await _feed(request)
    if feed is None:
        raise ConsoleRefused(404, "There is no venue to show.")
    session = await current_session(request)
    assert session is not None  # console_user signed it in
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
        }
    )
    await response.prepare(request)
    hub, loop = request.app[DOORS], asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError):
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        async with feed.watched():
            seen = 0
            if feed.version == 0:
                await feed.refresh()
            checked = loop.time()
            while not hub.closing:
                update = await feed.next_parts(seen, KEEPALIVE_S)
                if update is None:
                    await response.write(b": still here\n\n")
                else:
                    seen, parts = update
                    now = feed.view["now"] if feed.view else ""
                    data = json.dumps({"version": seen, "now": now, "parts": parts})
                    await response.write(f"event: doors\ndata: {data}\n\n".encode())
                if loop.time() - checked > SESSION_CHECK_S:
                    checked = loop.time()
                    if not await _still_signed_in(request, session):
                        break
    return response


async def _still_signed_in(request: web.Request, session: Row) -> bool:
    digest, now = session["session_hash"], request.app[CLOCK]()
    return await request.app[DB].run(lambda s: s.staff_session(digest, now)) is not None
