"""`make demo` as a newcomer runs it (text mode): a real subprocess, a real rendered video read
through the camera path, real verdicts; and Ctrl-C leaves no process and no temp files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scanner.demo import NEXT_ISSUE, build
from scanner.store import GateStore

ROOT = Path(__file__).resolve().parents[1]
DEMO = [sys.executable, "-m", "scanner.demo", "--no-ui"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_demo_text_mode_shows_admits_duplicate_and_denies() -> None:
    done = subprocess.run(
        DEMO, cwd=ROOT, capture_output=True, text=True, timeout=180, env=_env(), check=False
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    verdicts = re.findall(r"^\s*[\d.]+ s\s+(ADMIT|DENY|ATTENTION)\s+(\w+)", out, re.M)
    reasons = [reason for _, reason in verdicts]
    assert reasons.count("admitted") >= 3
    assert "already_admitted" in reasons
    assert {"zone_denied", "refunded", "superseded"} <= set(reasons)
    assert ("ATTENTION", "attention_required") in verdicts
    # the duplicate comes after that ticket's own admit
    assert reasons.index("already_admitted") > reasons.index("admitted")
    assert "\033[" not in out  # no colour codes when stdout is not a terminal
    db = re.search(r"gate database : (\S+)", out)
    codes = re.search(r"sample codes  : (\S+)", out)
    assert db and codes and "Ctrl-C" in out and NEXT_ISSUE in out
    assert not Path(db.group(1)).exists() and not Path(codes.group(1)).parent.exists()


@pytest.mark.slow
def test_ctrl_c_stops_everything_and_cleans_up() -> None:
    proc = subprocess.Popen(
        DEMO, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    assert proc.stdout is not None
    folder = None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        found = re.search(r"gate database : (\S+)", line)
        if found:
            folder = Path(found.group(1)).parent
        if "stop" in line and folder is not None:
            break
        assert time.monotonic() < deadline
    assert folder is not None and folder.exists()
    time.sleep(1.0)  # the camera thread is decoding now
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    assert not folder.exists()


def test_build_writes_codes_db_and_video(tmp_path: Path) -> None:
    demo = build(tmp_path)
    lines = demo.codes_file.read_text(encoding="utf-8").splitlines()
    labels, codes = lines[0::2], lines[1::2]
    assert len(codes) == len(demo.stream) >= 8 and all(label.startswith("# ") for label in labels)
    assert codes.count(demo.stream[0].code) == 2  # the duplicate is the same code again
    assert demo.video.stat().st_size > 100_000
    with GateStore(demo.db) as store:
        assert store.gate() == demo.gate
        assert store.ticket_count() == len({g.row.ticket_id for g in demo.stream})
