"""Reconciliation wired into scan uploads, over the real server: clock offsets stored per
scan, touched tickets re-reconciled after each commit (outcomes beside the scans, double
entries in `conflicts`, idempotent), peer scans in the acknowledgement, and the scoped admin
report."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.reconcile_ingest import Reconciler
from hub.reconcile_routes import RECONCILER
from hub.storage import HubStore
from hub.store_api import DeviceEnrollment, DeviceScans, NewEnrollment
from manifests.policy import MINUTE_MS
from tests.device_api import samples
from tests.hub_fixtures import Hub, add_show, credential_text, enroll, start_hub, stop_hub


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Hub, Reconciler]]:
    started, runner = await start_hub(tmp_path, expiry_interval_s=None)
    yield started, runner.app[RECONCILER]
    await stop_hub(started, runner)


@pytest.fixture
def hub(served: tuple[Hub, Reconciler]) -> Hub:
    return served[0]


@pytest.fixture
def reconciler(served: tuple[Hub, Reconciler]) -> Reconciler:
    """The hub's reconciliation queue: `drain()` finishes what the background task would."""
    return served[1]


def scan(seq: int, ticket_id: str | None, at_ms: int, **extra: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "at_ms": at_ms,
        "payload": f"code-{seq}",
        "ticket_id": ticket_id,
        "verdict": "admit",
        "reason": "admitted",
        "direction": "entry",
        "gate": "North",
        **extra,
    }


def outcomes(hub: Hub, ticket_id: str) -> dict[tuple[str, int], str]:
    rows = hub.store.db.query(
        "SELECT s.device_id, s.device_seq, o.outcome FROM scans s"
        " JOIN scan_outcomes o ON o.scan_id = s.id WHERE s.ticket_id = ?",
        [ticket_id],
    )
    return {(r["device_id"], r["device_seq"]): r["outcome"] for r in rows}


async def report(hub: Hub, event_id: str, token: str) -> Any:
    return await hub.client.get(
        f"/api/admin/events/{event_id}/reconciliation", headers=hub.auth(token)
    )


async def test_later_upload_with_earlier_corrected_time_wins_and_conflict_is_recorded_once(
    hub: Hub, reconciler: Reconciler
) -> None:
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    fast = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    tid = show.tickets[0]  # GA: the North gate leads there
    now = hub.clock()
    # North admitted the ticket at hub time now; it uploads first, alone: a SUCCESS.
    first = await north.send(
        "POST", "/api/device/scans", {"event_id": show.event_id, "scans": [scan(1, tid, now)]}
    )
    assert first.status_code == 200, first.text
    # The background task reconciles once uploads pause; nobody drains the queue here.
    deadline = time.monotonic() + 5
    while not outcomes(hub, tid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert outcomes(hub, tid) == {(north.device_id, 1): "SUCCESS"}
    assert reconciler.backlog() == 0
    # A gate whose clock runs 10 min fast admitted it 2 min EARLIER (hub time) while offline.
    offset = -10 * MINUTE_MS
    late = {
        "event_id": show.event_id,
        "clock_offset_ms": offset,
        "scans": [scan(7, tid, now - 2 * MINUTE_MS - offset, gate="typed by the device")],
    }
    resp = await fast.send("POST", "/api/device/scans", late)
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked"] == [7]
    stored = hub.store.scans_of_device(fast.device_id)[0]
    assert stored["clock_offset_ms"] == offset and stored["scanned_ms"] == now + 8 * MINUTE_MS
    assert hub.store.get_device(fast.device_id)["clock_offset_ms"] == offset
    # Re-reconciled: the earlier corrected time wins, the first upload became the duplicate.
    assert reconciler.backlog() == 1  # queued: the ack did not wait for it
    reconciler.drain()
    assert outcomes(hub, tid) == {(fast.device_id, 7): "SUCCESS", (north.device_id, 1): "DUPLICATE"}
    scans_before = list(hub.store.db["scans"].rows)
    again = await fast.send("POST", "/api/device/scans", late)  # a retried upload
    assert again.status_code == 200
    reconciler.drain()
    assert outcomes(hub, tid) == {(fast.device_id, 7): "SUCCESS", (north.device_id, 1): "DUPLICATE"}
    assert list(hub.store.db["scans"].rows) == scans_before  # scans are never rewritten
    conflicts = list(hub.store.db["conflicts"].rows)
    assert len(conflicts) == 1
    detail = json.loads(conflicts[0]["detail_json"])
    assert detail["winner"] == {
        "device_id": fast.device_id,
        "seq": 7,
        "gate": "North",  # the hub's name for the device's gate
        "at_ms": now - 2 * MINUTE_MS,
    }
    assert detail["duplicate"] == {
        "device_id": north.device_id,
        "seq": 1,
        "gate": "North",
        "at_ms": now,
    }
    assert detail["reason"] == "already_admitted"
    metrics = samples((await hub.client.get("/metrics")).text)
    assert metrics["hub_conflicts"] == 1 and metrics["hub_reconcile_backlog"] == 0


async def test_per_scan_offset_overrides_the_batch_and_bad_offsets_store_nothing(
    hub: Hub,
) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    now = hub.clock()
    body = {
        "event_id": show.event_id,
        "clock_offset_ms": 1500,
        "scans": [scan(1, show.tickets[0], now), scan(2, show.tickets[1], now, clock_offset_ms=-3)],
    }
    assert (await device.send("POST", "/api/device/scans", body)).status_code == 200
    rows = hub.store.scans_of_device(device.device_id)
    assert [r["clock_offset_ms"] for r in rows] == [1500, -3]
    assert hub.store.get_device(device.device_id)["clock_offset_ms"] == 1500  # the batch's
    per_scan = {"event_id": show.event_id, "scans": [scan(9, None, now, clock_offset_ms=-40)]}
    assert (await device.send("POST", "/api/device/scans", per_scan)).status_code == 200
    assert hub.store.get_device(device.device_id)["clock_offset_ms"] == -40
    for bad in (
        {**body, "clock_offset_ms": "1500"},
        {**body, "clock_offset_ms": 10**13},
        {**body, "scans": [scan(3, None, now, clock_offset_ms=True)]},
        {**body, "peer_cursor": -1},
    ):
        resp = await device.send("POST", "/api/device/scans", bad)
        assert resp.status_code == 400 and "code" in resp.json()["error"], bad
    assert len(hub.store.scans_of_device(device.device_id)) == 3


async def test_ack_carries_revision_and_peer_scans_after_the_cursor(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    south = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
    now = hub.clock()
    peer = {
        "event_id": show.event_id,
        "clock_offset_ms": 250,
        "scans": [
            scan(1, show.tickets[2], now, gate="South"),
            scan(2, show.tickets[5], now + 1, gate="South", verdict="deny", reason="revoked"),
        ],
    }
    assert (await south.send("POST", "/api/device/scans", peer)).status_code == 200
    mine = {"event_id": show.event_id, "peer_cursor": 0, "scans": [scan(1, show.tickets[0], now)]}
    resp = await north.send("POST", "/api/device/scans", mine)
    body = resp.json()
    assert body["revision"] == hub.store.event_revision(show.event_id)
    # Only the other device's counted scan, at corrected time; never the device's own.
    assert body["peer_scans"] == [
        {
            "ticket_id": show.tickets[2],
            "at_ms": now + 250,
            "direction": "entry",
            "gate_name": "South",
            "device_id": south.device_id,
            "seq": 1,
            "verdict": "admit",
        }
    ]
    assert body["peer_more"] is False
    mine = {**mine, "peer_cursor": body["peer_cursor"], "scans": [scan(2, show.tickets[1], now)]}
    assert (await north.send("POST", "/api/device/scans", mine)).json()["peer_scans"] == []
    # Without a cursor the device asked for none; another venue's event is refused whole.
    plain = await north.send(
        "POST", "/api/device/scans", {"event_id": show.event_id, "scans": [scan(3, None, now)]}
    )
    assert "peer_scans" not in plain.json() and "revision" in plain.json()
    foreign = add_show(hub, hub.b)
    other = await north.send(
        "POST", "/api/device/scans", {"event_id": foreign.event_id, "scans": [scan(4, None, now)]}
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert 4 not in [r["device_seq"] for r in hub.store.scans_of_device(north.device_id)]


def test_peer_scans_are_capped_and_the_cursor_moves_past_what_was_sent(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "hub.sqlite")
    tenant = store.create_tenant("t", 1)["id"]
    venue = store.create_venue(tenant, "V", "UTC", "t", 1)["id"]
    devices = []
    for n in range(2):
        _, code = store.create_enrollment(
            tenant, NewEnrollment(venue_id=venue, name=f"d{n}", ttl_ms=1000), "t", 1
        )
        row = store.enroll_device(
            DeviceEnrollment(code=code, hardware_id=f"hw{n}", public_key=bytes(32)), 1
        )
        assert isinstance(row, dict)
        devices.append(row["id"])
    peer = [
        {**scan(i, f"t-{i}", 0), "event_id": "ev", "scanned_ms": 1000 + i, "counted": 1}
        for i in range(1, 4)
    ]
    store.record_scans(DeviceScans(devices[0], peer, deactivated=False), 5)
    got, cursor, more = store.peer_scans("ev", devices[1], 0, limit=2)
    assert [g["seq"] for g in got] == [1, 2] and more
    got, cursor, more = store.peer_scans("ev", devices[1], cursor, limit=2)
    assert [g["seq"] for g in got] == [3] and not more
    assert store.peer_scans("ev", devices[1], cursor, limit=2)[0] == []
    assert store.peer_scans("ev", devices[0], 0)[0] == []  # never the device's own scans
    store.close()


async def test_report_counts_outcomes_lists_double_entries_and_is_scoped(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    south = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    now = hub.clock()
    tid = show.tickets[0]
    up = {"event_id": show.event_id, "scans": [scan(1, tid, now - MINUTE_MS)]}
    assert (await north.send("POST", "/api/device/scans", up)).status_code == 200
    up = {
        "event_id": show.event_id,
        "scans": [
            scan(1, tid, now, gate="North 2"),
            scan(2, show.tickets[1], now, verdict="deny", reason="revoked"),
            scan(3, None, now, verdict="deny", reason="unknown_ticket"),  # ticketless
        ],
    }
    assert (await south.send("POST", "/api/device/scans", up)).status_code == 200
    # An online check stores a scan without an upload: the report reconciles it first, and
    # a ticketless one too.
    code = await credential_text(hub, show.tickets[3])
    for seq, payload, verdict in ((50, code, "admit"), (51, "not-a-ticket", "deny")):
        checked = await north.send(
            "POST", "/api/device/check", {"event_id": show.event_id, "payload": payload, "seq": seq}
        )
        assert checked.json()["verdict"] == verdict
    resp = await report(hub, show.event_id, hub.a.staff_token)  # venue-scoped token
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["counts"] == {"SUCCESS": 2, "DUPLICATE": 1, "ERROR": 3}
    [entry] = body["double_entries"]
    assert entry["ticket_id"] == tid
    assert (entry["winner"]["device_id"], entry["winner"]["at_ms"]) == (
        north.device_id,
        now - MINUTE_MS,
    )
    assert (entry["duplicate"]["device_id"], entry["duplicate"]["gate"]) == (
        south.device_id,
        "North",  # the gate's name from the hub, not what the device typed
    )
    assert entry["reason"] == "already_admitted" and entry["resolved_ms"] is None
    again = (await report(hub, show.event_id, hub.a.admin_token)).json()
    assert again == body  # re-running adds nothing
    for token in (hub.b.admin_token, hub.b.staff_token):
        denied = await report(hub, show.event_id, token)
        assert denied.status_code == 404 and denied.json()["error"]["code"] == "not_found"
    assert (await report(hub, show.event_id, "nope")).status_code == 401


def test_an_older_database_gains_the_offset_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    store = HubStore(path)
    store.db.execute("DROP INDEX scans_event")
    store.db.execute("ALTER TABLE scans DROP COLUMN clock_offset_ms")
    store.db.execute("DROP TABLE _sqlite_migrations")  # that release recorded no steps
    store.close()
    reopened = HubStore(path)
    assert "clock_offset_ms" in reopened.db["scans"].columns_dict
    reopened.close()
