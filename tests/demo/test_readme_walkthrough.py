"""The README's "Your first real event" as a new venue manager runs it: its ```sh blocks,
taken from README.md as written, run by bash against a fresh hub on 127.0.0.1 (a free port),
from CSV files in examples/ to a ticket admitted at an enrolled gate, and refused the second
time. If a command, flag or file in the README drifts from the code, this fails."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

pytestmark = pytest.mark.slow
HEADING = "## Your first real event"


def section_blocks(readme: str) -> str:
    """The ```sh blocks between the heading and the next section, joined in order."""
    start = readme.index(f"\n{HEADING}\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : None if end == -1 else end]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)
    assert blocks, f"no ```sh block under {HEADING!r} in README.md"
    return "".join(blocks)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_walkthrough(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`script` under `bash -e` in `cwd`, beside a copy of examples/, with the venv's commands
    first on PATH; its process group (the background hub included) is killed at the end."""
    shutil.copytree(ROOT / "examples", cwd / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATE_HUB_", "GATE_DB"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PORT": str(free_port()),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):  # anything the block's trap left
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_first_real_event_as_written(tmp_path: Path) -> None:
    script = section_blocks((ROOT / "README.md").read_text())
    done = run_walkthrough(script, tmp_path)
    shown = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, shown
    assert "imported 1 event (1 added), 2 ticket types (2 added), 12 tickets (12 added)" in (
        done.stdout
    ), shown
    assert "enrolled as " in done.stdout and "12 tickets" in done.stdout, shown
    assert re.search(r"^#1 ADMIT \(admitted\): Welcome in\. Amara Okafor\.$", done.stdout, re.M)
    assert re.search(
        r"^#2 DENY \(already_admitted\): Already admitted at North Gate 1", done.stdout, re.M
    )
    assert "Traceback" not in done.stderr, shown
    assert '"msg": "hub stopped"' in done.stderr, shown  # the block's trap stopped the hub
    made = tmp_path / "first-event"
    assert (made / "enrol.png").read_bytes().startswith(b"\x89PNG")
    assert (made / "amara.png").read_bytes().startswith(b"\x89PNG")


def test_a_drifted_readme_fails(tmp_path: Path) -> None:
    """The check has teeth: a flag the CLI does not have stops the block with a non-zero exit
    before any gate is enrolled."""
    script = section_blocks((ROOT / "README.md").read_text())
    broken = script.replace("--timezone Europe/London", "--tz Europe/London", 1)
    assert broken != script
    done = run_walkthrough(broken, tmp_path)
    assert done.returncode != 0
    assert "gate-hub venue create: error: " in done.stderr, done.stderr
    assert "ADMIT" not in done.stdout
