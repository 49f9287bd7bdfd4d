"""The hub's memory of device request nonces, so a captured request cannot be replayed.

Checked in memory (every signed request asks, and a database round trip per request was a
tenth of the event loop's time under load) and written behind to its own database file
beside the hub's (`<path>-nonces`) every FLUSH_EVERY_MS, read back at start. Not fsynced:
a crash or power cut may forget the last fraction of a second of nonces, whose timestamps
expire within minutes (NONCE_MEMORY_MS). Replaying such a request gains nothing anyway:
uploads and checks are idempotent on the device's sequence number and the rest only read.
One hub process per database: the memory is this process's.
"""

from __future__ import annotations

import sqlite3
from collections import deque

from hub.schema import NONCE_DDL
from protocol.signing import NONCE_MEMORY_MS

FLUSH_EVERY_MS = 250


class RequestNonces:
    def __init__(self, hub_db_path: str) -> None:
        self.conn = sqlite3.connect(hub_db_path + "-nonces", isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(NONCE_DDL)
        self._seen: set[tuple[str, str]] = set()
        # (seen_ms, device, nonce), oldest first: what to forget when it expires
        self._by_age: deque[tuple[int, str, str]] = deque()
        self._pending: list[tuple[str, str, int]] = []
        self._flushed_ms = 0
        self._loaded = False  # read back on first use: stores that never check pay nothing

    def _load(self) -> None:
        rows = self.conn.execute(
            "SELECT seen_ms, device_id, nonce FROM request_nonces ORDER BY seen_ms"
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

    def flush(self, now_ms: int) -> None:
        """Write what is pending and forget what expired, in memory and on disk."""
        cutoff = now_ms - NONCE_MEMORY_MS
        while self._by_age and self._by_age[0][0] < cutoff:
            _, device_id, nonce = self._by_age.popleft()
            self._seen.discard((device_id, nonce))
        pending, self._pending = self._pending, []
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
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
            self._pending = pending + self._pending
            raise
        self._flushed_ms = now_ms

    def count(self) -> int:
        if not self._loaded:
            self._load()
        return len(self._seen)

    def close(self) -> None:
        if self._pending:
            self.flush(self._flushed_ms)
        self.conn.close()
