"""The hub's identity is its key file: a lost or altered `<db>.hubkey` must stop the hub with a
sentence, never become a new key under the old key id (every enrolled gate would refuse every
later manifest, so locks and revocations would stop reaching gates). Real `gate-hub`
processes, a gate enrolled with the real `gate-scanner enroll`, as an operator meets it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from demo.local_hub import demo_enrollment_code, free_port, until
from hub.storage import HubStore
from tests.paths import ROOT

DB = "hub.sqlite"
KEY = DB + ".hubkey"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def gate_hub(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gate-hub ARGS` in `folder`; a hub that keeps running instead of refusing fails."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "hub", *args],
            cwd=folder,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"gate-hub {' '.join(args)} kept running instead of refusing")


@contextmanager
def serving(folder: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`gate-hub serve` on a free loopback port until the block ends (SIGTERM)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve", "--db", DB, "--port", str(port), "--hub-url", url],
        cwd=folder,
        env={**ENV, "GATE_HUB_LOG_LEVEL": "info"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def answers() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the hub exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            return httpx.get(url + "/api/hub", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        until(answers, 20, "the hub to listen")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def snapshot(folder: Path) -> tuple[bytes | None, list[str]]:
    """The key file's bytes and every row of the hub database: what must not change."""
    key = folder / KEY
    with closing(sqlite3.connect(folder / DB)) as conn:
        rows = list(conn.iterdump())
    return (key.read_bytes() if key.exists() else None), rows


def change_one_digit(path: Path) -> None:
    """One hex digit of the current key's seed, in either key file format."""
    text = path.read_text()

    def flip(seed: str) -> str:
        return seed[:5] + ("0" if seed[5] != "0" else "1") + seed[6:]

    if text.lstrip().startswith("{"):
        data = json.loads(text)
        key = next(k for k in data["keys"] if k["state"] == "current")
        key["seed"] = flip(key["seed"])
        path.write_text(json.dumps(data, indent=2) + "\n")
    else:
        path.write_text(flip(text.strip()) + "\n")


def assert_refused(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 2 with one sentence on stderr that says what is wrong and both ways out."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    said = done.stderr.lower()
    for phrase in ("restore", "backup", f"gate-hub key new-identity --db {DB} --confirm"):
        assert phrase in said, done.stderr
    for phrase in phrases:
        assert phrase in said, done.stderr


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A hub as a venue has it: demo data, served once, one gate enrolled the real way.
    Returns the folder and the hub key fingerprint the gate pinned."""
    folder = tmp_path_factory.mktemp("enrolled")
    demo = json.loads(gate_hub(folder, "demo-data", "--db", DB, "--tickets", "20").stdout)
    with serving(folder) as (url, _):
        fingerprint = httpx.get(url + "/api/hub").json()["fingerprint"]
        code = demo_enrollment_code(url, demo, "North 1", error=AssertionError)
        done = subprocess.run(
            [sys.executable, "-m", "scanner", "--db", "gate.sqlite", "enroll", url, code, "--json"],
            cwd=folder,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    return folder, fingerprint


@pytest.fixture
def hub(enrolled: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the enrolled hub's folder (stopped), for one test to break."""
    folder = tmp_path / "site"
    shutil.copytree(enrolled[0], folder)
    return folder


def test_a_missing_key_file_stops_the_hub_and_nothing_is_created(hub: Path) -> None:
    (hub / KEY).unlink()
    before = snapshot(hub)
    assert_refused(gate_hub(hub, "serve", "--db", DB, "--port", str(free_port())), "missing")
    assert snapshot(hub) == before  # no new key file, no row changed
    assert_refused(gate_hub(hub, "key", "rotate", "--db", DB), "missing")
    assert snapshot(hub) == before


def test_one_changed_digit_in_the_key_file_stops_the_hub(hub: Path) -> None:
    change_one_digit(hub / KEY)
    before = snapshot(hub)
    assert_refused(gate_hub(hub, "serve", "--db", DB, "--port", str(free_port())), "does not match")
    assert snapshot(hub) == before
    assert_refused(gate_hub(hub, "key", "rotate", "--db", DB), "does not match")
    assert snapshot(hub) == before


def test_an_unreadable_key_file_stops_the_hub_with_the_same_advice(hub: Path) -> None:
    (hub / KEY).write_text('{"format": "venue-gate-hub-keyring/1", "keys": [')
    before = snapshot(hub)
    assert_refused(gate_hub(hub, "serve", "--db", DB, "--port", str(free_port())), "not valid")
    assert snapshot(hub) == before


def test_a_new_identity_only_on_the_explicit_command(hub: Path, enrolled: tuple[Path, str]) -> None:
    change_one_digit(hub / KEY)
    tampered = (hub / KEY).read_bytes()
    before = snapshot(hub)
    asked = gate_hub(hub, "key", "new-identity", "--db", DB)
    assert asked.returncode == 2 and "--confirm" in asked.stderr, asked.stderr
    assert "enrolled again" in asked.stderr and "Traceback" not in asked.stderr
    assert snapshot(hub) == before

    done = gate_hub(hub, "key", "new-identity", "--db", DB, "--confirm")
    assert done.returncode == 0, done.stderr
    assert "every enrolled gate must be enrolled again" in done.stderr.lower()
    made = json.loads(done.stdout)
    (key,) = made["keys"]
    assert key["state"] == "current" and key["fingerprint"] != enrolled[1]
    assert key["key_id"] == 2  # ids are never reused: gates cannot mistake it for key 1
    assert (hub / KEY).stat().st_mode & 0o777 == 0o600
    (kept,) = hub.glob(KEY + ".replaced-*")  # the file it replaced is kept, never deleted
    assert kept.read_bytes() == tampered
    with closing(sqlite3.connect(hub / DB)) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log")]
    assert "hub.new_identity" in actions
    with serving(hub) as (url, _):
        identity = httpx.get(url + "/api/hub").json()
    assert (identity["key_id"], identity["fingerprint"]) == (2, key["fingerprint"])


def test_the_running_hub_follows_rotation_but_never_adopts_a_tampered_file(hub: Path) -> None:
    with serving(hub) as (url, proc):
        assert gate_hub(hub, "key", "rotate", "--db", DB).returncode == 0
        until(
            lambda: "2" in httpx.get(url + "/api/hub").json()["trusted_keys"],
            10,
            "the rotated key to be served",
        )
        served = httpx.get(url + "/api/hub").json()
        change_one_digit(hub / KEY)
        time.sleep(0.5)
        for _ in range(5):  # each request looks at the file again
            assert httpx.get(url + "/api/hub").json() == served
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=15)
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    errors = [e["msg"] for e in lines if e["level"] == "error"]
    assert any("does not match" in msg for msg in errors), log


def test_an_older_database_records_its_key_on_first_start_then_holds_to_it(hub: Path) -> None:
    """The previous release recorded no fingerprint: the first start trusts the key file it
    finds (the one the gates pinned), and from then on holds the hub to it."""
    with closing(sqlite3.connect(hub / DB)) as conn:
        conn.execute("DROP TABLE IF EXISTS hub_identity")
        conn.execute("DROP TABLE _sqlite_migrations")  # that release recorded no steps
        conn.commit()
    with serving(hub) as (url, _):
        assert httpx.get(url + "/api/hub").status_code == 200
    change_one_digit(hub / KEY)
    assert_refused(gate_hub(hub, "serve", "--db", DB, "--port", str(free_port())), "does not match")


def test_a_key_command_stopped_between_file_and_record_trips_nothing(tmp_path: Path) -> None:
    """`gate-hub key rotate` records the new set as pending, writes the file, then records
    it: a crash between the last two must not leave a hub that refuses its own keys."""
    from hub.keyring import fingerprints, open_keyring, save_keyring  # new in this change

    store = HubStore(tmp_path / DB)
    try:
        path = tmp_path / KEY
        rotated = open_keyring(store, path, 1, create=True).rotate(2)
        pending = json.dumps(fingerprints(rotated))
        store.record_hub_identity({**store.hub_identity(), "pending_json": pending})
        save_keyring(path, rotated)  # ... and the command died here
        assert open_keyring(store, path, 3) == rotated
        assert json.loads(store.hub_identity()["keys_json"]) == fingerprints(rotated)
        assert store.hub_identity()["pending_json"] is None
    finally:
        store.close()
