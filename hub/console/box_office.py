"""Console pages for the box office's will-call (hub/will_call.py says what will-call is): find
an order by reference or name, its page with the ID-check step and the release, the released
tickets as a PDF (A4 or 80 mm) or large on screen for the fan's phone, and an event's
printable will-call list.

Every change calls the same store methods and helpers as the admin API, so it is scoped and
audited exactly as there, the actor being the staff user; the CSRF check is the middleware's.
A release's codes are shown to the person who released them, for a short while after
(will_call.may_show_codes); a second hand-over is a reprint, confirmed on a page of its own.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from hub.admin_routes import text_filter
from hub.auth import Principal
from hub.console.events import DISPLAY, scoped_event
from hub.console.render import local_time, render
from hub.console.session import ConsoleRefused, console_user, flash
from hub.credentials import qr_image
from hub.errors import ApiError
from hub.keys import CLOCK, DB
from hub.store_api import HubStorage
from hub.store_base import Row
from hub.store_search import MAX_SEARCH
from hub.store_will_call import ALREADY_PICKED_UP, ID_NOT_CHECKED, id_checked_now
from hub.ticket_pdf import LAYOUTS, PrintedTicket, tickets_pdf
from hub.will_call import RELEASE_WINDOW_MS, may_show_codes, order_codes, release, step_by
from manifests.model import ADMITTING_STATUSES

routes = web.RouteTableDef()
SEARCH = "/box-office"
ORDER = "/box-office/{event_id}/{order_ref}"


def order_url(event_id: str, order_ref: str) -> str:
    """The order's page; the reference may hold a space or a slash, so it is encoded whole."""
    return f"{SEARCH}/{quote(event_id, safe='')}/{quote(order_ref, safe='')}"


async def _order(request: web.Request, p: Principal) -> tuple[Row, Row, list[Row]]:
    """The path's event, its will-call hold of the path's order and the order's tickets; a
    404 page when the event is not this user's or the order is not on will-call."""
    event = await scoped_event(request, p, request.match_info["event_id"])
    order_ref = request.match_info["order_ref"]
    hold, tickets = await request.app[DB].run(
        lambda s: (
            s.will_call(event["id"], order_ref),
            s.order_tickets(event["id"], order_ref, p.tenant_id),
        )
    )
    if hold is None:
        raise ConsoleRefused(404, "This order is not on will-call.")
    return event, hold, tickets


def _order_context(
    event: Row, hold: Row, tickets: list[Row], p: Principal, now: int
) -> dict[str, Any]:
    return {
        "title": f"{hold['name']} · {hold['order_ref']}",
        "event": event,
        "hold": hold,
        "tickets": tickets,
        "admitting": {str(s) for s in ADMITTING_STATUSES},
        "id_checked": id_checked_now(hold),
        "may_show": may_show_codes(hold, p, now),
        "window_minutes": RELEASE_WINDOW_MS // 60_000,
        "url": order_url(event["id"], hold["order_ref"]),
        "problem": None,
    }


@routes.get(SEARCH)
async def search(request: web.Request) -> web.Response:
    """?q= finds will-call orders at the chosen venue by order reference (whole, any case) or
    by a part of the name they are held under (any case)."""
    p, page = await console_user(request, "ticket.manage")
    q = (text_filter(request.query, "q", MAX_SEARCH) or "").strip()
    venue, found = page["venue"], []
    if venue is not None and q:
        venue_id = venue["id"]
        found = await request.app[DB].run(
            lambda s: s.find_will_calls(p.tenant_id, p.venue_id, venue_id, q)
        )
    for hold in found:
        hold["url"] = order_url(hold["event_id"], hold["order_ref"])
    context = {"title": "Box office", "q": q, "orders": found}
    return render(request, "box_office.html", page | context)


@routes.get(ORDER)
async def order(request: web.Request) -> web.Response:
    """The order: who collects it, its tickets, and the next step (ID check, release, print)."""
    p, page = await console_user(request, "ticket.manage")
    event, hold, tickets = await _order(request, p)
    context = _order_context(event, hold, tickets, p, request.app[CLOCK]())
    return render(request, "box_office_order.html", page | DISPLAY | context)


@routes.post(ORDER + "/id-check")
async def id_check(request: web.Request) -> web.Response:
    """Record the ID check: the box must be ticked to say the photo ID matches the name."""
    p, page = await console_user(request, "ticket.manage")
    event, hold, tickets = await _order(request, p)
    form = await request.post()
    if form.get("id_matches") != "yes":
        context = _order_context(event, hold, tickets, p, request.app[CLOCK]())
        context["problem"] = "Tick the box once the photo ID shows the name the order is under."
        return render(request, "box_office_order.html", page | DISPLAY | context, status=400)
    now = request.app[CLOCK]()
    await request.app[DB].run(
        lambda s: s.check_will_call_id(step_by(p, event, hold["order_ref"], now))
    )
    flash(request, "ID check recorded.")
    raise web.HTTPSeeOther(order_url(event["id"], hold["order_ref"]))


@routes.post(ORDER + "/release")
async def release_order(request: web.Request) -> web.Response:
    """Hand the order over. Already picked up: a page saying by whom and when, whose form
    confirms the reprint (reprint=yes)."""
    p, page = await console_user(request, "ticket.manage")
    event, hold, tickets = await _order(request, p)
    reprint = (await request.post()).get("reprint") == "yes"
    try:
        done = await release(request, p, event, hold["order_ref"], reprint=reprint)
    except ApiError as exc:
        now = request.app[CLOCK]()
        context = _order_context(event, hold, tickets, p, now)
        if exc.code == ALREADY_PICKED_UP:
            return render(request, "box_office_reprint.html", page | context, status=409)
        if exc.code == ID_NOT_CHECKED:
            context["problem"] = "Check the photo ID first: record the ID check, then release."
            return render(request, "box_office_order.html", page | DISPLAY | context, status=409)
        raise
    count = len(done.codes)
    what = "Reprint" if reprint else "Released"
    flash(request, f"{what}: {count} ticket{'s' if count != 1 else ''}. Print or show them now.")
    raise web.HTTPSeeOther(order_url(event["id"], hold["order_ref"]))


async def _codes(
    request: web.Request, p: Principal, what: str
) -> tuple[Row, Row, list[PrintedTicket]]:
    """The released order's tickets as printed, if this user may see their codes now (else a
    403 page saying why); the printing is audited."""
    event, hold, _ = await _order(request, p)
    now = request.app[CLOCK]()
    if not may_show_codes(hold, p, now):
        if hold["released_ms"] is None:
            raise ConsoleRefused(403, "Release the order first (after the ID check).")
        when = local_time(hold["released_ms"], event["timezone"])
        raise ConsoleRefused(
            403,
            f"Released at {when} by {hold['released_by']}: its codes were shown then. To hand"
            " them over again, check the ID and confirm a reprint on the order's page.",
        )
    order_ref = hold["order_ref"]

    def read(s: HubStorage) -> tuple[list[tuple[Row, str]], Row | None]:
        codes = order_codes(s, request, p, event, order_ref, now)
        s.audit_will_call_print(step_by(p, event, order_ref, now), what)
        return codes, s.get_venue(event["venue_id"], p.tenant_id)

    codes, venue = await request.app[DB].run(read)
    zone = event["timezone"]
    printed = [
        PrintedTicket(
            credential=code,
            event_name=event["name"],
            venue_name=venue["name"] if venue else "",
            starts=local_time(event["start_ms"], zone),
            doors=local_time(event["doors_ms"], zone) if event["doors_ms"] else None,
            ticket_id=ticket["id"],
            holder_name=ticket["holder_name"],
            ticket_type=ticket["ticket_type_name"],
            zone=ticket["zone"],
            seat=ticket["seat"],
            order_ref=order_ref,
        )
        for ticket, code in codes
    ]
    return event, hold, printed


@routes.get(ORDER + "/tickets.pdf")
async def tickets_file(request: web.Request) -> web.StreamResponse:
    """The released tickets as a PDF: ?format=a4 (default) or 80mm."""
    p, _ = await console_user(request, "ticket.manage")
    layout = request.query.get("format", "a4")
    if layout not in LAYOUTS:
        raise ConsoleRefused(400, "The format must be a4 or 80mm.")
    _, hold, printed = await _codes(request, p, layout)
    pdf = await asyncio.get_running_loop().run_in_executor(None, tickets_pdf, printed, layout)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", hold["order_ref"]).strip("-") or "order"
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="tickets-{name}-{layout}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@routes.get(ORDER + "/show")
async def show_codes(request: web.Request) -> web.Response:
    """The released tickets' codes large on screen, one under another, for the fan's phone to
    photograph (a PNG each, as the credential route draws it, scaled up without blur)."""
    p, page = await console_user(request, "ticket.manage")
    event, hold, printed = await _codes(request, p, "screen")
    shown = [
        {
            "ticket": t,
            "src": "data:image/png;base64,"
            + base64.b64encode(qr_image(t.credential, "png")).decode(),
        }
        for t in printed
    ]
    context = {
        "title": f"Codes · {hold['order_ref']}",
        "event": event,
        "hold": hold,
        "shown": shown,
        "url": order_url(event["id"], hold["order_ref"]),
    }
    return render(request, "box_office_show.html", page | context)


@routes.get("/events/{event_id}/will-call")
async def will_call_list(request: web.Request) -> web.Response:
    """The event's will-call list to print: alphabetical by name, with each order's reference,
    ticket count and whether (and when, by whom) it was picked up."""
    p, page = await console_user(request, "ticket.read")
    event = await scoped_event(request, p, request.match_info["event_id"])
    holds = await request.app[DB].run(lambda s: s.will_call_list(event["id"]))
    for hold in holds:
        hold["url"] = order_url(event["id"], hold["order_ref"])
    context = {
        "title": f"Will-call · {event['name']}",
        "event": event,
        "holds": holds,
        "tickets": sum(h["tickets"] for h in holds),
        "picked_up": sum(1 for h in holds if h["released_ms"] is not None),
        "printed_at": request.app[CLOCK](),
    }
    return render(request, "will_call.html", page | context)
