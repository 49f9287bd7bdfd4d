"""The one way the hub does database work off its event loop: a resource (a database
connection, a store) that lives on one thread of its own, like datasette's write thread.

An fsynced SQLite commit takes milliseconds; on the event loop it would stall every other
request and every live socket. So handlers hand their database work to the app's store
thread (`await app[DB].run(lambda store: ...)`), and the slow workers (WAL checkpoints,
manifest builds, the request-nonce log) each own one of these too. Every use of a resource
runs on its thread, one at a time, in the order asked; closing happens there too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _keep(resource: object) -> None:
    """An adopted resource is closed by whoever opened it."""


class ThreadOwned(Generic[T]):
    def __init__(self, name: str, open_: Callable[[], T], close: Callable[[T], None]) -> None:
        self._name = name
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._open = open_
        self._close = close
        self._resource: T | None = None

    @classmethod
    def adopt(cls, name: str, resource: T) -> ThreadOwned[T]:
        """An already open resource (a connection made with check_same_thread=False): from
        now on used only on this thread; its opener still closes it."""
        owned = cls(name, lambda: resource, _keep)
        owned._resource = resource
        return owned

    def _with(self, use: Callable[[T], R]) -> R:
        if self._resource is None:
            self._resource = self._open()
        return use(self._resource)

    def run(self, use: Callable[[T], R]) -> asyncio.Future[R]:
        """`use(resource)` on the thread, as a future of the running loop."""
        return asyncio.get_running_loop().run_in_executor(self._thread, self._with, use)

    def call(self, use: Callable[[T], R]) -> R:
        """`use(resource)` on the thread, waiting for it here: for callers off the loop only
        (on the loop the wait would stall everything else, so it is refused)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self.submit(use).result()
        raise RuntimeError(f"{self._name}: waiting on the event loop; await run() instead")

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
