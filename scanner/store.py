"""The gate's local SQLite store: device config, the verified manifest, the scan log, nonces.

Durability first: WAL with `synchronous=FULL`, so `record_scan` returns only after the scan is
on disk, and the UI shows a verdict only after that. A manifest revision is replaced in ONE
transaction: a power cut or a bad row leaves the previous revision whole, never a mix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from manifests.admission_types import Decision, Direction, GateContext, ScanFact
from manifests.model import Manifest, ManifestDelta, TicketRow
from scanner.scanlog import (
    HISTORY_SQL,
    PEER_HISTORY_SQL,
    SCAN_LOG_SQL,
    ScanRecord,
    own_fact,
    peer_fact,
)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS manifest (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL,
    encoded BLOB NOT NULL,
    installed_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    generation INTEGER NOT NULL,
    ticket_type TEXT,
    zone TEXT,
    seat TEXT,
    valid_days TEXT NOT NULL,
    max_entries INTEGER,
    attention TEXT,
    lock_reason TEXT,
    comp_reason TEXT,
    order_ref TEXT,
    holder_sealed BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen_at_ms INTEGER NOT NULL);
"""

_TICKET_COLUMNS = tuple(f.name for f in dataclasses.fields(TicketRow))
_INSERT_TICKET = (
    f"INSERT OR REPLACE INTO tickets ({', '.join(_TICKET_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _TICKET_COLUMNS)})"
)
_GATE_KEY = "gate"
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


def _ticket_values(row: TicketRow) -> tuple[Any, ...]:
    """Column values in table order (plain attribute reads: `astuple` deep-copies, which made
    a 100k-ticket install take seconds)."""
    return tuple(
        json.dumps(list(row.valid_days)) if c == "valid_days" else getattr(row, c)
        for c in _TICKET_COLUMNS
    )


def _ticket_from(values: tuple[Any, ...]) -> TicketRow:
    data = dict(zip(_TICKET_COLUMNS, values, strict=True))
    data["valid_days"] = tuple(json.loads(data["valid_days"]))
    return TicketRow(**data)


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
    """One gate's database file. Safe to share between the UI and worker threads (one
    connection behind a lock: SQLite serialises writers anyway)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        self.db = Database(conn)
        self._lock = threading.RLock()
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self.db.conn.executescript(SCHEMA_SQL + SCAN_LOG_SQL)  # idempotent: IF NOT EXISTS
        self.nonces = NonceMemory(self)
        self._device_id: str | None = None

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> GateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- small helpers ------------------------------------------------------------------

    def _one(self, sql: str, params: Iterable[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            return self.db.execute(sql, list(params)).fetchone()

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.db.execute(sql, list(params)).fetchall()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One durable transaction: all or nothing, fsynced at commit. IMMEDIATE takes the
        write lock up front, so reading max(seq) and inserting cannot race another writer."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # -- device config ------------------------------------------------------------------

    def set_config(self, key: str, value: Any) -> None:
        """Any JSON value (enrollment: device id, hub URL, venue...)."""
        text = json.dumps(value, sort_keys=True)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", (key, text))
        self._device_id = None

    def config(self, key: str, default: Any = None) -> Any:
        row = self._one("SELECT value FROM config WHERE key = ?", (key,))
        return default if row is None else json.loads(row[0])

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

    @property
    def device_id(self) -> str:
        if self._device_id is None:  # read on every history lookup: keep it in memory
            self._device_id = str(self.config("device_id", ""))
        return self._device_id

    def set_gate(self, gate: GateContext) -> None:
        self.set_config(
            _GATE_KEY,
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
        data = self.config(_GATE_KEY)
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
        self, manifest: Manifest, encoded: bytes, now_ms: int, *, other_event: bool = False
    ) -> None:
        """Install a verified manifest (store the signed envelope as `encoded`, so the gate
        can verify it again at start). Older than the installed revision of the same event:
        refused (revisions count per event, so `other_event` lifts it)."""
        current = self.manifest_revision()
        if current is not None and manifest.revision < current and not other_event:
            raise StoreError(f"manifest revision {manifest.revision} is older than {current}")
        with self._write() as conn:
            conn.execute("DELETE FROM tickets")
            for ticket_id, row in manifest.tickets.items():
                if ticket_id != row.ticket_id:
                    raise StoreError(f"manifest row keyed {ticket_id!r} holds {row.ticket_id!r}")
            conn.executemany(_INSERT_TICKET, map(_ticket_values, manifest.tickets.values()))
            self._set_manifest(conn, manifest.revision, encoded, now_ms)

    def apply_delta(self, delta: ManifestDelta, encoded: bytes, now_ms: int) -> None:
        """Apply a verified delta's rows in one transaction; `encoded` is the resulting full
        manifest (or its envelope). Only onto the revision the delta was built from."""
        current = self.manifest_revision()
        if current != delta.base_revision:
            raise StoreError(f"delta is from revision {delta.base_revision}, have {current}")
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM tickets WHERE ticket_id = ?", [(t,) for t in delta.removed]
            )
            conn.executemany(_INSERT_TICKET, [_ticket_values(r) for r in delta.upserts])
            self._set_manifest(conn, delta.header.revision, encoded, now_ms)

    @staticmethod
    def _set_manifest(conn: sqlite3.Connection, revision: int, encoded: bytes, now_ms: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO manifest (id, revision, encoded, installed_at_ms) "
            "VALUES (1, ?, ?, ?)",
            (revision, encoded, now_ms),
        )

    def manifest_revision(self) -> int | None:
        row = self._one("SELECT revision FROM manifest WHERE id = 1")
        return None if row is None else int(row[0])

    def manifest_encoded(self) -> bytes | None:
        row = self._one("SELECT encoded FROM manifest WHERE id = 1")
        return None if row is None else bytes(row[0])

    def ticket(self, ticket_id: str) -> TicketRow | None:
        cols = ", ".join(_TICKET_COLUMNS)
        row = self._one(f"SELECT {cols} FROM tickets WHERE ticket_id = ?", (ticket_id,))
        return None if row is None else _ticket_from(row)

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
            last = conn.execute("SELECT max(seq) FROM scans").fetchone()[0]
            seq = (last or 0) + 1
            conn.execute(
                "INSERT INTO scans (seq, at_ms, payload, ticket_id, verdict, reason, message,"
                " direction, gate, manual) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
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
            )
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
        confirmed while its upload was in flight stays pending, so the confirmation goes too."""
        with self._write() as conn:
            cur = conn.executemany(
                "UPDATE scans SET uploaded = 1 WHERE seq = ? AND uploaded = 0 AND confirmed IS ?",
                [(r.seq, None if r.confirmed is None else int(r.confirmed)) for r in records],
            )
            return cur.rowcount

    def _records(self, where: str, params: tuple[Any, ...]) -> list[ScanRecord]:
        with self._lock:
            cur = self.db.execute(f"SELECT * FROM scans {where}", list(params))
            names = [d[0] for d in cur.description]
            return [ScanRecord.from_row(dict(zip(names, r, strict=True))) for r in cur.fetchall()]

    def merge_peer_scans(self, facts: Iterable[ScanFact]) -> int:
        """Movements at other gates (from the hub); idempotent. Returns how many were new."""
        with self._write() as conn:
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

    def history_for(self, ticket_id: str) -> list[ScanFact]:
        """Earlier scans of the ticket at this gate and (merged) at others, oldest first:
        admits, exits and attention scans (counted only once staff confirmed)."""
        device_id = self.device_id
        own = [own_fact(r, device_id) for r in self._all(HISTORY_SQL, (ticket_id,))]
        peers = [peer_fact(r) for r in self._all(PEER_HISTORY_SQL, (ticket_id,))]
        return sorted(own + peers, key=lambda f: f.at_ms)

    # -- nonces -------------------------------------------------------------------------

    def forget_nonces_before(self, cutoff_ms: int) -> int:
        """Nonces older than a legacy-C code's validity can never be replayed: drop them."""
        with self._write() as conn:
            return conn.execute("DELETE FROM nonces WHERE seen_at_ms < ?", (cutoff_ms,)).rowcount

    # -- counters and export ------------------------------------------------------------

    def counters(self) -> Counters:
        row = self._one(
            """SELECT
                coalesce(sum(direction = 'entry' AND (verdict = 'admit'
                    OR (verdict = 'attention' AND confirmed = 1))), 0),
                coalesce(sum(verdict = 'deny'), 0),
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
        listed by name only. Written to a temporary file, fsynced, then renamed."""
        encoded = self.manifest_encoded()
        data = {
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
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
