"""A throwaway RabbitMQ node and ticket-service's publisher, for the tests marked `tickettoken`.

Debian's rabbitmq-server (`make tickettoken-deps`) runs a node of its own from a temp dir: its
own node name, AMQP and distribution ports (free ones, 127.0.0.1 only), mnesia and log dirs,
config and plugin files (none enabled), HOME (so its own Erlang cookie) and its own epmd on its
own port, which we start and stop ourselves (-start_epmd false): nothing is shared with a system
rabbitmq-server or another test's node. We call /usr/lib/rabbitmq/bin/rabbitmq-server directly,
not /usr/sbin's wrapper (which switches to the rabbitmq user), so it runs as whoever we are,
root included. SIGTERM to that script stops the node cleanly; start() again on the same dirs
brings back durable queues and their persistent messages.

ticket-service's side (../shared/context/tickettoken-ticket-service.md, src/services/
queueService.ts, ticketService.ts, transferService.ts):

    await this.publishChannel.assertQueue(queue, { durable: true });   // each configured queue
    this.publishChannel.sendToQueue(queue, Buffer.from(JSON.stringify(message)),
                                    { persistent: true });

    queueService.publish(config.rabbitmq.queues.ticketEvents, {           // confirmPurchase
      type: 'tickets.purchased', userId, eventId, ticketIds: tickets.map(t => t.id),
      timestamp: new Date() });
    queueService.publish(config.rabbitmq.queues.ticketEvents, {           // transferTicket
      type: 'ticket.transferred', ticketId, fromUserId, toUserId, timestamp: new Date() });

So: the default exchange, routing key = the queue's name, a durable queue, persistent messages,
a JSON body without content-type, the Date serialised as toISOString(), and no tenant in either
message. The value of config.rabbitmq.queues.ticketEvents is not in the extract:
TICKET_EVENTS_QUEUE is our guess, a parameter everywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aio_pika

from demo.local_hub import checked_output, free_port
from tests.tickettoken_webhooks import js_iso

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
MAKE_TARGET = "tickettoken-deps"
TICKET_EVENTS_QUEUE = "ticket.events"  # config.rabbitmq.queues.ticketEvents: value not shown
START_TIMEOUT_S = 90.0


class RabbitMissing(RuntimeError):
    """No rabbitmq-server here: `make tickettoken-deps` installs it."""


def missing_rabbitmq() -> str | None:
    """Why a RabbitNode cannot start here, or None when it can."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return (
            f"no {RABBIT_BIN}/rabbitmq-server: run `make {MAKE_TARGET}` (Debian's rabbitmq-server)"
        )
    if shutil.which("epmd") is None:
        return f"no epmd (Erlang) on PATH: run `make {MAKE_TARGET}`"
    return None


def amqp_answers(port: int, timeout_s: float = 2.0) -> bool:
    """Whether an AMQP 0-9-1 broker on 127.0.0.1:port answers the protocol header with its
    Connection.Start (a method frame: type 1 on channel 0); the port being open is not enough."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout_s) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(3) == b"\x01\x00\x00"
    except OSError:
        return False


class RabbitNode:
    """One RabbitMQ node for the tests; see the module docstring."""

    def __init__(self) -> None:
        problem = missing_rabbitmq()
        if problem:
            raise RabbitMissing(problem)
        self.root = Path(tempfile.mkdtemp(prefix="tickettoken-rabbit-"))
        self.nodename = f"tt{secrets.token_hex(4)}@localhost"
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.log = self.root / "server.log"
        (self.root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\ndisk_free_limit.absolute = 50MB\n"
        )
        self._server: subprocess.Popen[bytes] | None = None
        self._epmd: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def env(self) -> dict[str, str]:
        """The environment of this node's server and of rabbitmqctl pointed at it."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.root),  # the Erlang cookie lives here
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false",
        }

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.poll() is None

    def start(self) -> None:
        """Start epmd and the node (a no-op when it runs) and wait until it speaks AMQP."""
        if self.running:
            return
        self._log_file = self.log.open("ab")
        self._epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port)],
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._server = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not amqp_answers(self.port):
            if self._server.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"RabbitMQ node {self.nodename} did not start:\n{tail}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the node (SIGTERM: the script stops the broker cleanly) and its epmd."""
        for proc in (self._server, self._epmd):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self._server = self._epmd = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        """Stop and remove the node's files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def ctl(self, *args: str, timeout_s: float = 60) -> str:
        """rabbitmqctl against this node (list_queues, ...); its output."""
        command = [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.nodename, *args]
        what = f"rabbitmqctl {' '.join(args)}"
        return checked_output(command, what, timeout_s=timeout_s, env=self.env)


def tickets_purchased_message(
    *,
    user_id: uuid.UUID | str,
    event_id: uuid.UUID | str,
    ticket_ids: Sequence[uuid.UUID | str],
) -> dict[str, Any]:
    """confirmPurchase's message, field for field."""
    return {
        "type": "tickets.purchased",
        "userId": str(user_id),
        "eventId": str(event_id),
        "ticketIds": [str(t) for t in ticket_ids],
        "timestamp": js_iso(),
    }


def ticket_transferred_message(
    *,
    ticket_id: uuid.UUID | str,
    from_user_id: uuid.UUID | str | None,
    to_user_id: uuid.UUID | str,
) -> dict[str, Any]:
    """transferTicket's message, field for field."""
    return {
        "type": "ticket.transferred",
        "ticketId": str(ticket_id),
        "fromUserId": None if from_user_id is None else str(from_user_id),
        "toUserId": str(to_user_id),
        "timestamp": js_iso(),
    }


class TicketServicePublisher:
    """ticket-service's QueueService.publish on aio-pika: `async with` it, then publish()."""

    def __init__(self, amqp_url: str, queue: str = TICKET_EVENTS_QUEUE) -> None:
        self.amqp_url, self.queue = amqp_url, queue
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def __aenter__(self) -> TicketServicePublisher:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        self._channel = await self._connection.channel()
        await self._channel.declare_queue(self.queue, durable=True)  # assertQueue
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = None

    async def publish(self, message: Mapping[str, Any]) -> None:
        """sendToQueue(queue, JSON, {persistent: true}): default exchange, no content type."""
        assert self._channel is not None, "use `async with TicketServicePublisher(...)`"
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                body=json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.queue,
        )

    async def tickets_purchased(
        self,
        *,
        user_id: uuid.UUID | str,
        event_id: uuid.UUID | str,
        ticket_ids: Sequence[uuid.UUID | str],
    ) -> dict[str, Any]:
        message = tickets_purchased_message(
            user_id=user_id, event_id=event_id, ticket_ids=ticket_ids
        )
        await self.publish(message)
        return message

    async def ticket_transferred(
        self,
        *,
        ticket_id: uuid.UUID | str,
        from_user_id: uuid.UUID | str | None,
        to_user_id: uuid.UUID | str,
    ) -> dict[str, Any]:
        message = ticket_transferred_message(
            ticket_id=ticket_id, from_user_id=from_user_id, to_user_id=to_user_id
        )
        await self.publish(message)
        return message


def publish_once(
    amqp_url: str, message: Mapping[str, Any], queue: str = TICKET_EVENTS_QUEUE
) -> None:
    """One message from a sync test (its own event loop)."""

    async def run() -> None:
        async with TicketServicePublisher(amqp_url, queue) as publisher:
            await publisher.publish(message)

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop running: a sync caller, as meant
        asyncio.run(run())
        return
    raise RuntimeError("publish_once is for sync tests: await a TicketServicePublisher")
