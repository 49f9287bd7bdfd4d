"""Other gates' movements, the moment the hub stores them: the hub's live WebSocket.

The sync worker learns other gates' scans only when it uploads (every few seconds); a friend
handing a just-used code over the barrier to the next gate is quicker than that. While the
hub is reachable this channel holds `/api/device/live` open (signed upgrade, like every device
request) and merges each pushed movement into the local history at once, so the NEXT local
decision already sees it. Decisions stay local: a dead socket only means the gate falls back
to what sync brings, never that a scan waits.

Our own scans reach the other gates the same way in reverse: the app wakes the sync worker
after each commit, the upload is stored at the hub, and the hub pushes it to everyone else.

The socket lives in its own thread with its own event loop (httpx's async client with the
WebSocket of httpx-ws, signed through the gate's HubClient: scanner/hub_client.py), so the
Textual loop, the CLI and the sync worker's thread are never held up by it.

When a venue manager deactivates this device the hub closes the socket with code 4403
("device_deactivated") and refuses the upgrade with 403 from then on; the channel then stops
reconnecting (every try would be refused) until the gate is enrolled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from httpx_ws import AsyncWebSocketSession, HTTPXWSException, WebSocketDisconnect
from wsproto.events import TextMessage

from manifests.admission_types import ScanFact
from protocol.wire import (
    DEACTIVATED_CLOSE_CODE,
    DEVICE_DEACTIVATED,
    INVALID_FIELD,
    LIVE_BATCH_QUERY,
    Entries,
    EntryState,
    LiveMessage,
    TicketsChanged,
    WireError,
    convert,
    decode,
)
from scanner.clock import Clock, wall_clock_ms
from scanner.connection import ConnectionMonitor, LinkPolicy
from scanner.hub_client import HubClient, HubError
from scanner.link_reasons import NOT_ENROLLED
from scanner.store import GateStore
from scanner.sync import chosen_event, unknown_peer_facts

log = logging.getLogger("scanner.live")
LIVE_PATH = "/api/device/live"
# Reconnect soon after the hub closed a healthy socket; back off (1 s doubling to 30 s, with
# jitter) while it cannot be reached at all.
LIVE_POLICY = LinkPolicy(fail_after=1, recover_after=1, poll_s=1.0)
EVENT_RECHECK_S = 2.0  # how often an open socket checks the gate still holds the same event

Merged = Callable[[list[ScanFact]], None]
Deactivated = Callable[[str], None]  # told the hub's refusal code (protocol/wire.py)


def live_message(message: str | bytes | Mapping[str, Any]) -> LiveMessage | None:
    """What the hub pushed (its text, or that text parsed) as its wire Struct (protocol/wire.py
    Hello or EntryState); None, logged, for anything else: a future message type (at DEBUG, an
    older gate is expected to meet one) or a malformed one (at WARNING: nothing of it is
    merged)."""
    try:
        if isinstance(message, Mapping):
            return convert(dict(message), LiveMessage)  # type: ignore[arg-type]
        raw = message.encode() if isinstance(message, str) else message
        return decode(raw, LiveMessage)  # type: ignore[arg-type]
    except WireError as exc:
        if exc.path == ("type",) and exc.code == INVALID_FIELD:
            log.debug("live: ignored a message of another type (%s)", exc)
        else:
            log.warning("live: ignored a malformed message from the hub (%s)", exc)
        return None


def entry_facts(message: str | bytes | Mapping[str, Any], offset_ms: int) -> list[ScanFact]:
    """A pushed `entry_state` (or `entries`) as history facts on this gate's clock (the hub
    sends hub time); none for anything else (the `hello`, a future message type, a
    malformed entry)."""
    decoded = live_message(message)
    if isinstance(decoded, EntryState):
        return [ScanFact.pushed(decoded, offset_ms)]
    if isinstance(decoded, Entries):
        return [ScanFact.pushed(entry, offset_ms) for entry in decoded.entries]
    return []


class LiveChannel:
    """`start()` runs the socket in a daemon thread; `stop()` closes it and joins.

    `on_merge` is called from the channel's thread with the facts that were new (a Textual
    app hands it on with `call_from_thread`); an exception in it is logged, never fatal.
    """

    def __init__(
        self,
        store: GateStore,
        hub_url: str,
        clock: Clock = wall_clock_ms,
        *,
        hub: HubClient | None = None,
        event_id: str | None = None,
        policy: LinkPolicy | None = None,
        on_merge: Merged | None = None,
        on_deactivated: Deactivated | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.hub_url = hub_url.rstrip("/")
        self.clock = clock
        # Shared with the sync worker by hub_link: one clock offset, one way to sign.
        self.hub = hub or HubClient(store, hub_url, clock)
        self.on_merge = on_merge
        # Told once when the hub deactivates this device, from the channel's thread
        # (scanner/hub_link.py hands it to the sync worker, so the status bar says why).
        self.on_deactivated = on_deactivated
        # Told when the hub says an event's tickets changed (hub_link: the sync worker's wake).
        self.on_tickets_changed: Callable[[], None] | None = None
        self._was_down = False  # a run of failed connects is logged once
        self.monitor = ConnectionMonitor(policy or LIVE_POLICY, rng)
        self._event_id = event_id
        self.connected = threading.Event()  # set while the socket is open (tests wait on it)
        self.deactivated = threading.Event()  # the hub deactivated this device: no reconnects
        self.received = 0  # entries from other gates merged as new, since start
        self.connected_path: str | None = None  # the socket's path while it is open
        self.event_recheck_s = EVENT_RECHECK_S
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the live channel is already running")
        self._stopping.clear()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="gate-live", daemon=True
        )
        self._thread.start()
        ready.wait(5.0)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.connected.clear()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._hold())
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _hold(self) -> None:
        """Connect, listen until the socket ends, wait, connect again: until stopped."""
        async with httpx.AsyncClient(timeout=self.hub.timeout_s) as client:
            while not self._stopping.is_set():
                device_id = self.store.device_id
                try:
                    await self._listen(client)
                except DeviceDeactivated as exc:
                    self.monitor.bad()
                    self.deactivated.set()
                    log.warning(
                        "live: stopped, %s; no reconnects until the gate is enrolled again", exc
                    )
                    self._tell_deactivated()
                except HubError as exc:
                    self.monitor.bad()
                    if exc.code == NOT_ENROLLED:  # as configured, this gate cannot connect
                        self._down(exc.message, logging.WARNING)
                    else:
                        self._down(f"{type(exc).__name__}: {exc}")
                except (httpx.HTTPError, HTTPXWSException, OSError, TimeoutError) as exc:
                    self.monitor.bad()
                    self._down(f"{type(exc).__name__}: {exc}")
                except ExceptionGroup as exc:  # the socket's own tasks (ping, reader) failed
                    self.monitor.bad()
                    self._down(f"{type(exc).__name__}: {exc.exceptions!r}", logging.WARNING)
                finally:
                    self.connected.clear()
                if self._stopping.is_set():
                    break
                if self.deactivated.is_set():
                    await self._until_reenrolled(device_id)
                    continue
                await asyncio.sleep(self.monitor.next_delay_s())

    def _down(self, why: str, level: int = logging.INFO) -> None:
        """The first failed connect of a run is logged; retries every few seconds are not."""
        log.log(level if not self._was_down else logging.DEBUG, "live: down (%s)", why or "-")
        self._was_down = True

    def _tell_deactivated(self) -> None:
        if self.on_deactivated is None:
            return
        try:
            self.on_deactivated(DEVICE_DEACTIVATED)
        except Exception:
            log.exception("deactivation listener failed")

    async def _until_reenrolled(self, device_id: str) -> None:
        """Wait while the gate holds the deactivated identity (the hub refuses it for good);
        a new enrolment (a new device id) lets the channel connect again."""
        while not self._stopping.is_set() and self.store.device_id == device_id:
            await asyncio.sleep(self.event_recheck_s)
        if not self._stopping.is_set():
            log.info("live: the gate was enrolled again; connecting")
        self.deactivated.clear()

    async def _listen(self, client: httpx.AsyncClient) -> None:
        path = self.path()
        try:
            async with self.hub.websocket(client, path) as ws:
                close_code = await self._hold_open(ws, path)
        except HubError as exc:
            # the live route refuses with 403 only a deactivated device
            if exc.code == DEVICE_DEACTIVATED or exc.status == 403:
                raise DeviceDeactivated(f"the hub refuses this device ({exc.status})") from exc
            raise
        if close_code == DEACTIVATED_CLOSE_CODE:
            raise DeviceDeactivated("the hub closed the socket: device_deactivated")
        if not self._stopping.is_set():
            log.info("live: socket closed (code %s); reconnecting", close_code)

    async def _hold_open(self, ws: AsyncWebSocketSession, path: str) -> int | None:
        """Merge what the hub pushes until it closes the socket (its close code) or the
        connection drops (None). The hub naming the next event (or the operator setting one)
        ends it too, so the channel reconnects for the event the gate holds now. Nothing
        leaves this method as an exception but cancellation: the session's task group would
        wrap it in an ExceptionGroup."""
        self.monitor.good(0.0)
        self.connected_path = path
        self.connected.set()
        self._was_down = False
        log.info("live: connected (%s)", path)
        try:
            while self.path() == path:
                try:
                    event = await ws.receive(timeout=self.event_recheck_s)
                except TimeoutError:
                    continue
                if isinstance(event, TextMessage):
                    self._receive(event.data)
            return 1000  # we closed it, as the event moved on
        except WebSocketDisconnect as closed:
            return closed.code
        except HTTPXWSException:
            return None
        finally:
            self.connected_path = None

    # -- messages ------------------------------------------------------------------------

    def _receive(self, text: str) -> None:
        if isinstance(live_message(text), TicketsChanged):
            if self.on_tickets_changed is not None:
                self.on_tickets_changed()  # the sync worker: fetch the manifest delta now
            return
        own = self.store.device_id
        facts = [f for f in entry_facts(text, self.hub.offset or 0) if f.device_id != own]
        fresh = unknown_peer_facts(self.store, facts) if facts else []
        # one commit a message, not fsynced: a power cut loses at most what the next sync's
        # peer scans bring again (GateStore.merge_peer_scans)
        if not fresh or self.store.merge_peer_scans(fresh, durable=False) == 0:
            return  # already known (from sync, or pushed twice)
        self.received += len(fresh)
        if self.on_merge is not None:
            try:
                self.on_merge(fresh)
            except Exception:
                log.exception("live listener failed")

    # -- signing -------------------------------------------------------------------------

    def event_id(self) -> str | None:
        if self._event_id:
            return self._event_id
        return chosen_event(self.store)

    def path(self) -> str:
        """The socket's path: entries in batches (wire.Entries); with an event known, only
        that event's entries."""
        event_id = self.event_id()
        path = f"{LIVE_PATH}?{LIVE_BATCH_QUERY}=1"
        return path if event_id is None else f"{path}&event_id={quote(event_id)}"


class DeviceDeactivated(Exception):
    """The hub deactivated this device: reconnecting cannot help until it is enrolled again."""
