"""The gate's one door to the hub: signed requests, the hub's errors, the clock offset.

Sync (scanner/sync.py), the live channel (scanner/live.py) and enrolment (scanner/enroll.py)
reach the hub only through a `HubClient`, so a request is signed one way (protocol/signing.py,
with the device key made at enrolment), an error body `{"error": {"code", "message"}}` becomes
one typed `HubError` whatever the route, and the clock offset the gate learns from the hub is
kept, logged and used for signing in one place.

One HTTP stack: httpx. Sync and enrolment are plain blocking code on their own threads, so they
use httpx's blocking client (the sync worker never runs an event loop of its own, and tests and
benches hand it an `httpx.Client` with their hooks); the live channel runs the async client of
the same library in its thread's loop, with the WebSocket on top of it (httpx-ws, wsproto).
The upgrade is an ordinary signed httpx request, and a refused one is read and parsed like any
other answer, so the live socket hears the hub's own code ("device_deactivated") instead of
guessing it from a status.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
import msgspec
from httpx_ws import AsyncWebSocketSession

from protocol import __version__
from protocol.signing import STALE_TIMESTAMP, DeviceSigner
from protocol.wire import ErrorBody, WireError, decode
from scanner.clock import Clock, wall_clock_ms
from scanner.link_reasons import BAD_HUB_RESPONSE, HUB_UNREACHABLE, NOT_ENROLLED
from scanner.settings import CLOCK_OFFSET, DEVICE_SEED_KEY
from scanner.store import GateStore

# The clock's lines have always been the sync worker's in the gate log: keep them there.
log = logging.getLogger("scanner.sync")

# Below this the hub's own view of our clock (from the signed timestamp) is left alone; above
# it requests are signed with corrected time, or the hub would refuse them (±5 min window).
SIGN_WITH_OFFSET_ABOVE_MS = 60_000
OFFSET_WRITE_STEP_MS = 20  # a fresh offset is stored when it moved at least this much
APP_VERSION = __version__  # reported to the hub at enrolment and in heartbeats
DEFAULT_TIMEOUT_S = 10.0
WS_HEARTBEAT_S = 20.0  # ping the live socket this often; a pong later than half of it: dead

Progress = Callable[[int, int | None], None]
T = TypeVar("T")


class HubError(Exception):
    """A request to the hub failed. `code` is the hub's error code (protocol/wire.py,
    protocol/signing.py) or the gate's own (scanner/link_reasons.py: hub_unreachable,
    not_enrolled, bad_hub_response, manifest_<rejection code>...); `status` is the HTTP status
    the hub answered with, None when it did not answer; `detail` says why no answer came."""

    def __init__(
        self, code: str, message: str, status: int | None = None, detail: str = ""
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object answer; {} for anything else (an empty body, HTML from a proxy...)."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def read_answer(body: bytes, into: type[T], what: str) -> T:
    """A hub's answer as its wire Struct (protocol/wire.py), or HubError bad_hub_response
    naming what is wrong: an answer that is not what the wire says (a broken or hostile hub,
    a proxy's page) fails the exchange; nothing in it is acted on."""
    try:
        return decode(body, into)
    except WireError as exc:
        raise HubError(BAD_HUB_RESPONSE, f"the hub's {what} is malformed: {exc}") from None


def hub_error(status: int, body: bytes) -> HubError:
    """The hub's `{"error": {"code", "message"}}` (protocol/wire.py ErrorBody) as a HubError;
    `http_<status>` and a sentence when the body is no such error or leaves them empty."""
    try:
        error = decode(body, ErrorBody).error
    except WireError:
        code, message = "", ""
    else:
        code, message = error.code, error.message
    return HubError(code or f"http_{status}", message or f"the hub answered HTTP {status}", status)


def json_body(payload: Any, *, ensure_ascii: bool = True) -> bytes:
    """A request body (a wire Struct, or plain JSON values), byte for byte as the gate has
    always sent it: compact JSON (sync's bodies escape non-ASCII; enrolment's, once httpx's
    `json=`, do not)."""
    if isinstance(payload, msgspec.Struct):
        payload = msgspec.to_builtins(payload)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=ensure_ascii).encode()


class HubClient:
    """Requests to one hub for one gate. `http` is the blocking client (made on first use
    unless given; closed by `close()` only when made here). Thread-safe as httpx is: the sync
    thread and the live thread may share one client and so one clock offset."""

    def __init__(
        self,
        store: GateStore,
        hub_url: str,
        clock: Clock = wall_clock_ms,
        http: httpx.Client | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.hub_url = hub_url.rstrip("/")
        self.clock = clock
        self.timeout_s = timeout_s
        self._http = http
        self._own_http = http is None
        self._offset: int | None = None  # learned by this client; see `offset`
        self._offsets = OffsetEstimator()
        self._clock_warned: int | None = None  # the offset last warned about

    @property
    def offset(self) -> int | None:
        """Hub time ≈ this gate's time + offset: as this client last measured it, else as
        the gate last kept it (a live channel that does not share the sync worker's client
        follows the offset the worker stores, as before)."""
        if self._offset is not None:
            return self._offset
        return self.store.setting(CLOCK_OFFSET)

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout_s)
        return self._http

    def close(self) -> None:
        if self._own_http and self._http is not None:
            self._http.close()
            self._http = None

    # -- signing -----------------------------------------------------------------------

    def signed(
        self, method: str, path: str, body: bytes = b"", extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The headers of a signed request (protocol/signing.py), with corrected time when
        this gate's clock is far off the hub's."""
        seed, device_id = self.store.key(DEVICE_SEED_KEY), self.store.device_id
        if seed is None or not device_id:
            raise HubError(NOT_ENROLLED, "this gate is not enrolled with a hub")
        now = self.clock()
        if self.offset is not None and abs(self.offset) > SIGN_WITH_OFFSET_ABOVE_MS:
            now += self.offset
        headers = DeviceSigner(device_id, seed).sign(method, path, body, now_ms=now)
        if body:
            headers["Content-Type"] = "application/json"
        return {**headers, **(extra or {})}

    # -- blocking requests (sync, enrolment) ---------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        signed: bool = True,
        expect: int | None = None,
        ensure_ascii: bool = True,
    ) -> httpx.Response:
        """One request with a JSON body (none for None). Raises HubError: hub_unreachable
        when no answer came, else the hub's code for a status >= 400 (or any other than
        `expect`)."""
        body = b"" if payload is None else json_body(payload, ensure_ascii=ensure_ascii)
        if signed:
            headers = self.signed(method, path, body)
        elif body:  # in the order httpx's `json=` wrote them: the same bytes as before
            headers = {"Content-Length": str(len(body)), "Content-Type": "application/json"}
        else:
            headers = {}
        try:
            resp = self.http.request(
                method, self.hub_url + path, content=body or None, headers=headers
            )
        except httpx.HTTPError as exc:
            raise HubError(HUB_UNREACHABLE, f"{method} {path}: {exc}", detail=str(exc)) from None
        self.refused(resp.status_code, resp.headers, resp.content, expect)
        return resp

    def download(
        self,
        path: str,
        extra: Mapping[str, str],
        progress: Progress,
        *,
        what: str = "download",
    ) -> tuple[bytes | None, str | None]:
        """A signed GET read whole into memory, with `progress(received, total)`: (body,
        ETag), or (None, None) for 304. A body shorter than its Content-Length is refused."""
        headers = self.signed("GET", path, b"", extra)
        try:
            with self.http.stream("GET", self.hub_url + path, headers=headers) as resp:
                if resp.status_code == 304:
                    return None, None
                if resp.status_code != 200:
                    self.refused(resp.status_code, resp.headers, resp.read(), 200)
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                received = bytearray()
                progress(0, total)
                for chunk in resp.iter_bytes():
                    received += chunk
                    progress(len(received), total)
        except httpx.HTTPError as exc:
            raise HubError(HUB_UNREACHABLE, f"{what} failed: {exc}", detail=str(exc)) from None
        if total is not None and len(received) != total:
            raise HubError(BAD_HUB_RESPONSE, f"the {what} was cut short")
        return bytes(received), resp.headers.get("ETag")

    def refused(
        self, status: int, headers: Mapping[str, str], body: bytes, expect: int | None = None
    ) -> None:
        """Learn the clock from any answer, then raise the hub's error for a refusal."""
        self.learn_clock(status, headers, body)
        if status >= 400 or (expect is not None and status != expect):
            raise hub_error(status, body)

    # -- the live socket ---------------------------------------------------------------

    @asynccontextmanager
    async def websocket(
        self, client: httpx.AsyncClient, path: str
    ) -> AsyncIterator[AsyncWebSocketSession]:
        """A signed WebSocket upgrade on `client`; a refused upgrade raises the hub's
        HubError (its body read and parsed like any answer)."""
        headers = {
            **self.signed("GET", path, b""),
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Key": base64.b64encode(secrets.token_bytes(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
        async with client.stream("GET", self.hub_url + path, headers=headers) as resp:
            if resp.status_code != 101:
                self.refused(resp.status_code, resp.headers, await resp.aread(), 101)
            session = AsyncWebSocketSession(
                resp.extensions["network_stream"],
                keepalive_ping_interval_seconds=WS_HEARTBEAT_S,
                keepalive_ping_timeout_seconds=WS_HEARTBEAT_S / 2,
                response=resp,
            )
            async with session:
                yield session

    # -- the clock ---------------------------------------------------------------------

    def learn_clock(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """A refused timestamp means our clock is far off: take the hub's from the `Date`
        header (whole seconds) so the next request is signed with corrected time."""
        if status != 401 or hub_error(status, body).code != STALE_TIMESTAMP:
            return
        date = headers.get("Date")
        if not date:
            return
        try:
            hub_ms = int(parsedate_to_datetime(date).timestamp() * 1000) + 500
        except (TypeError, ValueError):
            return
        self.set_offset(hub_ms - self.clock())

    def measured(self, hub_ms: int, sent_ms: int, rtt_ms: float) -> None:
        """The hub's clock as a heartbeat answer gave it: it read it somewhere in the round
        trip, so take the midpoint, filtered over recent exchanges (OffsetEstimator)."""
        measured = hub_ms - (sent_ms + self.clock()) // 2
        self.set_offset(self._offsets.add(measured, rtt_ms))

    def set_offset(self, offset_ms: int) -> None:
        previous = self.offset
        self._offset = offset_ms
        self._log_clock(offset_ms)
        if previous is None or abs(offset_ms - previous) >= OFFSET_WRITE_STEP_MS:
            self.store.set_setting(CLOCK_OFFSET, offset_ms)

    def _log_clock(self, offset_ms: int) -> None:
        """Warn once when the gate's clock is off the hub's by more than the signing
        threshold (and again if it moves by as much), note when it is back within it."""
        limit = SIGN_WITH_OFFSET_ABOVE_MS
        warned = self._clock_warned
        if abs(offset_ms) > limit:
            if warned is None or abs(offset_ms - warned) >= limit:
                self._clock_warned = offset_ms
                log.warning(
                    "clock: this gate's clock is %s %s the hub's (offset %d ms); requests are "
                    "signed with corrected time, set the clock (NTP) to fix it",
                    _duration(abs(offset_ms)),
                    "behind" if offset_ms > 0 else "ahead of",
                    offset_ms,
                )
        elif warned is not None:
            self._clock_warned = None
            log.info(
                "clock: back within %d s of the hub's (offset %d ms)", limit // 1000, offset_ms
            )


def _duration(ms: int) -> str:
    if ms >= 2 * 3_600_000:
        return f"{ms / 3_600_000:.1f} h"
    if ms >= 60_000:
        return f"{round(ms / 60_000)} min"
    return f"{ms / 1000:.1f} s"


class OffsetEstimator:
    """NTP's filter: of the recent exchanges, trust the one with the shortest round trip.
    A midpoint is wrong by at most half its round trip, and a reply held up one way (a
    congested link) would otherwise drag the offset by half the delay. A sample that cannot
    agree with the best one within both their error bounds means the device clock was set:
    start over from it."""

    KEEP = 8
    SLACK_MS = 5.0  # the hub's handling time inside a round trip

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=self.KEEP)  # (rtt_ms, offset)

    def add(self, offset_ms: int, rtt_ms: float) -> int:
        if self._samples:
            best_rtt, best = min(self._samples)
            if abs(offset_ms - best) > (rtt_ms + best_rtt) / 2 + self.SLACK_MS:
                self._samples.clear()
        self._samples.append((rtt_ms, offset_ms))
        return min(self._samples)[1]
