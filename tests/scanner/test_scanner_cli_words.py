"""`gate-scanner check` as a real subprocess: a code that does not decode answers with the
reason's sentence for staff; the codec's own words stay in a separate `detail` field."""

from __future__ import annotations

import json
import time
from pathlib import Path

from protocol.reasons import Reason, default_message
from scanner.store import GateStore
from tests.gate_cli import gate_cli
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
