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
import contextlib
import logging
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


class CheckWriterFailed(Exception):
    """The check writer process failed the batch or is gone; nothing of it is stored."""


def _read_frame(stream: BinaryIO) -> Any | None:
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    body = stream.read(FRAME.unpack(head)[0])
    return pickle.loads(body)


def _write_frame(stream: BinaryIO, message: object) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(body)) + body)
    stream.flush()


def serve(db_path: str, requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: one batch at a time until the hub closes the pipe."""
    store = HubStore(db_path, migrate=False)
    store.leave_checkpoints_to_background()  # the hub's Checkpointer does them
    contexts: dict[int, CheckContext] = {}
    try:
        while (frame := _read_frame(requests)) is not None:
            reset, fresh_contexts, checks = frame
            if reset:
                contexts.clear()
            contexts.update(fresh_contexts)
            try:
                outcomes, stored = store.check_and_record_quietly(checks, contexts)
            except Exception as exc:  # the batch is rolled back; the hub answers 500
                log.exception("check batch failed")
                _write_frame(answers, ("error", f"{type(exc).__name__}: {exc}"))
            else:
                _write_frame(answers, ("ok", outcomes, stored))
    finally:
        store.close()


class CheckWriter:
    """The hub's side: starts the child on first use (and again if it died), sends it one
    batch at a time. Callers never overlap (CheckBatcher keeps one batch in flight)."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._process: asyncio.subprocess.Process | None = None
        self._sent: set[int] = set()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        if self._process is not None and self._process.returncode is None:
            return
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

    async def run(
        self, checks: Sequence[OnlineCheck], contexts: Mapping[int, CheckContext]
    ) -> tuple[list[CheckOutcome], StoredRows]:
        await self.start()
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        needed = {c.context_id for c in checks}
        reset = len(self._sent | needed) > MAX_CONTEXTS
        if reset:
            self._sent = set()
        fresh = {key: contexts[key] for key in needed - self._sent}
        body = pickle.dumps((reset, fresh, list(checks)), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            process.stdin.write(FRAME.pack(len(body)) + body)
            await process.stdin.drain()
            self._sent |= fresh.keys()
            head = await process.stdout.readexactly(FRAME.size)
            answer = pickle.loads(await process.stdout.readexactly(FRAME.unpack(head)[0]))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self._reap()
            raise CheckWriterFailed("the check writer process stopped") from exc
        if answer[0] != "ok":
            raise CheckWriterFailed(answer[1])
        return answer[1], answer[2]

    async def _reap(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def close(self) -> None:
        """Close the pipe: the child finishes its batch (none is in flight at shutdown)
        and exits; killed if it does not within 5 s."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            await self._reap()
        self._process = None


def main() -> None:
    configure_logging()
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
