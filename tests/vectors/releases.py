"""Databases made by earlier releases (the *.db files here, make_upgrade_fixtures.py), as the
upgrade tests of the hub and the gate use them: copied, read, and made to look newer."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from tests.paths import VECTORS

Rows = list[tuple[object, ...]]


def rows(conn: sqlite3.Connection, table: str, width: int | None = None) -> Rows:
    """The table's rows in a fixed order: by every column, or the first `width` of them (the
    columns an older release had; later ones are left out)."""
    names = [c[1] for c in conn.execute(f'PRAGMA table_info("{table}")')][:width]
    quoted = ", ".join(f'"{name}"' for name in names)
    return conn.execute(f'SELECT {quoted} FROM "{table}" ORDER BY {quoted}').fetchall()


def copy_release(fixture: str, path: Path) -> dict[str, Rows]:
    """The fixture as a database file at `path` (the fixture itself is never opened, so it
    stays as that release made it); returns every table's rows as that release left them."""
    shutil.copyfile(VECTORS / fixture, path)
    with closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
        return {t: rows(conn, t) for (t,) in tables}


def schema_version(path: Path) -> int:
    """SQLite's count of the schema changes made to the file."""
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA schema_version").fetchone()[0])


def record_newer_step(path: Path, migration_set: str) -> int:
    """Record a step no release knows, as a newer release would have; returns the schema
    version then, which opening the file with this release must leave as it is."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES (?, '0099_from_the_future', '2027-01-01')",
            (migration_set,),
        )
        conn.commit()
    return schema_version(path)
