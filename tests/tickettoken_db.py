"""A throwaway PostgreSQL holding TicketToken's database, for the tests marked `tickettoken`.

Debian's PostgreSQL server (`make tickettoken-deps`) runs a cluster of its own in a temp dir:
initdb and pg_ctl from /usr/lib/postgresql/<newest>/bin, as the `postgres` OS user when we are
root (PostgreSQL refuses to run as root; CI runs as root), listening on 127.0.0.1 on a free port
with its unix socket in the temp dir. stop() is a fast shutdown and start() brings the same data
back, so a test can take TicketToken's database away for a while.

The database `tickettoken_db` holds tests/tickettoken_schema.sql: ticket-service's tables as its
code uses them, row-level security on tenant_id as the remediation plan has it. Roles:
* postgres: the superuser (unix socket, no password); bypasses RLS, for looking across tenants.
* tickettoken_owner: owns the tables and, FORCE ROW LEVEL SECURITY, is held to the policies; the
  helpers below write as it, the way ticket-service's code does, with the tenant set.
* hub_connector (member of tickettoken_connector): the hub's role, over TCP with a password
  (connector_dsn): SELECT on venues, events, ticket_types, orders, tickets; UPDATE of
  validated_at, status, scan_count, first/last_scanned_at, updated_at on tickets; subject to RLS.

The tenant is set per transaction with set_config(name, value, true): app.current_tenant_id,
which the policies read, and app.tenant_id, which ticket-service's code sets (and no policy
reads). A trigger sets updated_at = NOW() on every UPDATE of tickets and ticket_types, as in
ticket-service's migration: NOW() is the transaction's start, so all rows a transaction touches
share one updated_at, and a transaction that commits late carries an earlier time than
commits before it (late_commit()).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from demo.local_hub import free_port
from tests.tickettoken_webhooks import js_iso, new_refund_id, refund_completed_body

PG_ROOT = Path("/usr/lib/postgresql")
MAKE_TARGET = "tickettoken-deps"
SCHEMA_SQL = Path(__file__).with_name("tickettoken_schema.sql")
DATABASE = "tickettoken_db"
SUPERUSER = "postgres"
OWNER = "tickettoken_owner"
CONNECTOR_GROUP = "tickettoken_connector"
CONNECTOR = "hub_connector"
TENANT_SETTING = "app.current_tenant_id"  # the remediation plan's, read by the policies
TICKET_SERVICE_SETTING = "app.tenant_id"  # what ticket-service's tenant middleware sets
OS_USER = "postgres"  # runs the server when we are root

Row = dict[str, Any]


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries here: `make tickettoken-deps` installs them."""


def postgres_bin() -> Path | None:
    """The bin directory of the newest PostgreSQL server installed, or None."""
    found = [
        d
        for d in PG_ROOT.glob("*/bin")
        if d.parent.name.isdigit() and (d / "initdb").exists() and (d / "pg_ctl").exists()
    ]
    return max(found, key=lambda d: int(d.parent.name)) if found else None


def missing_postgres() -> str | None:
    """Why a TicketTokenDb cannot start here, or None when it can."""
    if postgres_bin() is None:
        return (
            f"no PostgreSQL server under {PG_ROOT}: run `make {MAKE_TARGET}` (Debian's postgresql)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root but there is no `{OS_USER}` user: run `make {MAKE_TARGET}`"
        if shutil.which("runuser") is None:
            return "running as root without runuser (util-linux) to start PostgreSQL as postgres"
    return None


@dataclass(frozen=True)
class TicketTokenEvent:
    """One event of one tenant, with its venue and ticket types (name -> id)."""

    tenant_id: uuid.UUID
    venue_id: uuid.UUID
    event_id: uuid.UUID
    ticket_types: dict[str, uuid.UUID]
    prices: dict[str, Decimal]

    @property
    def first_type(self) -> str:
        return next(iter(self.ticket_types))


@dataclass(frozen=True)
class TicketBatch:
    """Tickets inserted together: one order, one transaction (so one created/updated_at)."""

    order_id: uuid.UUID
    ticket_ids: list[uuid.UUID]
    user_ids: list[uuid.UUID]


@dataclass(frozen=True)
class Refund:
    """A refund done as TicketToken does it: which rows cancel-batch changed, and the
    refund.completed webhook body (and its idempotency key) payment-service's outbox sends."""

    refund_id: str
    cancelled: list[uuid.UUID]
    webhook_body: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        return str(self.webhook_body["idempotencyKey"])


@dataclass(frozen=True)
class Transfer:
    """transferService's record of one transfer."""

    ticket_id: uuid.UUID
    from_user_id: uuid.UUID | None
    to_user_id: uuid.UUID
    transferred_at: datetime


class TicketTokenDb:
    """TicketToken's PostgreSQL, started and stopped by the tests; see the module docstring."""

    def __init__(self) -> None:
        problem = missing_postgres()
        if problem:
            raise PostgresMissing(problem)
        self.bin = postgres_bin() or PG_ROOT
        self.as_postgres = os.geteuid() == 0
        # /tmp even when TMPDIR is elsewhere: the postgres user must reach the socket and data.
        self.root = Path(tempfile.mkdtemp(prefix="tickettoken-pg-", dir="/tmp"))
        if self.as_postgres:
            user = pwd.getpwnam(OS_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.passwords = {OWNER: secrets.token_hex(16), CONNECTOR: secrets.token_hex(16)}
        self._initialised = False

    # -- the server ---------------------------------------------------------------------------

    def _run(self, *args: str | Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self.as_postgres:
            command = ["runuser", "-u", OS_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )
        return done

    @property
    def running(self) -> bool:
        if not self.data.exists():
            return False
        status = [str(self.bin / "pg_ctl"), "status", "-D", str(self.data)]
        if self.as_postgres:
            status = ["runuser", "-u", OS_USER, "--", *status]
        return subprocess.run(status, capture_output=True, timeout=30).returncode == 0

    def start(self) -> None:
        """Start the server (a no-op when it runs); the first start makes the cluster, the
        roles, the database and its schema."""
        if not self._initialised:
            self._initdb()
        elif self.running:
            return
        self._run(self.bin / "pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "60")
        if not self._initialised:
            self._bootstrap()
            self._initialised = True

    def stop(self, mode: str = "fast") -> None:
        """Shut down (fast: open sessions are cut, committed data stays; "immediate": a crash,
        recovered at the next start); start() brings it back."""
        if self.running:
            self._run(self.bin / "pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "60")

    def close(self) -> None:
        """Stop and remove the cluster."""
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _initdb(self) -> None:
        self._run(
            self.bin / "initdb",
            "-D", self.data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C",
            "--no-sync",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "timezone": "'UTC'",
            "max_connections": "100",
            "shared_buffers": "64MB",
            # Throwaway data: durability across an OS crash is not what the tests look at.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_line_prefix": "'%m [%p] %u@%d '",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/tickettoken_db.py\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _bootstrap(self) -> None:
        owner_pw, connector_pw = (sql.Literal(self.passwords[r]) for r in (OWNER, CONNECTOR))
        with self.connect(SUPERUSER, dbname="postgres", autocommit=True) as conn:
            for statement in (
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS NOCREATEDB "
                    "NOCREATEROLE"
                ).format(sql.Identifier(OWNER), owner_pw),
                sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS").format(
                    sql.Identifier(CONNECTOR_GROUP)
                ),
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS IN ROLE {}"
                ).format(sql.Identifier(CONNECTOR), connector_pw, sql.Identifier(CONNECTOR_GROUP)),
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(OWNER)
                ),
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(DATABASE)),
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(CONNECTOR_GROUP)
                ),
            ):
                conn.execute(statement)
        with self.connect(OWNER) as conn:
            conn.execute(SCHEMA_SQL.read_bytes())  # several statements: no parameters

    # -- connections --------------------------------------------------------------------------

    def dsn(self, role: str, password: str) -> str:
        """A TCP connection string for a role with a password (as the hub would connect)."""
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def connector_dsn(self) -> str:
        """The hub connector's DSN: subject to RLS, reads and writes only its tenant's rows."""
        return self.dsn(CONNECTOR, self.passwords[CONNECTOR])

    @property
    def owner_dsn(self) -> str:
        return self.dsn(OWNER, self.passwords[OWNER])

    @property
    def admin_dsn(self) -> str:
        """The superuser over the unix socket: sees every tenant's rows."""
        return f"host={self.root} port={self.port} dbname={DATABASE} user={SUPERUSER}"

    def add_connector_role(self, name: str) -> str:
        """Another login role with the connector's privileges (one per tenant, say); its DSN."""
        password = secrets.token_hex(16)
        with self.connect(SUPERUSER, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS IN ROLE {}"
                ).format(
                    sql.Identifier(name), sql.Literal(password), sql.Identifier(CONNECTOR_GROUP)
                )
            )
        self.passwords[name] = password
        return self.dsn(name, password)

    def connect(
        self, role: str = OWNER, *, dbname: str = DATABASE, autocommit: bool = False
    ) -> psycopg.Connection[Row]:
        """A connection over the unix socket (trust), rows as dicts."""
        return psycopg.connect(
            host=str(self.root),
            port=self.port,
            dbname=dbname,
            user=role,
            autocommit=autocommit,
            row_factory=dict_row,
            connect_timeout=10,
        )

    @contextlib.contextmanager
    def as_tenant(self, tenant_id: uuid.UUID, role: str = OWNER) -> Iterator[psycopg.Cursor[Row]]:
        """One transaction as `role` with the tenant set as TicketToken sets it (both settings,
        transaction-local); commits when the block ends without an exception."""
        with self.connect(role) as conn, conn.transaction(), conn.cursor() as cur:
            set_tenant(cur, tenant_id)
            yield cur

    def admin(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        """A query as the superuser (RLS bypassed): for checks across tenants."""
        with self.connect(SUPERUSER) as conn:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    # -- what TicketToken's services do -------------------------------------------------------

    def create_tenant(
        self,
        name: str = "Venue",
        *,
        event_name: str = "Concert",
        ticket_types: Mapping[str, Decimal | int | str] | None = None,
        starts_at: datetime | None = None,
    ) -> TicketTokenEvent:
        """A tenant with one venue and one event of the given ticket types (name -> price)."""
        tenant_id = uuid.uuid4()
        with self.as_tenant(tenant_id) as cur:
            cur.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)", (tenant_id, name))
            venue = cur.execute(
                "INSERT INTO venues (tenant_id, name) VALUES (%s, %s) RETURNING id",
                (tenant_id, f"{name} Hall"),
            ).fetchone()
        assert venue is not None
        return self.add_event(
            tenant_id, venue["id"], event_name, ticket_types=ticket_types, starts_at=starts_at
        )

    def add_event(
        self,
        tenant_id: uuid.UUID,
        venue_id: uuid.UUID,
        name: str,
        *,
        ticket_types: Mapping[str, Decimal | int | str] | None = None,
        starts_at: datetime | None = None,
    ) -> TicketTokenEvent:
        """An event and its ticket types (ticketService.createTicketType's INSERT)."""
        prices = {k: Decimal(v) for k, v in (ticket_types or {"GA": "25.00"}).items()}
        starts_at = starts_at or datetime.now(UTC) + timedelta(days=7)
        with self.as_tenant(tenant_id) as cur:
            event = cur.execute(
                "INSERT INTO events (tenant_id, venue_id, name, start_date, end_date) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (tenant_id, venue_id, name, starts_at, starts_at + timedelta(hours=4)),
            ).fetchone()
            assert event is not None
            types: dict[str, uuid.UUID] = {}
            for type_name, price in prices.items():
                types[type_name] = uuid.uuid4()
                cur.execute(
                    "INSERT INTO ticket_types (id, tenant_id, event_id, name, description, "
                    "price, price_cents, quantity, available_quantity, max_per_purchase, "
                    "sale_start_date, sale_end_date, metadata) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        types[type_name], tenant_id, event["id"], type_name, None, price,
                        int(price * 100), 1_000_000, 1_000_000, 10,
                        datetime.now(UTC) - timedelta(days=30), starts_at, Jsonb({}),
                    ),
                )  # fmt: skip
        return TicketTokenEvent(tenant_id, venue_id, event["id"], types, prices)

    def insert_tickets(
        self,
        event: TicketTokenEvent,
        count: int,
        *,
        ticket_type: str | None = None,
        status: str = "SOLD",
        user_id: uuid.UUID | None = None,
        seated: bool = False,
        is_transferable: bool = True,
    ) -> TicketBatch:
        """`count` sold tickets in one transaction (COPY: 10,000 in about a second), with
        the columns confirmPurchase fills, under one PAID order. Each ticket has its own buyer
        unless `user_id` is given."""
        type_name = ticket_type or event.first_type
        type_id, price = event.ticket_types[type_name], event.prices[type_name]
        order_id = uuid.uuid4()
        ticket_ids = [uuid.uuid4() for _ in range(count)]
        user_ids = [user_id or uuid.uuid4() for _ in range(count)]
        payment_id = f"pi_{secrets.token_hex(12)}"
        now = datetime.now(UTC)
        with self.as_tenant(event.tenant_id) as cur:
            cur.execute(
                "INSERT INTO orders (id, tenant_id, user_id, event_id, order_number, status, "
                "total_amount, total_amount_cents, ticket_quantity, payment_intent_id) "
                "VALUES (%s, %s, %s, %s, %s, 'PAID', %s, %s, %s, %s)",
                (
                    order_id, event.tenant_id, user_ids[0] if count else user_id,
                    event.event_id, f"ORD-{str(now.timestamp()).replace('.', '')[-8:]}",
                    price * count, int(price * 100) * count, count, payment_id,
                ),
            )  # fmt: skip
            columns = (
                "id, tenant_id, event_id, ticket_type_id, order_id, user_id, owner_id, "
                "owner_user_id, status, price, total_paid, seat_number, metadata, "
                "is_transferable, payment_id, purchased_at, blockchain_status"
            )
            # PostgreSQL refuses COPY FROM into a table under row-level security: COPY into a
            # scratch table, then one INSERT ... SELECT, which the policy checks row by row.
            cur.execute(
                f"CREATE TEMP TABLE incoming ON COMMIT DROP AS "
                f"SELECT {columns} FROM tickets WITH NO DATA".encode()
            )
            with cur.copy(f"COPY incoming ({columns}) FROM STDIN".encode()) as copy:
                for n, (ticket_id, buyer) in enumerate(zip(ticket_ids, user_ids, strict=True)):
                    metadata = {
                        "ticketTypeName": type_name,
                        "reservationId": str(order_id),
                        "purchaseDate": js_iso(now),
                    }
                    copy.write_row(
                        (
                            ticket_id, event.tenant_id, event.event_id, type_id, order_id,
                            buyer, buyer, buyer, status, price, price,
                            str(n + 1) if seated else None, Jsonb(metadata), is_transferable,
                            payment_id, now, "pending",
                        )
                    )  # fmt: skip
            cur.execute(f"INSERT INTO tickets ({columns}) SELECT {columns} FROM incoming".encode())
        return TicketBatch(order_id, ticket_ids, user_ids)

    def ticket(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> Row | None:
        """One ticket row as ticket-service reads it (SELECT * ... WHERE id = $1)."""
        with self.as_tenant(tenant_id) as cur:
            return cur.execute("SELECT * FROM tickets WHERE id = %s", (ticket_id,)).fetchone()

    def tickets(
        self, tenant_id: uuid.UUID, ticket_ids: Sequence[uuid.UUID] | None = None
    ) -> list[Row]:
        """The tenant's tickets (those named, or all), by id."""
        with self.as_tenant(tenant_id) as cur:
            if ticket_ids is None:
                return cur.execute("SELECT * FROM tickets ORDER BY id").fetchall()
            return cur.execute(
                "SELECT * FROM tickets WHERE id = ANY(%s) ORDER BY id", (list(ticket_ids),)
            ).fetchall()

    def cancel_batch(
        self,
        tenant_id: uuid.UUID,
        ticket_ids: Sequence[uuid.UUID],
        *,
        refund_id: str | None = None,
        reason: str = "requested_by_customer",
    ) -> list[uuid.UUID]:
        """POST /internal/tickets/cancel-batch: its UPDATE, one statement (and transaction) per
        ticket, skipping TRANSFERRED and USED ones. The route answers 'cancelled' for every id
        whatever the UPDATE did; this returns the ids whose row it changed."""
        changed: list[uuid.UUID] = []
        with self.connect(OWNER, autocommit=True) as conn:
            for ticket_id in ticket_ids:
                with conn.transaction(), conn.cursor() as cur:
                    set_tenant(cur, tenant_id)
                    refund = {
                        "refundId": refund_id,
                        "reason": reason,
                        "cancelledAt": js_iso(),
                    }
                    cur.execute(
                        """UPDATE tickets
                           SET status = 'CANCELLED',
                               updated_at = NOW(),
                               metadata = jsonb_set(
                                 COALESCE(metadata, '{}'::jsonb),
                                 '{refund}',
                                 %s::jsonb
                               )
                           WHERE id = %s AND status NOT IN ('TRANSFERRED', 'USED')""",
                        (Jsonb(refund), ticket_id),
                    )
                    if cur.rowcount:
                        changed.append(ticket_id)
        return changed

    def refund(
        self,
        tenant_id: uuid.UUID,
        ticket_ids: Sequence[uuid.UUID],
        *,
        user_id: uuid.UUID | None = None,
        order_id: uuid.UUID | None = None,
        amount: int = 2500,
        reason: str = "requested_by_customer",
    ) -> Refund:
        """A refund the way payment-service does it: ticket-service's cancel-batch commits the
        tickets' CANCELLED status, and the refund.completed webhook body is ready to POST
        (WebhookSender.post/apost(url, refund.webhook_body, idempotency_key=...))."""
        refund_id = new_refund_id()
        cancelled = self.cancel_batch(tenant_id, ticket_ids, refund_id=refund_id, reason=reason)
        body = refund_completed_body(
            refund_id=refund_id,
            payment_intent=f"pi_{secrets.token_hex(12)}",
            amount=amount,
            tenant_id=tenant_id,
            user_id=user_id or uuid.uuid4(),
            ticket_ids=ticket_ids,
            order_id=order_id,
            reason=reason,
        )
        return Refund(refund_id, cancelled, body)

    def transfer(
        self,
        tenant_id: uuid.UUID,
        ticket_id: uuid.UUID,
        to_user_id: uuid.UUID,
        *,
        reason: str | None = None,
    ) -> Transfer:
        """transferService.transferTicket's transaction (its validations left out): the new
        user_id and status TRANSFERRED, a ticket_transfers row, the history appended."""
        with self.as_tenant(tenant_id) as cur:
            row = cur.execute(
                "SELECT * FROM tickets WHERE id = %s FOR UPDATE", (ticket_id,)
            ).fetchone()
            if row is None:
                raise LookupError(f"no ticket {ticket_id} for tenant {tenant_id}")
            cur.execute(
                "UPDATE tickets SET user_id = %s, status = %s, updated_at = NOW() WHERE id = %s",
                (to_user_id, "TRANSFERRED", ticket_id),
            )
            moment = datetime.now(UTC)
            cur.execute(
                "INSERT INTO ticket_transfers (id, tenant_id, ticket_id, from_user_id, "
                "to_user_id, reason, transferred_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (uuid.uuid4(), tenant_id, ticket_id, row["user_id"], to_user_id, reason, moment),
            )
            record = {
                "fromUserId": None if row["user_id"] is None else str(row["user_id"]),
                "toUserId": str(to_user_id),
                "transferredAt": js_iso(moment),
                "reason": reason,
            }
            cur.execute(
                "UPDATE tickets SET transfer_history = transfer_history || %s::jsonb WHERE id = %s",
                (Jsonb([record]), ticket_id),
            )
        return Transfer(ticket_id, row["user_id"], to_user_id, moment)

    def check_in(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, *, entrance: str | None = None
    ) -> None:
        """qrService.validateQR's UPDATE: TicketToken's own scanner used the ticket."""
        with self.as_tenant(tenant_id) as cur:
            cur.execute(
                "UPDATE tickets SET status = %s, validated_at = %s, validator_id = %s, "
                "entrance = %s WHERE id = %s",
                ("USED", datetime.now(UTC), None, entrance, ticket_id),
            )

    def set_status(self, tenant_id: uuid.UUID, ticket_ids: Sequence[uuid.UUID], status: str) -> int:
        """ticketService.updateTicketStatus for each ticket, in one transaction (so one
        updated_at for all); any spelling the schema allows. Rows changed."""
        with self.as_tenant(tenant_id) as cur:
            cur.execute(
                "UPDATE tickets SET status = %s, updated_at = NOW() WHERE id = ANY(%s)",
                (status, list(ticket_ids)),
            )
            return cur.rowcount

    def delete_tickets(self, tenant_id: uuid.UUID, ticket_ids: Sequence[uuid.UUID]) -> int:
        """TicketModel.delete: rows gone without a trace an incremental pull could see."""
        with self.as_tenant(tenant_id) as cur:
            cur.execute("DELETE FROM tickets WHERE id = ANY(%s)", (list(ticket_ids),))
            return cur.rowcount

    @contextlib.contextmanager
    def late_commit(
        self, tenant_id: uuid.UUID, ticket_ids: Sequence[uuid.UUID], status: str = "CANCELLED"
    ) -> Iterator[datetime]:
        """A transaction that sets the tickets' status now but commits when the block ends:
        their updated_at (the transaction's start, yielded) is earlier than that of anything
        committed inside the block, yet nobody sees the change before the block ends. For
        testing a watermark on updated_at against late commits."""
        with self.connect(OWNER) as conn, conn.transaction(), conn.cursor() as cur:
            set_tenant(cur, tenant_id)
            cur.execute(
                "UPDATE tickets SET status = %s, updated_at = NOW() WHERE id = ANY(%s)",
                (status, list(ticket_ids)),
            )
            started = cur.execute("SELECT now() AS t").fetchone()
            assert started is not None
            yield started["t"]


def set_tenant(cur: psycopg.Cursor[Any], tenant_id: uuid.UUID) -> None:
    """Both tenant settings for the current transaction only (set_config(..., true))."""
    cur.execute(
        "SELECT set_config(%s, %s, true), set_config(%s, %s, true)",
        (TENANT_SETTING, str(tenant_id), TICKET_SERVICE_SETTING, str(tenant_id)),
    )
