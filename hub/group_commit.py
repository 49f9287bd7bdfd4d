"""Uploads that arrive together are stored together: one transaction, one fsync.

Fifty gates scanning at once send fifty uploads within a few milliseconds. Each one alone is
a turn of the database thread ending in an fsynced commit, and under load the fiftieth
waits for the forty-nine before it. Here an upload's work joins the next turn of the
database thread that has not started yet; that turn runs every work gathered by then in one
transaction (HubStore.in_one_commit: a bad upload fails alone) and answers each caller only
after the commit: nothing is acknowledged before it is on disk.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from hub.store_api import HubStorage
from hub.thread_owned import ThreadOwned

R = TypeVar("R")
Work = Callable[[HubStorage], Any]


def _settle(done: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if done.cancelled():  # the caller went away: its work is stored all the same
        return
    if failed:
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


class GroupCommit:
    def __init__(self, db: ThreadOwned[HubStorage]) -> None:
        self._db = db
        self._lock = threading.Lock()  # the loop adds, the database thread takes
        self._gathered: list[tuple[Work, asyncio.Future[Any]]] = []
        self._turn_queued = False

    async def run(self, work: Callable[[HubStorage], R]) -> R:
        """`work(store)` on the database thread in a transaction shared with the works that
        join it; its result once that transaction is committed (its exception if it
        raised, or if the commit failed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        with self._lock:
            self._gathered.append((work, done))
            queue_turn, self._turn_queued = not self._turn_queued, True
        if queue_turn:
            self._db.submit(lambda store: self._turn(store, loop))
        return await done

    def _turn(self, store: HubStorage, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            gathered, self._gathered = self._gathered, []
            self._turn_queued = False
        try:
            outcomes: list[Any] = store.in_one_commit([work for work, _ in gathered])
            failed = [isinstance(o, Exception) for o in outcomes]
        except Exception as exc:  # the commit itself failed: nothing of any work is stored
            outcomes, failed = [exc] * len(gathered), [True] * len(gathered)
        for (_, done), outcome, bad in zip(gathered, outcomes, failed, strict=True):
            loop.call_soon_threadsafe(_settle, done, outcome, bad)


UPLOADS = web.AppKey("uploads", GroupCommit)
