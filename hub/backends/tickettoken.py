"""TicketToken as a backend: its PostgreSQL read (and, for entries, written) through a role
held to its row-level security, its signed webhooks and its RabbitMQ queue as nudges.

A pull is one REPEATABLE READ transaction that sets the tenant (`app.current_tenant_id`, as
the remediation plan's policies read it, and `app.tenant_id`, as ticket-service's code sets
it) before it reads anything: the events of the venue, their ticket types and tickets. The
first pull and one an hour read everything and say so (`complete_events`), so a deleted
ticket is revoked at the hub; the others read tickets changed since a watermark. The
watermark is the database's own clock at the last pull's start minus LATE_COMMIT_S: a row
written by a transaction that began before that pull but committed after it carries an
earlier `updated_at` (ticket-service's trigger stamps the transaction's start), and equal
timestamps are read again rather than skipped; re-reading a row changes nothing at the hub.
Of that minute, only rows written by transactions still running at the last pull's snapshot,
or begun since, are read (their xmin against the snapshot's oldest running transaction): the
rows the last pull could not see, and never a bulk change it already read.

A push marks an admitted entry the way TicketToken reads "used": `validated_at` and
`first_scanned_at` at the earliest entry, `last_scanned_at` at the latest, `scan_count` at
least the entry's place among the ticket's entries (so a retry never counts twice), and a
single-entry ticket moves to USED (in the spelling its row uses). All in one transaction per
batch, with the tenant set, so a ticket of another tenant is simply not found.
TicketToken keeps no record of exits or denials: those are acknowledged as kept here only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import psycopg
from psycopg.rows import dict_row, tuple_row

from hub.backends.kinds import TICKETTOKEN as KIND
from hub.backends.seam import (
    BackendError,
    OwedScan,
    Pull,
    PushOutcome,
    UpstreamEvent,
    UpstreamTicket,
    UpstreamTicketType,
)
from manifests.model import TicketStatus

log = logging.getLogger("hub.backends")
LATE_COMMIT_S = 60  # a TicketToken transaction longer than this could be missed until the full pass
FULL_PASS_EVERY_MS = 3600 * 1000
CONNECT_TIMEOUT_S = 5
DEFAULT_EVENT_LENGTH = timedelta(hours=12)


def ticket_status(text: str) -> TicketStatus:
    """Both of TicketToken's spellings (the state machine's SOLD, the model's sold); a status
    we do not know is not admitted."""
    try:
        return TicketStatus(text.strip().upper())
    except ValueError:
        return TicketStatus.RESERVED


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class TicketTokenBackend:
    """One TicketToken tenant (and venue), as `gate-hub backend add --kind tickettoken` set."""

    kind = KIND

    def __init__(self, settings: Mapping[str, Any], secret: str, *, now_ms: Any = None) -> None:
        self.dsn = str(settings["dsn"])
        self.tenant = str(uuid.UUID(str(settings["tenant_id"])))
        self.venue = str(uuid.UUID(str(settings["venue_id"]))) if settings.get("venue_id") else None
        self.events = [uuid.UUID(str(e)) for e in settings.get("events") or ()]
        self.timezone = str(settings.get("timezone") or "UTC")
        secrets = json.loads(secret) if secret else {}
        self._password = secrets.get("password")
        self.webhook_secret = str(secrets.get("webhook_secret") or "").encode()
        self.separator = str(settings.get("webhook_separator") or ".")
        self.amqp_url = settings.get("amqp_url")
        self.queue = str(settings.get("queue") or "ticket.events")
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._now_ms = now_ms

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                password=self._password,
                connect_timeout=CONNECT_TIMEOUT_S,
                row_factory=dict_row,
                application_name="venue-gate hub",
            )
        except psycopg.OperationalError as exc:
            raise BackendError(
                f"TicketToken's database is not reachable ({_first_line(exc)})"
            ) from None
        return self._conn

    async def _tenant(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        await conn.execute(
            "SELECT set_config('app.current_tenant_id', %s, true),"
            " set_config('app.tenant_id', %s, true)",
            [self.tenant, self.tenant],
        )

    async def check(self) -> None:
        """The role reaches the tenant's rows: BackendError with a sentence if not."""
        await self.pull({}, probe=True)

    async def pull(self, cursor: Mapping[str, Any], *, probe: bool = False) -> Pull:
        now_local = self._now_ms() if self._now_ms else _ms(datetime.now(UTC))
        full = not cursor or now_local - int(cursor.get("full_ms", 0)) >= FULL_PASS_EVERY_MS
        try:
            conn = await self._connection()
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                await self._tenant(conn)
                # the snapshot's oldest running transaction, as 32 bits like a row's xmin
                clock = await conn.execute(
                    "SELECT now() AS now,"
                    " mod(txid_snapshot_xmin(txid_current_snapshot()), 4294967296) AS xmin"
                )
                marks = await clock.fetchone() or {}
                now, xmin = marks["now"], int(marks["xmin"])
                events = await self._events(conn)
                if probe:
                    return Pull()
                ids = [e["id"] for e in events]
                types = await (
                    await conn.execute(
                        "SELECT id, event_id, name FROM ticket_types WHERE event_id = ANY(%s)",
                        [ids],
                    )
                ).fetchall()
                sql = _TICKETS
                params: list[Any] = [ids]
                if not full:
                    sql += " AND t.updated_at >= %s"
                    params.append(datetime.fromisoformat(str(cursor["since"])))
                    if "xmin" in cursor:
                        sql += f" AND {_WRITTEN_SINCE}"
                        params.append(int(cursor["xmin"]))
                async with conn.cursor(row_factory=tuple_row) as rows:
                    tickets = await (await rows.execute(sql, params)).fetchall()
        except psycopg.errors.InsufficientPrivilege:
            raise BackendError(
                "TicketToken's database refuses the hub's role (insufficient privilege): grant"
                " it SELECT on events, ticket_types, orders and tickets"
            ) from None
        except psycopg.OperationalError as exc:
            await self.aclose()
            raise BackendError(
                f"TicketToken's database is not reachable ({_first_line(exc)})"
            ) from None
        except psycopg.Error as exc:
            await self.aclose()
            raise BackendError(
                f"TicketToken's database refused the pull ({_first_line(exc)})"
            ) from None
        since = now - timedelta(seconds=LATE_COMMIT_S)
        previous = int(cursor.get("full_ms", 0)) if cursor else 0
        return Pull(
            events=[self._event(e) for e in events],
            ticket_types=[
                UpstreamTicketType(str(t["id"]), str(t["event_id"]), str(t["name"])) for t in types
            ],
            tickets=_tickets(tickets),
            cursor={
                "since": since.isoformat(),
                "xmin": xmin,
                "full_ms": now_local if full else previous,
            },
            complete_events=[str(e["id"]) for e in events] if full else (),
        )

    async def _events(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> list[dict[str, Any]]:
        sql = "SELECT id, name, start_date, end_date, created_at FROM events WHERE true"
        params: list[Any] = []
        if self.venue is not None:
            sql += " AND venue_id = %s"
            params.append(self.venue)
        if self.events:
            sql += " AND id = ANY(%s)"
            params.append(self.events)
        return list(await (await conn.execute(sql + " ORDER BY start_date, id", params)).fetchall())

    def _event(self, e: Mapping[str, Any]) -> UpstreamEvent:
        start = e["start_date"] or e["created_at"] or datetime.now(UTC)
        end = e["end_date"] or start + DEFAULT_EVENT_LENGTH
        return UpstreamEvent(
            ref=str(e["id"]),
            name=str(e["name"]),
            timezone=self.timezone,
            start_ms=_ms(start),
            end_ms=max(_ms(end), _ms(start)),
            hub_id=str(e["id"]),  # its QR codes carry the event's uuid
        )

    async def listen(self, pulled: Callable[[], Awaitable[str | None]]) -> None:
        """Consume ticket-service's queue (tickets.purchased, ticket.transferred...): each
        message is a nudge to pull now, acknowledged only once that pull has committed, so
        a hub that dies in between hears it again. Polling stays the backstop: without a
        queue, or while RabbitMQ is down, nothing is lost, only later."""
        if not self.amqp_url:
            return
        failures = 0
        while True:
            try:
                connection = await aio_pika.connect(str(self.amqp_url), timeout=CONNECT_TIMEOUT_S)
                async with connection:
                    channel = await connection.channel()
                    await channel.set_qos(prefetch_count=50)
                    queue = await channel.declare_queue(self.queue, durable=True)
                    failures = 0
                    async with queue.iterator() as messages:
                        async for message in messages:
                            error = await pulled()
                            if error is None:
                                await message.ack()
                            else:
                                await message.nack(requeue=True)
                                await asyncio.sleep(min(30.0, 1.0 + failures))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: polling carries on meanwhile
                failures += 1
                if failures == 1:
                    log.warning(
                        "backend queue unreachable",
                        extra={"queue": self.queue, "error": _first_line(exc)},
                    )
                await asyncio.sleep(min(60.0, 2.0**failures))

    async def push(self, scans: Sequence[OwedScan]) -> list[PushOutcome]:
        entries = [s for s in scans if s.admitted and s.direction == "entry"]
        kept_here = {"status": "ok", "note": "TicketToken keeps no exits or denials"}
        outcomes = [PushOutcome(s.scan_id, True, kept_here) for s in scans if s not in entries]
        if not entries:
            return outcomes
        try:
            conn = await self._connection()
            found: dict[int, bool] = {}
            async with conn.transaction():
                await self._tenant(conn)
                for scan in entries:
                    at = datetime.fromtimestamp(scan.at_ms / 1000, UTC)
                    values = {
                        "at": at,
                        "n": max(1, scan.entry_number),
                        "single": scan.single_entry,
                        "id": scan.ticket_ref,
                    }
                    cursor = await conn.execute(_MARK_ENTRY, values)
                    found[scan.scan_id] = cursor.rowcount == 1
        except BackendError as exc:  # no connection: owed still, retried (never raised)
            return outcomes + [PushOutcome(s.scan_id, False, error=str(exc)) for s in entries]
        except psycopg.OperationalError as exc:
            await self.aclose()
            error = f"TicketToken's database is not reachable ({_first_line(exc)})"
            return outcomes + [PushOutcome(s.scan_id, False, error=error) for s in entries]
        except psycopg.Error as exc:
            await self.aclose()
            error = f"TicketToken's database refused the push ({_first_line(exc)})"
            return outcomes + [PushOutcome(s.scan_id, False, error=error) for s in entries]
        for scan in entries:
            answer = (
                {"status": "ok"}
                if found[scan.scan_id]
                else {
                    "status": "error",
                    "reason": "unknown_ticket",
                    "reason_explanation": "TicketToken has no such ticket for this tenant",
                }
            )
            outcomes.append(PushOutcome(scan.scan_id, True, answer))
        return outcomes


# A pull's tickets: ids as text (PostgreSQL writes them faster than Python formats UUIDs),
# rows as tuples in this order (_tickets reads them).
_TICKETS = (
    "SELECT t.id::text, t.event_id::text, t.ticket_type_id::text, t.status, t.section,"
    ' t."row", t.seat_number, t.barcode, o.order_number'
    " FROM tickets t LEFT JOIN orders o ON o.id = t.order_id"
    " WHERE t.event_id = ANY(%s)"
)
# The row version was written by a transaction that had not ended when the last pull took its
# snapshot (xids compare modulo 2**32, as PostgreSQL's own do): what that pull could not see.
# A bulk change committed before it is not read again for the rest of the late-commit minute.
_WRITTEN_SINCE = "mod(t.xmin::text::bigint - %s + 4294967296, 4294967296) < 2147483648"


def _tickets(rows: Sequence[tuple[Any, ...]]) -> list[UpstreamTicket]:
    """_TICKETS' rows as the seam's tickets; a status is mapped once per spelling."""
    statuses: dict[str, TicketStatus] = {}
    tickets = []
    for ticket_id, event_id, type_id, status, section, row, seat_number, barcode, order in rows:
        mapped = statuses.get(status)
        if mapped is None:
            mapped = statuses[status] = ticket_status(str(status))
        seat = None
        if section or row or seat_number:
            seat = " ".join(str(p) for p in (section, row, seat_number) if p)
        tickets.append(
            UpstreamTicket(
                ref=ticket_id,
                event_ref=event_id,
                type_ref=type_id or None,
                status=mapped,
                code=str(barcode) if barcode else None,
                order_ref=str(order) if order else None,
                seat=seat,
                hub_id=ticket_id,  # its QR codes carry the ticket's uuid
            )
        )
    return tickets


# One statement per entry; every column moves only forward, so running it twice for the same
# scan changes nothing the second time.
_MARK_ENTRY = """
UPDATE tickets SET
    validated_at = LEAST(COALESCE(validated_at, %(at)s), %(at)s),
    first_scanned_at = LEAST(COALESCE(first_scanned_at, %(at)s), %(at)s),
    last_scanned_at = GREATEST(COALESCE(last_scanned_at, %(at)s), %(at)s),
    scan_count = GREATEST(scan_count, %(n)s),
    status = CASE
        WHEN %(single)s AND upper(status) IN ('SOLD', 'MINTED', 'ACTIVE', 'TRANSFERRED')
        THEN CASE WHEN status = upper(status) THEN 'USED' ELSE 'used' END
        ELSE status END
WHERE id = %(id)s
"""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
