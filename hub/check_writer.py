"""The check writer: a process of its own that runs every online check's transaction.

A check costs the hub about 0.6 ms of Python on the event loop (HTTP, the device's request
signature, the body) and 0.5 ms in its transaction (credential, reads, the engine, the
insert, the commit). In one process both share one interpreter lock, so the hub could never
use more than one core for checks. Here the transaction runs in a child process with its
own interpreter and its own connection to the same database, so the two halves run side by
side. There is still exactly one check writer, so checks are judged in the order they came
and two gates checking one ticket at once still admit exactly one.

Wire: length-prefixed pickles over the child's stdin and stdout (the child is ours, started
from this file; nothing else writes to that pipe). A request frame is `(reset, contexts,
checks)`; event facts (`CheckContext`, which holds every revoked ticket of the event) go
once per revision and the child keeps them until told to `reset`. The answer is `("ok",
outcomes, stored rows)` or `("error", message)`; the child answers only after COMMIT.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pickle
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from hub.logs import configure_logging
from hub.online_check import CheckContext, OnlineCheck
from hub.storage import HubStore
from hub.store_manifests import CheckOutcome

log = logging.getLogger("hub.check_writer")
FRAME = struct.Struct("!I")
MAX_CONTEXTS = 64  # event facts the child holds before the hub starts it over on a new set
StoredRows = list[tuple[str, dict[str, Any]]]
Answer = tuple[list[CheckOutcome], StoredRows]


class CheckWriterFailed(Exception):
    """The check writer process failed the batch or is gone; nothing of it is stored."""


class FrameReader:
    """Length-prefixed frames from a pipe: `frames()` blocks for at least one and returns
    every frame that has fully arrived, so the writer can take them in one transaction."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def frames(self) -> list[Any] | None:
        """The frames ready now (waiting for one if none is); None once the pipe closed."""
        while True:
            found = self._complete()
            if found:
                return found
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk

    def _complete(self) -> list[Any]:
        found, at = [], 0
        while len(self._buffer) - at >= FRAME.size:
            (size,) = FRAME.unpack_from(self._buffer, at)
            if len(self._buffer) - at - FRAME.size < size:
                break
            found.append(pickle.loads(self._buffer[at + FRAME.size : at + FRAME.size + size]))
            at += FRAME.size + size
        del self._buffer[:at]
        return found


def _write_frame(stream: BinaryIO, message: object) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(body)) + body)


def serve(db_path: str, requests: int, answers: BinaryIO) -> None:
    """The child's loop until the hub closes the pipe. Every batch that has arrived by the
    time the last transaction ended goes into the next one (group commit on this side too:
    the hub sends each batch at once instead of waiting for the answer to the one before);
    each batch still gets its own answer, in order."""
    store = HubStore(db_path, migrate=False)
    store.leave_checkpoints_to_background()  # the hub's Checkpointer does them
    contexts: dict[int, CheckContext] = {}
    reader = FrameReader(requests)
    try:
        while (frames := reader.frames()) is not None:
            batches: list[list[OnlineCheck]] = []
            used: dict[int, CheckContext] = {}  # a later batch's reset must not drop these
            for reset, fresh_contexts, checks in frames:
                if reset:
                    contexts.clear()
                contexts.update(fresh_contexts)
                used.update((c.context_id, contexts[c.context_id]) for c in checks)
                batches.append(checks)
            _answer(store, batches, used, answers)
            answers.flush()
    finally:
        store.close()


def _answer(
    store: HubStore,
    batches: list[list[OnlineCheck]],
    contexts: Mapping[int, CheckContext],
    answers: BinaryIO,
) -> None:
    try:
        everything = [check for batch in batches for check in batch]
        outcomes, stored = store.check_and_record(everything, contexts)
    except Exception as exc:  # all rolled back; the hub answers each check 503
        log.exception("check batch failed")
        for _ in batches:
            _write_frame(answers, ("error", f"{type(exc).__name__}: {exc}"))
        return
    rows = {(device_id, row["seq"]): (device_id, row) for device_id, row in stored}
    at = 0
    for batch in batches:
        mine = [rows[key] for c in batch if (key := (c.device_id, c.seq)) in rows]
        _write_frame(answers, ("ok", outcomes[at : at + len(batch)], mine))
        at += len(batch)


class CheckWriter:
    """The hub's side: starts the child on first use (and again if it died) and sends each
    batch as soon as it is made; answers come back in the order batches were sent."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._process: asyncio.subprocess.Process | None = None
        self._answers: asyncio.Task[None] | None = None
        self._waiting: collections.deque[asyncio.Future[Answer]] = collections.deque()
        self._sent: set[int] = set()
        self._starting = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _running(self) -> bool:
        """Up, and its answers still being read (the reader stops at the pipe's end)."""
        return (
            self._process is not None
            and self._process.returncode is None
            and self._answers is not None
            and not self._answers.done()
        )

    async def start(self) -> None:
        async with self._starting:
            if self._running():
                return
            await self._reap()
            self._sent = set()
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hub.check_writer",
                self.db_path,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # Not in the hub's process group: Ctrl+C in the hub's terminal must not stop
                # the writer before the hub's graceful shutdown has sent it the checks in
                # flight. It leaves when the hub closes the pipe, or dies.
                start_new_session=True,
            )
            self._answers = asyncio.get_running_loop().create_task(
                self._read_answers(self._process)
            )

    async def run(
        self, checks: Sequence[OnlineCheck], contexts: Mapping[int, CheckContext]
    ) -> Answer:
        """Store the batch; its outcomes and the scan rows stored, once committed."""
        if not self._running():
            await self.start()
        process = self._process
        assert process is not None and process.stdin is not None
        needed = {c.context_id for c in checks}
        reset = len(self._sent | needed) > MAX_CONTEXTS
        if reset:
            self._sent = set()
        fresh = {key: contexts[key] for key in needed - self._sent}
        body = pickle.dumps((reset, fresh, list(checks)), protocol=pickle.HIGHEST_PROTOCOL)
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        try:
            process.stdin.write(FRAME.pack(len(body)) + body)
        except (ConnectionError, RuntimeError) as exc:  # the pipe is closed or closing
            raise CheckWriterFailed("the check writer process stopped") from exc
        self._sent |= fresh.keys()
        self._waiting.append(answer)
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()  # a broken pipe shows as EOF to the answer reader
        return await answer

    async def _read_answers(self, process: asyncio.subprocess.Process) -> None:
        stdout = process.stdout
        assert stdout is not None
        try:
            while True:
                head = await stdout.readexactly(FRAME.size)
                answer = pickle.loads(await stdout.readexactly(FRAME.unpack(head)[0]))
                waiting = self._waiting.popleft()
                if waiting.done():
                    continue
                if answer[0] == "ok":
                    waiting.set_result((answer[1], answer[2]))
                else:
                    waiting.set_exception(CheckWriterFailed(answer[1]))
        except (ConnectionError, asyncio.IncompleteReadError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()  # whatever is left of it: it answers nothing more
            while self._waiting:
                waiting = self._waiting.popleft()
                if not waiting.done():
                    waiting.set_exception(CheckWriterFailed("the check writer process stopped"))

    async def _reap(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._answers is not None:
            await self._answers
            self._answers = None

    async def close(self) -> None:
        """Close the pipe once every batch sent is answered: the child exits; killed if it
        does not within 5 s."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            with contextlib.suppress(TimeoutError):  # then killed below
                await asyncio.wait_for(process.wait(), 5)
        await self._reap()


def main() -> None:
    configure_logging()
    serve(sys.argv[1], sys.stdin.fileno(), sys.stdout.buffer)


if __name__ == "__main__":
    main()
