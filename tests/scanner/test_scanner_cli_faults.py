"""`gate-scanner` on a failing disk: a JSON error and a documented exit code, never a traceback,
never a verdict that is not stored. And `check` says its verdict in its exit code.

The disks are real: a tiny tmpfs filled to the last block, a read-only bind mount, a database
file with garbage in it, and fsync failing under an LD_PRELOAD shim (SQLite is a shared
library here, so the shim's fsync/fdatasync are the ones it calls).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from scanner.store import GateStore
from tests.gate_cli import fill, gate_cli, mounted, tiny_tmpfs
from tests.scanner_fixtures import ADA, BEN, CAL, GateFixture, build, install

EXIT = {
    "admit": 0,
    "deny": 1,
    "attention": 2,
    "refused": 3,
    "storage_full": 4,
    "storage_read_only": 5,
    "storage_corrupt": 6,
    "storage_io_error": 7,
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def fx() -> GateFixture:
    return build(now_ms())


def make_gate(db: Path, fx: GateFixture) -> None:
    with GateStore(db) as store:
        install(store, fx, now_ms())


def fault(proc: subprocess.CompletedProcess[str], code: str) -> dict[str, Any]:
    """The one JSON error the CLI prints, its exit code, and no traceback."""
    assert proc.returncode == EXIT[code], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    body = json.loads(proc.stdout)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def plain_fault(proc: subprocess.CompletedProcess[str], code: str) -> str:
    """Without --json: nothing on stdout, one line on stderr, the fault's exit code."""
    assert proc.returncode == EXIT[code], proc.stdout + proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert proc.stderr.startswith("gate-scanner: ") and proc.stderr.count("\n") == 1
    return proc.stderr


def stream_fault(proc: subprocess.CompletedProcess[str], code: str) -> list[str]:
    """`stream` prints a line per stored scan and, at a fault, the JSON error as its last."""
    assert proc.returncode == EXIT[code], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    *scans, last = proc.stdout.splitlines()
    assert json.loads(last)["error"]["code"] == code
    return scans


def admitted_count(db: Path) -> int:
    status = gate_cli(db, "status", "--json")
    assert status.returncode == 0, status.stderr
    return int(json.loads(status.stdout)["counters"]["admitted"])


def test_check_exit_code_is_the_verdict(tmp_path: Path, fx: GateFixture) -> None:
    db = tmp_path / "gate.db"
    make_gate(db, fx)
    for payload, verdict in ((fx.codes[ADA], "admit"), (fx.codes[CAL], "deny")):
        for extra in (["--dry-run"], []):
            proc = gate_cli(db, "check", payload, "--json", *extra)
            assert proc.returncode == EXIT[verdict], proc.stderr
            assert json.loads(proc.stdout)["verdict"] == verdict
    again = gate_cli(db, "check", fx.codes[ADA])
    assert again.returncode == EXIT["deny"] and "already_admitted" in again.stdout
    attention = gate_cli(db, "check", fx.codes[BEN], "--json")
    assert attention.returncode == EXIT["attention"]
    assert json.loads(attention.stdout)["verdict"] == "attention"


def test_refused_input_is_a_json_error_with_its_own_exit_code(tmp_path: Path) -> None:
    """Not 2, which `check` uses for attention; argparse's own errors included."""
    db = tmp_path / "gate.db"
    missing = gate_cli(db, "load-manifest", str(tmp_path / "missing.gmf"), "--json")
    assert missing.returncode == EXIT["refused"], missing.stdout + missing.stderr
    assert json.loads(missing.stdout)["error"]["code"] == "unreadable_file"
    unknown = gate_cli(db, "check", "--json", "--no-such-flag", "x")
    assert unknown.returncode == EXIT["refused"]
    assert json.loads(unknown.stdout)["error"]["code"] == "bad_arguments"


def test_full_disk_is_a_json_error_and_nothing_admitted(tmp_path: Path, fx: GateFixture) -> None:
    with tiny_tmpfs(tmp_path) as disk:
        db = disk / "gate.db"
        make_gate(db, fx)
        filler = fill(disk)
        # nobody has the database open: SQLite cannot even make its -shm
        fault(gate_cli(db, "check", fx.codes[ADA], "--json"), "storage_full")
        fault(gate_cli(db, "status", "--json"), "storage_full")
        plain_fault(gate_cli(db, "export-scans", str(disk / "scans.json")), "storage_full")
        healthy = tmp_path / "healthy.db"
        make_gate(healthy, fx)
        export = gate_cli(healthy, "export-scans", str(disk / "scans.json"))
        assert "scans.json is full" in plain_fault(export, "storage_full")  # names the export
        assert not list(disk.glob("scans.json*"))  # no half export taking the space
        scans = stream_fault(gate_cli(db, "stream", stdin=fx.codes[ADA] + "\n"), "storage_full")
        assert scans == []
        assert "is full" in plain_fault(gate_cli(db, "check", fx.codes[ADA]), "storage_full")

        # the app holds the database open (-wal, -shm in place): the insert itself fails
        filler.unlink()
        with GateStore(db) as running_app:
            fill(disk)
            fault(gate_cli(db, "check", fx.codes[ADA], "--json"), "storage_full")
            stream = gate_cli(db, "stream", stdin=f"{fx.codes[CAL]}\n{fx.codes[ADA]}\n")
            assert stream_fault(stream, "storage_full") == []
            (disk / "filler").unlink()
            assert running_app.counters().admitted == 0
        assert admitted_count(db) == 0  # nothing of the failed scans was kept
        retried = gate_cli(db, "check", fx.codes[ADA], "--json")
        assert retried.returncode == EXIT["admit"], retried.stdout + retried.stderr
        assert json.loads(retried.stdout)["verdict"] == "admit"


def test_read_only_directory_is_a_json_error(tmp_path: Path, fx: GateFixture) -> None:
    """A read-only bind mount of the gate's directory (root ignores mode bits, so a chmod would
    not stop this test's own user)."""
    gate_dir = tmp_path / "gate"
    gate_dir.mkdir()
    db = gate_dir / "gate.db"
    make_gate(db, fx)
    with mounted(gate_dir, "--bind", str(gate_dir)):
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(gate_dir)])
        assert remount.returncode == 0
        fault(gate_cli(db, "check", fx.codes[ADA], "--json"), "storage_read_only")
        fault(gate_cli(db, "status", "--json"), "storage_read_only")
        scans = stream_fault(
            gate_cli(db, "stream", stdin=fx.codes[ADA] + "\n"), "storage_read_only"
        )
        assert scans == []
        assert "read-only" in plain_fault(
            gate_cli(db, "set-pin", "--pin", "4711"), "storage_read_only"
        )
    assert admitted_count(db) == 0


@pytest.mark.parametrize("damage", ["garbage", "page"])
def test_corrupt_database_is_a_json_error(tmp_path: Path, fx: GateFixture, damage: str) -> None:
    db = tmp_path / "gate.db"
    make_gate(db, fx)
    data = bytearray(db.read_bytes())
    if damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:  # the header survives, a table page does not
        data[4096:8192] = os.urandom(4096)
    db.write_bytes(bytes(data))
    fault(gate_cli(db, "check", fx.codes[ADA], "--json"), "storage_corrupt")
    fault(gate_cli(db, "status", "--json"), "storage_corrupt")
    assert stream_fault(gate_cli(db, "stream", stdin=fx.codes[ADA] + "\n"), "storage_corrupt") == []


FAIL_FSYNC_C = r"""
#include <errno.h>
int fsync(int fd) { (void)fd; errno = EIO; return -1; }
int fdatasync(int fd) { (void)fd; errno = EIO; return -1; }
"""


@pytest.fixture
def fail_fsync(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the fsync shim")
    src = tmp_path / "failfsync.c"
    src.write_text(FAIL_FSYNC_C)
    lib = tmp_path / "failfsync.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_failing_fsync_is_a_json_error_and_nothing_admitted(
    tmp_path: Path, fx: GateFixture, fail_fsync: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "gate.db"
    make_gate(db, fx)
    monkeypatch.setenv("LD_PRELOAD", str(fail_fsync))
    err = fault(gate_cli(db, "check", fx.codes[ADA], "--json"), "storage_io_error")
    assert "nothing was stored" in err["message"]
    assert (
        stream_fault(gate_cli(db, "stream", stdin=fx.codes[ADA] + "\n"), "storage_io_error") == []
    )
    monkeypatch.delenv("LD_PRELOAD")
    assert admitted_count(db) == 0
    assert gate_cli(db, "check", fx.codes[ADA], "--json").returncode == EXIT["admit"]


def test_a_scan_that_was_not_stored_can_be_scanned_again_at_once(
    tmp_path: Path, fx: GateFixture
) -> None:
    """The reader's dedupe window must not swallow the retry of a read whose commit failed:
    the guest holds the phone up again and the gate answers this time."""
    from scanner.service import GateService

    with tiny_tmpfs(tmp_path) as disk, GateStore(disk / "gate.db") as store:
        now = now_ms()
        install(store, fx, now)
        service = GateService(store, clock=lambda: now)
        with sqlite3.connect(disk / "gate.db") as other:  # the next commit must grow the WAL
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(disk)
        with pytest.raises(Exception) as failed:
            service.scan(fx.codes[ADA])
        assert failed.value.__class__.__name__ == "OperationalError"
        filler.unlink()
        retried = service.scan(fx.codes[ADA])  # same payload, same millisecond
        assert retried is not None and retried.decision.verdict == "admit"
        assert store.counters().admitted == 1
