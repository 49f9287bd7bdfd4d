"""`make demo` as a newcomer runs it (text mode): a real subprocess that starts a real hub and
a second gate process, a real rendered video read through the camera path, real verdicts
(a code admitted at the other gate is refused here, naming it; a ticket's note for staff asks
for a check); and whether it ends or is stopped with Ctrl-C, no process and no temp directory
is left behind, only the file it printed with the hub URL, the admin token and the codes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.css.query import NoMatches

from demo.scene import DEMO_GATE, NOTE, OTHER_GATE, Processes, build, demo_app, kept_file
from scanner.screens.verdict import AttentionScreen
from scanner.store import GateStore
from scanner.widgets import VerdictPanel
from tests.paths import ROOT
from tests.processes import ctrl_c_as_at_a_terminal

pytestmark = pytest.mark.slow
DEMO = [sys.executable, "-m", "demo", "--no-ui"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def processes_using(folder: str) -> list[str]:
    """Command lines of live processes that name `folder` (the hub and gate databases)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue  # ended while we looked
        if folder in cmdline and state != "Z":
            found.append(cmdline)
    return found


def hub_folder_of(parent: int) -> str | None:
    """The temp folder of the hub that `parent` started, once it runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().split(") ", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        found = re.search(r"hub serve --db (\S+)/hub\.sqlite", cmdline)
        if ppid == parent and found:
            return found.group(1)
    return None


@pytest.fixture
def kept_files() -> Iterator[list[Path]]:
    """Kept files a test saw named: removed after it, whatever it asserted."""
    seen: list[Path] = []
    yield seen
    for path in seen:
        path.unlink(missing_ok=True)


def kept(out: str) -> Path:
    """The file the demo printed it keeps (before the scene and again after it ends)."""
    found = re.search(r"kept in\s+: (\S+)", out)
    assert found, out
    return Path(found.group(1))


def check_kept(path: Path, url: str, token: str, codes: int) -> None:
    """The kept file outlives the demo, is its owner's alone and holds what it printed."""
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text(encoding="utf-8")
    assert f"hub URL     : {url} " in text and f"admin token : {token} " in text
    lines = text.splitlines()
    assert len([line for line in lines if not line.startswith("#")]) == codes
    assert f"-> ATTENTION {NOTE}" in lines[-2]


def answers(url: str) -> bool:
    try:
        httpx.get(url + "/api/hub", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def test_demo_text_mode_shows_the_cross_gate_duplicate_and_leaves_nothing_running(
    kept_files: list[Path],
) -> None:
    done = subprocess.run(
        DEMO, cwd=ROOT, capture_output=True, text=True, timeout=180, env=_env(), check=False
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr + out
    verdicts = re.findall(r"^\s*[\d.]+ s\s+(ADMIT|DENY|ATTENTION)\s+(\w+)\s+(.*)$", out, re.M)
    reasons = [reason for _, reason, _ in verdicts]
    assert reasons.count("admitted") >= 3
    assert {"locked", "superseded"} <= set(reasons)
    duplicates = [message for _, reason, message in verdicts if reason == "already_admitted"]
    # one refused because the other gate admitted it, one because this gate did
    assert any(OTHER_GATE in m for m in duplicates), duplicates
    assert any(DEMO_GATE in m for m in duplicates), duplicates
    first_deny = next(i for i, (v, _, _) in enumerate(verdicts) if v == "DENY")
    assert first_deny > 0 and verdicts[0][1] == "admitted"
    assert verdicts[-1] == ("ATTENTION", "attention_required", NOTE)  # last: staff check it
    assert "waiting for a check 1" in out
    assert "\033[" not in out  # no colour codes when stdout is not a terminal
    url = re.search(r"hub API\s+: (http://127\.0\.0\.1:\d+)/api\s+\(OpenAPI: (\S+)\)", out)
    db = re.search(r"gate database : (\S+)", out)
    token = re.search(r"admin token\s+: (ght_\S+)", out)
    assert url and url.group(2) == url.group(1) + "/openapi.json"
    assert db and token and "Ctrl-C" in out
    folder = Path(db.group(1)).parent
    codes_file = kept(out)
    kept_files.append(codes_file)
    assert codes_file == kept_file(folder)  # beside the data directory, not in it
    assert out.rstrip().endswith(
        f"Kept {codes_file}: the hub URL and admin token it used, the sample codes."
    )
    assert not folder.exists()
    check_kept(codes_file, url.group(1), token.group(1), codes=len(verdicts))
    assert not answers(url.group(1))
    assert processes_using(str(folder)) == []


@pytest.mark.parametrize("moment", ["starting", "scanning"])
def test_ctrl_c_stops_hub_and_second_gate_and_cleans_up(
    moment: str, kept_files: list[Path]
) -> None:
    """Ctrl-C while the hub and gates start, and while the camera video is being read."""
    proc = subprocess.Popen(
        DEMO,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        preexec_fn=ctrl_c_as_at_a_terminal,
    )
    assert proc.stdout is not None
    try:
        folder = None
        deadline = time.monotonic() + 120
        if moment == "starting":
            while folder is None:  # the hub is up as soon as a process names the folder
                assert time.monotonic() < deadline and proc.poll() is None
                folder = hub_folder_of(proc.pid)
                time.sleep(0.05)
        else:
            intro = ""
            for line in proc.stdout:
                intro += line
                found = re.search(r"gate database : (\S+)", line)
                if found:
                    folder = str(Path(found.group(1)).parent)
                if "stop" in line and folder is not None:
                    break
                assert time.monotonic() < deadline
            assert folder is not None and processes_using(folder)  # hub and second gate
            kept_files.append(kept_file(Path(folder)))
            url = re.search(r"hub API\s+: (\S+)/api ", intro)
            token = re.search(r"admin token\s+: (\S+) ", intro)
            assert url and token and kept(intro) == kept_file(Path(folder))
            whoami = httpx.get(  # the printed token works while the demo runs
                url.group(1) + "/api/admin/whoami",
                headers={"Authorization": f"Bearer {token.group(1)}"},
                timeout=10,
            )
            assert whoami.status_code == 200 and whoami.json()["role"] == "admin"
            time.sleep(0.2)  # the camera thread is decoding now (the video lasts seconds)
        assert Path(folder).exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert not Path(folder).exists()
        assert processes_using(folder) == []
        codes_file = kept_file(Path(folder))
        said = f"Kept {codes_file}: the hub URL"
        assert proc.stderr is not None and (said in proc.stderr.read()) == codes_file.exists()
        if moment == "scanning":
            check_kept(codes_file, url.group(1), token.group(1), codes=8)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if folder is not None:
            kept_files.append(kept_file(Path(folder)))


def attention_text(app: Any) -> str:
    """What the attention screen says, once it is on screen and composed ("" before: the
    screen is pushed before its panel's children are mounted, and a loaded machine can be
    asked in between)."""
    if not isinstance(app.screen, AttentionScreen):
        return ""
    try:
        return str(app.screen.query_one(VerdictPanel).message)
    except NoMatches:
        return ""


async def test_the_app_shows_the_other_gates_entry_and_an_attention_check(tmp_path: Path) -> None:
    """The screen mode: the gate app on the demo video, synced with the demo hub; the last
    guest's ticket note waits for staff, who admit."""
    running = Processes()
    try:
        demo = build(tmp_path, running)
        with GateStore(demo.db) as store:
            app = demo_app(demo, store)
            async with app.run_test() as pilot:
                panel = app.screen.query_one("#verdict-message")
                deadline = time.monotonic() + 60  # the app's first minute
                while OTHER_GATE not in str(panel.render()):
                    assert time.monotonic() < deadline, "no cross-gate duplicate on screen"
                    await pilot.pause(0.1)
                refused = [s for s in store.scans() if s.reason == "already_admitted"]
                assert refused and OTHER_GATE in refused[0].message
                while NOTE not in attention_text(app):  # the last guest: staff read the note
                    assert time.monotonic() < deadline, "no attention check on screen"
                    await pilot.pause(0.1)
                await pilot.press("y")  # staff checked: admitted
                await pilot.pause(0.2)
                assert store.counters().attention_pending == 0
            app.stop_camera()
    finally:
        running.stop()
    assert processes_using(str(tmp_path)) == []
