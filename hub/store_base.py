"""The shared core of HubStore: the SQLite connection and the audit-log append.

Split from hub/storage.py only to keep files short; HubStore is the one interface.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from hub.migrations import migrate, pending
from hub.nonces import RequestNonces

Row = dict[str, Any]
# Told (device id, stored scan rows) after scans are committed: on the database thread for
# uploads, on the event loop for online checks (stored by the check writer): live push, metrics.
ScanListener = Callable[[str, list[Mapping[str, Any]]], None]
# Told a device's id after its heartbeat is committed, on the database thread: the console's
# live doors page.
HeartbeatListener = Callable[[str], None]
R = TypeVar("R")
ROW_CACHE_S = 2.0  # how long another process's change to a cached row may go unseen


class WriteTurn:
    """Writers of one database file take turns here before BEGIN IMMEDIATE: threads of this
    process in the order they asked (a lock), and processes (the HTTP process and its check
    writer, CLI commands) through an exclusive flock on `<db>-writes.lock`, which the kernel
    hands on the moment it is released. SQLite's own busy wait polls with growing sleeps and
    is not fair, so a writer could wait on a busy one in 100 ms steps or starve. The turn is
    re-entrant: a write nested in this thread's transaction keeps it, while another thread
    sharing the connection waits for that transaction's end instead of slipping into it."""

    def __init__(self, db_path: str) -> None:
        self._threads = threading.RLock()
        self._depth = 0  # nested holds by the thread that has the turn
        self._file = open(db_path + "-writes.lock", "a+b")  # noqa: SIM115 - lives with the process

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._threads.release()


# One per database file in this process, shared by all its connections to that file.
_WRITE_TURNS: dict[str, WriteTurn] = {}
_WRITE_TURNS_GUARD = threading.Lock()


def _write_turn_for(path: str) -> WriteTurn:
    real = os.path.realpath(path)
    with _WRITE_TURNS_GUARD:
        if real not in _WRITE_TURNS:
            _WRITE_TURNS[real] = WriteTurn(real)
        return _WRITE_TURNS[real]


class StoreUnavailable(Exception):
    """The database cannot be reached or read."""


def secret_hash(secret: str) -> str:
    """Tokens and enrollment codes are high-entropy, so a plain SHA-256 is enough to store."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_id() -> str:
    return str(uuid.uuid4())


class _WroteThenFailed(Exception):
    """A grouped work raised after writing: only a rollback of the group undoes it."""


def _outcome(work: Callable[[Any], R], store: Any) -> R | Exception:
    try:
        return work(store)
    except Exception as exc:
        return exc


class StoreBase:
    def __init__(self, path: str | Path, *, migrate: bool = True) -> None:
        """Open the database; `migrate` creates or upgrades the schema (a second connection
        to an already opened hub database, e.g. the check writer's, skips it)."""
        self.path = str(path)
        self.scan_listeners: list[ScanListener] = []
        self.heartbeat_listeners: list[HeartbeatListener] = []
        # inside in_one_commit: the scans stored so far, told once the commit is on disk
        self._uncommitted_scans: list[tuple[str, list[Mapping[str, Any]]]] | None = None
        self._row_cache: dict[tuple[str, str], tuple[float, Row]] = {}
        # event id -> (this connection's total_changes, monotonic time, manifest revision)
        self._revisions: dict[str, tuple[int, float, int]] = {}
        self.write_turn = _write_turn_for(self.path)
        # Opened by whoever makes the store, used on the app's database thread
        # (hub/thread_owned.py): one thread at a time, never two at once.
        self.db = sqlite_utils.Database(sqlite3.connect(self.path, check_same_thread=False))
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA busy_timeout = 5000")
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = FULL")  # every scan commit is on disk
        if migrate:
            self._migrate()
        self.nonces = RequestNonces(self.path)

    def _migrate(self) -> None:
        """Apply the schema steps this database lacks (hub/migrations.py), in the write turn;
        an up-to-date database is only read. A database of a newer release raises
        SchemaTooNew and is left as it was. The turn is taken only when a step is missing:
        opening an up-to-date database never waits behind another process's write."""
        if pending(self.db, self.path):
            with self.write_turn:
                migrate(self.db, self.path)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction that takes the write lock at BEGIN (IMMEDIATE). One begun as a
        read fails at once with SQLITE_BUSY, no retry, when another connection (the check
        writer, a CLI command) commits before it writes; this one waits its turn
        (busy_timeout). Nested in an open transaction it is a savepoint, except in a group
        (in_one_commit), which undoes a failed work its own way."""
        conn = self.db.conn
        with self.write_turn:
            if conn.in_transaction:  # this thread's own transaction: the turn was its already
                if self._uncommitted_scans is not None:
                    yield
                    return
                with self.db.atomic():
                    yield
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def leave_checkpoints_to_background(self) -> None:
        """No automatic WAL checkpoint in this connection's commits: the running hub's
        Checkpointer (hub/checkpoint.py) does them on its own thread."""
        self.db.execute("PRAGMA wal_autocheckpoint = 0")

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
        self.nonces.close()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a real read."""
        try:
            self.db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    def scans_committed(self, device_id: str, scans: list[Mapping[str, Any]]) -> None:
        if self._uncommitted_scans is not None:
            self._uncommitted_scans.append((device_id, scans))
            return
        for listener in self.scan_listeners:
            listener(device_id, scans)

    def in_one_commit(self, works: Sequence[Callable[[Any], R]]) -> list[R | Exception]:
        """Several callers' writes in one transaction, so one fsync: the uploads that queued
        while the database thread was busy (hub/group_commit.py). A work that raises before
        it writes (a bad upload) has its exception as its outcome and the rest go on. One
        that raises after writing can only be undone with everything: the transaction is
        rolled back and each work runs again alone, as without grouping. No savepoints: in
        the hub bench they cost big batches a third of the ingest rate. The scan listeners
        hear of a batch after its commit, never before. A failed commit raises: nothing of
        any work is stored."""
        outcomes: list[R | Exception] = []
        stored: list[tuple[str, list[Mapping[str, Any]]]] = []
        conn = self.db.conn
        self._uncommitted_scans = stored
        try:
            with self._writing():
                for work in works:
                    before = conn.total_changes
                    try:
                        outcomes.append(work(self))
                    except Exception as exc:
                        if conn.total_changes != before:
                            raise _WroteThenFailed from exc
                        outcomes.append(exc)
        except _WroteThenFailed:
            self._uncommitted_scans = None
            return [_outcome(work, self) for work in works]
        finally:
            self._uncommitted_scans = None
        for device_id, scans in stored:
            self.scans_committed(device_id, scans)
        return outcomes

    def _cached(self, table: str, key: str, read: Callable[[], Row | None]) -> Row | None:
        """A row the device hot path reads on every request (the device, its gate, the
        event), kept for ROW_CACHE_S: every write through this store drops it at once (a
        deactivated device is refused on its next request); the time limit covers writers
        in other processes. A copy is returned, so no caller can change the cached row."""
        hit = self._remembered(table, key)
        if hit is not None:
            return hit
        row = read()
        if row is not None:
            self._row_cache[(table, key)] = (time.monotonic(), row)
            return dict(row)
        return None

    def _remembered(self, table: str, key: str) -> Row | None:
        """The fresh copy of a cached row, or None, without touching the database: the event
        loop may ask (the remembered_* methods) while the database thread, which alone
        fills and drops these rows, works."""
        hit = self._row_cache.get((table, key))
        if hit is not None and time.monotonic() - hit[0] < ROW_CACHE_S:
            return dict(hit[1])
        return None

    def _amend_cached(self, table: str, key: str, fields: Mapping[str, Any]) -> None:
        """Change a cached row as its table row was just changed (its age is kept)."""
        hit = self._row_cache.get((table, key))
        if hit is not None:
            self._row_cache[(table, key)] = (hit[0], {**hit[1], **fields})

    def _forget(self, table: str, key: str) -> None:
        self._row_cache.pop((table, key), None)

    def _one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        cursor = self.db.conn.execute(sql, list(params))
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))

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

    def _insert_audited(
        self,
        table: str,
        row: Row,
        tenant_id: str,
        venue_id: str | None,
        actor: str,
        action: str,
        now_ms: int,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert a new row and put its creation on the audit log in one transaction: the row
        itself is the detail unless `detail` says less (never a secret's hash)."""
        with self._writing():
            self.db.table(table).insert(row)
            audited = row if detail is None else detail
            self._audit(tenant_id, venue_id, actor, action, row["id"], audited, now_ms)

    # the hub's identity (hub/keyring.py) ----------------------------------------------------
    def hub_identity(self) -> Row | None:
        """The hub key fingerprints this database recorded; None before the first start (or
        from a release that recorded none)."""
        return self._one("SELECT * FROM hub_identity WHERE id = 1")

    def hub_identity_in_use(self) -> bool:
        """Whether a hub key already vouches for something outside: an enrolled device pins
        it, an issued credential carries its signature."""
        return any(
            self._one(f"SELECT 1 FROM {table} LIMIT 1") is not None
            for table in ("devices", "ticket_credentials")
        )

    def record_hub_identity(
        self, row: Mapping[str, Any], audit: tuple[str, Mapping[str, Any]] | None = None
    ) -> None:
        """Replace the one identity row; `audit` (action, detail) goes into every tenant's
        audit log, as the hub's identity is every tenant's."""
        with self._writing():
            self.db.execute(
                "INSERT OR REPLACE INTO hub_identity (id, keys_json, pending_json, version,"
                " last_key_id, recorded_ms) VALUES (1, ?, ?, ?, ?, ?)",
                [
                    row["keys_json"],
                    row["pending_json"],
                    row["version"],
                    row["last_key_id"],
                    row["recorded_ms"],
                ],
            )
            if audit is not None:
                tenants = [r[0] for r in self.db.execute("SELECT id FROM tenants ORDER BY id")]
                for tenant_id in tenants:
                    self._audit(
                        tenant_id, None, "cli", audit[0], "hub", audit[1], row["recorded_ms"]
                    )
