"""`gate-hub` as a new venue manager meets it, as real processes over real files: listings,
venues by name, and every refusal a sentence with a non-zero exit, no traceback, and
nothing made or changed."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.cli import _parser
from hub.storage import HubStore
from tests.cli_help import undocumented
from tests.paths import ROOT


def hub(
    cwd: Path, line: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`gate-hub` with `line`'s words (shell quoting), run in `cwd`."""
    full = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("GATE_HUB_DB", "GATE_HUB_CONFIG", "GATE_HUB_HOST", "GATE_HUB_PORT"):
        full.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "hub", *shlex.split(line)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**full, **(env or {})},
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """A refusal: exit 2, one `gate-hub:` sentence holding `words`, never a traceback."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Error:" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("gate-hub: "), proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    return proc.stderr


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its content's hash: 'nothing changed' is equality."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A hub database with tenant Acme and its venue Riverside Park."""
    ok(hub(tmp_path, "tenant create Acme --db hub.db"))
    ok(hub(tmp_path, "venue create 'Riverside Park' --tenant Acme --timezone UTC --db hub.db"))
    return tmp_path


def test_tenants_and_venues_are_listed_and_a_venue_is_named_by_its_name(made: Path) -> None:
    tenants = json.loads(ok(hub(made, "tenant list --json --db hub.db")))
    assert [t["name"] for t in tenants] == ["Acme"]
    assert ok(hub(made, "--db hub.db tenant list")).splitlines()[1].endswith("Acme")
    venues = json.loads(ok(hub(made, "venue list --tenant Acme --json --db hub.db")))
    assert [(v["name"], v["timezone"]) for v in venues] == [("Riverside Park", "UTC")]
    table = ok(hub(made, f"venue list --tenant {tenants[0]['id']} --db hub.db"))
    assert table.splitlines()[0].split() == ["id", "name", "timezone"]
    assert venues[0]["id"] in table
    for listing in ("gate", "zone"):  # by name, and in any case
        found = hub(
            made, f"{listing} list --tenant Acme --venue 'riverside park' --json --db hub.db"
        )
        assert json.loads(ok(found)) == []
    made_token = "token create --tenant Acme --role venue_manager --venue 'Riverside Park'"
    token = ok(hub(made, made_token + " --db hub.db"))
    assert token.startswith("ght_")
    store = HubStore(made / "hub.db")
    try:
        assert store.token_for(token)["venue_id"] == venues[0]["id"]
    finally:
        store.close()
    assert "Acme" in ok(hub(made, "tenant list", env={"GATE_HUB_DB": "hub.db"}))


def test_an_unknown_or_ambiguous_venue_name_is_a_sentence(made: Path) -> None:
    ok(hub(made, "venue create 'riverside PARK' --tenant Acme --timezone UTC --db hub.db"))
    before = snapshot(made)
    refused(
        hub(made, "gate list --tenant Acme --venue Riverside --db hub.db"),
        "tenant Acme has no venue Riverside (its venues: Riverside Park, riverside PARK)",
        "gate-hub venue list --tenant Acme",
    )
    refused(
        hub(made, "zone list --tenant Acme --venue 'RIVERSIDE park' --db hub.db"),
        "venue RIVERSIDE park could be any of",
        "give the venue's id",
    )
    refused(
        hub(made, "token create --tenant Acme --role venue_staff --venue Nowhere --db hub.db"),
        "has no venue Nowhere",
    )
    refused(
        hub(made, "venue list --tenant Bcme --db hub.db"), "no tenant Bcme", "(its tenants: Acme)"
    )
    assert snapshot(made) == before


def test_duplicate_names_and_a_bare_city_as_time_zone_are_refused(made: Path) -> None:
    before = snapshot(made)
    refused(
        hub(made, "venue create 'Riverside Park' --tenant Acme --timezone UTC --db hub.db"),
        "tenant Acme already has a venue named Riverside Park (id ",
        "use it, or choose another name",
    )
    refused(
        hub(made, "venue create Opera --tenant Acme --timezone Paris --db hub.db"),
        "--timezone Paris is not a time zone name (did you mean Europe/Paris?)",
    )
    refused(hub(made, "tenant create Acme --db hub.db"), "tenant Acme already exists (id ")
    assert snapshot(made) == before
    ok(hub(made, "venue create Opera --tenant Acme --timezone Europe/Paris --db hub.db"))


def test_a_database_path_that_cannot_be_the_hubs_is_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n")
    before = snapshot(tmp_path)
    refused(
        hub(tmp_path, "tenant create Acme --db missing/hub.db"),
        "there is no directory missing for the hub database missing/hub.db",
        "mkdir -p missing",
    )
    refused(hub(tmp_path, "serve --db missing/hub.db"), "there is no directory missing")
    refused(hub(tmp_path, "tenant create Acme --db notes.txt"), "notes.txt is not a hub database")
    refused(hub(tmp_path, "serve --db notes.txt"), "notes.txt is not a hub database")
    for needs_one in ("expire", "tenant list", "venue list --tenant Acme", "key list"):
        refused(hub(tmp_path, needs_one + " --db new.db"), "there is no hub database new.db")
    refused(
        hub(tmp_path, "tenant list"), "give the hub database with --db FILE (or set GATE_HUB_DB)"
    )
    assert snapshot(tmp_path) == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_port_out_of_range_or_in_use_is_a_sentence(tmp_path: Path) -> None:
    refused(
        hub(tmp_path, "serve --db hub.db --port 99999"),
        "port 99999 is not a TCP port",
        "1 to 65535",
    )
    refused(hub(tmp_path, "serve --db hub.db --port 0"), "port 0 is not a TCP port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused(
            hub(tmp_path, f"serve --db hub.db --port {port}"),
            f"port {port} on 127.0.0.1 is already in use",
            "another --port",
        )
    assert snapshot(tmp_path) == {}


def _start(folder: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve", "--db", "hub.db", "--port", str(port), *extra],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/hub", timeout=1)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.1)


def test_a_second_serve_on_the_same_database_is_refused_until_the_first_is_gone(
    tmp_path: Path,
) -> None:
    port = _free_port()
    first = _start(tmp_path, port)
    try:
        before = snapshot(tmp_path)
        for second_port in (_free_port(), port):
            refused(
                hub(tmp_path, f"serve --db hub.db --port {second_port}"),
                "another `gate-hub serve` is already running on hub.db",
                "stop it first",
            )
        assert snapshot(tmp_path).keys() == before.keys()
    finally:
        first.kill()  # no shutdown at all: the kernel releases the lock with the process
        first.communicate(timeout=15)
    again = _start(tmp_path, port)
    again.terminate()
    assert again.communicate(timeout=15)[0] is None and again.returncode == 0


def _log_of_a_start(folder: Path, port: int, *extra: str) -> str:
    """The log (stderr) of a hub started, then stopped."""
    proc = _start(folder, port, *extra)
    proc.terminate()
    return proc.communicate(timeout=15)[1]


def test_a_hub_on_all_interfaces_never_tells_gates_0_0_0_0(tmp_path: Path) -> None:
    port = _free_port()
    err = _log_of_a_start(tmp_path, port, "--host", "0.0.0.0")
    starting = next(json.loads(line) for line in err.splitlines() if '"hub starting"' in line)
    assert starting["host"] == "0.0.0.0"
    assert starting["hub_url"].startswith("http://") and starting["hub_url"].endswith(f":{port}")
    assert "0.0.0.0" not in starting["hub_url"] and "127." not in starting["hub_url"]
    err = _log_of_a_start(
        tmp_path, port, "--host", "0.0.0.0", "--hub-url", "http://gates.example:9"
    )
    assert '"hub_url": "http://gates.example:9"' in err


def test_every_option_has_help_text() -> None:
    # `import` is worded by the import work (hub/importer.py), not here
    assert undocumented(_parser(), skip=frozenset({"import"})) == []
