"""Gate databases made by earlier releases, opened by this one (scanner/migrations.py).

The fixtures in tests/vectors/ are database files the earlier releases' own code wrote (see
tests/vectors/make_upgrade_fixtures.py; each file names its release's commit): the last release
before numbered steps (with the order index it built) and one of the first gate schema (before
the install table). Every setting, key, ticket and scan must come through, the database must
record every step and end with the schema a new gate gets, and the gate must still scan on it.
A database of a newer release is refused, and an up-to-date one is only read at open.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from protocol.reasons import Reason, Verdict
from scanner import migrations
from scanner.migrations import STEP_NAMES, applied
from scanner.service import GateService
from scanner.store import GateStore, StoreError
from tests.paths import ROOT
from tests.scanner_fixtures import ADA, DOT, Clock, build
from tests.vectors.releases import copy_release, record_newer_step, rows, schema_version

GATE_NOW_MS = 1_790_000_000_000  # the clock the fixtures were made at (make_upgrade_fixtures)
RELEASES = ["gate_release_010fbb0.db", "gate_release_c16968c.db"]
BOOKKEEPING = {"_sqlite_migrations"}
CLI = "import sys; from scanner.cli import main; sys.exit(main(sys.argv[1:]))"  # gate-scanner


def shape(path: Path) -> dict[str, object]:
    """The schema, independent of how each CREATE was spelled or what a rename quoted: each
    table's columns and indexes (with their columns), and each trigger's SQL."""
    with closing(sqlite3.connect(path)) as conn:
        out: dict[str, object] = {}
        for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_schema"):
            if name in BOOKKEEPING or name.startswith(("sqlite_autoindex", "idx__sqlite")):
                continue
            if kind == "table":
                columns = [tuple(c[1:]) for c in conn.execute(f'PRAGMA table_info("{name}")')]
                indexes = sorted(
                    (i[2], tuple(c[2] for c in conn.execute(f'PRAGMA index_info("{i[1]}")')))
                    for i in conn.execute(f'PRAGMA index_list("{name}")')
                    if not i[1].startswith("sqlite_autoindex")
                )
                out[f"table {name}"] = (columns, indexes, "WITHOUT ROWID" in sql)
            elif kind == "trigger":
                out[f"trigger {name}"] = re.sub(r"\s+", " ", sql)
            else:
                out[f"{kind} {name}"] = True
        return out


@pytest.mark.parametrize("fixture", RELEASES)
def test_an_earlier_gate_keeps_everything_scans_on_and_ends_as_a_new_one(
    fixture: str, tmp_path: Path
) -> None:
    path = tmp_path / "gate.db"
    before = copy_release(fixture, path)
    assert all(before[t] for t in ("config", "keys", "manifest", "tickets", "peer_scans"))
    assert [r[0] for r in before["scans"]] == [1, 2, 3, 4, 5]
    with GateStore(path) as store:
        assert applied(store._writer) == list(STEP_NAMES)
        for table, old in before.items():
            width = len(old[0]) if old else None
            assert rows(store._writer, table, width) == old, table  # old columns, as they were
        # what later steps added is empty: no code hashes (0004_backend_codes)
        assert {r[-2:] for r in rows(store._writer, "tickets")} == {(None, None)}
        assert [r.seq for r in store.pending_uploads()] == [3, 4, 5]
        assert store.config("sound") == "off" and store.config("verdict_clear_s") == 4
        # the upgraded gate decides and logs a new scan with the manifest the old one installed
        clock = Clock(GATE_NOW_MS + 120_000)
        service = GateService(store, clock=clock, dedupe_window_ms=0)
        fx = build(GATE_NOW_MS)
        fresh = service.scan(fx.codes[DOT])
        assert fresh is not None and fresh.decision.verdict is Verdict.ADMIT, fresh
        # ADA went in (and out) at the old gate: the old log still counts, one entry a day
        again = service.scan(fx.codes[ADA])
        assert again is not None and again.decision.reason is Reason.ALREADY_ADMITTED, again
        assert [r.seq for r in store.pending_uploads()] == [3, 4, 5, 6, 7]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store._writer.execute("DELETE FROM scans WHERE seq = 1")
    new = tmp_path / "new.db"
    GateStore(new).close()
    assert shape(path) == shape(new)


def test_a_database_of_a_newer_release_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "gate.db"
    GateStore(path).close()
    version = record_newer_step(path, "gate")
    with pytest.raises(StoreError, match="newer release"):
        GateStore(path)
    answer = subprocess.run(
        [sys.executable, "-c", CLI, "--db", str(path), "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert answer.returncode == 3, answer
    assert "newer release" in answer.stderr and "Traceback" not in answer.stderr
    assert len(answer.stderr.strip().splitlines()) == 1
    assert schema_version(path) == version


def test_an_up_to_date_database_is_only_read_at_open(tmp_path: Path) -> None:
    """SQLite counts every schema change in `schema_version`: opening again changes none."""
    path = tmp_path / "gate.db"
    GateStore(path).close()
    with closing(sqlite3.connect(path)) as conn:
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        steps = conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id").fetchall()
    # nor waits for the write lock: a CLI command opens the gate while the app writes
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        opened = threading.Thread(target=lambda: GateStore(path).close())
        opened.start()
        opened.join(timeout=5)
        assert not opened.is_alive(), "opening an up-to-date gate waited for a writer"
        writer.execute("ROLLBACK")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA schema_version").fetchone()[0] == version
        assert conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id").fetchall() == steps
    assert [s for (s,) in steps] == list(STEP_NAMES)


def test_stores_opening_an_old_gate_at_once_run_each_step_once(tmp_path: Path) -> None:
    """The app and a CLI command may open an old gate's file at the same moment: each step
    runs in one of them, is recorded once, and neither fails."""
    path = tmp_path / "gate.db"
    copy_release(RELEASES[1], path)
    start = threading.Barrier(4)
    opened: list[GateStore] = []
    failed: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(GateStore(path))
        except BaseException as exc:  # reported below
            failed.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for store in opened:
        store.close()
    assert failed == [] and len(opened) == 4
    with closing(sqlite3.connect(path)) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == list(STEP_NAMES)


def test_a_step_another_process_ran_meanwhile_is_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between reading the steps it has and taking the write lock, another process may have
    upgraded the file: the step is looked up again under the lock, and skipped."""
    path = tmp_path / "gate.db"
    GateStore(path).close()
    real = migrations.applied
    stale: list[list[str]] = [[]]  # the first read: no step yet

    def applied_then(conn: sqlite3.Connection) -> list[str]:
        return stale.pop() if stale else real(conn)

    monkeypatch.setattr(migrations, "applied", applied_then)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert migrations.migrate(conn, path) == []
        names = [n for (n,) in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == list(STEP_NAMES)
