"""The admin API of backends (the same as `gate-hub backend`): add, list, status, remove,
pull now. A token goes in once and never comes out: answers show where a backend is, never
how it signs in."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import asdict
from typing import Any

from aiohttp import web

from hub import api_rows as rows
from hub.auth import Principal, require_admin, scoped_venue
from hub.backends.connect import BadBackend, NewBackend, connect
from hub.backends.kinds import PRETIX, TICKETTOKEN
from hub.backends.runner import RUNNER
from hub.backends.seam import BackendError
from hub.backends.webhooks import verify_webhook
from hub.errors import ApiError, Body, Fields, accepts, read_json_object, text, texts
from hub.keys import CLOCK, DB, SECRETS
from hub.schema import BACKEND_KINDS
from hub.store_api import ConnectedBackend
from hub.store_backends import OutboxState
from hub.store_base import Row

routes = web.RouteTableDef()
log = logging.getLogger("hub")

BACKEND = Body(
    name=text(100),
    venue_id=text(64),
    kind=text(required=False, choices=BACKEND_KINDS),
    url=text(300, pattern=r"^(https?|postgres(ql)?)://\S+$"),
    init_token=text(190, required=False),  # pretix: a device's initialisation token
    api_token=text(190, required=False),  # pretix: or a team API token, with organizer
    organizer=text(100, required=False),
    events=texts(),
    tt_tenant=text(64, required=False),  # tickettoken: the tenant's uuid
    tt_venue=text(64, required=False),
    db_password=text(200, required=False),
    webhook_secret=text(200, required=False),
    webhook_separator=text(required=False, choices=(".", ":")),
    amqp_url=text(300, required=False, pattern=r"^amqps?://\S+$"),
    queue=text(200, required=False),
)


def backend_json(row: Row, state: OutboxState | None = None) -> dict[str, Any]:
    """The backend, with its push backlog when `state` is given."""
    out = rows.BACKEND.json(row)
    if state is not None:
        out["outbox"] = rows.OUTBOX.json(asdict(state))
    return out


async def _scoped_backend(request: web.Request, p: Principal) -> Row:
    backend_id = request.match_info["backend_id"]
    row = await request.app[DB].run(lambda s: s.get_backend(backend_id))
    visible = (
        row is not None
        and row["tenant_id"] == p.tenant_id
        and (p.venue_id is None or row["venue_id"] in (None, p.venue_id))
    )
    if row is None or not visible:
        raise ApiError(404, "not_found", "No such backend.")
    return row


@routes.get("/api/admin/backends")
async def list_backends(request: web.Request) -> web.Response:
    p = await require_admin(request, "backend.read")
    rows = await request.app[DB].run(lambda s: s.list_backends(p.tenant_id, p.venue_id))
    return web.json_response({"backends": [backend_json(r) for r in rows]})


@routes.get("/api/admin/backends/{backend_id}")
async def backend_status(request: web.Request) -> web.Response:
    p = await require_admin(request, "backend.read")
    row = await _scoped_backend(request, p)
    state = await request.app[DB].run(lambda s: s.outbox_state(row["id"]))
    return web.json_response(backend_json(row, state))


@routes.post("/api/admin/backends")
@accepts(BACKEND)
async def add_backend(request: web.Request) -> web.Response:
    p = await require_admin(request, "backend.manage")
    f = Fields(await read_json_object(request), BACKEND)
    venue = await scoped_venue(request, p, f.need_text("venue_id"))
    kind = f.text("kind") or PRETIX
    new = NewBackend(
        kind=kind,
        url=f.need_text("url"),
        events=tuple(f.text_list("events")),
        init_token=f.text("init_token"),
        api_token=f.text("api_token"),
        organizer=f.text("organizer"),
        tt_tenant=f.text("tt_tenant"),
        tt_venue=f.text("tt_venue"),
        db_password=f.text("db_password"),
        webhook_secret=f.text("webhook_secret"),
        webhook_separator=f.text("webhook_separator") or ".",
        amqp_url=f.text("amqp_url"),
        queue=f.text("queue") or "ticket.events",
    )
    try:
        settings, token = await connect(new, venue["timezone"], lambda name: name)
    except BadBackend as exc:
        raise ApiError(400, "invalid_backend", f"{exc}.") from None
    except BackendError as exc:
        raise ApiError(502, "backend_unreachable", f"{exc}; nothing was added.") from None
    box = request.app[SECRETS]
    name, now = f.need_text("name"), request.app[CLOCK]()
    backend = ConnectedBackend(
        venue["id"], kind, name, settings, lambda backend_id: box.seal(token, backend_id)
    )
    try:
        row = await request.app[DB].run(
            lambda s: s.create_backend(p.tenant_id, backend, p.actor, now)
        )
    except sqlite3.IntegrityError:
        raise ApiError(409, "duplicate_name", f"A backend {name} exists already.") from None
    return web.json_response(backend_json(row), status=201)


@routes.delete("/api/admin/backends/{backend_id}")
async def remove_backend(request: web.Request) -> web.Response:
    p = await require_admin(request, "backend.manage")
    row = await _scoped_backend(request, p)
    now = request.app[CLOCK]()
    done = await request.app[DB].run(lambda s: s.remove_backend(row, p.actor, now))
    return web.json_response({"removed": row["id"], **done})


@routes.post("/api/admin/backends/{backend_id}/pull")
async def pull_now(request: web.Request) -> web.Response:
    p = await require_admin(request, "backend.manage")
    row = await _scoped_backend(request, p)
    runner = request.app.get(RUNNER)
    if runner is None or not runner.request_pull(row["id"]):
        raise ApiError(409, "backend_not_running", "This hub is not running that backend now.")
    return web.json_response({"pull": "requested"}, status=202)


@routes.post("/api/backends/{backend_id}/webhook/{topic}")
async def tickettoken_webhook(request: web.Request) -> web.Response:
    """TicketToken's payment-service posts here (order.paid, refund.completed, ...): a signed
    nudge to pull that tenant's changes now. Checked in constant time before anything is
    recorded; a forged, stale or replayed one changes nothing."""
    backend_id = request.match_info["backend_id"]
    body = await request.read()
    row, sealed = await request.app[DB].run(
        lambda s: (s.get_backend(backend_id), s.backend_secret(backend_id))
    )
    if row is None or row["kind"] != TICKETTOKEN or sealed is None:
        raise ApiError(404, "not_found", "No such backend.")
    secrets = json.loads(request.app[SECRETS].open(sealed, backend_id))
    separator = json.loads(row["settings_json"]).get("webhook_separator") or "."
    secret = str(secrets.get("webhook_secret") or "").encode()
    now = request.app[CLOCK]()
    problem = (
        verify_webhook(secret, separator, request.headers, body, now)
        if secret
        else (
            "missing_signature",
            "This backend takes no webhooks (no webhook secret).",
        )
    )
    if problem is not None:
        log.warning("webhook refused", extra={"backend": row["name"], "code": problem[0]})
        raise ApiError(401, *problem)
    nonce = request.headers["x-webhook-nonce"]
    key = request.headers.get("x-idempotency-key")
    taken = await request.app[DB].run(lambda s: s.record_webhook(backend_id, nonce, key, now))
    if taken == "replayed":
        log.warning("webhook refused", extra={"backend": row["name"], "code": "replayed_nonce"})
        raise ApiError(409, "replayed_nonce", "This webhook was received already.")
    if taken == "new":
        runner = request.app.get(RUNNER)
        if runner is not None:
            runner.request_pull(backend_id)
    return web.json_response({"status": "accepted" if taken == "new" else "duplicate"}, status=202)
