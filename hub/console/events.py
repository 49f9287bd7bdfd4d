"""Console pages: the chosen venue's events, and one event at a glance (its ticket types and
counts, its comps against the limit, links to its tickets, comps, will-call list and
conflicts). Also what the ticket and report pages share: the scoped event and a listing's
page links.

Reads go through the same store methods and scoping as the admin API (hub/ticket_routes.py):
an event of another tenant, or of another venue for a venue-scoped user, is "not found".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from hub.admin_routes import page_ask
from hub.auth import Principal
from hub.console.render import render
from hub.console.session import ConsoleRefused, console_user
from hub.keys import DB
from hub.paging import Keyset, PageAsk
from hub.store_base import Row
from hub.store_search import EVENTS
from manifests.model import ADMITTING_STATUSES, WITHDRAWN_STATUSES, TicketStatus
from protocol.reasons import Verdict

routes = web.RouteTableDef()

# How a ticket status or a gate's verdict looks: a colour class, always beside its word and an
# icon (tickets_macros.html), so nothing is said by colour alone.
DISPLAY: dict[str, Any] = {
    "status_class": {
        **{str(s): "ok" for s in ADMITTING_STATUSES},
        **{str(s): "bad" for s in (*WITHDRAWN_STATUSES, TicketStatus.EXPIRED)},
    },
    "verdict_class": {
        Verdict.ADMIT: "ok",
        Verdict.DENY: "bad",
        Verdict.ATTENTION: "warn",
        Verdict.EXIT: "off",
    },
    "status_icon": {"ok": "✔", "bad": "✖", "warn": "!", "off": "•"},
}


async def scoped_event(request: web.Request, p: Principal, event_id: str) -> Row:
    """The event if this user may see it, else a 404 page."""
    event = await request.app[DB].run(lambda s: s.get_event(event_id, p.tenant_id, p.venue_id))
    if event is None:
        raise ConsoleRefused(404, "There is no such event.")
    return event


def asked_page(request: web.Request, keyset: Keyset) -> PageAsk:
    """The page a listing's link asks for (?cursor=), checked as the admin API checks it: a
    cursor the listing did not hand out is a 400 page saying to start again."""
    cursor = request.query.get("cursor")
    return page_ask({} if not cursor else {"cursor": cursor}, keyset)


def page_links(request: web.Request, next_cursor: str | None) -> dict[str, str | None]:
    """The links of a listing's page: the next one (None: this is the last) and the first
    (None: this is it), each keeping the page's filters."""
    url = request.rel_url
    first = {k: v for k, v in url.query.items() if k != "cursor"}
    return {
        "next_url": None if next_cursor is None else str(url.update_query(cursor=next_cursor)),
        "first_url": str(url.with_query(first)) if "cursor" in url.query else None,
    }


def comps_used(comps: list[Row]) -> int:
    """Comps counted against the event's limit (hub/store_console_reports.py comp_counts)."""
    return sum(row["comps"] for row in comps)


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's row as its pages show it."""
    return {**event, "days": json.loads(event["days_json"])}


@routes.get("/events")
async def events(request: web.Request) -> web.Response:
    """The chosen venue's events by start, a page at a time."""
    p, page = await console_user(request, "ticket.read")
    venue, ask = page["venue"], asked_page(request, EVENTS)
    rows: list[Row] = []
    next_cursor = None
    if venue is not None:
        venue_id = venue["id"]
        found = await request.app[DB].run(
            lambda s: s.event_page(p.tenant_id, p.venue_id, venue_id, ask)
        )
        rows, next_cursor = found.rows, found.next_cursor
    context = {"title": "Events", "events": rows, **page_links(request, next_cursor)}
    return render(request, "events.html", page | DISPLAY | context)


@routes.get("/events/{event_id}")
async def event(request: web.Request) -> web.Response:
    """One event: when it runs, its ticket types, its tickets by type and status, its comps
    against the limit, and where to go next."""
    p, page = await console_user(request, "ticket.read")
    found = await scoped_event(request, p, request.match_info["event_id"])
    event_id = found["id"]
    types, counts, comps = await request.app[DB].run(
        lambda s: (
            s.ticket_types_of(event_id),
            s.event_ticket_counts(event_id),
            s.comp_counts(event_id),
        )
    )
    context = {
        "title": found["name"],
        "event": event_view(found),
        "types": types,
        "counts": counts,
        "total": sum(row["tickets"] for row in counts),
        "comps_used": comps_used(comps),
    }
    return render(request, "events_detail.html", page | DISPLAY | context)
