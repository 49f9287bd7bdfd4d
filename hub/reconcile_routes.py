"""The reconciliation report for supervisors: how every scan of an event came out once all
gates' scans were merged, and every offline double entry (which gate won, which lost)."""

from __future__ import annotations

import json

from aiohttp import web

from hub.auth import require_admin
from hub.errors import not_found
from hub.keys import CLOCK, STORE
from hub.reconcile import Outcome
from hub.reconcile_ingest import Reconciler

RECONCILER = web.AppKey("reconciler", Reconciler)
routes = web.RouteTableDef()


@routes.get("/api/admin/events/{event_id}/reconciliation")
async def reconciliation(request: web.Request) -> web.Response:
    """Counts per outcome and the double entries. Scans with no outcome yet (online checks)
    are reconciled first, so the report covers every stored scan of the event."""
    p = require_admin(request, "ticket.read")
    store = request.app[STORE]
    event = store.get_event(request.match_info["event_id"], p.tenant_id, p.venue_id)
    if event is None:
        raise not_found("event")
    request.app[RECONCILER].catch_up(event["id"], request.app[CLOCK]())
    counts = store.outcome_counts(event["id"])
    entries = []
    for row in store.double_entries(event["id"]):
        detail = json.loads(row["detail_json"])
        entries.append(
            {
                "ticket_id": row["ticket_id"],
                "winner": detail["winner"],
                "duplicate": detail["duplicate"],
                "reason": detail["reason"],
                "detected_ms": row["detected_ms"],
                "resolved_ms": row["resolved_ms"],
            }
        )
    return web.json_response(
        {
            "event_id": event["id"],
            "counts": {str(o): counts.get(str(o), 0) for o in Outcome},
            "double_entries": entries,
        }
    )
