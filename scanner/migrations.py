"""The gate database's schema as numbered steps, applied at open (GateStore).

Each database records the steps it has in `_sqlite_migrations` (set "gate", name, time), the
table and layout sqlite-utils' `Migrations` keeps (the hub uses that class; the gate does not
import sqlite-utils, which brings numpy and would add 0.1 s to every `gate-scanner check`).
Opening a database applies the steps it lacks, in order, each in a transaction of its own
(BEGIN IMMEDIATE, so two processes opening one file never both run a step) together with its
record; a database that names a step this code does not know was made by a newer release and
is refused (SchemaTooNew), never downgraded. An up-to-date database costs two reads at open
and no DDL.

Step 1 is the first gate schema that shipped (git 3090ff6); each later change of it is a step.
Gates of the releases before steps upgraded in place with CREATE ... IF NOT EXISTS and record
nothing, so steps 1-3 look before they change anything; a later step runs only on a database
that recorded every step before it. Never edit or reorder a step that shipped: add one. A
manifest install stages its tables as copies of the installed `tickets`, `ticket_codes` and
`manifest` (scanner/store.py), so what a step gives them, installs keep.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable
from pathlib import Path

from protocol.schema_steps import SchemaTooNew as SchemaTooNew  # scanner/store.py catches it here
from protocol.schema_steps import refuse_newer
from scanner.scanlog import SCAN_LOG_SQL

SET = "gate"
RECORD_SQL = (
    "CREATE TABLE IF NOT EXISTS _sqlite_migrations (id INTEGER PRIMARY KEY,"
    " migration_set TEXT, name TEXT, applied_at TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx__sqlite_migrations_migration_set_name"
    " ON _sqlite_migrations (migration_set, name)",
)

# Step 1, frozen as 3090ff6 shipped it (the scan log's SQL in scanner/scanlog.py is unchanged
# since; tests/scanner/test_migrations_gate.py compares a new database with one of that release).
TABLES_V1 = (
    "CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS manifest (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL,
    encoded BLOB NOT NULL,
    installed_at_ms INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS tickets (
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
) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen_at_ms INTEGER NOT NULL)",
)


def _tables(conn: sqlite3.Connection) -> None:
    for sql in (*TABLES_V1, *SCAN_LOG_SQL):  # one at a time: executescript() would commit
        conn.execute(sql)


def _manifest_install(conn: sqlite3.Connection) -> None:
    """ca6bcc7: a manifest is staged in chunks; the install in progress is named here."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS manifest_install"
        " (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT)"
    )


def _no_order_index(conn: sqlite3.Connection) -> None:
    """d97023a gave `tickets` an order_ref index (with every install, and at open for older
    gates); f054939 builds none, as it doubled a full install. A gate of the releases between
    still has one, under the name of the staging table it came with."""
    names = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'tickets'"
        " AND name LIKE '%\\_order\\_ref' ESCAPE '\\'"
    ).fetchall()
    for (name,) in names:
        conn.execute(f'DROP INDEX "{name}"')


def _backend_codes(conn: sqlite3.Connection) -> None:
    """Codes a ticketing system printed (a pretix secret), by their keyed hashes only: each
    ticket row as the manifest has it (manifests/model.py TicketRow: its current code's hash,
    and those of codes that no longer admit, packed as manifests/codec.py packs them), and
    every hash in `ticket_codes`, keyed by it, so a scan finds its ticket in one search. No
    secondary index: installs fill `ticket_codes` in hash order, which an index on `tickets`
    would not allow (measured: 100k coded tickets installed in 2.6 s with one, 1.6 s so)."""
    conn.execute("ALTER TABLE tickets ADD COLUMN code_digest BLOB")
    conn.execute("ALTER TABLE tickets ADD COLUMN retired_codes BLOB")
    conn.execute(
        "CREATE TABLE ticket_codes (digest BLOB NOT NULL, ticket_id TEXT NOT NULL,"
        " state TEXT NOT NULL, PRIMARY KEY (digest, ticket_id, state)) WITHOUT ROWID"
    )


def _peer_ticket_index(conn: sqlite3.Connection) -> None:
    """Other gates' movements by ticket: every decision reads a ticket's history, and the
    primary key (device first) cannot serve that, so each read scanned every movement."""
    conn.execute("CREATE INDEX peer_scans_ticket ON peer_scans(ticket_id)")


Step = tuple[str, Callable[[sqlite3.Connection], None]]
STEPS: tuple[Step, ...] = (
    ("0001_tables", _tables),
    ("0002_manifest_install", _manifest_install),
    ("0003_no_order_index", _no_order_index),
    ("0004_backend_codes", _backend_codes),
    ("0005_peer_ticket_index", _peer_ticket_index),
)
STEP_NAMES = tuple(name for name, _ in STEPS)


def applied(conn: sqlite3.Connection) -> list[str]:
    """The steps this database has, in the order they were applied."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_sqlite_migrations'"
    ).fetchone()
    if exists is None:
        return []
    rows = conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY id", (SET,)
    )
    return [name for (name,) in rows]


def migrate(conn: sqlite3.Connection, path: Path | str) -> list[str]:
    """Apply the steps the database lacks, on an autocommit connection; returns their names
    (none: nothing was written). Raises SchemaTooNew, having changed nothing."""
    have = applied(conn)
    refuse_newer(
        have,
        STEP_NAMES,
        path,
        "gate",
        "Install the newer release, or export the scans with it and set this gate up afresh.",
    )
    done = []
    for name, step in STEPS:
        if name in have:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if name in applied(conn):  # another process ran it while this one waited
                conn.execute("ROLLBACK")
                continue
            step(conn)
            for sql in RECORD_SQL:
                conn.execute(sql)
            conn.execute(
                "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
                (SET, name, str(datetime.datetime.now(datetime.UTC))),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done
