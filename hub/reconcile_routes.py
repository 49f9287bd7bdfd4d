"""The reconciliation report for supervisors: how every scan of an event came out once all
gates' scans were merged, every offline double entry (which gate won, which lost), and what
the ticketing backend answered when it did not simply agree."""

from __future__ import annotations

import json

from aiohttp import web

from hub.auth import require_admin
from hub.errors import not_found
from hub.keys import CLOCK, DB
from hub.reconcile import Outcome
from hub.reconcile_ingest import Reconciler

RECONCILER = web.AppKey("reconciler", Reconciler)
routes = web.RouteTableDef()


@routes.get("/api/admin/events/{event_id}/reconciliation")
async def reconciliation(request: web.Request) -> web.Response:
    """Counts per outcome and the double entries. Scans with no outcome yet (online checks)
    are reconciled first, so the report covers every stored scan of the event."""
    p = await require_admin(request, "ticket.read")
    event_id, db = request.match_info["event_id"], request.app[DB]
    event = await db.run(lambda s: s.get_event(event_id, p.tenant_id, p.venue_id))
    if event is None:
        raise not_found("event")
    await request.app[RECONCILER].catch_up(event["id"], request.app[CLOCK]())
    counts, doubles, upstream = await db.run(
        lambda s: (
            s.outcome_counts(event["id"]),
            s.double_entries(event["id"]),
            s.upstream_answers(event["id"]),
        )
    )
    entries = []
    for row in doubles:
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
            # What the ticketing backend said that was not a plain yes (pretix saw the
            # ticket used already, did not know the code...), per pushed scan.
            "backend_answers": [
                {
                    "scan_id": row["scan_id"],
                    "ticket_id": row["ticket_id"],
                    "device_id": row["device_id"],
                    "verdict": row["verdict"],
                    "answer": json.loads(row["answer_json"]),
                    "pushed_ms": row["pushed_ms"],
                }
                for row in upstream
            ],
        }
    )
