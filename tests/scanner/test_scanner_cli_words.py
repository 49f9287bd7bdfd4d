"""`gate-scanner check` as a real subprocess: a code that does not decode answers with the
reason's sentence for staff; the codec's own words stay in a separate `detail` field."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from protocol.reasons import Reason, default_message
from scanner.cli import _parser
from scanner.faults import EXIT_REFUSED
from scanner.store import GateStore
from tests.cli_help import undocumented
from tests.gate_cli import gate_cli
from tests.paths import ROOT
from tests.scanner_fixtures import build, install

MALFORMED_BASE45 = ":" * 149  # shaped like a native code; ':::' is beyond two bytes


def test_check_of_an_undecodable_code_speaks_to_staff(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000  # the CLI runs on the wall clock
    db = tmp_path / "gate.db"
    with GateStore(db) as store:
        install(store, build(now), now)
    proc = gate_cli(db, "check", MALFORMED_BASE45, "--json")
    assert proc.returncode == 1, proc.stderr + proc.stdout  # a deny
    result = json.loads(proc.stdout)
    assert (result["verdict"], result["reason"]) == ("deny", "malformed")
    assert result["message"] == default_message(Reason.MALFORMED)
    assert result["message"].startswith("This code cannot be read as a ticket.")
    assert "base45" not in result["message"]
    assert result["detail"] == "base45 triple out of range"

    plain = gate_cli(db, "check", MALFORMED_BASE45)
    assert plain.returncode == 1 and "base45" not in plain.stdout
    assert "cannot be read as a ticket" in plain.stdout


def scanner_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gate-scanner` run in `folder`, with no GATE_DB: ./gate.db would land there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GATE_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env=env,
    )


def refused_with(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == EXIT_REFUSED, proc.stdout + proc.stderr
    assert proc.stderr.startswith("gate-scanner: ") and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_commands_that_need_a_gate_database_never_make_one(tmp_path: Path) -> None:
    for command in (["check", "x"], ["status"], ["export-scans", "out.json"]):
        refused_with(scanner_in(tmp_path, *command), "there is no gate database gate.db")
    streamed = scanner_in(tmp_path, "stream")  # answers machines: the error as JSON
    assert streamed.returncode == EXIT_REFUSED
    assert json.loads(streamed.stdout)["error"]["code"] == "no_database"
    refused_with(scanner_in(tmp_path, "check", "x", "--db", "g.db"), "no gate database g.db")
    assert list(tmp_path.iterdir()) == []


def test_db_goes_before_or_after_the_command(tmp_path: Path) -> None:
    made = scanner_in(tmp_path, "setup", "--gate", "North", "--venue", "v1", "--db", "g.db")
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db"]
    after = scanner_in(tmp_path, "status", "--db", "g.db")
    before = scanner_in(tmp_path, "--db", "g.db", "status")
    assert after.returncode == before.returncode == 0
    assert "gate: North (entry, zones any) venue v1" in after.stdout
    assert after.stdout == before.stdout


def test_a_failed_enrolment_leaves_no_database_behind(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = scanner_in(tmp_path, "enroll", f"http://127.0.0.1:{port}", "ABCDEFGH", "--db", "g.db")
    refused_with(proc, f"cannot reach the hub at http://127.0.0.1:{port}")
    assert list(tmp_path.iterdir()) == []


def test_export_scans_to_stdout(tmp_path: Path) -> None:
    made = scanner_in(tmp_path, "setup", "--gate", "North", "--venue", "v1", "--db", "g.db")
    assert made.returncode == 0, made.stderr
    proc = scanner_in(tmp_path, "export-scans", "-", "--db", "g.db")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["device_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db"]  # no file named '-'


def test_every_option_has_help_text() -> None:
    assert undocumented(_parser()) == []
