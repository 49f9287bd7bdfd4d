"""Venue operations on tickets: look up, issue comps, lock/unlock (also in bulk), reissue."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub import api_rows as rows
from hub.admin_routes import (
    PAGE_QUERY,
    page_ask,
    page_json,
    query_params,
    text_filter,
    venue_filter,
)
from hub.auth import Principal, require_admin
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
from hub.keys import CLOCK, DB
from hub.paging import Page
from hub.schema import (
    ATTENTION_MAX_LEN,
    ATTENTION_PATTERN,
    MAX_ENTRIES_LOW,
    ORDER_REF_MAX_LEN,
    ORDER_REF_PATTERN,
)
from hub.store_api import HubStorage, NewComp
from hub.store_search import EVENTS, MAX_SEARCH, STATUSES, TICKETS, TicketQuery, ticket_status
from hub.store_tickets import COMP_LIMIT_REACHED, NOT_WITHDRAWABLE
from manifests.model import COMP_REASONS, LOCK_REASONS, WITHDRAWN_STATUSES, TicketStatus
from protocol.limits import MAX_COUNT

routes = web.RouteTableDef()
MAX_BULK = 1000
TICKET_IDS = texts(MAX_BULK, min_items=1)
# The per-ticket facts gates act on (hub/schema.py TICKET_FIELDS), as a comp or a ticket
# change takes them; null is none.
ORDER_REF = text(ORDER_REF_MAX_LEN, required=False, pattern=ORDER_REF_PATTERN)
ATTENTION = text(ATTENTION_MAX_LEN, required=False, pattern=ATTENTION_PATTERN)
MAX_ENTRIES = integer(MAX_ENTRIES_LOW, MAX_COUNT, required=False)
COMP = Body(
    reason=text(50, choices=tuple(COMP_REASONS), code="invalid_comp_reason"),
    holder_name=text(200),
    ticket_type=text(100, required=False),
    zone=text(100, required=False),
    seat=text(50, required=False),
    order_ref=ORDER_REF,
    attention=ATTENTION,
    max_entries=MAX_ENTRIES,
)
TICKET_CHANGE = Body(  # null clears a field
    at_least_one=True, order_ref=ORDER_REF, attention=ATTENTION, max_entries=MAX_ENTRIES
)
LOCK = Body(
    ticket_ids=TICKET_IDS,
    reason=text(50, choices=tuple(LOCK_REASONS), code="invalid_lock_reason"),
)
UNLOCK = Body(ticket_ids=TICKET_IDS)
WITHDRAW = Body(
    ticket_ids=TICKET_IDS,
    status=text(20, choices=tuple(str(s) for s in WITHDRAWN_STATUSES), code="invalid_status"),
    note=text(500, required=False),
)
TRANSFER = Body(holder_name=text(200))
EVENT_QUERY = ("venue_id", *PAGE_QUERY)
TICKET_QUERY = ("search", "status", "event_id", "venue_id", *PAGE_QUERY)


def event_json(row: dict[str, Any], types: list[dict[str, Any]]) -> dict[str, Any]:
    """The event with its ticket types."""
    return rows.EVENT.json({**row, "ticket_types": types})


async def _event(request: web.Request, p: Principal, event_id: str | None = None) -> dict[str, Any]:
    """The event of the path (or `event_id`) if this token may see it, else 404."""
    event_id = request.match_info["event_id"] if event_id is None else event_id
    event = await request.app[DB].run(lambda s: s.get_event(event_id, p.tenant_id, p.venue_id))
    if event is None:
        raise not_found("event")
    return event


def _ticket_ids(f: Fields) -> list[str]:
    return list(dict.fromkeys(f.text_list("ticket_ids")))


def _ticket_fields(f: Fields) -> dict[str, Any]:
    """The TICKET_FIELDS the body names, checked (a 400 before anything is written)."""
    return {
        name: f.integer(name) if spec.kind == "integer" else f.text(name)
        for name, spec in TICKET_CHANGE.fields.items()
        if name in f.body
    }


async def _scoped_tickets(
    request: web.Request, p: Principal, ids: list[str]
) -> list[dict[str, Any]]:
    """Every named ticket, or 404 naming the first one this token cannot see."""
    found = await request.app[DB].run(lambda s: s.get_tickets(ids, p.tenant_id, p.venue_id))
    missing = [i for i in ids if i not in found]
    if missing:
        raise ApiError(404, "not_found", f"No such ticket: {missing[0]}.")
    return [found[i] for i in ids]


@routes.get("/api/admin/events")
async def list_events(request: web.Request) -> web.Response:
    """A page of the events the token may see (of one venue with ?venue_id=), by start time."""
    p = await require_admin(request, "ticket.read")
    query = query_params(request, EVENT_QUERY)
    ask = page_ask(query, EVENTS)
    venue_id = await venue_filter(request, p, query)

    def read(s: HubStorage) -> tuple[Page, list[dict[str, Any]]]:
        page = s.event_page(p.tenant_id, p.venue_id, venue_id, ask)
        return page, [event_json(e, s.ticket_types_of(e["id"])) for e in page.rows]

    page, events = await request.app[DB].run(read)
    return page_json("events", events, page.next_cursor)


@routes.get("/api/admin/tickets")
async def search_tickets(request: web.Request) -> web.Response:
    """A page of the tickets the token may see, in id order: ?search= finds an id or order
    reference (whole) or part of a holder's name, any case; ?status= in any case; the answer's
    next_cursor, given back as ?cursor=, is the next page (null: none)."""
    p = await require_admin(request, "ticket.read")
    query = query_params(request, TICKET_QUERY)
    search = text_filter(query, "search", MAX_SEARCH)
    status = query.get("status")
    try:
        wanted = None if status is None else ticket_status(status)
    except ValueError:
        allowed = ", ".join(STATUSES)
        raise ApiError(
            400, "invalid_status", f"status must be one of {allowed} (any case)."
        ) from None
    ask = page_ask(query, TICKETS)
    venue_id = await venue_filter(request, p, query)
    event_id = query.get("event_id")
    if event_id is not None:
        await _event(request, p, event_id)
    asked = TicketQuery(search, wanted, event_id, venue_id, ask.cursor, ask.limit)
    page = await request.app[DB].run(lambda s: s.search_tickets(p.tenant_id, p.venue_id, asked))
    return page_json("tickets", [rows.TICKET.json(t) for t in page.tickets], page.next_cursor)


@routes.get("/api/admin/events/{event_id}")
async def get_event(request: web.Request) -> web.Response:
    p = await require_admin(request, "ticket.read")
    event = await _event(request, p)
    types = await request.app[DB].run(lambda s: s.ticket_types_of(event["id"]))
    return web.json_response(event_json(event, types))


@routes.get("/api/admin/tickets/{ticket_id}")
async def get_ticket(request: web.Request) -> web.Response:
    p = await require_admin(request, "ticket.read")
    ids = [request.match_info["ticket_id"]]
    return web.json_response(rows.TICKET.json((await _scoped_tickets(request, p, ids))[0]))


@routes.patch("/api/admin/tickets/{ticket_id}")
@accepts(TICKET_CHANGE)
async def update_ticket(request: web.Request) -> web.Response:
    """Set or clear (null) a ticket's order reference, attention note or entry limit: gates
    get it in their next manifest delta, the hub's online check at once."""
    p = await require_admin(request, "ticket.manage")
    changes = _ticket_fields(Fields(await read_json_object(request), TICKET_CHANGE))
    ticket = (await _scoped_tickets(request, p, [request.match_info["ticket_id"]]))[0]
    now = request.app[CLOCK]()
    updated = await request.app[DB].run(
        lambda s: s.update_ticket_fields(ticket, p.tenant_id, changes, p.actor, now)
    )
    return web.json_response(rows.TICKET.json(updated))


@routes.post("/api/admin/events/{event_id}/comps")
@accepts(COMP)
async def issue_comp(request: web.Request) -> web.Response:
    p = await require_admin(request, "ticket.manage")
    event = await _event(request, p)
    f = Fields(await read_json_object(request), COMP)
    return web.json_response(rows.TICKET.json(await comp_ticket(request, p, event, f)), status=201)


async def comp_ticket(
    request: web.Request, p: Principal, event: dict[str, Any], f: Fields
) -> dict[str, Any]:
    """A comp for the event from a COMP body, for the API and the console alike: a 400 for a
    bad field, 404 for a ticket type the event lacks, 409 once its comp limit is reached."""
    fields = _ticket_fields(f)
    reason = f.need_text("reason")
    holder = f.text("holder_name")
    type_name = f.text("ticket_type")
    known = await request.app[DB].run(lambda s: s.ticket_types_of(event["id"]))
    types = {t["name"]: t for t in known}
    if type_name is not None and type_name not in types:
        raise ApiError(404, "unknown_ticket_type", f"No ticket type {type_name} at this event.")
    ticket_type = types.get(type_name) if type_name else None
    zone = f.text("zone") or (ticket_type or {}).get("zone")
    comp = NewComp(
        reason=reason,
        holder_name=holder or "",
        ticket_type_id=ticket_type["id"] if ticket_type else None,
        zone=zone,
        seat=f.text("seat"),
        fields=fields,
    )
    now = request.app[CLOCK]()
    result = await request.app[DB].run(
        lambda s: s.issue_comp(event, p.tenant_id, comp, p.actor, now)
    )
    if result == COMP_LIMIT_REACHED:
        raise ApiError(409, COMP_LIMIT_REACHED, "This event's comp limit has been reached.")
    assert isinstance(result, dict)
    return result


@routes.post("/api/admin/tickets/lock")
@accepts(LOCK)
async def lock(request: web.Request) -> web.Response:
    p = await require_admin(request, "ticket.manage")
    f = Fields(await read_json_object(request), LOCK)
    ids = _ticket_ids(f)
    reason = f.need_text("reason")
    tickets = await _scoped_tickets(request, p, ids)
    now = request.app[CLOCK]()
    await request.app[DB].run(lambda s: s.set_locks(tickets, p.tenant_id, reason, p.actor, now))
    return web.json_response({"locked": ids, "reason": reason})


@routes.post("/api/admin/tickets/unlock")
@accepts(UNLOCK)
async def unlock(request: web.Request) -> web.Response:
    p = await require_admin(request, "ticket.manage")
    ids = _ticket_ids(Fields(await read_json_object(request), UNLOCK))
    tickets = await _scoped_tickets(request, p, ids)
    now = request.app[CLOCK]()
    await request.app[DB].run(lambda s: s.set_locks(tickets, p.tenant_id, None, p.actor, now))
    return web.json_response({"unlocked": ids})


@routes.post("/api/admin/tickets/status")
@accepts(WITHDRAW)
async def withdraw(request: web.Request) -> web.Response:
    """Cancel, refund or revoke tickets outright (bulk, all or nothing); gates refuse them
    from their next manifest pull, the hub's online check at once."""
    p = await require_admin(request, "ticket.manage")
    f = Fields(await read_json_object(request), WITHDRAW)
    ids = _ticket_ids(f)
    status = f.text("status") or ""
    note = f.text("note") or ""
    tickets = await _scoped_tickets(request, p, ids)
    now = request.app[CLOCK]()
    refused = await request.app[DB].run(
        lambda s: s.withdraw_tickets(tickets, p.tenant_id, TicketStatus(status), note, p.actor, now)
    )
    if refused is not None:
        current = next(t["status"] for t in tickets if t["id"] == refused)
        raise ApiError(
            409, NOT_WITHDRAWABLE, f"Ticket {refused} is {current}; it cannot become {status}."
        )
    return web.json_response({"tickets": ids, "status": status})


@routes.post("/api/admin/tickets/{ticket_id}/reissue")
async def reissue(request: web.Request) -> web.Response:
    p = await require_admin(request, "ticket.manage")
    ticket = (await _scoped_tickets(request, p, [request.match_info["ticket_id"]]))[0]
    now = request.app[CLOCK]()
    result = await request.app[DB].run(
        lambda s: s.reissue_ticket(ticket, p.tenant_id, p.actor, now)
    )
    if isinstance(result, str):
        raise ApiError(409, result, f"A {ticket['status']} ticket cannot be reissued.")
    return web.json_response(rows.TICKET.json(result))


@routes.post("/api/admin/tickets/{ticket_id}/transfer")
@accepts(TRANSFER)
async def transfer(request: web.Request) -> web.Response:
    """A transfer to a new holder: new generation and credential, the old code refused as
    superseded from the gates' next manifest (and by the hub's online check at once)."""
    p = await require_admin(request, "ticket.manage")
    holder = Fields(await read_json_object(request), TRANSFER).text("holder_name") or ""
    ticket = (await _scoped_tickets(request, p, [request.match_info["ticket_id"]]))[0]
    now = request.app[CLOCK]()
    result = await request.app[DB].run(
        lambda s: s.reissue_ticket(ticket, p.tenant_id, p.actor, now, new_holder=holder.strip())
    )
    if isinstance(result, str):
        raise ApiError(409, result, f"A {ticket['status']} ticket cannot be transferred.")
    return web.json_response(rows.TICKET.json(result))
