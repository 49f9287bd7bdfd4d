"""A resource (a database connection, a store) that lives on one thread of its own.

SQLite objects may not cross threads, and the hub's slow work (check transactions, manifest
builds, WAL checkpoints) must run beside the event loop, not on it. Each such worker holds
one of these: the resource is opened lazily on the thread, every use runs there, and closing
it happens there too before the thread stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ThreadOwned(Generic[T]):
    def __init__(self, name: str, open_: Callable[[], T], close: Callable[[T], None]) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._open = open_
        self._close = close
        self._resource: T | None = None

    def _with(self, use: Callable[[T], R]) -> R:
        if self._resource is None:
            self._resource = self._open()
        return use(self._resource)

    def run(self, use: Callable[[T], R]) -> asyncio.Future[R]:
        """`use(resource)` on the thread, as a future of the running loop."""
        return asyncio.get_running_loop().run_in_executor(self._thread, self._with, use)

    def call(self, use: Callable[[T], R]) -> R:
        """`use(resource)` on the thread, waiting for it here (for callers off the loop)."""
        return self.submit(use).result()

    def submit(self, use: Callable[[T], R]) -> Future[R]:
        """`use(resource)` on the thread, not waiting (with or without an event loop)."""
        return self._thread.submit(self._with, use)

    def close(self) -> None:
        def shut() -> None:
            if self._resource is not None:
                self._close(self._resource)
                self._resource = None

        self._thread.submit(shut).result()
        self._thread.shutdown(wait=True)
