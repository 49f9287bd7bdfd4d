"""TicketToken's side as the hub's tests will meet it, no hub code: a real PostgreSQL holding
ticket-service's tables under the remediation plan's row-level security, payment-service's
refund and its signed webhook, and a real RabbitMQ with ticket-service's durable queue. If
these fail, a failing TicketToken scenario says nothing about the hub."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import psycopg
import pytest
from aiohttp import web
from psycopg.rows import dict_row

from demo.local_hub import free_port
from tests.rabbitmq_node import RabbitNode, TicketServicePublisher
from tests.tickettoken_db import CONNECTOR, OWNER, TicketTokenDb, set_tenant
from tests.tickettoken_webhooks import (
    DEFAULT_SECRET,
    RECEIVER_SEPARATOR,
    WebhookSender,
    order_paid_body,
)

pytestmark = pytest.mark.tickettoken

TENANT_TABLES = ("tenants", "venues", "events", "ticket_types", "orders", "tickets")
CONNECTOR_TABLES = ("venues", "events", "ticket_types", "orders", "tickets")


def connector(db: TicketTokenDb, dsn: str | None = None) -> psycopg.Connection[dict[str, Any]]:
    """A connection as the hub's connector would open it: TCP, password, no superpowers."""
    return psycopg.connect(dsn or db.connector_dsn, row_factory=dict_row, connect_timeout=10)


def visible(conn: psycopg.Connection[dict[str, Any]], table: str) -> int:
    row = conn.execute(f"SELECT count(*) AS n FROM {table}".encode()).fetchone()
    assert row is not None
    return int(row["n"])


def test_tables_are_owned_and_held_to_row_level_security(tickettoken_db: TicketTokenDb) -> None:
    tables = tickettoken_db.admin(
        "SELECT relname, relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) AS owner "
        "FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'",
        [list(TENANT_TABLES)],
    )
    assert {t["relname"] for t in tables} == set(TENANT_TABLES)
    for table in tables:
        assert table["relrowsecurity"] and table["relforcerowsecurity"], table
        assert table["owner"] == OWNER, table
    roles = {
        r["rolname"]: r
        for r in tickettoken_db.admin(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY(%s)",
            [[OWNER, CONNECTOR]],
        )
    }
    for name in (OWNER, CONNECTOR):
        assert not roles[name]["rolsuper"] and not roles[name]["rolbypassrls"], roles[name]


def test_status_spellings_and_the_updated_at_trigger(tickettoken_db: TicketTokenDb) -> None:
    event = tickettoken_db.create_tenant("Spellings")
    batch = tickettoken_db.insert_tickets(event, 2)
    first = tickettoken_db.ticket(event.tenant_id, batch.ticket_ids[0])
    assert first is not None and first["status"] == "SOLD"
    for status in ("sold", "TRANSFERRED", "transferred", "CHECKED_IN", "USED", "available"):
        assert tickettoken_db.set_status(event.tenant_id, batch.ticket_ids[:1], status) == 1
    with pytest.raises(psycopg.errors.CheckViolation):
        tickettoken_db.set_status(event.tenant_id, batch.ticket_ids[:1], "Bogus")
    # qrService's check-in names no updated_at: the trigger moves it all the same.
    tickettoken_db.check_in(event.tenant_id, batch.ticket_ids[1])
    used = tickettoken_db.ticket(event.tenant_id, batch.ticket_ids[1])
    assert used is not None and used["status"] == "USED" and used["validated_at"] is not None
    assert used["updated_at"] > used["created_at"]


def test_the_connector_sees_and_writes_only_its_tenants_rows(
    tickettoken_db: TicketTokenDb,
) -> None:
    a = tickettoken_db.create_tenant("A")
    b = tickettoken_db.create_tenant("B")
    a_tickets = tickettoken_db.insert_tickets(a, 3).ticket_ids
    b_tickets = tickettoken_db.insert_tickets(b, 2).ticket_ids

    with connector(tickettoken_db) as conn:
        # No tenant set: nothing at all, not an error.
        for table in CONNECTOR_TABLES:
            assert visible(conn, table) == 0, table
        conn.rollback()
        # ticket-service's own setting name is read by no policy.
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(a.tenant_id),))
            assert visible(conn, "tickets") == 0

        with conn.transaction(), conn.cursor() as cur:
            set_tenant(cur, a.tenant_id)
            ids = {r["id"] for r in cur.execute("SELECT id FROM tickets").fetchall()}
            assert ids == set(a_tickets)
            events = cur.execute("SELECT id FROM events").fetchall()
            assert [r["id"] for r in events] == [a.event_id]
            assert visible(conn, "ticket_types") == 1 and visible(conn, "orders") == 1
            # B's rows are out of reach even by id.
            cur.execute(
                "UPDATE tickets SET validated_at = now(), status = 'USED' WHERE id = %s",
                (b_tickets[0],),
            )
            assert cur.rowcount == 0
            # An entry on A's ticket: the columns it may set.
            cur.execute(
                "UPDATE tickets SET validated_at = now(), status = 'USED', scan_count = 1, "
                "first_scanned_at = now(), last_scanned_at = now() WHERE id = %s",
                (a_tickets[0],),
            )
            assert cur.rowcount == 1

        for forbidden in (
            "UPDATE tickets SET user_id = gen_random_uuid()",
            "UPDATE tickets SET tenant_id = gen_random_uuid()",
            "DELETE FROM tickets",
            "INSERT INTO tickets (tenant_id, event_id) SELECT tenant_id, event_id FROM tickets",
            "SELECT count(*) FROM tenants",
        ):
            with (
                pytest.raises(psycopg.errors.InsufficientPrivilege),
                conn.transaction(),
                conn.cursor() as cur,
            ):
                set_tenant(cur, a.tenant_id)
                cur.execute(forbidden.encode())

        # The policy's cast: once this session set the tenant transaction-locally, the
        # setting reads '' afterwards, and ''::uuid is an error rather than no rows.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation), conn.transaction():
            visible(conn, "tickets")

    untouched = tickettoken_db.ticket(b.tenant_id, b_tickets[0])
    assert untouched is not None and untouched["validated_at"] is None
    entered = tickettoken_db.ticket(a.tenant_id, a_tickets[0])
    assert entered is not None and entered["status"] == "USED" and entered["scan_count"] == 1

    # A role of its own per tenant works the same (another login in the connector group).
    with connector(tickettoken_db, tickettoken_db.add_connector_role("connector_b")) as conn:
        with conn.transaction(), conn.cursor() as cur:
            set_tenant(cur, b.tenant_id)
            ids = {r["id"] for r in cur.execute("SELECT id FROM tickets").fetchall()}
        assert ids == set(b_tickets)


def test_ten_thousand_tickets_go_in_within_seconds(tickettoken_db: TicketTokenDb) -> None:
    event = tickettoken_db.create_tenant("Big", ticket_types={"GA": "30.00", "VIP": "90.00"})
    started = time.monotonic()
    batch = tickettoken_db.insert_tickets(event, 10_000)
    elapsed = time.monotonic() - started
    print(f"tickettoken_insert_10k_s={elapsed:.2f}")
    assert elapsed < 10
    with connector(tickettoken_db) as conn, conn.transaction(), conn.cursor() as cur:
        set_tenant(cur, event.tenant_id)
        row = cur.execute(
            "SELECT count(*) AS n, count(DISTINCT updated_at) AS stamps, "
            "min(ticket_type_id::text) AS type FROM tickets"
        ).fetchone()
    assert row is not None
    # One transaction: 10,000 rows share one updated_at (a watermark's ties).
    assert (row["n"], row["stamps"]) == (10_000, 1)
    assert row["type"] == str(event.ticket_types["GA"])
    assert len(set(batch.ticket_ids)) == 10_000


def test_postgres_stopped_and_started_keeps_its_data(tickettoken_db: TicketTokenDb) -> None:
    event = tickettoken_db.create_tenant("Outage")
    batch = tickettoken_db.insert_tickets(event, 5)
    try:
        tickettoken_db.stop()
        assert not tickettoken_db.running
        with pytest.raises(psycopg.OperationalError):
            connector(tickettoken_db).close()
    finally:
        started = time.monotonic()
        tickettoken_db.start()
        print(f"tickettoken_pg_restart_s={time.monotonic() - started:.2f}")
    assert len(tickettoken_db.tickets(event.tenant_id, batch.ticket_ids)) == 5
    with connector(tickettoken_db) as conn, conn.transaction(), conn.cursor() as cur:
        set_tenant(cur, event.tenant_id)
        assert visible(conn, "tickets") == 5


def test_a_late_commit_carries_an_earlier_updated_at(tickettoken_db: TicketTokenDb) -> None:
    event = tickettoken_db.create_tenant("Late")
    late, early = tickettoken_db.insert_tickets(event, 2).ticket_ids
    with tickettoken_db.late_commit(event.tenant_id, [late]) as late_at:
        time.sleep(0.02)
        tickettoken_db.set_status(event.tenant_id, [early], "CANCELLED")
        seen = {r["id"]: r for r in tickettoken_db.tickets(event.tenant_id)}
        assert seen[early]["status"] == "CANCELLED" and seen[early]["updated_at"] > late_at
        assert seen[late]["status"] == "SOLD"  # not committed yet
    after = tickettoken_db.ticket(event.tenant_id, late)
    assert after is not None and after["status"] == "CANCELLED"
    assert after["updated_at"] == late_at < seen[early]["updated_at"]


def test_transfer_as_transfer_service_does_it(tickettoken_db: TicketTokenDb) -> None:
    event = tickettoken_db.create_tenant("Transfer")
    batch = tickettoken_db.insert_tickets(event, 1)
    newcomer = uuid.uuid4()
    done = tickettoken_db.transfer(event.tenant_id, batch.ticket_ids[0], newcomer, reason="gift")
    assert done.from_user_id == batch.user_ids[0]
    row = tickettoken_db.ticket(event.tenant_id, batch.ticket_ids[0])
    assert row is not None
    assert (row["status"], row["user_id"]) == ("TRANSFERRED", newcomer)
    assert row["owner_id"] == batch.user_ids[0]  # transferService leaves owner_id as it was
    assert row["transfer_history"][0]["toUserId"] == str(newcomer)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A bare HTTP endpoint that keeps what it is sent: (url, [(headers, raw body)])."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def keep(request: web.Request) -> web.Response:
        seen.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.json_response({"processed": True})

    app = web.Application()
    app.router.add_post("/{tail:.*}", keep)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_a_refund_cancels_and_its_webhook_is_signed_as_payment_service_signs(
    tickettoken_db: TicketTokenDb,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, seen = receiver
    event = tickettoken_db.create_tenant("Refunds")
    batch = tickettoken_db.insert_tickets(event, 3)
    tickettoken_db.check_in(event.tenant_id, batch.ticket_ids[2])
    before = tickettoken_db.ticket(event.tenant_id, batch.ticket_ids[0])
    assert before is not None

    refund = tickettoken_db.refund(event.tenant_id, batch.ticket_ids, order_id=batch.order_id)
    assert refund.cancelled == batch.ticket_ids[:2]  # cancel-batch skips USED tickets
    rows = {r["id"]: r for r in tickettoken_db.tickets(event.tenant_id, batch.ticket_ids)}
    cancelled = rows[batch.ticket_ids[0]]
    assert cancelled["status"] == "CANCELLED" and cancelled["updated_at"] > before["updated_at"]
    assert cancelled["metadata"]["refund"]["refundId"] == refund.refund_id
    assert rows[batch.ticket_ids[2]]["status"] == "USED"

    sent_at_ms = time.time_ns() // 1_000_000
    delivery = await WebhookSender().apost(
        url + "/api/v1/webhooks/refund-completed",
        refund.webhook_body,
        idempotency_key=refund.idempotency_key,
    )
    assert delivery.status == 200
    ((headers, raw),) = seen
    assert raw == delivery.request.body
    timestamp, nonce = headers["x-webhook-timestamp"], headers["x-webhook-nonce"]
    # Milliseconds since the epoch, as Date.now().toString().
    assert timestamp.isdigit() and abs(int(timestamp) - sent_at_ms) < 5_000
    assert str(uuid.UUID(nonce)) == nonce  # crypto.randomUUID()
    # The sender's scheme: hex HMAC-SHA256 over `timestamp.nonce.body`, worked out here.
    key = DEFAULT_SECRET.encode()
    dotted = hmac.new(key, f"{timestamp}.{nonce}.".encode() + raw, hashlib.sha256).hexdigest()
    colons = hmac.new(key, f"{timestamp}:{nonce}:".encode() + raw, hashlib.sha256).hexdigest()
    assert headers["x-internal-signature"] == dotted != colons
    # The receiver's JSON.stringify(req.body) gives back the very bytes that were signed.
    body = json.loads(raw)
    assert json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() == raw
    assert headers["x-idempotency-key"] == body["idempotencyKey"] == f"refund-{refund.refund_id}"
    assert body["ticketIds"] == [str(t) for t in batch.ticket_ids]
    assert body["tenantId"] == str(event.tenant_id) and body["status"] == "succeeded"

    # What ticket-service's receiver checks instead (colons), when a test needs that spelling.
    paid = order_paid_body(
        order_id=batch.order_id,
        payment_id="pi_1",
        user_id=batch.user_ids[0],
        event_id=event.event_id,
        amount=7500,
        ticket_quantity=3,
    )
    colon_request = WebhookSender(separator=RECEIVER_SEPARATOR).sign(
        url, paid, idempotency_key=paid["idempotencyKey"]
    )
    stamp, once = (colon_request.headers[h] for h in ("x-webhook-timestamp", "x-webhook-nonce"))
    signed = f"{stamp}:{once}:"
    assert (
        colon_request.headers["x-internal-signature"]
        == hmac.new(key, signed.encode() + colon_request.body, hashlib.sha256).hexdigest()
    )


async def test_a_purchase_message_reaches_a_consumer_across_a_broker_restart(
    rabbitmq: RabbitNode,
) -> None:
    queue = f"ticket.events.{uuid.uuid4().hex[:8]}"  # each test its own queue
    user, event_id, tickets = uuid.uuid4(), uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    async with TicketServicePublisher(rabbitmq.amqp_url, queue) as publisher:
        purchased = await publisher.tickets_purchased(
            user_id=user, event_id=event_id, ticket_ids=tickets
        )
        transferred = await publisher.ticket_transferred(
            ticket_id=tickets[0], from_user_id=user, to_user_id=uuid.uuid4()
        )

    connection = await aio_pika.connect(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        message = await declared.get(timeout=5)
        assert message is not None
        assert json.loads(message.body) == purchased
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type is None  # sendToQueue sets none
        await message.ack()

    # The durable queue and its persistent message outlive the broker.
    rabbitmq.stop()
    started = time.monotonic()
    rabbitmq.start()
    print(f"rabbitmq_restart_s={time.monotonic() - started:.2f}")
    connection = await aio_pika.connect(rabbitmq.amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        message = await declared.get(timeout=5)
        assert message is not None and json.loads(message.body) == transferred
        await message.ack()
        assert await declared.get(fail=False) is None
