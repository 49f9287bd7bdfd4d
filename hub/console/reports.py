"""Console reports: an event's conflicts (the reconciliation report), its comps against the
limit, and the audit log.

Each reads what its admin API reads, with the same permission and scoping: the conflicts are
GET /api/admin/events/{id}/reconciliation (reconciled first, so every stored scan is in it),
the audit log is GET /api/admin/audit (filters, newest first, a page at a time).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.admin_routes import text_filter
from hub.auth import Principal
from hub.console.events import (
    DISPLAY,
    asked_page,
    comps_used,
    event_view,
    page_links,
    scoped_event,
)
from hub.console.render import render
from hub.console.session import console_user, flash
from hub.console.tickets import CHOICES, comp_from_form
from hub.errors import ApiError
from hub.keys import CLOCK, DB
from hub.reconcile import Outcome
from hub.reconcile_routes import RECONCILER
from hub.store_base import Row
from hub.store_console_reports import OUTCOMES
from hub.store_search import AUDIT, MAX_FILTER, AuditQuery

routes = web.RouteTableDef()
# The reconciled scans the conflicts page lists one by one: those that did not simply count.
LISTED_OUTCOMES = (str(Outcome.DUPLICATE), str(Outcome.ERROR))


def _default_event(events: list[Row], now_ms: int) -> Row | None:
    """The event a venue is most likely looking at: the last one to have started, else the
    first to come."""
    started = [e for e in events if e["start_ms"] <= now_ms]
    return started[-1] if started else (events[0] if events else None)


@routes.get("/conflicts")
async def conflicts(request: web.Request) -> web.Response:
    """An event's reconciliation report: scans per outcome, every offline double entry with
    the scan that won and the duplicate, what the ticketing backend answered when it did not
    simply agree, and the scans that did not count, a page at a time."""
    p, page = await console_user(request, "ticket.read")
    venue, now = page["venue"], request.app[CLOCK]()
    context: dict[str, Any] = {
        "title": "Conflicts",
        "events": [],
        "event": None,
        "counts": {},
        "double_entries": [],
        "backend_answers": [],
        "outcomes": [],
        "device_names": {},
        "next_url": None,
        "first_url": None,
    }
    if venue is not None:
        venue_id = venue["id"]
        context["events"] = await request.app[DB].run(
            lambda s: s.list_events(p.tenant_id, p.venue_id, venue_id)
        )
    wanted = request.query.get("event")
    event = (
        await scoped_event(request, p, wanted) if wanted else _default_event(context["events"], now)
    )
    if event is not None:
        context |= await _reconciliation(request, p, event)
    return render(request, "reports_conflicts.html", page | DISPLAY | context)


async def _reconciliation(request: web.Request, p: Principal, event: Row) -> dict[str, Any]:
    ask = asked_page(request, OUTCOMES)
    event_id, db = event["id"], request.app[DB]
    await request.app[RECONCILER].catch_up(event_id, request.app[CLOCK]())
    counts, doubles, upstream, listed, devices = await db.run(
        lambda s: (
            s.outcome_counts(event_id),
            s.double_entries(event_id),
            s.upstream_answers(event_id),
            s.scan_outcome_page(event_id, LISTED_OUTCOMES, ask),
            s.list_devices(p.tenant_id, p.venue_id),
        )
    )
    return {
        "event": event_view(event),
        "counts": {str(o): counts.get(str(o), 0) for o in Outcome},
        "double_entries": [{**row, **json.loads(row["detail_json"])} for row in doubles],
        "backend_answers": [{**row, "answer": json.loads(row["answer_json"])} for row in upstream],
        "outcomes": listed.rows,
        "device_names": {d["id"]: d["name"] for d in devices},
        **page_links(request, listed.next_cursor),
    }


@routes.get("/events/{event_id}/comps")
async def comps(request: web.Request) -> web.Response:
    """An event's comps by reason and by who issued them, against its comp limit; with the
    form to issue one when the role may."""
    p, page = await console_user(request, "ticket.read")
    event = await scoped_event(request, p, request.match_info["event_id"])
    return await comps_page(request, p, page, event)


async def comps_page(
    request: web.Request,
    p: Principal,
    page: dict[str, Any],
    event: Row,
    problem: str | None = None,
    status: int = 200,
) -> web.Response:
    event_id = event["id"]
    rows, types = await request.app[DB].run(
        lambda s: (s.comp_counts(event_id), s.ticket_types_of(event_id))
    )
    by_reason: dict[str, int] = {}
    for row in rows:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["comps"]
    context = {
        "title": f"Comps · {event['name']}",
        "event": event_view(event),
        "rows": rows,
        "by_reason": by_reason,
        "comps_used": comps_used(rows),
        "types": types,
        "problem": problem,
    }
    return render(request, "reports_comps.html", page | DISPLAY | CHOICES | context, status=status)


@routes.post("/events/{event_id}/comps")
async def issue_comp(request: web.Request) -> web.Response:
    """Issue a comp from the report's form (the API's comp_ticket); the comp is shown next."""
    p, page = await console_user(request, "ticket.manage")
    event = await scoped_event(request, p, request.match_info["event_id"])
    try:
        message, ticket_id = await comp_from_form(request, p, event, await request.post())
    except ApiError as exc:
        return await comps_page(request, p, page, event, exc.message, exc.status)
    flash(request, message)
    raise web.HTTPSeeOther(f"/tickets/{ticket_id}")


@routes.get("/audit")
async def audit(request: web.Request) -> web.Response:
    """The audit log the user may see, newest first, a page at a time: of one action, of one
    target, from a time (at or after) until one (before), in the venue's time zone."""
    p, page = await console_user(request, "audit.read")
    venue = page["venue"]
    timezone = venue["timezone"] if venue is not None else "UTC"
    query = request.query
    context: dict[str, Any] = {
        "title": "Audit log",
        "timezone": timezone,
        "filters": {name: query.get(name, "") for name in ("action", "target", "since", "until")},
        "entries": [],
        "problem": None,
        "next_url": None,
        "first_url": None,
    }
    try:
        asked = AuditQuery(
            action=text_filter(query, "action") or None,
            target=text_filter(query, "target") or None,
            since_ms=_local_ms(query, "since", timezone),
            until_ms=_local_ms(query, "until", timezone),
        )
    except ApiError as exc:
        context["problem"] = exc.message
        return render(request, "reports_audit.html", page | context, status=exc.status)
    ask = asked_page(request, AUDIT)
    found = await request.app[DB].run(lambda s: s.audit_page(p.tenant_id, p.venue_id, asked, ask))
    context["entries"] = [{**row, "detail": json.loads(row["detail_json"])} for row in found.rows]
    context.update(page_links(request, found.next_cursor))
    return render(request, "reports_audit.html", page | context)


def _local_ms(query: Any, name: str, timezone: str) -> int | None:
    """A date and time as the form sends it (2026-05-01T18:30), on the venue's wall clock
    unless it names its own offset, as epoch ms; a 400 with a sentence otherwise."""
    given = (query.get(name) or "").strip()
    if not given:
        return None
    try:
        if len(given) > MAX_FILTER:
            raise ValueError(given)
        moment = datetime.fromisoformat(given)
    except ValueError:
        raise ApiError(
            400,
            "invalid_query",
            f"{name.capitalize()} must be a date and time like 2026-05-01T18:30.",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return int(moment.timestamp() * 1000)
