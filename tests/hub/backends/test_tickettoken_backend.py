"""The hub's TicketToken backend against a real PostgreSQL holding TicketToken's tables under
row-level security (tests/tickettoken_db.py) and a real RabbitMQ node: pulls into a real hub
database (full, incremental, late commits, deletions, both spellings), entries written back
once, tenants kept apart, the queue as a nudge acknowledged after the pull."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from hub.backends.tickettoken import TicketTokenBackend
from hub.storage import HubStore
from hub.store_api import DeviceScans
from tests.hub_fixtures import Hub, store_backend, store_device
from tests.rabbitmq_node import RabbitNode, publish_once, tickets_purchased_message
from tests.tickettoken_db import TicketTokenDb

pytestmark = pytest.mark.tickettoken

NOW = 1_790_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HubStore]:
    s = HubStore(tmp_path / "hub.sqlite")
    yield s
    s.close()


def connector(db: TicketTokenDb, tenant: uuid.UUID, **settings: Any) -> TicketTokenBackend:
    """The adapter as `backend add` sets it: the address without the password, which is
    sealed apart."""
    parts = urlsplit(db.connector_dsn)
    password = parts.password
    bare = parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}")
    dsn = {"dsn": urlunsplit(bare), "tenant_id": str(tenant), "timezone": "Europe/London"}
    return TicketTokenBackend({**dsn, **settings}, json.dumps({"password": password}))


def hub_backend(store: HubStore, name: str = "tt") -> dict[str, Any]:
    return store_backend(
        store, f"t-{name}", NOW, kind="tickettoken", name=name, timezone="Europe/London"
    )


def pull(store: HubStore, row: dict[str, Any], backend: TicketTokenBackend) -> Any:
    async def once() -> Any:
        return await backend.pull(store.backend_cursor(row["id"]))

    return store.apply_pull(row, asyncio.run(once()), NOW)


def status(store: HubStore, ticket_id: uuid.UUID) -> str:
    return str(store.db["tickets"].get(str(ticket_id))["status"])


def test_pulls_full_then_incremental_with_late_commits_and_deletions(
    tickettoken_db: TicketTokenDb, store: HubStore
) -> None:
    db = tickettoken_db
    event = db.create_tenant("Riverside Events")
    batch = db.insert_tickets(event, 200)
    backend = connector(db, event.tenant_id)
    row = hub_backend(store)
    first = pull(store, row, backend)
    assert first.events == 1 and first.tickets_added == 200
    hub_event = store.db["events"].get(str(event.event_id))  # its own uuid: codes carry it
    assert hub_event["timezone"] == "Europe/London"
    assert status(store, batch.ticket_ids[0]) == "SOLD"

    db.set_status(event.tenant_id, batch.ticket_ids[1:2], "sold")  # the model's spelling
    refund = db.refund(event.tenant_id, batch.ticket_ids[2:4])
    assert refund.cancelled == batch.ticket_ids[2:4]
    with db.late_commit(event.tenant_id, batch.ticket_ids[4:5]):
        db.set_status(event.tenant_id, batch.ticket_ids[5:6], "REFUNDED")
        middle = pull(store, row, backend)  # sees the refund, not the uncommitted change
    assert status(store, batch.ticket_ids[2]) == "CANCELLED"
    assert status(store, batch.ticket_ids[5]) == "REFUNDED"
    assert status(store, batch.ticket_ids[4]) == "SOLD"
    assert middle.tickets_changed >= 3
    later = pull(store, row, backend)  # the late commit's updated_at is older: still read
    assert status(store, batch.ticket_ids[4]) == "CANCELLED" and later.tickets_changed >= 1
    quiet = pull(store, row, backend)
    assert quiet.tickets_added == quiet.tickets_changed == 0

    db.delete_tickets(event.tenant_id, batch.ticket_ids[6:7])
    assert pull(store, row, backend).tickets_revoked == 0  # incremental: cannot see deletes
    full = pull(store, row, connector(db, event.tenant_id))  # a new cursor-less pass
    del full
    store.db.execute(
        "UPDATE backends SET cursor_json = json_set(cursor_json, '$.full_ms', 0) WHERE id = ?",
        [row["id"]],
    )
    store.db.conn.commit()
    assert pull(store, row, backend).tickets_revoked == 1
    assert status(store, batch.ticket_ids[6]) == "REVOKED"
    asyncio.run(backend.aclose())


def test_a_pull_right_after_a_bulk_change_reads_only_what_the_last_one_could_not_see(
    tickettoken_db: TicketTokenDb, store: HubStore
) -> None:
    """Within the late-commit minute, a bulk change the last pull read is not read again
    (before: every pull of that minute read all of it); a change since is."""
    db = tickettoken_db
    event = db.create_tenant("On Sale Events")
    batch = db.insert_tickets(event, 300)
    backend = connector(db, event.tenant_id)
    row = hub_backend(store)
    assert pull(store, row, backend).tickets_added == 300
    cursor = store.backend_cursor(row["id"])

    async def read(cursor: dict[str, Any]) -> list[str]:
        return [t.ref for t in (await backend.pull(cursor)).tickets]

    assert asyncio.run(read(cursor)) == []
    db.refund(event.tenant_id, batch.ticket_ids[:1])
    assert asyncio.run(read(cursor)) == [str(batch.ticket_ids[0])]
    asyncio.run(backend.aclose())


def test_entries_are_written_back_once_and_tenants_stay_apart(
    tickettoken_db: TicketTokenDb, store: HubStore
) -> None:
    db = tickettoken_db
    ours = db.create_tenant("Ours")
    theirs = db.create_tenant("Theirs")
    mine = db.insert_tickets(ours, 3).ticket_ids
    other = db.insert_tickets(theirs, 3).ticket_ids
    backend = connector(db, ours.tenant_id)
    row = hub_backend(store)
    assert pull(store, row, backend).tickets_added == 3  # never the other tenant's
    assert store.db["tickets"].count == 3
    device = store_device(store, row["tenant_id"], row["venue_id"], NOW)
    at = NOW - 60_000
    scans = [
        {"seq": 1, "ticket_id": str(mine[0]), "verdict": "admit", "reason": "admitted",
         "direction": "entry", "scanned_ms": at, "counted": 1},
        {"seq": 2, "ticket_id": str(mine[0]), "verdict": "deny", "reason": "already_admitted",
         "direction": "entry", "scanned_ms": at + 5000, "counted": 0},
    ]  # fmt: skip
    store.record_scans(DeviceScans(device, scans, deactivated=False), NOW)
    owed = store.owed_scans(row["id"], NOW, 50)
    for _ in range(2):  # a retry after a lost answer changes nothing
        outcomes = asyncio.run(backend.push(owed))
        assert all(o.done for o in outcomes), outcomes
    written = db.ticket(ours.tenant_id, mine[0])
    assert written is not None and written["status"] == "USED" and written["scan_count"] == 1
    assert int(written["validated_at"].timestamp() * 1000) == at
    assert written["first_scanned_at"] == written["last_scanned_at"] == written["validated_at"]
    # a push naming the other tenant's ticket finds nothing there and touches nothing
    forged = [dataclasses.replace(o, ticket_ref=str(other[0])) for o in owed[:1]]
    (answer,) = asyncio.run(backend.push(forged))
    assert answer.done and answer.answer["reason"] == "unknown_ticket"
    untouched = db.admin("SELECT validated_at, scan_count FROM tickets WHERE id = %s", [other[0]])
    assert untouched == [{"validated_at": None, "scan_count": 0}]
    asyncio.run(backend.aclose())


def test_a_queue_message_is_acknowledged_only_after_the_pull(
    tickettoken_db: TicketTokenDb, rabbitmq: RabbitNode
) -> None:
    event = tickettoken_db.create_tenant("Queued")
    queue = f"ticket.events.{uuid.uuid4().hex[:6]}"
    backend = connector(tickettoken_db, event.tenant_id, amqp_url=rabbitmq.amqp_url, queue=queue)
    answers = [("the database is away", None), (None, None)]  # a failed pull, then a good one
    calls: list[int] = []

    async def run() -> None:
        async def pulled() -> str | None:
            calls.append(1)
            return answers[len(calls) - 1][0] if len(calls) <= len(answers) else None

        listening = asyncio.create_task(backend.listen(pulled))
        await asyncio.sleep(1.0)
        message = tickets_purchased_message(user_id=uuid.uuid4(), event_id=event.event_id,
                                            ticket_ids=[uuid.uuid4()])  # fmt: skip
        await asyncio.to_thread(publish_once, rabbitmq.amqp_url, message, queue)
        for _ in range(100):
            if len(calls) >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

    asyncio.run(run())
    assert len(calls) == 2  # nacked after the failed pull, delivered again, then acked
    left = rabbitmq.ctl("list_queues", "name", "messages")
    assert f"{queue}\t0" in left, left


async def test_the_admin_api_adds_a_tickettoken_backend_without_showing_its_secrets(
    tickettoken_db: TicketTokenDb, hub: Hub
) -> None:
    event = tickettoken_db.create_tenant("Api")
    parts = urlsplit(tickettoken_db.connector_dsn)
    bare = urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))
    body = {
        "name": "tt",
        "venue_id": hub.a.venue_id,
        "kind": "tickettoken",
        "url": bare,
        "tt_tenant": str(event.tenant_id),
        "db_password": parts.password,
        "webhook_secret": "whsec-0123456789",
    }
    admin = hub.auth(hub.a.admin_token)
    made = await hub.client.post("/api/admin/backends", json=body, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["url"] == f"{parts.hostname}:{parts.port}/{parts.path.lstrip('/')}"
    listed = await hub.client.get("/api/admin/backends", headers=admin)
    for answer in (made, listed):
        assert str(parts.password) not in answer.text and "whsec" not in answer.text
    leaky = {**body, "name": "tt2", "url": tickettoken_db.connector_dsn}
    refused = await hub.client.post("/api/admin/backends", json=leaky, headers=admin)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_backend"
    assert "holds a password" in refused.json()["error"]["message"]
    assert str(parts.password) not in refused.text
    wrong = {**body, "name": "tt3", "db_password": "wrong"}
    failed = await hub.client.post("/api/admin/backends", json=wrong, headers=admin)
    assert failed.status_code == 502 and "not reachable" in failed.json()["error"]["message"]
