"""Storage faults as states: which way the gate's disk failed, in a code scripts can act on.

A full disk, a read-only file system, a damaged database file and a failed write or fsync all
reach Python as a bare `sqlite3` error or `OSError`; the CLI (and the app) turn them into one
of four faults, each with its own exit code, instead of a traceback. None of them ever lets a
verdict through: a scan is shown only after its commit, and a fault means there was none.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

# Exit codes of `gate-scanner` (README, "Exit codes"); 0-2 are check's verdicts.
EXIT_OK = 0
EXIT_DENY = 1
EXIT_ATTENTION = 2
EXIT_REFUSED = 3
EXIT_STORAGE_FULL = 4
EXIT_STORAGE_READ_ONLY = 5
EXIT_STORAGE_CORRUPT = 6
EXIT_STORAGE_IO = 7
EXIT_INTERNAL = 8

# SQLite primary result codes (the low byte of an extended code)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 11, 13, 14, 26


@dataclass(frozen=True, slots=True)
class StorageFault:
    code: str
    message: str
    exit_code: int


def _full(where: Path) -> StorageFault:
    return StorageFault(
        "storage_full",
        f"the disk holding {where} is full: nothing was stored (free space, then try again)",
        EXIT_STORAGE_FULL,
    )


def _read_only(where: Path) -> StorageFault:
    return StorageFault(
        "storage_read_only",
        f"{where} is on a read-only file system or in a read-only directory: nothing was stored",
        EXIT_STORAGE_READ_ONLY,
    )


def _corrupt(where: Path, detail: str) -> StorageFault:
    return StorageFault(
        "storage_corrupt",
        f"the gate database {where} is damaged ({detail}): nothing was stored; restore or "
        "replace it (export what can be read first)",
        EXIT_STORAGE_CORRUPT,
    )


def _io(where: Path, detail: str) -> StorageFault:
    return StorageFault(
        "storage_io_error",
        f"writing {where} failed ({detail}): nothing was stored; check the disk",
        EXIT_STORAGE_IO,
    )


def _disk_state(where: Path) -> StorageFault | None:
    """What the file system itself says: SQLite reports a full disk or a read-only mount as a
    plain I/O error or "unable to open" when it fails on its -shm or -wal file."""
    folder = where if where.is_dir() else where.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK):
        return _read_only(where)
    if st.f_bavail == 0:
        return _full(where)
    return None


def storage_fault(exc: BaseException, where: Path | str) -> StorageFault | None:
    """The fault `exc` stands for, with `where` the file being used; None when it is not a
    storage fault (a bug, or an error the caller handles)."""
    where = Path(where)
    if isinstance(exc, sqlite3.Error):
        extended = getattr(exc, "sqlite_errorcode", None)
        if not isinstance(extended, int):
            return None
        primary = extended & 0xFF
        detail = str(exc)
        if primary == _SQLITE_FULL:
            return _full(where)
        if primary == _SQLITE_READONLY:
            return _read_only(where)
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return _corrupt(where, detail)
        if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN):
            name = getattr(exc, "sqlite_errorname", "") or ""
            return _disk_state(where) or _io(where, f"{detail}, {name}".rstrip(", "))
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return _io(where, "the database stayed locked by another process")
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _full(where)
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return _read_only(where)
        if exc.errno == errno.EIO:
            return _io(where, exc.strerror or "I/O error")
    return None
