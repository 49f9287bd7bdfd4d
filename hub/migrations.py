"""The hub database's schema as numbered steps (sqlite-utils' `Migrations`, set "hub").

Each database records the steps it has in `_sqlite_migrations` (set, name, time), one row per
step, never rewritten. Opening a database applies the steps it lacks, in order, each in a
transaction of its own together with its record; a database that names a step this code does
not know was made by a newer release and is refused (SchemaTooNew), never downgraded. An
up-to-date database costs two reads at open and no DDL.

Steps 1-7 are what the release before them did at every open (CREATE ... IF NOT EXISTS, added
columns, a rebuilt table, late indexes, a version number overwritten each time). Databases of
that time have no record, so these steps look before they change anything; a later step runs
only on a database that recorded every step before it, and needs no such care. Never edit or
reorder a step that shipped: add one.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import sqlite_utils
from sqlite_utils import Migrations

from hub.schema import (
    BACKEND_TICKET_COLUMNS,
    BACKENDS_DDL,
    BASE_DDL,
    EXTERNAL_ID_COLUMN,
    OWED_UPSTREAM_TRIGGER,
    STAFF_DDL,
    TICKET_BULK_INSERTS_DDL,
    TICKET_FIELD_COLUMNS,
    VENUE_LEGACY_KEYS_DDL,
    WEBHOOK_NONCES_DDL,
    WILL_CALL_DDL,
)
from protocol.schema_steps import SchemaTooNew as SchemaTooNew  # hub/cli.py catches it here
from protocol.schema_steps import refuse_newer

STEPS = Migrations("hub")


def statements(script: str) -> Iterator[str]:
    """The statements of a SQL script, one at a time: executescript() would commit the step's
    transaction before it runs."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    assert not pending.strip(), pending


def _run(db: sqlite_utils.Database, script: str) -> None:
    for sql in statements(script):
        db.execute(sql)


def _add_missing(
    db: sqlite_utils.Database, table: str, columns: tuple[tuple[str, str], ...]
) -> None:
    have = db[table].columns_dict
    for column, definition in columns:
        if column not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


@STEPS(name="0001_tables")
def _tables(db: sqlite_utils.Database) -> None:
    _run(db, BASE_DDL)


@STEPS(name="0002_scans_clock_offset")  # schema 2: the offset each gate measured
def _scans_clock_offset(db: sqlite_utils.Database) -> None:
    _add_missing(db, "scans", (("clock_offset_ms", "INTEGER NOT NULL DEFAULT 0"),))


@STEPS(name="0003_devices_hub_keys_version")  # the hub key set a device last took
def _devices_hub_keys_version(db: sqlite_utils.Database) -> None:
    _add_missing(db, "devices", (("hub_keys_version", "INTEGER"),))


@STEPS(name="0004_devices_hardware_id_is_a_label")  # schema 3: every enrolment its own device
def _devices_hardware_id_is_a_label(db: sqlite_utils.Database) -> None:
    """SQLite cannot drop UNIQUE (venue_id, hardware_id): the table is rebuilt as step 1 has
    it and its rows copied, with foreign keys off (the runner's), then checked."""
    if "UNIQUE (venue_id, hardware_id)" in db["devices"].schema:
        create = re.search(r"CREATE TABLE IF NOT EXISTS devices \(.*?\n\);", BASE_DDL, re.DOTALL)
        assert create is not None
        columns = ", ".join(db["devices"].columns_dict)
        db.execute(create.group(0).replace("IF NOT EXISTS devices ", "devices_rebuilt "))
        db.execute(f"INSERT INTO devices_rebuilt ({columns}) SELECT {columns} FROM devices")
        db.execute("DROP TABLE devices")
        db.execute("ALTER TABLE devices_rebuilt RENAME TO devices")
        if db.execute("PRAGMA foreign_key_check").fetchall():
            raise sqlite3.IntegrityError("rebuilding devices broke a foreign key")
    db.execute("CREATE INDEX IF NOT EXISTS devices_hardware ON devices(venue_id, hardware_id)")


@STEPS(name="0005_scans_event_index")
def _scans_event_index(db: sqlite_utils.Database) -> None:
    db.execute("CREATE INDEX IF NOT EXISTS scans_event ON scans(event_id, id)")
    # scans_device_ticket (ticket_id, scanned_ms) serves every lookup by ticket; this one only
    # cost a page write per stored scan.
    db.execute("DROP INDEX IF EXISTS scans_ticket")


@STEPS(name="0006_ticket_fields")  # schema 4: order_ref, attention, max_entries
def _ticket_fields(db: sqlite_utils.Database) -> None:
    _add_missing(db, "tickets", TICKET_FIELD_COLUMNS)


@STEPS(name="0007_steps_replace_schema_info")  # the overwritten version number
def _steps_replace_schema_info(db: sqlite_utils.Database) -> None:
    db.execute("DROP TABLE IF EXISTS schema_info")


@STEPS(name="0008_tickets_external_id")  # a ticket id as the import file gave it, not a UUID
def _tickets_external_id(db: sqlite_utils.Database) -> None:
    _add_missing(db, "tickets", (EXTERNAL_ID_COLUMN,))


@STEPS(name="0009_backends")  # pretix / TicketToken: their tickets in, our scans back
def _backends(db: sqlite_utils.Database) -> None:
    _run(db, BACKENDS_DDL)
    _add_missing(db, "tickets", BACKEND_TICKET_COLUMNS)
    db.execute("CREATE INDEX IF NOT EXISTS tickets_backend_code ON tickets(event_id, backend_code)")


@STEPS(name="0010_retired_codes_by_code")  # the online check finds a code that no longer admits
def _retired_codes_by_code(db: sqlite_utils.Database) -> None:
    db.execute("CREATE INDEX IF NOT EXISTS ticket_retired_codes_code ON ticket_retired_codes(code)")


@STEPS(name="0011_venue_legacy_keys")  # a venue's TicketToken keys, sealed, with their states
def _venue_legacy_keys(db: sqlite_utils.Database) -> None:
    _run(db, VENUE_LEGACY_KEYS_DDL)


@STEPS(name="0012_backend_webhooks")  # TicketToken's signed webhooks: nonces, idempotency keys
def _backend_webhooks(db: sqlite_utils.Database) -> None:
    _run(db, WEBHOOK_NONCES_DDL)


@STEPS(name="0013_owed_only_at_the_tickets_venue")  # no scan owed to another venue's backend
def _owed_only_at_the_tickets_venue(db: sqlite_utils.Database) -> None:
    _run(db, OWED_UPSTREAM_TRIGGER)


@STEPS(name="0014_staff_accounts")  # people signing in to the venue console, and their sessions
def _staff_accounts(db: sqlite_utils.Database) -> None:
    _run(db, STAFF_DDL)


@STEPS(name="0015_will_call")  # orders held at the box office: ID check, pick-up
def _will_call(db: sqlite_utils.Database) -> None:
    _run(db, WILL_CALL_DDL)


@STEPS(name="0016_ticket_bulk_inserts")  # a first pull's tickets bump their event once, not each
def _ticket_bulk_inserts(db: sqlite_utils.Database) -> None:
    _run(db, TICKET_BULK_INSERTS_DDL)


STEP_NAMES = tuple(m.name for m in STEPS._migrations)


def applied(db: sqlite_utils.Database) -> list[str]:
    """The steps this database has, in the order they were applied."""
    return [m.name for m in STEPS.applied(db)]


def pending(db: sqlite_utils.Database, path: str) -> list[str]:
    """The steps the database lacks, in order (two reads); SchemaTooNew if it has one this
    release does not know."""
    refuse_newer(
        applied(db),
        STEP_NAMES,
        path,
        "hub",
        "Run the newer release, or restore a backup made before the upgrade.",
    )
    return [m.name for m in STEPS.pending(db)]


def migrate(db: sqlite_utils.Database, path: str) -> list[str]:
    """Apply the steps the database lacks; returns their names (none: nothing was written).
    The caller holds the database's write turn, so two processes never run one step twice."""
    missing = pending(db, path)
    if not missing:
        return []
    db.execute("PRAGMA foreign_keys = OFF")  # a rebuild's DROP must not count its rows' refs
    try:
        STEPS.apply(db)
    finally:
        db.execute("PRAGMA foreign_keys = ON")
    return missing
