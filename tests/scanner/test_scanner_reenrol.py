"""A gate whose database was wiped, or copied to a second gate, as a venue meets it: enrolled
through the real `gate-scanner enroll` (with the machine's own default hardware id), synced
to the real hub on 127.0.0.1. No scan is acknowledged without being stored; a copied gate is
told, by code, and keeps its scans."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

from scanner.hub_client import HubClient
from scanner.store import GateStore
from scanner.sync import SyncWorker
from tests.gate_scans import record_admits
from tests.hub_fixtures import Hub


async def cli_enroll(hub: Hub, db: Path) -> str:
    """`gate-scanner --db DB enroll URL CODE --json` as its own process; the device id."""
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North 1 scanner"},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "--db",
        str(db),
        "enroll",
        hub.url,
        made.json()["code"],
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return str(json.loads(out)["device_id"])


def record(db: Path, tickets: list[str], at_ms: int) -> None:
    """Committed admits, as the decision loop stores them."""
    with GateStore(db) as store:
        record_admits(store, [(f"payload-{t}", t) for t in tickets], at_ms, gate="N1")


async def sync(hub: Hub, db: Path) -> tuple[bool, str | None, int]:
    """One sync cycle: (all good, last error, scans still pending)."""
    with GateStore(db) as store:
        worker = SyncWorker(HubClient(store, hub.url))
        try:
            good = await asyncio.to_thread(worker.sync_once)
            snapshot = worker.snapshot()
        finally:
            worker.stop()
        return good, snapshot.last_error, snapshot.pending_uploads


def tickets_at_hub(hub: Hub, device_id: str) -> list[str]:
    return [r["ticket_id"] for r in hub.store.scans_of_device(device_id)]


def wipe(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def test_a_wiped_gate_re_enrolled_on_the_same_box_loses_no_scan(
    hub: Hub, tmp_path: Path
) -> None:
    db = tmp_path / "gate.db"
    first = await cli_enroll(hub, db)
    now = hub.clock()
    record(db, ["t-1", "t-2", "t-3"], now - 60_000)
    assert (await sync(hub, db))[0]
    assert tickets_at_hub(hub, first) == ["t-1", "t-2", "t-3"]

    wipe(db)  # a replaced SD card: same machine id, so the same default hardware id
    second = await cli_enroll(hub, db)
    assert second != first
    record(db, ["t-4", "t-5", "t-6"], now)
    good, error, pending = await sync(hub, db)
    assert (good, error, pending) == (True, None, 0)
    assert tickets_at_hub(hub, second) == ["t-4", "t-5", "t-6"]
    assert tickets_at_hub(hub, first) == ["t-1", "t-2", "t-3"]
    devices = [d for d in hub.store.list_devices(hub.a.id) if d["id"] in {first, second}]
    assert len({d["hardware_id"] for d in devices}) == 1 and all(d["active"] for d in devices)


async def test_a_copied_gate_is_refused_by_code_and_keeps_its_scan(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    original, copy = tmp_path / "north1.db", tmp_path / "north2.db"
    device = await cli_enroll(hub, original)
    shutil.copyfile(original, copy)  # the same SD-card image in a second gate
    now = hub.clock()
    record(original, ["t-1"], now)
    record(copy, ["t-9"], now + 5)  # the same seq 1 at the other gate
    assert (await sync(hub, original))[0]
    with caplog.at_level(logging.ERROR, logger="scanner.sync"):
        good, error, pending = await sync(hub, copy)
    assert (good, error, pending) == (False, "seq_conflict", 1)
    assert any(
        "seq_conflict" in r.getMessage() or "Re-enrol" in r.getMessage() for r in caplog.records
    )
    assert tickets_at_hub(hub, device) == ["t-1"]
    # the copy's scan is still on it, and goes up once the gate is enrolled again
    await cli_enroll(hub, copy)
    assert await sync(hub, copy) == (True, None, 0)
