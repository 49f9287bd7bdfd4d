"""WAL checkpoints on a thread of their own, never inside a request's commit.

SQLite's automatic checkpoint runs in whichever commit pushes the WAL past 1,000 pages: that
commit then copies pages into the database file and syncs it, and every online check waiting
on it pays tens of milliseconds. The hub's writing connections turn that off
(`HubStore.leave_checkpoints_to_background`) and this job checkpoints every INTERVAL_S
instead, PASSIVE: it copies what no reader still needs and never blocks a writer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("hub.checkpoint")
INTERVAL_S = 0.1


class Checkpointer:
    def __init__(self, db_path: str) -> None:
        self.path = db_path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="hub-checkpoint")
        self._conn: sqlite3.Connection | None = None  # opened on (and only used by) the thread

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(INTERVAL_S)
            try:
                await loop.run_in_executor(self._thread, self._checkpoint)
            except sqlite3.Error:  # the next round tries again; the WAL only grows meanwhile
                log.exception("WAL checkpoint failed")

    def checkpoint(self) -> tuple[int, int, int]:
        """One checkpoint now, on the job's thread: (busy, WAL frames, frames copied)."""
        return self._thread.submit(self._checkpoint).result()

    def _checkpoint(self) -> tuple[int, int, int]:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout = 5000")
        row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._thread.submit(shut).result()
        self._thread.shutdown(wait=True)
