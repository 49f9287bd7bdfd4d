"""The hub's database work runs on its database thread (hub/thread_owned.py, app[DB]), never
on the event loop: every SQL statement a request causes is traced to the thread that ran it,
and a commit held up by another process leaves the loop free to answer."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

from tests.device_api import connect, get_manifest, upload
from tests.hub_fixtures import Hub, add_show, credential_text, enroll

DB_THREAD = "hub-db"


async def test_every_statement_a_request_causes_runs_on_the_database_thread(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    statements: list[tuple[str, str]] = []
    hub.store.db.conn.set_trace_callback(
        lambda sql: statements.append((threading.current_thread().name, sql))
    )
    try:
        await _every_kind_of_request(hub, show.event_id, show.north, show.tickets)
    finally:
        hub.store.db.conn.set_trace_callback(None)
    off_thread = [(name, sql) for name, sql in statements if not name.startswith(DB_THREAD)]
    assert off_thread == []
    writes = [sql for _, sql in statements if sql.lstrip().startswith(("INSERT", "UPDATE"))]
    for table in ("scans", "devices", "tickets", "audit_log", "venues", "enrollment_codes"):
        assert any(table in sql for sql in writes), table  # the requests reached the database


async def _every_kind_of_request(hub: Hub, event_id: str, gate_id: str, tickets: list[str]) -> None:
    """Admin and device routes, the live socket and the metrics, each answered as asked."""
    manager, admin = hub.auth(hub.a.manager_token), hub.auth(hub.a.admin_token)
    venue = f"/api/admin/venues/{hub.a.venue_id}"
    tickets_path = "/api/admin/tickets"
    reads = [
        "/api/admin/whoami",
        "/api/admin/venues",
        f"{venue}/zones",
        f"{venue}/gates",
        f"/api/admin/events/{event_id}",
        f"{tickets_path}/{tickets[1]}",
        "/api/admin/devices",
        "/api/admin/audit",
        "/health/db",
        "/metrics",
    ]
    changes: list[tuple[str, str, dict[str, object] | None]] = [
        ("POST", "/api/admin/venues", {"name": "Annex", "timezone": "UTC"}),
        ("POST", f"{venue}/zones", {"name": "Balcony"}),
        ("POST", f"{venue}/gates", {"name": "East", "zones": ["Balcony"]}),
        ("PATCH", f"{tickets_path}/{tickets[1]}", {"attention": "Check ID"}),
        ("POST", f"{tickets_path}/lock", {"ticket_ids": [tickets[3]], "reason": "dispute"}),
        ("POST", f"{tickets_path}/unlock", {"ticket_ids": [tickets[3]]}),
        ("POST", f"{tickets_path}/{tickets[4]}/reissue", None),
        ("POST", f"{tickets_path}/{tickets[4]}/transfer", {"holder_name": "Kim"}),
        ("POST", f"{tickets_path}/status", {"ticket_ids": [tickets[5]], "status": "REFUNDED"}),
        (
            "POST",
            f"/api/admin/events/{event_id}/comps",
            {"reason": "artist_guest", "holder_name": "Ada"},
        ),
    ]
    for method, path, body in [("GET", path, None) for path in reads] + changes:
        headers = admin if path == "/api/admin/venues" and method == "POST" else manager
        resp = await hub.client.request(method, path, json=body, headers=headers)
        assert resp.status_code < 300, (path, resp.text)
    await credential_text(hub, tickets[0])
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=gate_id)
    device_path = f"/api/admin/devices/{device.device_id}"
    renamed = await hub.client.patch(device_path, json={"name": "North 2"}, headers=manager)
    assert renamed.status_code == 200, renamed.text
    assert (await device.send("GET", "/api/device/me")).status_code == 200
    beat = await device.send("POST", "/api/device/heartbeat", {"pending_uploads": 0})
    assert beat.status_code == 200, beat.text
    assert (await get_manifest(device, event_id)).status_code == 200
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, device)
        stored = await device.send(
            "POST", "/api/device/scans", upload(event_id, tickets[2], 1, hub.clock())
        )
        assert stored.status_code == 200 and stored.json()["acked"] == [1], stored.text
        checked = await device.send(
            "POST",
            "/api/device/check",
            {"event_id": event_id, "payload": await credential_text(hub, tickets[0]), "seq": 2},
        )
        assert checked.status_code == 200, checked.text
        await ws.close()
    report = await hub.client.get(f"/api/admin/events/{event_id}/reconciliation", headers=manager)
    assert report.status_code == 200, report.text
    gone = await hub.client.post(f"{device_path}/deactivate", headers=manager)
    assert gone.status_code == 200, gone.text


HOLD_S = 2.0


async def test_a_commit_held_up_by_another_process_leaves_the_loop_free(
    hub: Hub, tmp_path: Path
) -> None:
    """Another process (a CLI import, say) holds the write lock for HOLD_S: an upload waits
    for it on the database thread, and meanwhile the hub still answers at once."""
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('held', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "db.execute('COMMIT')\n",
            hub.store.path,
            str(HOLD_S),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        held_at = time.monotonic()
        waiting = asyncio.create_task(
            device.send(
                "POST", "/api/device/scans", upload(show.event_id, show.tickets[0], 1, hub.clock())
            )
        )
        # The hub shares this test's event loop: had the upload's commit blocked the loop,
        # this short sleep and the health check would both end only with the lock.
        asked = time.monotonic()
        await asyncio.sleep(0.2)  # the upload is in, waiting for the lock
        assert not waiting.done()
        health = await hub.client.get("/health")
        answered_s = time.monotonic() - asked
        assert health.status_code == 200
        assert answered_s < 0.2 + HOLD_S / 4, answered_s
        stored = await waiting
        assert stored.status_code == 200 and stored.json()["acked"] == [1], stored.text
        assert time.monotonic() - held_at >= HOLD_S * 0.9  # it did wait for the other writer
    finally:
        holder.wait(timeout=10)
