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

from hub.thread_owned import ThreadOwned

log = logging.getLogger("hub.checkpoint")
INTERVAL_S = 0.1


class Checkpointer:
    def __init__(self, db_path: str) -> None:
        self.path = db_path
        self._conn = ThreadOwned("hub-checkpoint", self._connect, sqlite3.Connection.close)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            try:
                await self._conn.run(_checkpoint)
            except sqlite3.Error:  # the next round tries again; the WAL only grows meanwhile
                log.exception("WAL checkpoint failed")

    def checkpoint(self) -> tuple[int, int, int]:
        """One checkpoint now, on the job's thread: (busy, WAL frames, frames copied)."""
        return self._conn.call(_checkpoint)

    def close(self) -> None:
        self._conn.close()


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])
