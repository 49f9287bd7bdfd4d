"""The shared core of HubStore: the SQLite connection and the audit-log append.

Split from hub/storage.py only to keep files short; HubStore is the one interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from hub.schema import DDL, SCHEMA_VERSION

Row = dict[str, Any]
# Told (device id, stored scan rows) after scans are committed: live push and metrics.
ScanListener = Callable[[str, list[Mapping[str, Any]]], None]


class StoreUnavailable(Exception):
    """The database cannot be reached or read."""


def secret_hash(secret: str) -> str:
    """Tokens and enrollment codes are high-entropy, so a plain SHA-256 is enough to store."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_id() -> str:
    return str(uuid.uuid4())


class StoreBase:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.scan_listeners: list[ScanListener] = []
        self.db = sqlite_utils.Database(self.path)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA busy_timeout = 5000")
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = FULL")  # every scan commit is on disk
        with self.db.atomic():
            self.db.executescript(DDL)
            if not list(self.db.query("SELECT version FROM schema_info")):
                self.db.execute("INSERT INTO schema_info (version) VALUES (?)", [SCHEMA_VERSION])

    @contextlib.contextmanager
    def relaxed_sync(self) -> Iterator[None]:
        """Commits in here are not fsynced (WAL synchronous=NORMAL): for facts a power cut may
        lose harmlessly (request nonces). The next normal commit syncs them too."""
        self.db.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            self.db.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        self.db.close()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a real read."""
        try:
            self.db.execute("SELECT count(*) FROM schema_info").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _scans_committed(self, device_id: str, scans: list[Mapping[str, Any]]) -> None:
        for listener in self.scan_listeners:
            listener(device_id, scans)

    def _one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        rows = list(self.db.query(sql, list(params)))
        return rows[0] if rows else None

    def _audit(
        self,
        tenant_id: str,
        venue_id: str | None,
        actor: str,
        action: str,
        target: str,
        detail: Mapping[str, Any],
        now_ms: int,
    ) -> None:
        self.db.execute(
            "INSERT INTO audit_log (tenant_id, venue_id, actor, action, target, detail_json,"
            " at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [tenant_id, venue_id, actor, action, target, json.dumps(detail), now_ms],
        )
