"""Will-call: an order held at the box office for its buyer to collect, with photo ID.

Design. An *order* is the tickets of one event sharing an `order_ref` (hub/store_tickets.py).
An order is put on will-call under a *name* (who collects it), by an import's `will_call`
column (hub/importer.py) or `POST /api/admin/events/{id}/will-call`; one hold per (event,
order_ref), table `will_call` (schema step 0015). At the counter staff find the order by its
reference or by the name (`/box-office`), confirm in an *ID check* that the photo ID matches
the name (recorded: who, when), then *release* it: the hold is picked up (who, when) and the
order's admitting tickets are handed over as their native credentials, the very codes
`GET /api/admin/tickets/{id}/credential` issues (hub/credentials.py), as a PDF for A4 or an
80 mm thermal printer (hub/ticket_pdf.py) or large on screen for the fan's phone to
photograph. A second release is refused with who picked the order up and when, unless it
confirms a *reprint*; every release needs an ID check made after the previous one, and a
renamed hold needs a new one. The codes of a release are shown (PDF or screen) to the person
who released it, for RELEASE_WINDOW_MS; later, only a confirmed reprint shows them again. A
picked-up hold cannot be renamed or dropped: the hand-over stays on record. Each change (hold,
drop, ID check, release, reprint) and each printing is in the audit log (actions
`will_call.*`, target the order_ref, the event in the detail), like every admin action; the
name is never written there, as holder names are not. Reading needs `ticket.read`, changing
`ticket.manage`, the same permissions as the tickets themselves; every lookup is scoped by the
principal's tenant and venue through the event (another tenant's event or order is "not
found"). The console's pages (hub/console/box_office.py) call the helpers here, as the API does.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from hub import api_rows as rows
from hub.auth import Principal, require_admin
from hub.credentials import NoNativeCredential, ticket_credential
from hub.errors import (
    ApiError,
    Body,
    Fields,
    accepts,
    matches,
    not_found,
    raw,
    read_json_object,
    text,
)
from hub.keys import CLOCK, DB
from hub.logs import iso_utc
from hub.manifest_routes import MANIFESTS
from hub.schema import (
    ORDER_REF_MAX_LEN,
    ORDER_REF_PATTERN,
    WILL_CALL_NAME_MAX_LEN,
    WILL_CALL_NAME_PATTERN,
)
from hub.store_api import HubStorage, WillCallStep
from hub.store_base import Row
from hub.store_will_call import (
    ALREADY_PICKED_UP,
    ID_NOT_CHECKED,
    NOT_ON_WILL_CALL,
    ORDER_NOT_FOUND,
)
from manifests.model import ADMITTING_STATUSES

routes = web.RouteTableDef()
RELEASE_WINDOW_MS = 15 * 60_000  # a release's codes stay printable by its releaser this long
HOLD = Body(
    order_ref=text(ORDER_REF_MAX_LEN, pattern=ORDER_REF_PATTERN),
    name=text(WILL_CALL_NAME_MAX_LEN, pattern=WILL_CALL_NAME_PATTERN),
)
RELEASE = Body(reprint=raw({"type": ["boolean", "null"]}, required=False))
NO_CODES = "no_admitting_tickets"


def refusal(code: str, hold: Row | None = None) -> ApiError:
    """The API's answer to a refused will-call change (a code of hub/store_will_call.py)."""
    if code == ALREADY_PICKED_UP and hold is not None:
        when = iso_utc(hold["released_ms"] / 1000)
        return ApiError(
            409,
            code,
            f"Already picked up at {when} by {hold['released_by']}: confirm a reprint"
            " (reprint: true) to hand the tickets over again.",
        )
    messages = {
        ALREADY_PICKED_UP: (409, "This order was already picked up; its hold stays on record."),
        ID_NOT_CHECKED: (409, "Check the photo ID against the will-call name first (id-check)."),
        NOT_ON_WILL_CALL: (404, "This order is not on will-call."),
        ORDER_NOT_FOUND: (404, "No ticket of this event has that order reference."),
        NO_CODES: (409, "None of this order's tickets admits (all cancelled, refunded or used)."),
    }
    status, message = messages[code]
    return ApiError(status, code, message)


async def scoped_event(request: web.Request, p: Principal) -> Row:
    """The path's event if the principal may see it, else 404."""
    event_id = request.match_info["event_id"]
    event = await request.app[DB].run(lambda s: s.get_event(event_id, p.tenant_id, p.venue_id))
    if event is None:
        raise not_found("event")
    return event


def path_order_ref(request: web.Request) -> str:
    """The path's order reference; one no order can have is not found."""
    order_ref = request.match_info["order_ref"]
    if len(order_ref) > ORDER_REF_MAX_LEN or not matches(ORDER_REF_PATTERN, order_ref):
        raise refusal(NOT_ON_WILL_CALL)
    return order_ref


async def scoped_hold(request: web.Request, event: Row, order_ref: str) -> Row:
    hold = await request.app[DB].run(lambda s: s.will_call(event["id"], order_ref))
    if hold is None:
        raise refusal(NOT_ON_WILL_CALL)
    return hold


@dataclass(frozen=True)
class Released:
    """A hand-over: the hold as it is now, and each admitting ticket with its code."""

    hold: Row
    codes: list[tuple[Row, str]]


def order_codes(
    store: HubStorage, request: web.Request, p: Principal, event: Row, order_ref: str, now: int
) -> list[tuple[Row, str]]:
    """The order's admitting tickets with their native credentials (issued on first ask, as
    the credential route does); on the database thread. 409 when none admits or a ticket
    cannot carry a native credential."""
    tickets = store.order_tickets(event["id"], order_ref, p.tenant_id)
    admitting = [t for t in tickets if t["status"] in ADMITTING_STATUSES]
    if not admitting:
        raise refusal(NO_CODES)
    builder, codes = request.app[MANIFESTS], []
    for ticket in admitting:
        try:
            found = ticket_credential(store, builder, ticket["id"], p.tenant_id, p.venue_id, now)
        except NoNativeCredential:
            raise ApiError(
                409, "no_native_credential", f"Ticket {ticket['id']} cannot carry a native code."
            ) from None
        assert found is not None
        codes.append(found)
    return codes


def step_by(p: Principal, event: Row, order_ref: str, now_ms: int) -> WillCallStep:
    """The principal's step on the order (the caller scoped the event to the principal)."""
    return WillCallStep(event, p.tenant_id, order_ref, p.actor, now_ms)


async def release(
    request: web.Request, p: Principal, event: Row, order_ref: str, *, reprint: bool
) -> Released:
    """Hand the order over (API and console alike): its codes first, so an order with no
    admitting ticket is refused before anything is recorded; then the pick-up, audited."""
    now = request.app[CLOCK]()

    def run(s: HubStorage) -> Released:
        codes = order_codes(s, request, p, event, order_ref, now)
        result = s.release_will_call(step_by(p, event, order_ref, now), reprint=reprint)
        if isinstance(result, str):
            raise refusal(result, s.will_call(event["id"], order_ref))
        return Released(result, codes)

    return await request.app[DB].run(run)


def may_show_codes(hold: Row, p: Principal, now_ms: int) -> bool:
    """Whether the codes of the last release may be printed or shown again without a reprint:
    to the person who released it, within RELEASE_WINDOW_MS."""
    released = hold["released_ms"]
    return (
        released is not None
        and hold["released_by"] == p.actor
        and 0 <= now_ms - released <= RELEASE_WINDOW_MS
    )


# the admin API ---------------------------------------------------------------------------
@routes.get("/api/admin/events/{event_id}/will-call")
async def list_will_call(request: web.Request) -> web.Response:
    """Every order the event holds at will-call, alphabetical by name."""
    p = await require_admin(request, "ticket.read")
    event = await scoped_event(request, p)
    holds = await request.app[DB].run(lambda s: s.will_call_list(event["id"]))
    return web.json_response(
        {"event_id": event["id"], "will_call": [rows.WILL_CALL.json(h) for h in holds]}
    )


@routes.post("/api/admin/events/{event_id}/will-call")
@accepts(HOLD)
async def hold_will_call(request: web.Request) -> web.Response:
    """Hold an order of the event at will-call under a name, or rename its hold (which voids
    an ID check made against the old name)."""
    p = await require_admin(request, "ticket.manage")
    f = Fields(await read_json_object(request), HOLD)
    order_ref, name = f.need_text("order_ref"), f.need_text("name")
    event = await scoped_event(request, p)
    now = request.app[CLOCK]()

    def run(s: HubStorage) -> Row:
        result = s.hold_will_call(step_by(p, event, order_ref, now), name)
        if isinstance(result, str):
            raise refusal(result, s.will_call(event["id"], order_ref))
        return result

    return web.json_response(rows.WILL_CALL.json(await request.app[DB].run(run)))


@routes.get("/api/admin/events/{event_id}/will-call/{order_ref}")
async def get_will_call(request: web.Request) -> web.Response:
    """One will-call order with its tickets."""
    p = await require_admin(request, "ticket.read")
    event = await scoped_event(request, p)
    hold = await scoped_hold(request, event, path_order_ref(request))
    tickets = await request.app[DB].run(
        lambda s: s.order_tickets(event["id"], hold["order_ref"], p.tenant_id)
    )
    return web.json_response(
        {**rows.WILL_CALL.json(hold), "tickets": [rows.TICKET.json(t) for t in tickets]}
    )


@routes.delete("/api/admin/events/{event_id}/will-call/{order_ref}")
async def drop_will_call(request: web.Request) -> web.Response:
    """Take an order off will-call (not once picked up)."""
    p = await require_admin(request, "ticket.manage")
    event = await scoped_event(request, p)
    order_ref, now = path_order_ref(request), request.app[CLOCK]()

    def run(s: HubStorage) -> None:
        refused = s.drop_will_call(step_by(p, event, order_ref, now))
        if refused is not None:
            raise refusal(refused, s.will_call(event["id"], order_ref))

    await request.app[DB].run(run)
    return web.json_response({"removed": order_ref})


@routes.post("/api/admin/events/{event_id}/will-call/{order_ref}/id-check")
async def check_id(request: web.Request) -> web.Response:
    """Record that the caller saw photo ID matching the will-call name."""
    p = await require_admin(request, "ticket.manage")
    event = await scoped_event(request, p)
    order_ref, now = path_order_ref(request), request.app[CLOCK]()
    result = await request.app[DB].run(
        lambda s: s.check_will_call_id(step_by(p, event, order_ref, now))
    )
    if isinstance(result, str):
        raise refusal(result)
    return web.json_response(rows.WILL_CALL.json(result))


@routes.post("/api/admin/events/{event_id}/will-call/{order_ref}/release")
@accepts(RELEASE)
async def release_will_call(request: web.Request) -> web.Response:
    """Hand the order over after its ID check: picked up now, and its admitting tickets'
    codes in the answer. Already picked up: 409 naming who and when, unless reprint is true."""
    p = await require_admin(request, "ticket.manage")
    body = Fields(await read_json_object(request), RELEASE).body
    reprint = body.get("reprint")
    if reprint is not None and not isinstance(reprint, bool):
        raise ApiError(400, "invalid_field", "Field reprint must be true or false.")
    event = await scoped_event(request, p)
    done = await release(request, p, event, path_order_ref(request), reprint=bool(reprint))
    tickets = [{**rows.TICKET.json(t), "credential": code} for t, code in done.codes]
    return web.json_response({"will_call": rows.WILL_CALL.json(done.hold), "tickets": tickets})
