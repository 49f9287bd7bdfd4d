"""The hub's memory of device request nonces, so a captured request cannot be replayed.

Checked in memory (every signed request asks, and a database round trip per request was a
tenth of the event loop's time under load) and written behind to its own database file
beside the hub's (`<path>-nonces`) every FLUSH_EVERY_MS, read back at start. The writing runs
on a thread of its own: done on the event loop it took 3 ms every flush and up to 23 ms,
and every request in flight waited that long. Not fsynced: a crash or power cut may forget
the last fraction of a second of nonces, whose timestamps expire within minutes
(NONCE_MEMORY_MS). Replaying such a request gains nothing anyway: uploads and checks are
idempotent on the device's sequence number and the rest only read. One hub process per
database: the memory is this process's.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from concurrent.futures import Future

from hub.schema import NONCE_DDL
from hub.thread_owned import ThreadOwned
from protocol.signing import NONCE_MEMORY_MS

log = logging.getLogger("hub.nonces")
FLUSH_EVERY_MS = 250
Nonce = tuple[str, str, int]  # device id, nonce, seen at (ms)


class RequestNonces:
    def __init__(self, hub_db_path: str) -> None:
        self.path = hub_db_path + "-nonces"
        self._disk = ThreadOwned("hub-nonces", self._connect, sqlite3.Connection.close)
        self._seen: set[tuple[str, str]] = set()
        # (seen_ms, device, nonce), oldest first: what to forget when it expires
        self._by_age: deque[tuple[int, str, str]] = deque()
        self._pending: list[Nonce] = []
        self._flushed_ms = 0
        self._loaded = False  # read back on first use: stores that never check pay nothing

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(NONCE_DDL)
        return conn

    def load(self) -> None:
        """Read the remembered nonces back (waits: the hub does it at start, off the loop)."""
        if not self._loaded:
            self._load()

    def _load(self) -> None:
        rows = self._disk.call(
            lambda conn: conn.execute(
                "SELECT seen_ms, device_id, nonce FROM request_nonces ORDER BY seen_ms"
            ).fetchall()
        )
        for seen_ms, device_id, nonce in rows:
            self._seen.add((device_id, nonce))
            self._by_age.append((seen_ms, device_id, nonce))
        self._loaded = True

    def remember(self, device_id: str, nonce: str, now_ms: int) -> bool:
        """True when the nonce is new for this device (and is now remembered)."""
        if not self._loaded:
            self._load()
        key = (device_id, nonce)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._by_age.append((now_ms, device_id, nonce))
        self._pending.append((device_id, nonce, now_ms))
        if now_ms - self._flushed_ms >= FLUSH_EVERY_MS:
            self.flush(now_ms)
        return True

    def flush(self, now_ms: int) -> Future[None]:
        """Forget what expired, in memory now and on disk with what is pending, on the
        nonce thread (the returned future says when that is done)."""
        cutoff = now_ms - NONCE_MEMORY_MS
        while self._by_age and self._by_age[0][0] < cutoff:
            _, device_id, nonce = self._by_age.popleft()
            self._seen.discard((device_id, nonce))
        pending, self._pending = self._pending, []
        self._flushed_ms = now_ms
        done = self._disk.submit(lambda conn: _write(conn, pending, cutoff))
        done.add_done_callback(_log_failure)
        return done

    def count(self) -> int:
        if not self._loaded:
            self._load()
        return len(self._seen)

    def close(self) -> None:
        if self._pending:
            self.flush(self._flushed_ms).exception()  # waits; a failure is already logged
        self._disk.close()


def _write(conn: sqlite3.Connection, pending: list[Nonce], cutoff: int) -> None:
    conn.execute("BEGIN IMMEDIATE")  # one transaction: the new nonces in, the expired out
    try:
        conn.executemany(
            "INSERT OR IGNORE INTO request_nonces (device_id, nonce, seen_ms) VALUES (?, ?, ?)",
            pending,
        )
        conn.execute("DELETE FROM request_nonces WHERE seen_ms < ?", [cutoff])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _log_failure(done: Future[None]) -> None:
    """The memory still holds those nonces; only a restart before the next good write
    would forget them."""
    if done.exception() is not None:
        log.error("writing request nonces failed", exc_info=done.exception())
