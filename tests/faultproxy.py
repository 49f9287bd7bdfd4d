"""A TCP proxy on 127.0.0.1 between gates and the hub that misbehaves on demand.

The sync protocol claims that a lost answer, a cut-off body, a slow or absent hub and a
replayed request all leave the hub with every scan exactly once. This proxy makes those
faults happen on the real sockets (HTTP keep-alive and the live WebSocket alike) without
touching either side. It runs its own asyncio loop in a daemon thread; the test switches
`mode` at any time and reads `counts` to know the faults really happened.

Modes:
- pass: bytes flow both ways untouched.
- delay: every chunk from the hub waits `delay_s` first.
- drop: a request reaches the hub, then both sockets close before any answer comes back
  (the hub may have committed: the gate must resend and the hub must not store twice).
- truncate: only the first half of the hub's next chunk reaches the gate, then both close.
- refuse: the listening socket is closed (connect fails) and open connections are cut.
Upload requests (POST /api/device/scans) are captured whole so `replay()` can send one again.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import Future
from typing import Literal

Mode = Literal["pass", "delay", "drop", "truncate", "refuse"]
UPLOAD_PREFIX = b"POST /api/device/scans"
LIVE_PREFIX = b"GET /api/device/live"
CHUNK = 65536


class FaultProxy:
    def __init__(self, upstream_port: int, *, delay_s: float = 0.3) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.port = 0
        self.counts: Counter[str] = Counter()
        self.captured: list[bytes] = []  # whole raw upload requests, as sent
        self._mode: Mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control, from the test thread --------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._shutdown())
        self._call(self._finish_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        """Switch faults; `refuse` stops listening, leaving it starts listening again."""
        previous, self._mode = self._mode, mode
        self.counts[f"mode_{mode}"] += 1
        if mode == "refuse" and previous != "refuse":
            self._call(self._shutdown())
        elif mode != "refuse" and previous == "refuse":
            self._call(self._listen())

    def replay(self, index: int = -1, timeout_s: float = 10.0) -> bytes:
        """Send a captured upload again, byte for byte, straight to the hub; its answer."""
        return self._call(self._replay(self.captured[index]), timeout_s)

    def _call(self, coro: object, timeout_s: float = 10.0) -> object:
        fut: Future[object] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return fut.result(timeout_s)

    # -- the loop side --------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._client, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
            self.counts["cut"] += 1
        self._writers.clear()

    async def _finish_tasks(self) -> None:
        """Let the connections' tasks end (cancelled) before the loop stops, so none is left
        pending when the proxy is gone."""
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _client(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        if self._mode == "refuse":
            c_writer.transport.abort()
            self.counts["refused"] += 1
            return
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.transport.abort()
            self.counts["upstream_down"] += 1
            return
        self.counts["connections"] += 1
        self._writers.update((c_writer, u_writer))
        both = (c_writer, u_writer)
        await asyncio.gather(
            self._pump(c_reader, u_writer, both, upstream=True),
            self._pump(u_reader, c_writer, both, upstream=False),
            return_exceptions=True,
        )
        for w in both:
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        upstream: bool,
    ) -> None:
        """Copy one direction; `upstream` is gate -> hub. Faults are decided per chunk."""
        upload = b""  # an upload request being put together from its chunks
        while True:
            data = await reader.read(CHUNK)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            mode = self._mode
            if upstream:
                if data.startswith(UPLOAD_PREFIX) or upload:
                    # The headers and the body may come in separate chunks (as TCP pleases).
                    upload = data if data.startswith(UPLOAD_PREFIX) else upload + data
                    if _whole_request(upload):
                        self.captured.append(upload)
                        upload = b""
                elif data.startswith(LIVE_PREFIX):
                    self.counts["live_opened"] += 1
                writer.write(data)
                await writer.drain()
                if mode == "drop":
                    self.counts["dropped"] += 1
                    await asyncio.sleep(0.05)  # let the hub read it: the answer is what is lost
                    _abort(both)
                    return
                continue
            if mode == "delay":
                self.counts["delayed"] += 1
                await asyncio.sleep(self.delay_s)
            if mode == "truncate":
                self.counts["truncated"] += 1
                writer.write(data[: max(1, len(data) // 2)])
                await writer.drain()
                _abort(both)
                return
            writer.write(data)
            await writer.drain()

    async def _replay(self, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            self.counts["replayed"] += 1
            return head
        finally:
            writer.transport.abort()


def _whole_request(data: bytes) -> bool:
    """Whether these bytes are one whole request: its headers and exactly its body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return bool(sep) and len(body) == int(value.strip())
    return False


def _abort(writers: tuple[asyncio.StreamWriter, ...]) -> None:
    for w in writers:
        w.transport.abort()
