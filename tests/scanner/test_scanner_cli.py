"""`gate-scanner` as real subprocesses on a real database file: setup, manifest install with
signature checks, check (dry run and recorded), stream, status, export and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from demo.sample import sample_hub_seed
from manifests.codec import encode_manifest
from manifests.model import Manifest
from manifests.signing import sign_envelope
from protocol.native import public_key
from protocol.signing import enrollment_uri, sign_request
from scanner.hub_keys import trusted_hub_keys
from scanner.settings import DEVICE_SEED_KEY
from scanner.store import GateStore
from tests.gate_cli import ROOT, async_gate_cli, gate_cli
from tests.hub_fixtures import HUB_SEED, start_hub, stop_hub
from tests.scanner_fixtures import (
    ADA,
    BEN,
    CAL,
    HUB_KEY_ID,
    HUB_PUBLIC,
    GateFixture,
    build,
    install,
)

HUB_KEY = f"{HUB_KEY_ID}:{HUB_PUBLIC.hex()}"


def ok_json(db: Path, *args: str) -> Any:
    proc = gate_cli(db, *args)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def failed_json(db: Path, *args: str) -> dict[str, Any]:
    """A refusal: exit 3 and `{"error": {"code", "message"}}`; returns the inner object."""
    proc = gate_cli(db, *args)
    assert proc.returncode == 3, proc.stderr + proc.stdout
    return json.loads(proc.stdout)["error"]


def verdict_json(db: Path, *args: str) -> Any:
    """`check --json`: exits with its verdict, 0 admit or exit, 1 deny, 2 attention."""
    proc = gate_cli(db, *args)
    result = json.loads(proc.stdout)
    exit_code = {"admit": 0, "exit": 0, "deny": 1, "attention": 2}[result["verdict"]]
    assert proc.returncode == exit_code, proc.stderr + proc.stdout
    return result


@pytest.fixture
def fx() -> GateFixture:
    return build(time.time_ns() // 1_000_000)  # the CLI runs on the wall clock


@pytest.fixture
def ready_db(tmp_path: Path, fx: GateFixture) -> Path:
    """What setup + load-manifest leave (test_setup_and_status runs those commands)."""
    db = tmp_path / "gate.db"
    with GateStore(db) as store:
        install(store, fx, time.time_ns() // 1_000_000)
    return db


def test_setup_and_status(tmp_path: Path, fx: GateFixture) -> None:
    db = tmp_path / "gate.db"
    manifest_file = tmp_path / "manifest.gmf"
    manifest_file.write_bytes(fx.envelope)
    setup = gate_cli(
        db, "setup", "--gate", "North 1", "--zones", "GA", "--venue", "venue-riverside"
    )
    assert setup.returncode == 0, setup.stderr
    loaded = ok_json(db, "load-manifest", str(manifest_file), "--hub-key", HUB_KEY, "--json")
    assert loaded == {"revision": 1, "event": fx.manifest.header.event.name, "tickets": 4}
    status = ok_json(db, "status", "--json")
    assert status["gate"] == {
        "name": "North 1",
        "id": "north-1",
        "venue_id": "venue-riverside",
        "direction": "entry",
        "zones": ["GA"],
    }
    assert status["manifest"]["revision"] == 1 and status["manifest"]["tickets"] == 4
    assert not status["manifest"]["stale"] and not status["manifest"]["expired"]
    assert status["connection"] == "offline" and status["pending_upload"] == 0
    text = gate_cli(db, "status").stdout
    assert "North 1 (entry, zones GA)" in text and "revision 1" in text


def test_check_dry_run_stores_nothing_then_records(ready_db: Path, fx: GateFixture) -> None:
    dry = ok_json(ready_db, "check", fx.codes[ADA], "--json", "--dry-run")
    assert dry["verdict"] == "admit" and dry["seq"] is None and dry["dry_run"] is True
    assert dry["ticket_id"] == ADA and dry["display"]["holder"] == "Ada Lovelace"
    assert ok_json(ready_db, "status", "--json")["pending_upload"] == 0

    first = ok_json(ready_db, "check", fx.codes[ADA], "--json")
    assert (first["seq"], first["verdict"], first["reason"]) == (1, "admit", "admitted")
    again = verdict_json(ready_db, "check", fx.codes[ADA], "--json")
    assert (again["seq"], again["verdict"], again["reason"]) == (2, "deny", "already_admitted")
    assert "Already admitted at North 1" in again["message"]
    refunded = verdict_json(ready_db, "check", fx.codes[CAL], "--json")
    assert (refunded["seq"], refunded["verdict"], refunded["reason"]) == (3, "deny", "refunded")
    attention = gate_cli(ready_db, "check", fx.codes[BEN])
    assert attention.returncode == 2
    assert attention.stdout.startswith("#4 ATTENTION (attention_required): Check student ID")

    counters = ok_json(ready_db, "status", "--json")["counters"]
    assert counters == {
        "admitted": 1,
        "denied": 2,
        "exited": 0,
        "attention_pending": 1,
        "inside_now": 1,
    }


def test_stream_prints_each_verdict_after_commit(ready_db: Path, fx: GateFixture) -> None:
    lines = [fx.codes[ADA], "", "garbage", fx.codes[ADA], fx.codes[CAL]]
    proc = gate_cli(ready_db, "stream", stdin="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "1 admit admitted",
        "2 deny malformed",
        "- duplicate",  # the same code again within 2.5 s: one read, not a second scan
        "3 deny refunded",
    ]


def test_export_scans_writes_the_log(ready_db: Path, fx: GateFixture, tmp_path: Path) -> None:
    ok_json(ready_db, "check", fx.codes[ADA], "--json")
    out = tmp_path / "export.json"
    proc = gate_cli(ready_db, "export-scans", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert [(s["seq"], s["ticket_id"], s["verdict"]) for s in data["scans"]] == [(1, ADA, "admit")]
    assert data["manifest"]["revision"] == 1
    assert "hub_key:1" in data["keys"]  # named only: key material never leaves the store


def test_manifest_from_an_untrusted_key_changes_nothing(tmp_path: Path, fx: GateFixture) -> None:
    db = tmp_path / "gate.db"
    GateStore(db).close()  # a failed command on a new path leaves no database to look at
    forged = tmp_path / "forged.gmf"
    forged.write_bytes(sign_envelope(encode_manifest(fx.manifest), HUB_KEY_ID, sample_hub_seed(9)))
    err = failed_json(db, "load-manifest", str(forged), "--hub-key", HUB_KEY, "--json")
    assert err["code"] == "manifest_bad_signature"
    status = ok_json(db, "status", "--json")
    assert status["manifest"] is None
    export = tmp_path / "e.json"
    gate_cli(db, "export-scans", str(export))
    assert json.loads(export.read_text())["keys"] == []  # the offered key was not trusted


def test_older_or_tampered_manifest_keeps_the_installed_one(
    ready_db: Path, fx: GateFixture, tmp_path: Path
) -> None:
    newer: Manifest = replace(fx.manifest, header=replace(fx.manifest.header, revision=2))
    envelope2 = sign_envelope(encode_manifest(newer), HUB_KEY_ID, sample_hub_seed())
    (tmp_path / "r2.gmf").write_bytes(envelope2)
    assert ok_json(ready_db, "load-manifest", str(tmp_path / "r2.gmf"), "--json")["revision"] == 2

    (tmp_path / "r1.gmf").write_bytes(fx.envelope)
    err = failed_json(ready_db, "load-manifest", str(tmp_path / "r1.gmf"), "--json")
    assert err["code"] == "manifest_revision_chain"
    tampered = bytearray(envelope2)
    tampered[20] ^= 1
    (tmp_path / "bad.gmf").write_bytes(bytes(tampered))
    err = failed_json(ready_db, "load-manifest", str(tmp_path / "bad.gmf"), "--json")
    assert err["code"] == "manifest_bad_signature"
    assert ok_json(ready_db, "status", "--json")["manifest"]["revision"] == 2


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "gate.db"
    err = failed_json(db, "load-manifest", str(tmp_path / "missing.gmf"), "--json")
    assert err["code"] == "unreadable_file"
    (tmp_path / "m.gmf").write_bytes(b"x")
    err = failed_json(db, "load-manifest", str(tmp_path / "m.gmf"), "--hub-key", "1:zz", "--json")
    assert err["code"] == "bad_hub_key"
    pin = gate_cli(db, "set-pin", stdin="12\n")
    assert pin.returncode == 3 and "at least 4 digits" in pin.stderr
    assert gate_cli(db, "set-pin", stdin="4711\n").returncode == 0
    assert ok_json(db, "status", "--json")["pin_set"] is True
    bad_dir = failed_json(tmp_path / "nowhere" / "gate.db", "status", "--json")
    assert bad_dir["code"] == "bad_db_path"


def test_kiosk_needs_a_pin_first(tmp_path: Path) -> None:
    proc = gate_cli(tmp_path / "gate.db", "run", "--kiosk")
    assert proc.returncode == 3 and "needs a venue PIN" in proc.stderr


def test_scan_before_setup_is_denied_and_still_recorded(tmp_path: Path, fx: GateFixture) -> None:
    db = tmp_path / "gate.db"
    GateStore(db).close()  # a gate database, not set up
    result = verdict_json(db, "check", fx.codes[ADA], "--json")
    assert (result["seq"], result["verdict"]) == (1, "deny")
    assert result["reason"] == "device_not_authorized"


def test_gate_db_from_environment(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATE_DB": str(db)}
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", "setup", "--gate", "G", "--venue", "v"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert db.exists() and not (tmp_path / "gate.db").exists()


async def test_enroll_against_the_real_hub(tmp_path: Path) -> None:
    hub, runner = await start_hub(tmp_path)
    try:
        made = await hub.client.post(
            f"/api/admin/venues/{hub.a.venue_id}/enrollments",
            json={"name": "North 1 scanner", "zone": "GA"},
            headers=hub.auth(hub.a.manager_token),
        )
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        db = tmp_path / "gate.db"
        rc, out, err = await async_gate_cli(db, "enroll", hub.url, code, "--json")
        assert rc == 0, err + out
        enrolled = json.loads(out)
        assert enrolled["venue_id"] == hub.a.venue_id and enrolled["zones"] == ["GA"]
        assert enrolled["hub_key_fingerprint"] == made.json()["hub_key_fingerprint"]

        # The gate now signs requests with the key it made; the hub knows it by that key.
        with GateStore(db) as store:
            seed = store.key(DEVICE_SEED_KEY)
            gate = store.gate()
            assert store.device_id == enrolled["device_id"]
            assert trusted_hub_keys(store) == {1: public_key(HUB_SEED)}
        assert seed is not None and gate is not None and gate.gate_name == "North 1 scanner"
        headers = sign_request(
            device_id=enrolled["device_id"],
            seed=seed,
            method="GET",
            path="/api/device/me",
            now_ms=hub.clock(),
        )
        me = await hub.client.get("/api/device/me", headers=headers)
        assert me.status_code == 200 and me.json()["device_id"] == enrolled["device_id"]

        # A spent code is refused with the hub's own error code; the gate keeps its identity.
        rc, out, _ = await async_gate_cli(tmp_path / "other.db", "enroll", hub.url, code, "--json")
        assert rc == 3 and json.loads(out)["error"]["code"] == "used_enrollment_code"
        other = await hub.client.post(
            f"/api/admin/venues/{hub.a.venue_id}/enrollments",
            json={"name": "South scanner"},
            headers=hub.auth(hub.a.manager_token),
        )
        wrong_hub_qr = enrollment_uri(hub.url, other.json()["code"], "0000:" * 7 + "0000")
        rc, out, _ = await async_gate_cli(tmp_path / "third.db", "enroll", wrong_hub_qr, "--json")
        assert rc == 3 and json.loads(out)["error"]["code"] == "wrong_hub"
        with GateStore(tmp_path / "third.db") as store:
            assert store.key(DEVICE_SEED_KEY) is None and store.gate() is None
    finally:
        await stop_hub(hub, runner)
    rc, out, _ = await async_gate_cli(tmp_path / "x.db", "enroll", hub.url, "ABCD-EFGH", "--json")
    assert rc == 3 and json.loads(out)["error"]["code"] == "hub_unreachable"
