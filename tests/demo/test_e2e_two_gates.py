"""Two gates and one hub, each a real process: `gate-hub serve` on a free loopback port with
the demo data, two `gate-scanner stream --sync` processes enrolled against it the real way.

Online, a ticket admitted at gate 1 is refused at gate 2 (pushed live, decided locally).
Offline (hub stopped with SIGTERM), both gates admit the same second ticket; once the hub
is back and the gates have synced, the hub's reconciliation report names the double entry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.local_hub import demo_enrollment_code, free_port, until
from hub.storage import HubStore
from tests.processes import Gate, HubProcess, cli, ticket_ids

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HubProcess, dict[str, Any]]]:
    db = tmp_path / "hub.sqlite"
    demo = json.loads(cli("hub", "demo-data", "--db", str(db), "--tickets", "10"))
    served = HubProcess(db, free_port())
    served.start()
    try:
        yield served, demo
    finally:
        served.stop()
        served.log.close()


def enroll_gate(hub: HubProcess, demo: dict[str, Any], db: Path, name: str) -> str:
    code = demo_enrollment_code(hub.url, demo, name, error=AssertionError)
    out = json.loads(
        cli(
            "scanner",
            "--db",
            str(db),
            "enroll",
            hub.url,
            code,
            "--json",
            "--hardware-id",
            f"hw-{name}",
        )
    )
    return str(out["device_id"])


def payload_of(hub: HubProcess, ticket_id: str) -> str:
    store = HubStore(hub.db)
    try:
        return store.credentials_of([ticket_id])[(ticket_id, 0)]
    finally:
        store.close()


def hub_verdicts(hub: HubProcess, device_id: str, ticket_id: str) -> list[str]:
    store = HubStore(hub.db)
    try:
        return [
            r["verdict"] for r in store.scans_of_device(device_id) if r["ticket_id"] == ticket_id
        ]
    finally:
        store.close()


def test_two_gates_one_hub_online_refusal_and_offline_double_entry(
    hub: tuple[HubProcess, dict[str, Any]], tmp_path: Path
) -> None:
    served, demo = hub
    event_id = demo["event_id"]
    devices = [enroll_gate(served, demo, tmp_path / f"g{i}.db", f"North {i}") for i in (1, 2)]
    gates = [Gate(tmp_path / f"g{i}.db", event_id) for i in (1, 2)]
    try:
        for g in gates:  # enrolment pulled the event's manifest
            until(lambda g=g: _revision(g), 15, "the manifest at a gate")
        # Both gates listen for entries (enrolment installed the manifest, so the gate
        # processes may not be on the live channel yet when the first scan comes).
        until(lambda: _online(served) == 2, 15, "both gates on the live channel")
        t1, t2 = ticket_ids(served, event_id)[:2]
        p1, p2 = payload_of(served, t1), payload_of(served, t2)

        # Online: gate 1 admits; the entry reaches gate 2 over the live push; gate 2 refuses.
        assert gates[0].scan(p1)[1:] == ["admit", "admitted"]
        until(lambda: _history(gates[1], t1), 10, "gate 1's entry at gate 2")
        time.sleep(1.0)
        seq, verdict, reason = gates[1].scan(p1)
        assert (verdict, reason) == ("deny", "already_admitted")
        with gates[1].store() as store:
            refused = next(r for r in store.scans() if r.seq == int(seq))
        assert "Already admitted at North 1," in refused.message  # the hub's gate name

        # Offline: both gates admit T2 (neither can know about the other).
        until(lambda: hub_verdicts(served, devices[0], t1) == ["admit"], 10, "gate 1's upload")
        served.stop()
        assert gates[0].scan(p2)[1:] == ["admit", "admitted"]
        assert gates[1].scan(p2)[1:] == ["admit", "admitted"]

        # Hub back on the same port: both gates upload; the hub sees the double entry.
        served.start()
        for device in devices:
            until(lambda d=device: hub_verdicts(served, d, t2) == ["admit"], 20, "the upload")
        report = httpx.get(
            f"{served.url}/api/admin/events/{event_id}/reconciliation",
            headers={"Authorization": f"Bearer {demo['admin_token']}"},
        )
        assert report.status_code == 200, report.text
        doubles = [d for d in report.json()["double_entries"] if d["ticket_id"] == t2]
        assert len(doubles) == 1
        named = json.dumps(doubles[0])
        assert all(d in named for d in devices), doubles[0]
        assert not [d for d in report.json()["double_entries"] if d["ticket_id"] == t1]
    finally:
        for g in gates:
            g.close()


def _online(hub: HubProcess) -> int:
    """Devices holding the hub's live channel (its /metrics gauge)."""
    for line in httpx.get(hub.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("hub_devices_online "):
            return int(float(line.split()[1]))
    return 0


def _revision(gate: Gate) -> int | None:
    with gate.store() as store:
        return store.manifest_revision()


def _history(gate: Gate, ticket_id: str) -> bool:
    with gate.store() as store:
        return bool(store.history_for(ticket_id))
