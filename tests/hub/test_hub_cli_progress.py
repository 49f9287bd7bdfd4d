"""Long `gate-hub` jobs (`demo-data`, `import`) draw their progress on a terminal, and nothing
of it goes to a pipe or a log: the real CLI as a process, its stderr a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT
from tests.processes import read_terminal

TICKETS = 5000
FULL_BAR = "[" + "#" * 30 + "] 100%"


def gate_hub(*args: str, terminal: bool) -> tuple[int, str, str]:
    """Run `gate-hub ARGS`; stderr on a pseudo-terminal or a pipe. (exit, stdout, stderr)"""
    command = [sys.executable, "-m", "hub", *args]
    if not terminal:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = -1
        out, _ = proc.communicate(timeout=120)
        drawn = read_terminal(master)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    return proc.returncode, out.decode(), drawn


def test_demo_data_draws_its_progress_on_a_terminal_only(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    code, out, drawn = gate_hub("demo-data", "--db", db, "--tickets", str(TICKETS), terminal=True)
    assert code == 0, drawn
    assert f"making tickets {FULL_BAR}  5,000/5,000" in drawn, drawn
    assert "\rstoring 0" in drawn
    assert json.loads(out)["tickets"] == TICKETS  # stdout stays the JSON alone

    code, out, err = gate_hub("demo-data", "--db", db, "--tickets", "10", terminal=False)
    assert code == 0 and json.loads(out)["tickets"] == 10
    assert err == ""  # a pipe or a log gets no progress


def test_a_long_import_draws_its_progress_on_a_terminal_only(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    demo = json.loads(gate_hub("demo-data", "--db", db, "--tickets", "0", terminal=False)[1])
    tickets = tmp_path / "tickets.csv"
    lines = ["ticket_id,event_id,ticket_type,holder_name"]
    lines += [f"T-{i},{demo['event_id']},1,Guest {i}" for i in range(TICKETS)]
    tickets.write_text("\n".join(lines) + "\n")
    code, out, drawn = gate_hub(
        "import", "--db", db, "--tenant", "demo", str(tickets), "--dry-run", terminal=True
    )
    assert code == 0, drawn
    assert f"checking tickets {FULL_BAR}  5,000/5,000" in drawn, drawn
    assert "would import 5000 tickets" in out

    code, out, err = gate_hub(
        "import", "--db", db, "--tenant", "demo", str(tickets), terminal=False
    )
    assert code == 0 and "imported 5000 tickets" in out, err
    assert "checking tickets" not in err and "\r" not in err
