"""The gate's local SQLite store: device config, the verified manifest, the scan log, nonces.

Durability first: WAL with `synchronous=FULL`, so `record_scan` returns only after the scan is
on disk, and the UI shows a verdict only after that.

A scan never waits for a manifest install (issue #11). Writes go through one connection and take
turns in short transactions; every thread reads on a connection of its own, which WAL lets read
the last committed state while another connection writes. A full manifest is written into a
staging table in chunks, each its own short transaction, and then swapped in by ONE short
transaction (rename the old table aside, the staging one into place, store the envelope): a
reader sees the old manifest or the new one, never a mix, and a power cut mid-install leaves the
old one whole. The old table is then emptied a chunk at a time (DROP TABLE on 100k rows would
hold the write turn for ~50 ms). All SQL of the gate lives here, behind methods.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from manifests.admission_types import Decision, Direction, GateContext, ScanFact
from manifests.codec import pack_retired_codes, unpack_retired_codes
from manifests.model import Manifest, ManifestDelta, ManifestHeader, TicketRow
from protocol.credential import CodeMatch, CodeState
from scanner.migrations import SchemaTooNew, migrate
from scanner.scanlog import (
    HISTORY_SQL,
    PEER_HISTORY_SQL,
    ScanRecord,
    own_fact,
    peer_fact,
)
from scanner.settings import DEVICE_ID, GATE, Setting

ID_PREFIX_END = "\U0010ffff"  # sorts after any text that starts with the prefix

_TICKET_COLUMNS = tuple(f.name for f in dataclasses.fields(TicketRow))
# Rows are written with valid_days and retired_codes last: the other columns come straight off
# the row.
_PACKED_COLUMNS = ("valid_days", "retired_codes")
_PLAIN_COLUMNS = tuple(c for c in _TICKET_COLUMNS if c not in _PACKED_COLUMNS)
_WRITE_COLUMNS = (*_PLAIN_COLUMNS, *_PACKED_COLUMNS)
_plain_values = operator.attrgetter(*_PLAIN_COLUMNS)
STAGING_PREFIX = "tickets_staging_"  # a manifest being installed
RETIRED_PREFIX = "tickets_retired_"  # the manifest it replaced, emptied a chunk at a time
# `ticket_codes` (every backend code hash, by hash) is staged and replaced alike.
CODES_STAGING_PREFIX = "ticket_codes_staging_"
CODES_REPLACED_PREFIX = "ticket_codes_replaced_"
# The envelope (MBs) is staged the same way, so the swap's fsync carries only a few pages.
ENVELOPE_STAGING_PREFIX = "manifest_staging_"
ENVELOPE_RETIRED_PREFIX = "manifest_retired_"
# Tables emptied a chunk at a time, by the first column of their key.
_CHUNK_KEYS = {
    STAGING_PREFIX: "ticket_id",
    RETIRED_PREFIX: "ticket_id",
    CODES_STAGING_PREFIX: "digest",
    CODES_REPLACED_PREFIX: "digest",
}
_LEFTOVER_PREFIXES = (*_CHUNK_KEYS, ENVELOPE_STAGING_PREFIX, ENVELOPE_RETIRED_PREFIX)
_INSERT_CODES = "INSERT OR IGNORE INTO {} (digest, ticket_id, state) VALUES (?, ?, ?)"
SCAN_PRIORITY_MAX_WAIT_S = 0.1  # a background writer waits at most this for a scan to end
JANITOR_PAUSE_S = 0.002  # between two chunks of emptying a replaced table: scans go first
# Rows per staging transaction: a scan that arrives mid-install waits for at most one chunk.
INSTALL_CHUNK_ROWS = 100
CHECKPOINT_EVERY_CHUNKS = 4  # ~0.1 MB of WAL: each checkpoint fsyncs twice, off the write turn
T = TypeVar("T")
Stamp = tuple[int, str | None]  # (revision, install token): see manifest_stamp
ChunkCallback = Callable[[int, int], None]  # (rows written so far, rows in the manifest)


# Own and peer history in one query: one snapshot, one SQLite call on the scan path.
_HISTORY_BOTH_SQL = (
    f"SELECT 0, * FROM ({HISTORY_SQL}) UNION ALL SELECT 1, * FROM ({PEER_HISTORY_SQL})"
)


def _create_like(conn: sqlite3.Connection, table: str, name: str) -> None:
    """Create table `name` as `table` is now, from the CREATE that sqlite_schema holds for it: a
    staged manifest or ticket table gets exactly what the schema steps (scanner/migrations.py)
    gave the installed one, with no second copy of its DDL to keep in step."""
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    # `CREATE TABLE tickets (`, or `CREATE TABLE "tickets" (` once a swap renamed a table
    conn.execute(re.sub(r'^CREATE TABLE ("[^"]+"|\w+)', f"CREATE TABLE {name}", sql, count=1))


def _insert_sql(table: str) -> str:
    return (
        f"INSERT OR REPLACE INTO {table} ({', '.join(_WRITE_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _WRITE_COLUMNS)})"
    )


_PEER_COLUMNS = ("device_id", "ticket_id", "at_ms", "direction", "counted", "gate_name")


class StoreError(Exception):
    """A change the store refused; nothing was written."""


@dataclass(frozen=True, slots=True)
class Counters:
    admitted: int
    denied: int
    exited: int
    attention_pending: int
    inside_now: int  # this gate's own view: entries it admitted minus exits it recorded
    pending_upload: int


class _RowValues:
    """Column values in `_WRITE_COLUMNS` order. One attrgetter call per row, and each distinct
    day set is turned into JSON once: a manifest holds a handful of day sets across 100k rows,
    and per-row json.dumps was a third of a 100k install."""

    def __init__(self) -> None:
        self._days: dict[tuple[str, ...], str] = {}

    def __call__(self, row: TicketRow) -> tuple[Any, ...]:
        days = self._days.get(row.valid_days)
        if days is None:
            days = self._days[row.valid_days] = json.dumps(list(row.valid_days))
        retired = pack_retired_codes(row.retired_codes) if row.retired_codes else None
        return (*_plain_values(row), days, retired)


def _code_rows(rows: Iterable[TicketRow]) -> list[tuple[bytes, str, str]]:
    """`ticket_codes` rows (hash, ticket, state) of these tickets, in hash order: appending
    to the b-tree, as tickets in id order do."""
    found = []
    for row in rows:
        if row.code_digest is not None:
            found.append((row.code_digest, row.ticket_id, str(CodeState.CURRENT)))
        found += [(c.digest, row.ticket_id, str(c.state)) for c in row.retired_codes]
    found.sort()
    return found


def _ticket_from(values: tuple[Any, ...]) -> TicketRow:
    data = dict(zip(_TICKET_COLUMNS, values, strict=True))
    data["valid_days"] = tuple(json.loads(data["valid_days"]))
    retired = data["retired_codes"]
    data["retired_codes"] = unpack_retired_codes(retired) if retired else ()
    return TicketRow(**data)


_TICKET_SQL = f"SELECT {', '.join(_TICKET_COLUMNS)} FROM tickets WHERE ticket_id = ?"


def _rows_of(conn: sqlite3.Connection, ticket_ids: Iterable[str]) -> list[tuple[Any, ...]]:
    return [row for t in ticket_ids for row in conn.execute(_TICKET_SQL, (t,)).fetchall()]


def _lookup_query(cols: str, prefix: str, order_ref: str) -> tuple[str, tuple[str, ...]]:
    """The F2 lookup's SQL (ends with a LIMIT placeholder) and its parameters but the limit."""
    cases = dict.fromkeys((prefix, prefix.lower(), prefix.upper()))
    ranges = " OR ".join("(ticket_id >= ? AND ticket_id < ?)" for _ in cases)
    bounds = tuple(b for p in cases for b in (p, p + ID_PREFIX_END))
    sql = (
        f"SELECT {cols} FROM tickets WHERE {ranges} OR order_ref = ? COLLATE NOCASE "
        "ORDER BY order_ref, ticket_id LIMIT ?"
    )
    return sql, (*bounds, order_ref)


class NonceMemory:
    """Read-only `Container[str]` view of the nonces this device has accepted, for
    `ParseContext.seen_nonces`; each lookup is one primary-key probe, nothing is loaded."""

    def __init__(self, store: GateStore) -> None:
        self._store = store

    def __contains__(self, nonce: object) -> bool:
        if not isinstance(nonce, str):
            return False
        return self._store._one("SELECT 1 FROM nonces WHERE nonce = ?", (nonce,)) is not None


class GateStore:
    """One gate's database file, shared by the UI, sync and live threads. Writers take turns
    on one connection in short transactions (SQLite has one writer anyway); each thread reads
    on its own connection, so no read waits for a write and none sees an uncommitted one."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._write_lock = threading.RLock()
        self._install_lock = threading.Lock()  # one manifest install at a time per store
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._bulk: sqlite3.Connection | None = None
        self._scans = 0  # scans in progress (see scanning)
        self._scans_lock = threading.Lock()
        self._no_scan = threading.Event()
        self._no_scan.set()
        self._janitor: threading.Thread | None = None
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=FULL")
        self._writer.execute("PRAGMA foreign_keys=ON")
        with self._write_lock:  # the schema steps it lacks (scanner/migrations.py)
            try:
                migrate(self._writer, self.path)
            except SchemaTooNew as exc:
                self._writer.close()
                raise StoreError(str(exc)) from exc
        self.nonces = NonceMemory(self)
        self._device_id: str | None = None
        # The header of the manifest this process installed last, keyed by its stamp, so the
        # first scan after an install does not verify and decode the stored envelope again.
        self.installed_header: tuple[Stamp, ManifestHeader] | None = None

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: transactions are explicit (BEGIN IMMEDIATE in _write, BEGIN in reading).
        # check_same_thread=False only so close() can close every thread's reader.
        return sqlite3.connect(
            str(self.path), check_same_thread=False, timeout=10, isolation_level=None
        )

    def close(self) -> None:
        janitor = self._janitor
        self._closed = True  # the janitor stops after its current chunk
        if janitor is not None and janitor is not threading.current_thread():
            janitor.join()
        with self._write_lock, self._readers_lock:  # closing twice is harmless
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._writer.close()

    def __enter__(self) -> GateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- small helpers ------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection, opened on first use. Read-only, so nothing on the
        read path can ever write around the write turn."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._readers_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                conn = self._connect()
                conn.execute("PRAGMA query_only=ON")
                self._readers.append(conn)
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads inside see one committed snapshot (e.g. a scan's header, ticket and history
        from the same manifest revision). Nests; do not write and read back inside one."""
        conn = self._reader()
        if self._local.depth == 0:
            conn.execute("BEGIN")
        self._local.depth += 1
        try:
            yield
        finally:
            self._local.depth -= 1
            if self._local.depth == 0:
                conn.execute("COMMIT")

    def _one(self, sql: str, params: Iterable[Any] = ()) -> tuple[Any, ...] | None:
        cur = self._reader().execute(sql, tuple(params))
        try:
            return cur.fetchone()
        finally:
            cur.close()  # an unfinished statement would pin this thread to an old snapshot

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return self._reader().execute(sql, tuple(params)).fetchall()

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One durable transaction: all or nothing, fsynced at commit. IMMEDIATE takes the
        write lock up front, so reading max(seq) and inserting cannot race another writer.
        `durable=False` skips the fsync, for rows nobody needs until a later durable commit
        (a staging chunk: the swap's fsync of the WAL carries every frame before it)."""
        with self._write_lock:
            conn = self._writer if durable else self._bulk_writer()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (disk full) may have ended it already
                    conn.execute("ROLLBACK")
                raise

    def _bulk_writer(self) -> sqlite3.Connection:
        """The connection for staging chunks, on the same write turn: synchronous=NORMAL (no
        fsync per commit; WAL stays consistent) and never an automatic checkpoint."""
        if self._bulk is None:
            with self._readers_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                self._bulk = self._connect()
                self._bulk.execute("PRAGMA synchronous=NORMAL")
                self._bulk.execute("PRAGMA wal_autocheckpoint=0")
                self._readers.append(self._bulk)  # closed with the others
        return self._bulk

    # -- device config ------------------------------------------------------------------

    def set_config(self, key: str, value: Any) -> None:
        """Any JSON value (enrollment: device id, hub URL, venue...)."""
        text = json.dumps(value, sort_keys=True)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", (key, text))
        self._device_id = None

    def config(self, key: str, default: Any = None) -> Any:
        """The raw JSON value: the gate's code reads settings with `setting` instead."""
        row = self._one("SELECT value FROM config WHERE key = ?", (key,))
        return default if row is None else json.loads(row[0])

    def setting(self, setting: Setting[T]) -> T:
        """A setting of scanner/settings.py, as its type (its default when unset)."""
        return setting.accept(self.config(setting.key))

    def set_setting(self, setting: Setting[T], value: T) -> None:
        self.set_config(setting.key, value)

    def set_key(self, name: str, value: bytes) -> None:
        """Key material (the device's signing seed, trusted manifest keys). Kept out of
        `export_json`."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO keys (name, value) VALUES (?, ?)", (name, value))

    def delete_key(self, name: str) -> None:
        """Forget key material (a hub key the hub no longer lists)."""
        with self._write() as conn:
            conn.execute("DELETE FROM keys WHERE name = ?", (name,))

    def key(self, name: str) -> bytes | None:
        row = self._one("SELECT value FROM keys WHERE name = ?", (name,))
        return None if row is None else bytes(row[0])

    def keys_named(self, prefix: str) -> dict[str, bytes]:
        """Key material whose name starts with `prefix` (e.g. every trusted hub key), by name."""
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._all("SELECT name, value FROM keys WHERE name LIKE ? ESCAPE '\\'", (like,))
        return {name: bytes(value) for name, value in rows}

    @property
    def device_id(self) -> str:
        if self._device_id is None:  # read on every history lookup: keep it in memory
            self._device_id = self.setting(DEVICE_ID)
        return self._device_id

    def set_gate(self, gate: GateContext) -> None:
        self.set_setting(
            GATE,
            {
                "venue_id": gate.venue_id,
                "gate_id": gate.gate_id,
                "gate_name": gate.gate_name,
                "direction": str(gate.direction),
                "zones": list(gate.zones),
                "authorized": gate.authorized,
            },
        )

    def gate(self) -> GateContext | None:
        data = self.setting(GATE)
        if data is None:
            return None
        return GateContext(
            venue_id=data["venue_id"],
            gate_id=data["gate_id"],
            gate_name=data["gate_name"],
            direction=Direction(data["direction"]),
            zones=tuple(data["zones"]),
            authorized=bool(data["authorized"]),
        )

    # -- manifest -----------------------------------------------------------------------

    def replace_manifest(
        self,
        manifest: Manifest,
        encoded: bytes,
        now_ms: int,
        *,
        other_event: bool = False,
        on_chunk: ChunkCallback | None = None,
    ) -> None:
        """Install a verified manifest (store the signed envelope as `encoded`, so the gate
        can verify it again at start). Older than the installed revision of the same event:
        refused (revisions count per event, so `other_event` lifts it). The rows go into a
        staging table in chunks of INSTALL_CHUNK_ROWS, each its own short transaction (scans
        commit in between), then one short transaction swaps it in. `on_chunk(done, total)`
        runs on this thread after each chunk, outside any transaction."""
        for ticket_id, row in manifest.tickets.items():
            if ticket_id != row.ticket_id:
                raise StoreError(f"manifest row keyed {ticket_id!r} holds {row.ticket_id!r}")
        self._check_not_older(manifest.revision, other_event)
        with self._install_lock, self._checkpoints_aside():
            self._drop_leftovers()  # of an install that a crash cut off
            tag = secrets.token_hex(4)
            staging, retired = STAGING_PREFIX + tag, RETIRED_PREFIX + tag
            codes_staging, codes_replaced = CODES_STAGING_PREFIX + tag, CODES_REPLACED_PREFIX + tag
            with self._write() as conn:
                _create_like(conn, "tickets", staging)
                _create_like(conn, "ticket_codes", codes_staging)
            memo = self.installed_header
            try:
                self._fill(staging, codes_staging, manifest, on_chunk)
                self._stage_envelope(tag, manifest.revision, encoded, now_ms)
                with self._write() as conn:
                    self._check_not_older(manifest.revision, other_event, conn)
                    conn.execute(f"ALTER TABLE tickets RENAME TO {retired}")
                    conn.execute(f"ALTER TABLE {staging} RENAME TO tickets")
                    conn.execute(f"ALTER TABLE ticket_codes RENAME TO {codes_replaced}")
                    conn.execute(f"ALTER TABLE {codes_staging} RENAME TO ticket_codes")
                    stamp = self._swap_envelope(conn, tag, manifest.revision)
                    # before the commit: no scan after the swap finds the header missing
                    self.installed_header = (stamp, manifest.header)
            except BaseException:
                self.installed_header = memo
                with suppress(sqlite3.Error):  # a broken disk: the next install clears it
                    self._drop_in_chunks(staging)
                    self._drop_in_chunks(codes_staging)
                    self._drop_in_chunks(ENVELOPE_STAGING_PREFIX + tag)
                raise
            self._retire(retired, codes_replaced, ENVELOPE_RETIRED_PREFIX + tag)

    @contextmanager
    def scanning(self) -> Iterator[None]:
        """A scan is being decided and committed: a manifest install (and the cleanup behind
        it) waits before its next chunk, so the scan runs without a busy thread beside it
        (each SQLite call of a scan gives the interpreter lock up and must get it back)."""
        with self._scans_lock:
            self._scans += 1
            self._no_scan.clear()
        try:
            yield
        finally:
            with self._scans_lock:
                self._scans -= 1
                if self._scans == 0:
                    self._no_scan.set()

    def _let_scans_pass(self) -> None:
        """Background writers call this between chunks. Bounded, so a stuck scan cannot stall
        an install for ever."""
        self._no_scan.wait(SCAN_PRIORITY_MAX_WAIT_S)

    def cleaning(self) -> bool:
        """Whether the table a manifest install replaced is still being emptied behind it."""
        janitor = self._janitor
        return janitor is not None and janitor.is_alive()

    def wait_cleaned(self) -> None:
        """Until the replaced table is gone (benches: each install starts on a settled gate)."""
        janitor = self._janitor
        if janitor is not None:
            janitor.join()

    def _stage_envelope(self, tag: str, revision: int, encoded: bytes, now_ms: int) -> None:
        """Write the envelope into a table of its own and get it onto the disk (a checkpoint
        fsyncs the WAL), both off the write turn: the swap then only renames."""
        name = ENVELOPE_STAGING_PREFIX + tag
        with self._write(durable=False) as conn:
            _create_like(conn, "manifest", name)
            conn.execute(
                f"INSERT INTO {name} (id, revision, encoded, installed_at_ms) VALUES (1, ?, ?, ?)",
                (revision, encoded, now_ms),
            )
        self._checkpoint()

    @staticmethod
    def _swap_envelope(conn: sqlite3.Connection, tag: str, revision: int) -> Stamp:
        conn.execute(f"ALTER TABLE manifest RENAME TO {ENVELOPE_RETIRED_PREFIX + tag}")
        conn.execute(f"ALTER TABLE {ENVELOPE_STAGING_PREFIX + tag} RENAME TO manifest")
        token = secrets.token_hex(8)
        conn.execute("INSERT OR REPLACE INTO manifest_install (id, token) VALUES (1, ?)", (token,))
        return (revision, token)

    def _retire(self, *tables: str) -> None:
        """Empty the replaced ticket table behind the install, on a thread of its own: the new
        manifest is in force from the swap on, so the install returns then. The next install
        (or delta) waits for it; close() stops it, and the next install clears what is left."""

        def run() -> None:
            with self._install_lock, self._checkpoints_aside(), suppress(sqlite3.Error):
                for table in tables:
                    self._drop_in_chunks(table, pause_s=JANITOR_PAUSE_S)

        self._janitor = threading.Thread(target=run, name="gate-store-retire", daemon=True)
        self._janitor.start()

    def _fill(
        self,
        staging: str,
        codes_staging: str,
        manifest: Manifest,
        on_chunk: ChunkCallback | None,
    ) -> None:
        """Rows in ticket id order: appending to the b-tree is 2.5x faster than inserting at
        random places, and leaves it compact. (The sort holds the interpreter lock for ~20 ms
        at 100k tickets: sorting the plain ids is the cheapest way.) Then the backend code
        hashes, in hash order, for the same reason (most manifests have none)."""
        tickets = manifest.tickets
        ids = sorted(tickets)
        insert, values, total = _insert_sql(staging), _RowValues(), len(ids)
        for n, start in enumerate(range(0, total, INSTALL_CHUNK_ROWS) or [0], 1):
            chunk = [values(tickets[i]) for i in ids[start : start + INSTALL_CHUNK_ROWS]]
            self._let_scans_pass()
            with self._write(durable=False) as conn:
                conn.executemany(insert, chunk)
            if n % CHECKPOINT_EVERY_CHUNKS == 0:
                self._checkpoint()
            if on_chunk is not None:
                on_chunk(min(total, start + INSTALL_CHUNK_ROWS), total)
        codes, insert = _code_rows(tickets.values()), _INSERT_CODES.format(codes_staging)
        for n, start in enumerate(range(0, len(codes), INSTALL_CHUNK_ROWS), 1):
            self._let_scans_pass()
            with self._write(durable=False) as conn:
                conn.executemany(insert, codes[start : start + INSTALL_CHUNK_ROWS])
            if n % CHECKPOINT_EVERY_CHUNKS == 0:
                self._checkpoint()

    @contextmanager
    def _checkpoints_aside(self) -> Iterator[None]:
        """While a manifest installs, no commit on the write turn copies the WAL back into the
        database (SQLite's automatic checkpoint would make the scan whose commit crosses 1000
        pages do it: tens of ms). The installer checkpoints instead, outside the write turn."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
        try:
            yield
        finally:
            self._checkpoint()
            with self._write_lock:
                if not self._closed:
                    self._writer.execute("PRAGMA wal_autocheckpoint=1000")

    def _checkpoint(self) -> None:
        """Copy committed WAL pages back into the database file without taking the write turn
        (PASSIVE: it never waits for, nor blocks, a writer or a reader)."""
        if self._closed:
            return
        conn: sqlite3.Connection | None = getattr(self, "_checkpointer", None)
        if conn is None:
            with self._readers_lock:
                if self._closed:
                    return
                conn = self._checkpointer = self._connect()
                self._readers.append(conn)  # closed with the readers
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _drop_leftovers(self) -> None:
        names = self._all(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND ("
            + " OR ".join("name LIKE ? ESCAPE '\\'" for _ in _LEFTOVER_PREFIXES)
            + ")",
            tuple(p.replace("_", "\\_") + "%" for p in _LEFTOVER_PREFIXES),
        )
        for (name,) in names:
            self._drop_in_chunks(name)

    def _drop_in_chunks(self, table: str, pause_s: float = 0.0) -> None:
        """Empty a ticket table a chunk per transaction, then drop it. DROP TABLE on 100k rows
        holds the write turn for ~50 ms (it frees every page in one transaction). An envelope
        table holds one row: it is dropped at once."""
        key = next((k for p, k in _CHUNK_KEYS.items() if table.startswith(p)), None)
        delete = (
            f'DELETE FROM "{table}" WHERE {key} IN '
            f'(SELECT {key} FROM "{table}" LIMIT {INSTALL_CHUNK_ROWS})'
        )
        chunked = key is not None
        n = 0
        while not self._closed:
            self._let_scans_pass()
            with self._write(durable=False) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
                ).fetchone()
                if exists is None or not chunked or conn.execute(delete).rowcount == 0:
                    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
                    return
            n += 1
            if n % CHECKPOINT_EVERY_CHUNKS == 0:
                self._checkpoint()
            time.sleep(pause_s)

    def _check_not_older(
        self, revision: int, other_event: bool, conn: sqlite3.Connection | None = None
    ) -> None:
        if conn is None:
            current = self.manifest_revision()
        else:
            row = conn.execute("SELECT revision FROM manifest WHERE id = 1").fetchone()
            current = None if row is None else int(row[0])
        if current is not None and revision < current and not other_event:
            raise StoreError(f"manifest revision {revision} is older than {current}")

    def apply_delta(self, delta: ManifestDelta, encoded: bytes, now_ms: int) -> None:
        """Apply a verified delta's rows in one short transaction; `encoded` is the resulting
        full manifest (or its envelope). Only onto the revision the delta was built from."""
        values = _RowValues()
        upserts = [values(r) for r in delta.upserts]
        touched = (*delta.removed, *(r.ticket_id for r in delta.upserts))
        codes = _code_rows(delta.upserts)
        with self._install_lock, self._checkpoints_aside():
            self._drop_leftovers()
            tag = secrets.token_hex(4)
            memo = self.installed_header
            try:
                self._stage_envelope(tag, delta.header.revision, encoded, now_ms)
                with self._write() as conn:
                    row = conn.execute("SELECT revision FROM manifest WHERE id = 1").fetchone()
                    current = None if row is None else int(row[0])
                    if current != delta.base_revision:
                        raise StoreError(
                            f"delta is from revision {delta.base_revision}, have {current}"
                        )
                    # the codes the rows about to change or go carry now, found by the rows
                    held = _code_rows(_ticket_from(r) for r in _rows_of(conn, touched))
                    conn.executemany(
                        "DELETE FROM ticket_codes WHERE digest = ? AND ticket_id = ?",
                        [(digest, ticket_id) for digest, ticket_id, _ in held],
                    )
                    conn.executemany(
                        "DELETE FROM tickets WHERE ticket_id = ?", [(t,) for t in delta.removed]
                    )
                    conn.executemany(_insert_sql("tickets"), upserts)
                    conn.executemany(_INSERT_CODES.format("ticket_codes"), codes)
                    stamp = self._swap_envelope(conn, tag, delta.header.revision)
                    self.installed_header = (stamp, delta.header)
            except BaseException:
                self.installed_header = memo
                with suppress(sqlite3.Error):
                    self._drop_in_chunks(ENVELOPE_STAGING_PREFIX + tag)
                raise
            self._retire(ENVELOPE_RETIRED_PREFIX + tag)

    def manifest_revision(self) -> int | None:
        row = self._one("SELECT revision FROM manifest WHERE id = 1")
        return None if row is None else int(row[0])

    def manifest_stamp(self) -> Stamp | None:
        """(revision, install token) of the installed manifest: tells two installs apart, read
        on every scan. Not installed_at_ms: that column sits behind the multi-MB envelope,
        and reading it walks the blob's overflow pages (2 ms per scan at 100k tickets)."""
        row = self._one(
            "SELECT m.revision, t.token FROM manifest m "
            "LEFT JOIN manifest_install t ON t.id = 1 WHERE m.id = 1"
        )
        return None if row is None else (int(row[0]), row[1])

    def manifest_encoded(self) -> bytes | None:
        row = self._one("SELECT encoded FROM manifest WHERE id = 1")
        return None if row is None else bytes(row[0])

    def ticket(self, ticket_id: str) -> TicketRow | None:
        row = self._one(_TICKET_SQL, (ticket_id,))
        return None if row is None else _ticket_from(row)

    def code_matches(self, digest: bytes) -> list[CodeMatch]:
        """The tickets the installed manifest holds a backend code for, found by the code's
        keyed hash (protocol/backend_codes.hashed_lookup makes it; the code is never kept):
        as a ticket's current code, or as one that no longer admits. One primary-key search."""
        rows = self._all("SELECT ticket_id, state FROM ticket_codes WHERE digest = ?", (digest,))
        return [CodeMatch(ticket_id, CodeState(state)) for ticket_id, state in rows]

    def find_tickets(self, prefix: str, order_ref: str, limit: int) -> list[TicketRow]:
        """Rows whose ticket id starts with `prefix` (as typed, lower or upper case) or whose
        order reference is `order_ref` (any case), by order then id: the F2 lookup. It reads
        the table (11 ms at 100k tickets here): an order index doubled a 100k install (1.2 s
        to 2.4 s), and installs are what every gate does all day, a lookup what staff do now
        and then."""
        sql, params = _lookup_query(", ".join(_TICKET_COLUMNS), prefix, order_ref)
        return [_ticket_from(r) for r in self._all(sql, (*params, limit))]

    def ticket_count(self) -> int:
        row = self._one("SELECT count(*) FROM tickets")
        return int(row[0]) if row else 0

    # -- scan log -----------------------------------------------------------------------

    def record_scan(
        self,
        payload: str,
        decision: Decision,
        *,
        at_ms: int,
        direction: Direction,
        gate: str,
        manual: bool = False,
        nonce: str | None = None,
    ) -> int:
        """Append one scan and commit it durably; returns its sequence number. Call BEFORE
        showing the verdict. A legacy-C nonce is remembered in the same transaction, so a
        crash can never keep the nonce but lose the scan (or the reverse)."""
        with self._write() as conn:
            # one statement numbers and inserts: each SQLite call gives the interpreter lock
            # up, and getting it back can wait on a busy sync thread
            (seq,) = conn.execute(
                "INSERT INTO scans (seq, at_ms, payload, ticket_id, verdict, reason, message,"
                " direction, gate, manual) SELECT coalesce(max(seq), 0) + 1,"
                " ?, ?, ?, ?, ?, ?, ?, ?, ? FROM scans RETURNING seq",
                (
                    at_ms,
                    payload,
                    decision.ticket_id,
                    str(decision.verdict),
                    str(decision.reason),
                    decision.message,
                    str(direction),
                    gate,
                    int(manual),
                ),
            ).fetchall()[0]
            if nonce is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO nonces (nonce, seen_at_ms) VALUES (?, ?)",
                    (nonce, at_ms),
                )
        return seq

    def confirm_attention(self, seq: int, admitted: bool) -> None:
        """Staff decided on an attention verdict; the scan goes back into the upload queue."""
        with self._write() as conn:
            try:
                cur = conn.execute(
                    "UPDATE scans SET confirmed = ?, uploaded = 0 WHERE seq = ?",
                    (int(admitted), seq),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(str(exc)) from None
            if cur.rowcount != 1:
                raise StoreError(f"no scan with seq {seq}")

    def scan(self, seq: int) -> ScanRecord | None:
        rows = self._records("WHERE seq = ?", (seq,))
        return rows[0] if rows else None

    def scans(self, after_seq: int = 0, limit: int | None = None) -> list[ScanRecord]:
        tail = " LIMIT ?" if limit is not None else ""
        params: tuple[Any, ...] = (after_seq, limit) if limit is not None else (after_seq,)
        return self._records(f"WHERE seq > ? ORDER BY seq{tail}", params)

    def pending_uploads(self, limit: int = 500) -> list[ScanRecord]:
        return self._records("WHERE uploaded = 0 ORDER BY seq LIMIT ?", (limit,))

    def mark_uploaded(self, seqs: Iterable[int]) -> int:
        """The hub acknowledged these scans; marks them, never deletes. Returns rows marked."""
        with self._write() as conn:
            cur = conn.executemany(
                "UPDATE scans SET uploaded = 1 WHERE seq = ? AND uploaded = 0",
                [(s,) for s in seqs],
            )
            return cur.rowcount

    def mark_uploaded_as_sent(self, records: Iterable[ScanRecord]) -> int:
        """Mark acknowledged scans, but only if they are still as sent: an attention scan
        confirmed while its upload was in flight stays pending, so the confirmation goes too.
        Not fsynced: a mark a power cut loses only sends the scan again, and the hub stores
        a scan once (a re-sent scan is acknowledged and changes nothing there)."""
        with self._write(durable=False) as conn:
            cur = conn.executemany(
                "UPDATE scans SET uploaded = 1 WHERE seq = ? AND uploaded = 0 AND confirmed IS ?",
                [(r.seq, None if r.confirmed is None else int(r.confirmed)) for r in records],
            )
            return cur.rowcount

    def recent_scans(self, n: int) -> list[ScanRecord]:
        """The last `n` scans, newest first."""
        return self._records("ORDER BY seq DESC LIMIT ?", (n,))

    def _records(self, where: str, params: tuple[Any, ...]) -> list[ScanRecord]:
        cur = self._reader().execute(f"SELECT * FROM scans {where}", params)
        names = [d[0] for d in cur.description]
        return [ScanRecord.from_row(dict(zip(names, r, strict=True))) for r in cur.fetchall()]

    def merge_peer_scans(self, facts: Iterable[ScanFact], *, durable: bool = True) -> int:
        """Movements at other gates (from the hub); idempotent. Returns how many were new.
        `durable=False` for facts the hub hands over again if a power cut loses them: the
        live channel's pushes, which never move the sync's peer cursor (the sync's durable
        commit of a later cursor carries every WAL frame before it)."""
        with self._write(durable=durable) as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO peer_scans "
                "(device_id, ticket_id, at_ms, direction, counted, gate_name) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        f.device_id,
                        f.ticket_id,
                        f.at_ms,
                        str(f.direction),
                        int(f.counted),
                        f.gate_name,
                    )
                    for f in facts
                ],
            )
            return conn.total_changes - before

    def peer_movements(self, ticket_ids: Iterable[str]) -> dict[str, list[tuple[str, str, int]]]:
        """Other gates' movements of these tickets, known here: (device, direction, time) by
        ticket, in one read per 500 tickets (a batch of pushed entries asks at once)."""
        ids = list(dict.fromkeys(ticket_ids))
        known: dict[str, list[tuple[str, str, int]]] = {}
        for first in range(0, len(ids), 500):
            chunk = ids[first : first + 500]
            rows = self._all(
                "SELECT ticket_id, device_id, direction, at_ms FROM peer_scans"
                f" WHERE ticket_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            for ticket_id, device_id, direction, at_ms in rows:
                known.setdefault(ticket_id, []).append((device_id, direction, at_ms))
        return known

    def history_for(self, ticket_id: str) -> list[ScanFact]:
        """Earlier scans of the ticket at this gate and (merged) at others, oldest first:
        admits, exits and attention scans (counted only once staff confirmed)."""
        device_id = self.device_id
        rows = self._all(_HISTORY_BOTH_SQL, (ticket_id, ticket_id))
        facts = [peer_fact(r[1:]) if r[0] else own_fact(r[1:], device_id) for r in rows]
        return sorted(facts, key=lambda f: f.at_ms)

    # -- nonces -------------------------------------------------------------------------

    def forget_nonces_before(self, cutoff_ms: int) -> int:
        """Nonces older than a legacy-C code's validity can never be replayed: drop them."""
        with self._write() as conn:
            return conn.execute("DELETE FROM nonces WHERE seen_at_ms < ?", (cutoff_ms,)).rowcount

    # -- counters and export ------------------------------------------------------------

    def counters(self) -> Counters:
        """Denied counts every guest not let in: refusals and those turned away after a check."""
        row = self._one(
            """SELECT
                coalesce(sum(direction = 'entry' AND (verdict = 'admit'
                    OR (verdict = 'attention' AND confirmed = 1))), 0),
                coalesce(sum(verdict = 'deny' OR (verdict = 'attention' AND confirmed = 0)), 0),
                coalesce(sum(verdict = 'exit'), 0),
                coalesce(sum(verdict = 'attention' AND confirmed IS NULL), 0),
                coalesce(sum(uploaded = 0), 0)
            FROM scans"""
        )
        admitted, denied, exited, pending_attention, pending_upload = row or (0, 0, 0, 0, 0)
        return Counters(
            admitted=admitted,
            denied=denied,
            exited=exited,
            attention_pending=pending_attention,
            inside_now=max(0, admitted - exited),
            pending_upload=pending_upload,
        )

    def export_json(self, path: Path) -> None:
        """Everything the gate knows, for support or a hand-carried upload. Key material is
        listed by name only. Written to a temporary file, fsynced, then renamed. Read from one
        snapshot, so the counters match the scans listed."""
        with self.reading():
            data = self._export()
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _export(self) -> dict[str, Any]:
        encoded = self.manifest_encoded()
        return {
            "config": {k: json.loads(v) for k, v in self._all("SELECT key, value FROM config")},
            "keys": [r[0] for r in self._all("SELECT name FROM keys ORDER BY name")],
            "manifest": None
            if encoded is None
            else {
                "revision": self.manifest_revision(),
                "bytes": len(encoded),
                "sha256": hashlib.sha256(encoded).hexdigest(),
                "tickets": self.ticket_count(),
            },
            "counters": dataclasses.asdict(self.counters()),
            "scans": [r.to_json() for r in self.scans()],
            "peer_scans": [
                dict(zip(_PEER_COLUMNS, r, strict=True))
                for r in self._all(
                    f"SELECT {', '.join(_PEER_COLUMNS)} FROM peer_scans ORDER BY at_ms"
                )
            ],
            "nonces": [
                {"nonce": n, "seen_at_ms": t}
                for n, t in self._all("SELECT nonce, seen_at_ms FROM nonces ORDER BY seen_at_ms")
            ],
        }
