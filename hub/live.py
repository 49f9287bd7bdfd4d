"""Live entry state over a WebSocket: when any gate's scan is stored (uploaded or checked
online), every OTHER device of that venue holding `/api/device/live` is told at once, so a
ticket that just went in at the north gate is known at the south gate before its holder's
friend tries the same code there.

The socket is opened with a signed upgrade request (the same signing as every device call).
Messages are JSON, protocol/wire.py `Hello` once, then an `EntryState` (`{"type":
"entry_state", ticket_id, event_id, at_ms, direction, gate_name, device_id, seq, verdict,
counted}`) per scan. A device may filter by `?event_id=`.

A deactivated device must stop hearing entries at once: the admin route calls
`LiveHub.drop_device`, which closes its sockets with code 4403 "device_deactivated" (gates
read that as final, not as a reason to reconnect); a deactivation written by another process
is caught by a periodic re-check of each connected device's active flag. Reconnects are
refused by `authenticate_device` (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from hub.auth import authenticate_device, device_row
from hub.keys import DB, MEMORY
from hub.store_base import ScanListener
from protocol.wire import (
    DEACTIVATED_CLOSE_CODE,
    DEVICE_DEACTIVATED,
    LIVE_BATCH_QUERY,
    EntryState,
    Hello,
    TicketsChanged,
    entries_json,
)

log = logging.getLogger("hub.live")
SEND_TIMEOUT_S = 5.0
MAX_QUEUED = 10_000  # a device this far behind is dropped; it reconnects and re-syncs
MAX_BATCH = 500  # entries in one Entries message at most
# A device that reads Entries gets at most one message this often: the first entry after a
# quiet spell goes at once, entries of a burst (fifty gates scanning at once) wait out the
# rest of the gap and go together. Each message wakes the gate; a person takes seconds to
# walk from one gate to the next.
BATCH_GAP_S = 0.1
Pushed = tuple[str | None, str, bool]  # (event id, JSON text, whether it is an EntryState)
HEARTBEAT_S = 30.0
# How often connected devices' active flags are re-read. get_device caches a row for
# ROW_CACHE_S, so another process's deactivation closes the socket within about 3 s.
ACTIVE_RECHECK_S = 1.0


@dataclass(eq=False)
class Connection:
    device_id: str
    venue_id: str
    event_id: str | None
    ws: web.WebSocketResponse
    batches: bool = False  # it reads Entries (protocol/wire.py)
    # (text, whether it is an EntryState): only entries go into an Entries message
    queue: asyncio.Queue[tuple[str, bool]] = field(
        default_factory=lambda: asyncio.Queue(MAX_QUEUED)
    )
    writer: asyncio.Task[None] | None = None


class LiveHub:
    """Who is connected, and the fan-out of stored scans to them."""

    def __init__(self, app: web.Application) -> None:
        self.app = app  # its database thread and the store's memory (device_row)
        self.connections: set[Connection] = set()  # touched on the event loop only
        self._venues: dict[str, str] = {}  # device id -> venue id (a device never moves venue)
        self._closing: set[asyncio.Task[bool]] = set()
        self._waiting: set[asyncio.Task[None]] = set()

    def online(self) -> int:
        return len({c.device_id for c in self.connections})

    def drop_device(self, device_id: str) -> int:
        """Close every socket of a deactivated device now. Each leaves the fan-out and its
        writer is cancelled before the close frame goes, so not one more queued entry
        reaches it; the close handshake runs in the background (the admin call never waits
        on a slow device). Returns how many sockets were closed."""
        doomed = [c for c in self.connections if c.device_id == device_id]
        for conn in doomed:
            self.connections.discard(conn)
            if conn.writer is not None:
                conn.writer.cancel()
            closing = asyncio.get_running_loop().create_task(
                conn.ws.close(code=DEACTIVATED_CLOSE_CODE, message=DEVICE_DEACTIVATED.encode())
            )
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        if doomed:
            log.info("live sockets of a deactivated device closed", extra={"device": device_id})
        return len(doomed)

    async def is_active(self, device_id: str) -> bool:
        device = await device_row(self.app, device_id)
        return device is not None and bool(device["active"])

    async def drop_inactive(self) -> int:
        """Close the sockets of devices no longer active: catches deactivations this process
        did not make itself (a CLI, another hub process), once the row cache lets them
        through."""
        connected = {c.device_id for c in self.connections}
        rows = await self.app[DB].run(lambda store: [store.get_device(d) for d in connected])
        active = {row["id"] for row in rows if row is not None and row["active"]}
        return sum(self.drop_device(d) for d in connected - active)

    async def watch_active(self) -> None:
        """Run drop_inactive every ACTIVE_RECHECK_S while the hub is up; a store error is
        logged and retried next time (a busy database must not leave a device listening)."""
        while True:
            await asyncio.sleep(ACTIVE_RECHECK_S)
            try:
                await self.drop_inactive()
            except Exception:
                log.exception("live: re-checking devices' active flags failed")

    def listener(self, loop: asyncio.AbstractEventLoop) -> ScanListener:
        """The store listener, told right after a commit on the thread that made it (the
        database thread for uploads, the loop for online checks): the messages are made
        there and queued on the loop, where each connection's writer task sends them, so a
        slow device never holds up the others."""

        def on_scans(device_id: str, scans: list[Mapping[str, Any]]) -> None:
            if not self.connections:
                return
            messages: list[Pushed] = [
                (s.get("event_id"), msgspec.json.encode(entry_state(device_id, s)).decode(), True)
                for s in scans
                if s.get("ticket_id")
            ]
            if messages:
                loop.call_soon_threadsafe(self._deliver, device_id, messages)

        return on_scans

    def _deliver(self, device_id: str, messages: list[Pushed]) -> None:
        """Fan out once the sender's venue is known: from memory, else (its first scans
        since the hub started) after a turn of the database thread."""
        venue = self._venues.get(device_id)
        if venue is None:
            device = self.app[MEMORY].remembered_device(device_id)
            if device is not None:
                venue = self._venues[device_id] = device["venue_id"]
        if venue is not None:
            self.fan_out(device_id, venue, messages)
            return
        waiting = asyncio.get_running_loop().create_task(self._deliver_later(device_id, messages))
        self._waiting.add(waiting)
        waiting.add_done_callback(self._waiting.discard)

    async def _deliver_later(self, device_id: str, messages: list[Pushed]) -> None:
        device = await device_row(self.app, device_id)
        if device is not None:
            self._venues[device_id] = device["venue_id"]
            self.fan_out(device_id, device["venue_id"], messages)

    def tickets_changed(self, changed: Mapping[str, str]) -> None:
        """Tell every device at an event's venue that its tickets changed (event id ->
        venue id), so it syncs now: the backend runner calls this after a pull."""
        for event_id, venue in changed.items():
            text = msgspec.json.encode(TicketsChanged(event_id)).decode()
            self.fan_out(None, venue, [(event_id, text, False)])

    def fan_out(self, device_id: str | None, venue: str, messages: list[Pushed]) -> None:
        for conn in self.connections:
            if conn.device_id == device_id or conn.venue_id != venue:
                continue
            for event_id, text, entry in messages:
                if conn.event_id is None or conn.event_id == event_id:
                    try:
                        conn.queue.put_nowait((text, entry))
                    except asyncio.QueueFull:
                        log.warning(
                            "live device too slow, dropped", extra={"device": conn.device_id}
                        )
                        closing = asyncio.get_running_loop().create_task(conn.ws.close())
                        self._closing.add(closing)
                        closing.add_done_callback(self._closing.discard)
                        break


def entry_state(device_id: str, scan: Mapping[str, Any]) -> EntryState:
    """A stored scan row on the hub's clock and under the hub's gate name, as the upload
    answer's peer scans (hub/store_reconcile.py peer_scans): a gate gets the same fact
    whichever comes first."""
    return EntryState(
        ticket_id=scan["ticket_id"],
        event_id=scan.get("event_id"),
        at_ms=scan["scanned_ms"] + (scan.get("clock_offset_ms") or 0),
        direction=scan["direction"],  # the stored text: encoded as the enum's value would be
        gate_name=scan.get("gate_name") or scan.get("gate") or "",
        device_id=device_id,
        seq=scan["seq"],
        verdict=scan["verdict"],
        counted=bool(scan.get("counted")),
    )


LIVE = web.AppKey("live", LiveHub)
routes = web.RouteTableDef()


def outgoing(queued: list[tuple[str, bool]], batches: bool) -> list[str]:
    """The messages to send for what queued, in order: each run of entries as Entries
    messages (MAX_BATCH at most) when the device reads them. Fifty gates scanning at once
    are 49 entries for each gate: one message to wake for instead of 49."""
    if not batches:
        return [text for text, _ in queued]
    texts: list[str] = []
    for entry, run in groupby(queued, key=lambda q: q[1]):
        items = [text for text, _ in run]
        if not entry:
            texts.extend(items)
            continue
        for first in range(0, len(items), MAX_BATCH):
            chunk = items[first : first + MAX_BATCH]
            texts.append(chunk[0] if len(chunk) == 1 else entries_json(chunk))
    return texts


async def _writer(conn: Connection) -> None:
    """Sends what queued for one device: what came while it was sending goes out together,
    and for a device that reads Entries, what came within BATCH_GAP_S of the last message."""
    loop = asyncio.get_running_loop()
    sent_at = float("-inf")
    while True:
        queued = [await conn.queue.get()]
        if conn.batches and (wait := sent_at + BATCH_GAP_S - loop.time()) > 0:
            await asyncio.sleep(wait)
        while not conn.queue.empty() and len(queued) < MAX_BATCH:
            queued.append(conn.queue.get_nowait())
        try:
            for text in outgoing(queued, conn.batches):
                await asyncio.wait_for(conn.ws.send_str(text), SEND_TIMEOUT_S)
            sent_at = loop.time()
        except (ConnectionError, TimeoutError, RuntimeError):
            await conn.ws.close()
            return


@routes.get("/api/device/live")
async def live(request: web.Request) -> web.WebSocketResponse:
    device, _ = await authenticate_device(request)
    event_id = request.query.get("event_id") or None
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    hub = request.app[LIVE]
    batches = request.query.get(LIVE_BATCH_QUERY) == "1"
    conn = Connection(device["id"], device["venue_id"], event_id, ws, batches)
    hub.connections.add(conn)
    writer = conn.writer = asyncio.create_task(_writer(conn))
    try:
        if await hub.is_active(device["id"]):
            await ws.send_str(msgspec.json.encode(Hello(device["id"], event_id)).decode())
        else:  # deactivated while the upgrade was under way: it missed drop_device
            hub.drop_device(device["id"])
        async for msg in ws:  # devices only listen; anything they send is ignored
            if msg.type is WSMsgType.ERROR:
                break
    finally:
        hub.connections.discard(conn)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws


def install(app: web.Application) -> LiveHub:
    """Attach the live hub: listens to the store while the app runs, closes sockets on stop."""
    hub = LiveHub(app)
    app[LIVE] = hub

    @contextlib.asynccontextmanager
    async def listen(app: web.Application) -> AsyncIterator[None]:
        listeners = app[MEMORY].scan_listeners
        on_scans = hub.listener(asyncio.get_running_loop())
        listeners.append(on_scans)
        watch = asyncio.create_task(hub.watch_active())
        yield
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        listeners.remove(on_scans)

    async def close_all(app: web.Application) -> None:
        for conn in list(hub.connections):
            await conn.ws.close(code=1001, message=b"hub shutting down")

    app.cleanup_ctx.append(listen)
    app.on_shutdown.append(close_all)
    app.add_routes(routes)
    return hub
