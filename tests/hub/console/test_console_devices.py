"""The console's device pages against the real hub: the list, adding a gate through its
enrolment QR, rename, move, deactivate (its live socket closed) and its history."""

from __future__ import annotations

import html
import re
import secrets

import aiohttp
import pytest

from hub import live as hub_live
from hub.store_base import Row
from protocol.signing import parse_enrollment_uri
from tests.console_session import sign_in
from tests.device_api import connect
from tests.hub_fixtures import Device, Hub, add_show, enroll

_PAYLOAD = re.compile(r'<span class="payload">([^<]+)</span>')


def audit_of(hub: Hub, target: str) -> list[Row]:
    return [r for r in hub.store.audit_entries(hub.a.id) if r["target"] == target]


def enrolment_codes(hub: Hub) -> int:
    return int(hub.store.db.execute("SELECT count(*) FROM enrollment_codes").fetchone()[0])


async def spend(hub: Hub, payload: str) -> Device:
    """What a gate does with the QR's text: spend its code with a key of its own."""
    parsed = parse_enrollment_uri(payload)
    assert parsed is not None, payload
    _, code, _ = parsed
    device = Device(hub, secrets.token_bytes(32))
    resp = await hub.client.post(
        "/api/device/enroll",
        json={"code": code, "hardware_id": "hw-console", "public_key": device.public_key},
    )
    assert resp.status_code == 201, resp.text
    device.device_id = resp.json()["device_id"]
    return device


async def test_adding_a_gate_shows_its_code_as_a_qr_to_enrol_with(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    manager = await sign_in(hub, "a", "venue_manager")
    form = await manager.get("/devices/new")
    assert form.status_code == 200 and "North" in form.text and 'name="csrf"' in form.text
    made = await manager.post(
        f"/devices/new?venue={hub.a.venue_id}",
        {"name": "North 3", "gate_id": show.north, "zone": "GA", "ttl_min": "5"},
    )
    assert made.status_code == 200, made.text
    page = made.text
    assert '<svg viewBox="0 0 ' in page  # the QR, inline, scaling to the screen
    assert 'data-seconds-left="300"' in page or 'data-seconds-left="299"' in page
    found = _PAYLOAD.search(page)
    assert found, page
    payload = html.unescape(found.group(1))
    assert parse_enrollment_uri(payload) is not None and "hub.test" in payload
    device = await spend(hub, payload)
    row = hub.store.get_device(device.device_id)
    assert row is not None
    assert (row["name"], row["gate_id"], row["zone"]) == ("North 3", show.north, "GA")
    grant = hub.store.device_enrollment(device.device_id)
    assert grant is not None and grant["created_by"] == f"user:{manager.username}"
    assert [r["actor"] for r in audit_of(hub, grant["id"])] == [f"user:{manager.username}"]
    listing = await manager.get("/devices")
    assert "North 3" in listing.text and "Add a gate" in listing.text


async def test_a_bad_gate_form_changes_nothing(hub: Hub) -> None:
    show_b = add_show(hub, hub.b)
    manager = await sign_in(hub, "a", "venue_manager")
    before = enrolment_codes(hub)
    blank = await manager.post("/devices/new", {"name": "  ", "ttl_min": "10"})
    assert blank.status_code == 400 and "Field name" in blank.text and 'name="name"' in blank.text
    foreign = await manager.post("/devices/new", {"name": "X", "gate_id": show_b.north})
    assert foreign.status_code == 404  # another tenant's gate: not found
    forged = await manager.post("/devices/new", {"name": "X"}, csrf=False)
    assert forged.status_code == 403
    staff = await sign_in(hub, "a", "venue_staff")
    assert (await staff.post("/devices/new", {"name": "X"})).status_code == 403
    assert "Add a gate" not in (await staff.get("/devices")).text
    assert enrolment_codes(hub) == before


async def test_rename_and_move_are_audited_as_the_person(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    show_b = add_show(hub, hub.b)
    gate = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    manager = await sign_in(hub, "a", "venue_manager")
    path = f"/devices/{gate.device_id}"
    renamed = await manager.post(path + "/rename", {"name": "North door"})
    assert renamed.status_code == 303 and renamed.headers["location"] == path
    moved = await manager.post(path + "/move", {"gate_id": show.south, "zone": "VIP"})
    assert moved.status_code == 303
    row = hub.store.get_device(gate.device_id)
    assert row is not None
    assert (row["name"], row["gate_id"], row["zone"]) == ("North door", show.south, "VIP")
    changes = [(r["action"], r["actor"]) for r in audit_of(hub, gate.device_id)]
    assert changes[-2:] == [("device.update", f"user:{manager.username}")] * 2
    page = await manager.get(path)
    assert "Moved: its next scans count there." in page.text  # the flash, once
    assert "North door" in page.text and "device.update" in page.text
    refused = await manager.post(path + "/move", {"gate_id": show_b.north})
    assert refused.status_code == 404
    staff = await sign_in(hub, "a", "venue_staff")
    assert (await staff.post(path + "/rename", {"name": "Mine"})).status_code == 403
    row = hub.store.get_device(gate.device_id)
    assert row is not None and row["name"] == "North door" and row["gate_id"] == show.south


@pytest.fixture
def unswept_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No periodic re-check of live devices' active flags (set before the hub starts): only
    the deactivation's own call can close a socket."""
    monkeypatch.setattr(hub_live, "ACTIVE_RECHECK_S", 3600.0)


async def test_deactivating_asks_first_then_closes_the_gates_live_link(
    unswept_hub: None, hub: Hub
) -> None:
    gate = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    manager = await sign_in(hub, "a", "venue_manager")
    path = f"/devices/{gate.device_id}"
    confirm = await manager.get(path + "/deactivate")
    assert confirm.status_code == 200
    assert f'action="{path}/deactivate"' in confirm.text and "cannot be undone" in confirm.text
    row = hub.store.get_device(gate.device_id)
    assert row is not None and row["active"]  # asking changed nothing
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, gate)
        done = await manager.post(path + "/deactivate")
        assert done.status_code == 303
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4403
    row = hub.store.get_device(gate.device_id)
    assert row is not None and not row["active"]
    assert audit_of(hub, gate.device_id)[-1]["actor"] == f"user:{manager.username}"
    again = await manager.post(path + "/deactivate")
    assert again.status_code == 409
    assert (await gate.send("GET", "/api/device/me")).status_code == 403


async def test_a_devices_page_shows_its_history_to_its_venue_only(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    gate = await enroll(hub, hub.a.manager_token, hub.a.venue_id, name="Gate 9", gate_id=show.north)
    now = hub.clock()
    scans = [
        {
            "seq": 1,
            "at_ms": now,
            "payload": "code",
            "ticket_id": show.tickets[0],
            "verdict": "deny",
            "reason": "locked",
            "direction": "entry",
        }
    ]
    resp = await gate.send("POST", "/api/device/scans", {"event_id": show.event_id, "scans": scans})
    assert resp.status_code == 200, resp.text
    heartbeat = {"pending_uploads": 2, "manifest_revisions": {show.event_id: 1}}
    assert (await gate.send("POST", "/api/device/heartbeat", heartbeat)).status_code == 200
    staff = await sign_in(hub, "a", "venue_staff")
    page = await staff.get(f"/devices/{gate.device_id}")
    assert page.status_code == 200
    text = page.text
    assert f'data-scan="{gate.device_id}:1"' in text and "Ticket is locked." in text
    assert "Show: rev 1" in text and "2 scans at its last report" in text
    assert "device.enroll" in text and "enrollment.create" in text
    assert "/rename" not in text  # venue staff read, they do not change
    other = await sign_in(hub, "b", "admin")
    assert (await other.get(f"/devices/{gate.device_id}")).status_code == 404
    box_office = await sign_in(hub, "a", "box_office")
    assert (await box_office.get("/devices")).status_code == 403


@pytest.mark.parametrize("path", ["/devices", "/devices/new", "/devices/x"])
async def test_device_pages_send_strangers_to_sign_in(hub: Hub, path: str) -> None:
    answer = await hub.client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")
