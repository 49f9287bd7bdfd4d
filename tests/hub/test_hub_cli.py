"""gate-hub CLI: bootstrap a tenant and tokens, configuration, and a real serve + shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.cli import main
from hub.config import ConfigError, load_config, load_or_create_seed
from hub.storage import HubStore
from tests.paths import ROOT
from tests.processes import ctrl_c_as_at_a_terminal


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_tenant_venue_and_token_bootstrap(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "hub.sqlite")
    code, tenant_id, _ = run(capsys, "tenant", "create", "alpha", "--db", db)
    assert code == 0 and len(tenant_id) == 36
    assert run(capsys, "tenant", "create", "alpha", "--db", db)[0] == 2
    code, venue_id, _ = run(
        capsys, "venue", "create", "Hall", "--tenant", "alpha", "--timezone", "UTC", "--db", db
    )
    assert code == 0
    code, token, _ = run(
        capsys,
        "token",
        "create",
        "--tenant",
        tenant_id,
        "--role",
        "venue_manager",
        "--venue",
        venue_id,
        "--db",
        db,
    )
    assert code == 0 and token.startswith("ght_")
    code, _, err = run(
        capsys, "token", "create", "--tenant", "alpha", "--role", "box_office", "--db", db
    )
    assert code == 2 and "needs --venue" in err
    code, _, err = run(
        capsys, "token", "create", "--tenant", "nobody", "--role", "admin", "--db", db
    )
    assert code == 2 and "no tenant" in err
    store = HubStore(db)
    row = store.token_for(token)
    assert (row["tenant_id"], row["venue_id"], row["role"]) == (
        tenant_id,
        venue_id,
        "venue_manager",
    )
    assert token not in (tmp_path / "hub.sqlite").read_bytes().decode("latin-1")
    store.close()


def test_config_precedence_file_env_flags(tmp_path: Path) -> None:
    file = tmp_path / "hub.json"
    file.write_text(json.dumps({"db": "file.sqlite", "port": 9000, "host": "0.0.0.0"}))
    env = {"GATE_HUB_PORT": "9100", "GATE_HUB_LOG_LEVEL": "debug", "UNRELATED": "x"}
    config = load_config(str(file), env, {"port": 9200, "db": None})
    assert (config.db, config.host, config.port, config.log_level) == (
        "file.sqlite",
        "0.0.0.0",
        9200,
        "debug",
    )
    assert config.resolved_key_file == "file.sqlite.hubkey"
    assert config.resolved_hub_url == "http://0.0.0.0:9200"
    file.write_text(json.dumps({"colour": "red"}))
    with pytest.raises(ConfigError, match="unknown setting colour"):
        load_config(str(file), {}, {})
    with pytest.raises(ConfigError, match="port must be an integer"):
        load_config(None, {"GATE_HUB_PORT": "eighty"}, {})
    assert load_config(None, {}, {}).access_log is False
    assert load_config(None, {"GATE_HUB_ACCESS_LOG": "on"}, {}).access_log is True
    file.write_text(json.dumps({"access_log": True}))
    assert load_config(str(file), {}, {}).access_log is True
    with pytest.raises(ConfigError, match="access_log must be true or false"):
        load_config(None, {"GATE_HUB_ACCESS_LOG": "sometimes"}, {})


def test_hub_seed_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "hub.key"
    seed = load_or_create_seed(path)
    assert len(seed) == 32 and load_or_create_seed(path) == seed
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("zz")
    with pytest.raises(ConfigError):
        load_or_create_seed(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db: Path, port: int, **popen: Any) -> subprocess.Popen[bytes]:
    """`gate-hub serve` as a process of its own; its log (stderr) is piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "serve", "--db", str(db), "--port", str(port)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        **popen,
    )


def test_serve_answers_logs_json_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "GATE_HUB_LOG_LEVEL": "info"}
    proc = _serve(tmp_path / "hub.sqlite", port, stdout=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/health/db", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "hub did not start"
                time.sleep(0.1)
        assert resp.status_code == 200
        identity = httpx.get(f"http://127.0.0.1:{port}/api/hub").json()
        seed = bytes.fromhex((tmp_path / "hub.sqlite.hubkey").read_text())
        assert seed.hex() not in json.dumps(identity)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    messages = [entry["msg"] for entry in lines]
    assert "hub starting" in messages and "hub stopped" in messages
    assert not any(entry["logger"] == "aiohttp.access" for entry in lines)  # off by default
    assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in lines)


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _is_check_writer(pid: int) -> bool:
    try:
        return "hub.check_writer" in Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return False


def _running(pid: int) -> bool:
    """Not gone and not a zombie (an orphan's zombie stays where PID 1 reaps nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ctrl_c_on_the_terminal_stops_the_hub_and_its_check_writer(tmp_path: Path) -> None:
    """Ctrl+C reaches every process of the terminal's group; the check writer is kept out
    of it and leaves only when the hub, done with its shutdown, closes the writer's pipe."""
    port = _free_port()
    # start_new_session: a process group of its own, as a terminal gives the hub
    proc = _serve(
        tmp_path / "hub.sqlite",
        port,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=ctrl_c_as_at_a_terminal,
    )
    try:
        deadline = time.monotonic() + 15
        # The writer starts with the hub; until its exec is done its cmdline reads empty.
        while not (writers := _children(proc.pid)) or not _is_check_writer(writers[0]):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, f"no check writer started: {writers}"
            time.sleep(0.1)
        (writer,) = writers
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    assert not _running(writer)
    assert b"Traceback" not in err


def test_a_killed_hub_leaves_no_check_writer_behind(tmp_path: Path) -> None:
    """SIGKILL gives the hub no shutdown at all: the writer sees its pipe end and leaves."""
    port = _free_port()
    proc = _serve(tmp_path / "hub.sqlite", port, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not _children(proc.pid):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no check writer started"
            time.sleep(0.1)
        (writer,) = _children(proc.pid)
    finally:
        proc.kill()
        proc.communicate(timeout=15)
    deadline = time.monotonic() + 5
    while _running(writer):
        assert time.monotonic() < deadline, "the check writer outlived its hub"
        time.sleep(0.05)
