"""Console pages: find tickets, a ticket's page (its scans across the venue's gates and what
the user's role may do to it), and a bulk lock from a pasted list.

Every change calls the same store method as the admin API (hub/ticket_routes.py), with the
form checked against the API's own request Body, so it is checked, scoped and audited exactly
as there; the actor is the staff user. Bad input re-shows the page with a sentence saying
what is wrong and changes nothing; reissue, transfer and cancel/refund/revoke ask to confirm
first (a page, not a script's dialog). The CSRF check is the middleware's (session.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDictProxy

from hub.admin_routes import text_filter
from hub.auth import Principal
from hub.console.events import DISPLAY, asked_page, comps_used, page_links, scoped_event
from hub.console.render import render
from hub.console.session import CSRF_FIELD, ConsoleRefused, console_user, flash
from hub.errors import ApiError, Body, Fields
from hub.keys import CLOCK, DB
from hub.store_api import HubStorage
from hub.store_base import Row
from hub.store_console_reports import MAX_LINE
from hub.store_search import MAX_SEARCH, STATUSES, TICKETS, TicketQuery, ticket_status
from hub.store_tickets import NOT_WITHDRAWABLE
from hub.ticket_routes import COMP, LOCK, MAX_BULK, TRANSFER, UNLOCK, WITHDRAW, comp_ticket
from manifests.model import (
    ADMITTING_STATUSES,
    COMP_REASONS,
    LOCK_REASONS,
    WITHDRAWN_STATUSES,
    TicketStatus,
)
from protocol.reasons import DEFAULT_MESSAGES, Reason

routes = web.RouteTableDef()
T = TypeVar("T")
Form = MultiDictProxy[Any]
BULK_LOCK = "/tickets/bulk-lock"
WITHDRAW_WORDS = {  # what each withdrawn status is called as an action, and once done
    TicketStatus.CANCELLED: ("Cancel", "cancelled"),
    TicketStatus.REFUNDED: ("Refund", "refunded"),
    TicketStatus.REVOKED: ("Revoke", "revoked"),
}
CHOICES = {
    "lock_reasons": LOCK_REASONS,
    "comp_reasons": COMP_REASONS,
    "withdraw_words": {str(s): words for s, words in WITHDRAW_WORDS.items()},
    "statuses": STATUSES,
    "admitting": {str(s) for s in ADMITTING_STATUSES},
}
assert set(WITHDRAW_WORDS) == set(WITHDRAWN_STATUSES)


def api_body(form: Form, body: Body, **given: Any) -> Fields:
    """A form's fields as the admin API's JSON body of `body`, checked by the API's own
    declaration (a 400 ApiError with a sentence): a blank field is absent, a whole number
    is one for an integer field; `given` are the fields the page sets itself."""
    out: dict[str, Any] = {}
    for name, spec in body.fields.items():
        value = str(form.get(name, "")).strip()
        if name in given or not value:
            continue
        is_whole = spec.kind == "integer" and value.isdigit() and len(value) <= 16
        out[name] = int(value) if is_whole else value
    return Fields(out | given, body)


async def scoped_ticket(request: web.Request, p: Principal, ticket_id: str) -> Row:
    """The ticket if this user may see it (tenant, and venue when scoped), else a 404 page."""
    ticket = await request.app[DB].run(lambda s: s.get_ticket(ticket_id, p.tenant_id, p.venue_id))
    if ticket is None:
        raise ConsoleRefused(404, "There is no such ticket.")
    return ticket


def scan_sentence(scan: Row) -> str:
    """Why the gate said what it said: its own sentence, else the reason's default."""
    if scan["message"]:
        return str(scan["message"])
    try:
        return DEFAULT_MESSAGES[Reason(scan["reason"])]
    except (ValueError, KeyError):
        return str(scan["reason"]).replace("_", " ")


# finding tickets ----------------------------------------------------------------------------
@routes.get("/tickets")
async def tickets(request: web.Request) -> web.Response:
    """The chosen venue's tickets in id order, a page at a time: ?q= finds an id, external id
    or order reference (whole, any case) or part of a holder's name; ?status= and ?event=
    narrow it (the admin API's search, hub/store_search.py)."""
    p, page = await console_user(request, "ticket.read")
    venue = page["venue"]
    q = (text_filter(request.query, "q", MAX_SEARCH) or "").strip()
    status_text = request.query.get("status") or ""
    event_id = request.query.get("event") or ""
    context: dict[str, Any] = {
        "title": "Tickets",
        "q": q,
        "status": status_text.upper(),
        "event_id": event_id,
        "problem": None,
        "tickets": [],
        "events": [],
        "event_names": {},
        "next_url": None,
        "first_url": None,
    }
    if venue is None:
        return render(request, "tickets.html", page | DISPLAY | CHOICES | context)
    venue_id = venue["id"]
    venue_events = await request.app[DB].run(
        lambda s: s.list_events(p.tenant_id, p.venue_id, venue_id)
    )
    context["events"] = venue_events
    context["event_names"] = {e["id"]: e["name"] for e in venue_events}
    try:
        status = ticket_status(status_text) if status_text else None
    except ValueError:
        context["problem"] = f"Status must be one of {', '.join(STATUSES)}."
        return render(request, "tickets.html", page | DISPLAY | CHOICES | context, status=400)
    if event_id:
        await scoped_event(request, p, event_id)
    ask = asked_page(request, TICKETS)
    asked = TicketQuery(q or None, status, event_id or None, venue_id, ask.cursor, ask.limit)
    found = await request.app[DB].run(lambda s: s.search_tickets(p.tenant_id, p.venue_id, asked))
    context["tickets"] = found.tickets
    context.update(page_links(request, found.next_cursor))
    return render(request, "tickets.html", page | DISPLAY | CHOICES | context)


# bulk lock (before /tickets/{ticket_id}, which would take its path) ---------------------------
def pasted_lines(text: str) -> list[str]:
    """The pasted list's lines: trimmed, blank ones dropped, each once, in order; at most
    MAX_BULK lines of at most MAX_LINE characters (else a 400 saying so)."""
    lines = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    if not lines:
        raise ApiError(
            400, "missing_field", "Paste at least one ticket id, code or order reference."
        )
    if len(lines) > MAX_BULK:
        raise ApiError(400, "invalid_field", f"Paste at most {MAX_BULK} lines at once.")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            raise ApiError(
                400, "invalid_field", f"Line {number} is longer than {MAX_LINE} characters."
            )
    return lines


def _bulk_context(lines: str = "", reason: str = "") -> dict[str, Any]:
    return {
        "title": "Bulk lock",
        "lines": lines,
        "reason": reason,
        "problem": None,
        "matches": None,
        "unmatched": [],
        "ticket_ids": [],
    }


@routes.get(BULK_LOCK)
async def bulk_lock_form(request: web.Request) -> web.Response:
    _, page = await console_user(request, "ticket.manage")
    return render(request, "tickets_bulk_lock.html", page | DISPLAY | CHOICES | _bulk_context())


@routes.post(BULK_LOCK)
async def bulk_lock(request: web.Request) -> web.Response:
    """First a preview of what each pasted line names (and which lines name nothing); the
    confirmation then locks exactly the tickets the preview showed, as POST
    /api/admin/tickets/lock does (one transaction, each audited)."""
    p, page = await console_user(request, "ticket.manage")
    form = await request.post()
    text, reason = str(form.get("lines", "")), str(form.get("reason", ""))
    context = page | DISPLAY | CHOICES | _bulk_context(text, reason)
    try:
        if form.get("confirmed") == "yes":
            ids = [str(i) for i in form.getall("ticket_id", [])]
            f = api_body(form, LOCK, ticket_ids=ids)
            chosen = list(dict.fromkeys(f.text_list("ticket_ids")))
            return await _lock_tickets(request, p, chosen, f.need_text("reason"))
        if reason not in LOCK_REASONS:
            raise ApiError(400, "invalid_lock_reason", "Choose the reason for the lock.")
        lines = pasted_lines(text)
    except ApiError as exc:
        context["problem"] = exc.message
        return render(request, "tickets_bulk_lock.html", context, status=exc.status)
    venue = page["venue"]
    if venue is None:
        raise ConsoleRefused(404, "There is no venue to lock tickets at.")
    venue_id = venue["id"]
    matches = await request.app[DB].run(
        lambda s: s.tickets_for_lines(p.tenant_id, p.venue_id, venue_id, lines)
    )
    ticket_ids = list(dict.fromkeys(t["id"] for found in matches.values() for t in found))
    context |= {
        "matches": [(line, found) for line, found in matches.items() if found],
        "unmatched": [line for line, found in matches.items() if not found],
        "ticket_ids": ticket_ids,
    }
    if len(ticket_ids) > MAX_BULK:
        context["problem"] = (
            f"These lines name {len(ticket_ids)} tickets; lock at most {MAX_BULK} at once."
        )
        context["ticket_ids"] = []
    return render(request, "tickets_bulk_lock.html", context)


async def _lock_tickets(
    request: web.Request, p: Principal, ticket_ids: list[str], reason: str
) -> web.Response:
    found = await request.app[DB].run(lambda s: s.get_tickets(ticket_ids, p.tenant_id, p.venue_id))
    if len(found) != len(ticket_ids):
        raise ApiError(404, "not_found", "A ticket of the list is not found: paste it again.")
    chosen, now = [found[i] for i in ticket_ids], request.app[CLOCK]()
    await request.app[DB].run(lambda s: s.set_locks(chosen, p.tenant_id, reason, p.actor, now))
    words = "ticket" if len(chosen) == 1 else "tickets"
    flash(request, f"Locked {len(chosen)} {words} ({reason.replace('_', ' ')}).")
    raise web.HTTPSeeOther(BULK_LOCK)


# one ticket ---------------------------------------------------------------------------------
async def _ticket_page(
    request: web.Request,
    p: Principal,
    page: dict[str, Any],
    ticket: Row,
    problem: str | None = None,
    status: int = 200,
) -> web.Response:
    event_id, venue_id = ticket["event_id"], ticket["venue_id"]

    def read(s: Any) -> tuple[Any, ...]:
        return (
            s.get_event(event_id, p.tenant_id, p.venue_id),
            s.get_venue(venue_id, p.tenant_id, p.venue_id),
            s.ticket_scans(ticket["id"], venue_id),
            s.ticket_types_of(event_id),
            s.comp_counts(event_id),
        )

    event, venue, scans, types, comps = await request.app[DB].run(read)
    context = {
        "title": f"Ticket {ticket['id']}",
        "ticket": ticket,
        "event": event,
        "timezone": venue["timezone"],
        "scans": [{**scan, "sentence": scan_sentence(scan)} for scan in scans],
        "types": types,
        "comps_used": comps_used(comps),
        "problem": problem,
    }
    return render(request, "tickets_detail.html", page | DISPLAY | CHOICES | context, status=status)


@routes.get("/tickets/{ticket_id}")
async def ticket(request: web.Request) -> web.Response:
    p, page = await console_user(request, "ticket.read")
    found = await scoped_ticket(request, p, request.match_info["ticket_id"])
    return await _ticket_page(request, p, page, found)


@routes.post("/tickets/{ticket_id}/{action}")
async def ticket_action(request: web.Request) -> web.Response:
    """One of ACTIONS on the ticket: done (a flash, back to the ticket), a page asking to
    confirm, or the ticket page again with what was wrong (nothing changed)."""
    act = ACTIONS.get(request.match_info["action"])
    if act is None:
        raise ConsoleRefused(404, "There is no such page.")
    p, page = await console_user(request, "ticket.manage")
    found = await scoped_ticket(request, p, request.match_info["ticket_id"])
    call = Call(request, p, page, found, await request.post())
    try:
        done = await act(call)
    except ApiError as exc:
        return await _ticket_page(request, p, page, found, exc.message, exc.status)
    if isinstance(done, web.Response):
        return done
    message, target = done
    flash(request, message)
    raise web.HTTPSeeOther(f"/tickets/{target}")


@dataclass(frozen=True, slots=True)
class Call:
    """One ticket action as asked: by whom, on which ticket, with which form."""

    request: web.Request
    p: Principal
    page: dict[str, Any]
    ticket: Row
    form: Form

    def now(self) -> int:
        return self.request.app[CLOCK]()

    async def run(self, work: Callable[[HubStorage], T]) -> T:
        return await self.request.app[DB].run(work)

    def confirm(self, question: str, button: str) -> web.Response | None:
        """None once the person confirmed; before that, the page that asks, carrying the
        form's fields to the same action."""
        if self.form.get("confirmed") == "yes":
            return None
        fields = [(k, str(v)) for k, v in self.form.items() if k not in (CSRF_FIELD, "confirmed")]
        context = {
            "title": "Confirm",
            "ticket": self.ticket,
            "question": question,
            "button": button,
            "action": self.request.path,
            "fields": fields,
        }
        return render(self.request, "tickets_confirm.html", self.page | DISPLAY | context)


# An action's outcome: (flash sentence, the ticket to show next), or a page to confirm on.
Done = tuple[str, str] | web.Response


async def _lock(c: Call) -> Done:
    reason = api_body(c.form, LOCK, ticket_ids=[c.ticket["id"]]).need_text("reason")
    now = c.now()
    await c.run(lambda s: s.set_locks([c.ticket], c.p.tenant_id, reason, c.p.actor, now))
    return f"Ticket locked ({reason.replace('_', ' ')}).", c.ticket["id"]


async def _unlock(c: Call) -> Done:
    api_body(c.form, UNLOCK, ticket_ids=[c.ticket["id"]])
    now = c.now()
    await c.run(lambda s: s.set_locks([c.ticket], c.p.tenant_id, None, c.p.actor, now))
    return "Ticket unlocked.", c.ticket["id"]


async def comp_from_form(
    request: web.Request, p: Principal, event: Row, form: Form
) -> tuple[str, str]:
    """A comp for the event from a comp form (the API's comp_ticket, its checks and audit):
    the sentence to flash and the new ticket's id."""
    comp = await comp_ticket(request, p, event, api_body(form, COMP))
    return f"Comp issued for {comp['holder_name']}.", comp["id"]


async def _comp(c: Call) -> Done:
    """A comp for the ticket's event, shown next."""
    event = await scoped_event(c.request, c.p, c.ticket["event_id"])
    return await comp_from_form(c.request, c.p, event, c.form)


async def _reissue(c: Call) -> Done:
    asked = c.confirm(
        "Reissue this ticket? Its current code stops working at every gate from their next"
        " sync; the holder needs the new one.",
        "Reissue",
    )
    if asked is not None:
        return asked
    now = c.now()
    result = await c.run(lambda s: s.reissue_ticket(c.ticket, c.p.tenant_id, c.p.actor, now))
    if isinstance(result, str):
        raise ApiError(409, result, f"A {c.ticket['status']} ticket cannot be reissued.")
    return "Ticket reissued: the old code no longer admits.", c.ticket["id"]


async def _transfer(c: Call) -> Done:
    holder = api_body(c.form, TRANSFER).need_text("holder_name")
    asked = c.confirm(
        f"Transfer this ticket to {holder}? The current code stops working; the new holder"
        " needs the new one.",
        "Transfer",
    )
    if asked is not None:
        return asked
    now = c.now()
    result = await c.run(
        lambda s: s.reissue_ticket(c.ticket, c.p.tenant_id, c.p.actor, now, new_holder=holder)
    )
    if isinstance(result, str):
        raise ApiError(409, result, f"A {c.ticket['status']} ticket cannot be transferred.")
    return f"Ticket transferred to {holder}.", c.ticket["id"]


async def _withdraw(c: Call) -> Done:
    """Cancel, refund or revoke (POST /api/admin/tickets/status, for one ticket)."""
    f = api_body(c.form, WITHDRAW, ticket_ids=[c.ticket["id"]])
    status = TicketStatus(f.need_text("status"))
    note = f.text("note") or ""
    verb, done = WITHDRAW_WORDS[status]
    asked = c.confirm(
        f"{verb} this ticket? It stops admitting at every gate and cannot be undone.", verb
    )
    if asked is not None:
        return asked
    now = c.now()
    refused = await c.run(
        lambda s: s.withdraw_tickets([c.ticket], c.p.tenant_id, status, note, c.p.actor, now)
    )
    if refused is not None:
        raise ApiError(
            409, NOT_WITHDRAWABLE, f"This ticket is {c.ticket['status']}; it cannot be {done}."
        )
    return f"Ticket {done}.", c.ticket["id"]


ACTIONS: dict[str, Callable[[Call], Awaitable[Done]]] = {
    "lock": _lock,
    "unlock": _unlock,
    "comp": _comp,
    "reissue": _reissue,
    "transfer": _transfer,
    "status": _withdraw,
}
