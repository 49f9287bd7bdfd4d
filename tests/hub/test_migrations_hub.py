"""Hub databases made by earlier releases, opened by this one (hub/migrations.py).

The fixtures in tests/vectors/ are database files the earlier releases' own code wrote (see
tests/vectors/make_upgrade_fixtures.py; each file names its release's commit): every row they
hold must come through, the database must record every step, end with the schema a new database
gets, and take new scans. A database of a newer release is refused, and an up-to-date one is
only read at open.
"""

from __future__ import annotations

import fcntl
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from hub.migrations import STEP_NAMES, SchemaTooNew, applied
from hub.storage import HubStore
from hub.store_api import DeviceScans
from tests.paths import ROOT
from tests.vectors.releases import copy_release, record_newer_step, rows, schema_version

# (fixture, tables it must hold rows of): the last release before numbered steps, and schema 3
RELEASES = [
    ("hub_release_010fbb0.db", ("scans", "devices", "tickets", "audit_log", "admin_tokens")),
    ("hub_release_54097c8.db", ("tickets",)),
]
BOOKKEEPING = {"schema_info", "_sqlite_migrations", "sqlite_sequence"}


def shape(path: Path) -> dict[str, object]:
    """What the schema is made of, independent of how each CREATE was spelled: the tables'
    columns (name, type, not null, default, key) and the indexes with their columns."""
    with closing(sqlite3.connect(path)) as conn:
        tables = sorted(
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in BOOKKEEPING
        )
        out: dict[str, object] = {}
        for t in tables:
            columns = sorted(tuple(c[1:]) for c in conn.execute(f'PRAGMA table_info("{t}")'))
            indexes = sorted(
                (i[1], i[2], tuple(c[2] for c in conn.execute(f'PRAGMA index_info("{i[1]}")')))
                for i in conn.execute(f'PRAGMA index_list("{t}")')
                if not i[1].startswith("sqlite_autoindex")
            )
            out[t] = (columns, indexes)
        return out


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fresh.sqlite"
    HubStore(path).close()
    yield path


@pytest.mark.parametrize(("fixture", "holds"), RELEASES)
def test_an_earlier_release_keeps_every_row_and_ends_as_a_new_database(
    fixture: str, holds: tuple[str, ...], tmp_path: Path, fresh: Path
) -> None:
    path = tmp_path / "hub.sqlite"
    made = copy_release(fixture, path)
    before = {t: r for t, r in made.items() if t not in BOOKKEEPING}
    assert all(before[t] for t in holds), {t: len(before[t]) for t in holds}
    store = HubStore(path)
    try:
        assert applied(store.db) == list(STEP_NAMES)
        for table, old in before.items():
            width = len(old[0]) if old else None
            assert rows(store.db.conn, table, width) == old, table  # old columns, as they were
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
        # the upgraded hub takes new scans from a device the old release enrolled
        if before["devices"]:
            device = store.db.execute("SELECT id FROM devices ORDER BY 1 LIMIT 1").fetchone()[0]
            seqs = [r["device_seq"] for r in store.scans_of_device(device)]
            row = {
                "seq": max(seqs, default=0) + 1,
                "ticket_id": None,
                "verdict": "deny",
                "reason": "malformed",
                "direction": "entry",
                "scanned_ms": 1_800_000_000_000,
                "counted": 0,
            }
            stored = store.record_scans(
                DeviceScans(device, [row], deactivated=False), 1_800_000_000_001
            )
            assert stored.acked == [row["seq"]]
    finally:
        store.close()
    assert shape(path) == shape(fresh)


def test_a_database_of_a_newer_release_is_refused_and_left_as_it_was(fresh: Path) -> None:
    version = record_newer_step(fresh, "hub")
    with pytest.raises(SchemaTooNew, match="newer release"):
        HubStore(fresh)
    answer = subprocess.run(
        [sys.executable, "-m", "hub", "tenant", "create", "x", "--db", str(fresh)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert answer.returncode == 2, answer.stderr
    assert "newer release" in answer.stderr and "Traceback" not in answer.stderr
    assert schema_version(fresh) == version


def test_an_up_to_date_database_is_only_read_at_open(fresh: Path) -> None:
    """SQLite counts every schema change in `schema_version`: opening again changes none."""
    with closing(sqlite3.connect(fresh)) as conn:
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        steps = conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
    # nor waits for another process's write turn (hub/store_base.WriteTurn) to open it
    with open(str(fresh) + "-writes.lock", "a+b") as turn:
        fcntl.flock(turn.fileno(), fcntl.LOCK_EX)
        opened = threading.Thread(target=lambda: HubStore(fresh).close())
        opened.start()
        opened.join(timeout=5)
        waited = [opened] if opened.is_alive() else []
        fcntl.flock(turn.fileno(), fcntl.LOCK_UN)
        opened.join(timeout=30)
    with closing(sqlite3.connect(fresh)) as conn:
        assert conn.execute("PRAGMA schema_version").fetchone()[0] == version
        assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == steps
    assert steps == len(STEP_NAMES)
    assert waited == [], "opening an up-to-date hub waited for the write turn"


def test_a_database_from_before_the_lighter_scan_indexes_loses_the_old_one(
    tmp_path: Path, fresh: Path
) -> None:
    """Hubs before 98418aa indexed scans by ticket alone (scans_ticket) and had no scans_event;
    no fixture of that age exists, so the database is made to look like one."""
    path = tmp_path / "hub.sqlite"
    HubStore(path).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE INDEX scans_ticket ON scans(ticket_id)")
        conn.execute("DROP INDEX scans_event")
        conn.execute("DROP TABLE _sqlite_migrations")  # that release recorded no steps
        conn.commit()
    HubStore(path).close()
    assert shape(path) == shape(fresh)
