"""Device enrollment and signed device requests, over a real server and a real SQLite file."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pyzbar.pyzbar import decode

from protocol.native import public_key
from protocol.signing import (
    HEADER_NONCE,
    MAX_SKEW_MS,
    b64encode,
    key_fingerprint,
    parse_enrollment_uri,
)
from tests.hub_fixtures import HUB_SEED, Device, Hub, add_show, enroll, start_hub, stop_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    started, runner = await start_hub(tmp_path)
    yield started
    await stop_hub(started, runner)


def error_code(resp) -> str:  # type: ignore[no-untyped-def]
    return resp.json()["error"]["code"]


async def make_code(hub: Hub, **fields: object) -> dict:
    resp = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North gate 1", **fields},
        headers=hub.auth(hub.a.manager_token),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def spend(hub: Hub, code: str, device: Device, hardware_id: str = "hw-1"):  # type: ignore[no-untyped-def]
    return await hub.client.post(
        "/api/device/enroll",
        json={"code": code, "hardware_id": hardware_id, "public_key": device.public_key},
    )


async def test_enrollment_happy_path_with_qr(hub: Hub) -> None:
    gate = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/gates",
        json={"name": "North", "zones": ["GA"]},
        headers=hub.auth(hub.a.manager_token),
    )
    grant = await make_code(hub, gate_id=gate.json()["id"], zone="GA")
    # the QR a phone or gate camera reads holds hub URL, code and hub key fingerprint
    image = cv2.imdecode(
        np.frombuffer(base64.b64decode(grant["qr_png_base64"]), np.uint8), cv2.IMREAD_GRAYSCALE
    )
    (symbol,) = decode(image)
    hub_url, code, fingerprint = parse_enrollment_uri(symbol.data.decode())
    assert (hub_url, code) == ("http://hub.test:8080", grant["code"])
    assert fingerprint == key_fingerprint(public_key(HUB_SEED))
    identity = (await hub.client.get("/api/hub")).json()
    assert identity["fingerprint"] == fingerprint

    device = Device(hub, secrets.token_bytes(32))
    resp = await spend(hub, code, device)
    assert resp.status_code == 201
    body = resp.json()
    assert body["venue_id"] == hub.a.venue_id and body["zone"] == "GA"
    assert body["gate_id"] == gate.json()["id"] and body["name"] == "North gate 1"
    assert body["hub_key_fingerprint"] == fingerprint
    listed = await hub.client.get("/api/admin/devices", headers=hub.auth(hub.a.staff_token))
    (row,) = listed.json()["devices"]
    assert row["id"] == body["device_id"] and row["active"] is True
    assert row["public_key"] == device.public_key
    assert "device.enroll" in [e["action"] for e in hub.store.audit_entries(hub.a.id)]


async def test_code_reuse_refused(hub: Hub) -> None:
    grant = await make_code(hub)
    first = Device(hub, secrets.token_bytes(32))
    assert (await spend(hub, grant["code"], first)).status_code == 201
    thief = Device(hub, secrets.token_bytes(32))
    resp = await spend(hub, grant["code"], thief, hardware_id="hw-thief")
    assert resp.status_code == 403 and error_code(resp) == "used_enrollment_code"
    resp = await spend(hub, "made-up-code", thief, hardware_id="hw-thief")
    assert resp.status_code == 403 and error_code(resp) == "invalid_enrollment_code"
    assert len(hub.store.list_devices(hub.a.id)) == 1


async def test_expired_code_refused(hub: Hub) -> None:
    grant = await make_code(hub, ttl_s=60)
    hub.clock.offset_ms += 61_000
    resp = await spend(hub, grant["code"], Device(hub, secrets.token_bytes(32)))
    assert resp.status_code == 403 and error_code(resp) == "expired_enrollment_code"
    assert hub.store.list_devices(hub.a.id) == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"hardware_id": "hw", "public_key": "AAAA"}, "missing_field"),
        ({"code": "c", "hardware_id": "hw", "public_key": "not base64!"}, "invalid_public_key"),
        (
            {"code": "c", "hardware_id": "hw", "public_key": b64encode(b"short")},
            "invalid_public_key",
        ),
        ({"code": "c", "hardware_id": 7, "public_key": "AAAA"}, "invalid_field"),
    ],
)
async def test_bad_enrollment_input(hub: Hub, payload: dict, code: str) -> None:
    grant = await make_code(hub)
    payload = {**payload, "code": grant["code"]} if "code" in payload else payload
    resp = await hub.client.post("/api/device/enroll", json=payload)
    assert resp.status_code == 400 and error_code(resp) == code
    # the code was not spent by the bad attempt
    assert (
        await spend(hub, grant["code"], Device(hub, secrets.token_bytes(32)))
    ).status_code == 201


async def test_signed_requests_accepted_and_update_the_device(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    me = await device.send("GET", "/api/device/me")
    assert me.status_code == 200 and me.json()["device_id"] == device.device_id
    report = {"app_version": "2.1.0", "pending_uploads": 4, "manifest_revisions": {"ev-1": 7}}
    sent_at = hub.clock() - 2_000  # the device's clock runs 2 s behind
    resp = await device.send("POST", "/api/device/heartbeat?via=wifi", report, now_ms=sent_at)
    assert resp.status_code == 200, resp.text
    row = hub.store.get_device(device.device_id)
    assert row["app_version"] == "2.1.0" and row["pending_uploads"] == 4
    assert json.loads(row["manifest_revisions_json"]) == {"ev-1": 7}
    assert 2_000 <= row["clock_offset_ms"] < 4_000  # hub ≈ device + offset


async def test_replayed_request_refused(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    body = json.dumps({"pending_uploads": 1}).encode()
    headers = device.signed("POST", "/api/device/heartbeat", body)
    first = await hub.client.post("/api/device/heartbeat", content=body, headers=headers)
    assert first.status_code == 200
    again = await hub.client.post("/api/device/heartbeat", content=body, headers=headers)
    assert again.status_code == 401 and error_code(again) == "replayed_nonce"


async def test_stale_timestamp_refused(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    old = await device.send("GET", "/api/device/me", now_ms=hub.clock() - MAX_SKEW_MS - 5_000)
    assert old.status_code == 401 and error_code(old) == "stale_timestamp"
    future = await device.send("GET", "/api/device/me", now_ms=hub.clock() + MAX_SKEW_MS + 5_000)
    assert future.status_code == 401 and error_code(future) == "stale_timestamp"


async def test_tampered_body_path_or_key_refused_and_nothing_changes(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    body = json.dumps({"pending_uploads": 1}).encode()
    headers = device.signed("POST", "/api/device/heartbeat", body)
    tampered = body.replace(b"1", b"9")
    resp = await hub.client.post("/api/device/heartbeat", content=tampered, headers=headers)
    assert resp.status_code == 401 and error_code(resp) == "bad_signature"
    headers = device.signed("POST", "/api/device/heartbeat", body)
    resp = await hub.client.post("/api/device/heartbeat?x=1", content=body, headers=headers)
    assert resp.status_code == 401 and error_code(resp) == "bad_signature"
    impostor = Device(hub, secrets.token_bytes(32), device.device_id)
    resp = await impostor.send("POST", "/api/device/heartbeat", {"pending_uploads": 9})
    assert resp.status_code == 401 and error_code(resp) == "bad_signature"
    assert hub.store.get_device(device.device_id)["pending_uploads"] == 0


async def test_unsigned_and_unknown_devices_refused(hub: Hub) -> None:
    resp = await hub.client.get("/api/device/me")
    assert resp.status_code == 401 and error_code(resp) == "missing_signature"
    stranger = Device(hub, secrets.token_bytes(32), "not-enrolled")
    resp = await stranger.send("GET", "/api/device/me")
    assert resp.status_code == 401 and error_code(resp) == "unknown_device"


async def test_bad_heartbeat_input_is_400_and_changes_nothing(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    for payload, code in (
        ({"pending_uploads": "many"}, "invalid_field"),
        ({"pending_uploads": -1}, "invalid_field"),
        ({"manifest_revisions": {"ev": "x"}}, "invalid_field"),
        ({"battery": 50}, "unknown_field"),
    ):
        resp = await device.send("POST", "/api/device/heartbeat", payload)
        assert resp.status_code == 400 and error_code(resp) == code, payload
    body = b"{oops"
    headers = device.signed("POST", "/api/device/heartbeat", body)
    resp = await hub.client.post("/api/device/heartbeat", content=body, headers=headers)
    assert resp.status_code == 400 and error_code(resp) == "malformed_json"
    row = hub.store.get_device(device.device_id)
    assert row["pending_uploads"] == 0 and row["clock_offset_ms"] is None


async def test_deactivated_device_refused_at_once(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    assert (await device.send("GET", "/api/device/me")).status_code == 200
    resp = await hub.client.post(
        f"/api/admin/devices/{device.device_id}/deactivate",
        headers=hub.auth(hub.a.manager_token),
    )
    assert resp.status_code == 200 and resp.json()["active"] is False
    me = await device.send("GET", "/api/device/me")
    assert me.status_code == 403 and error_code(me) == "device_deactivated"
    beat = await device.send("POST", "/api/device/heartbeat", {"pending_uploads": 3})
    assert beat.status_code == 403
    assert hub.store.get_device(device.device_id)["pending_uploads"] == 0
    active = await hub.client.get(
        "/api/admin/devices?active=true", headers=hub.auth(hub.a.manager_token)
    )
    assert active.json()["devices"] == []
    inactive = await hub.client.get(
        "/api/admin/devices?active=false", headers=hub.auth(hub.a.manager_token)
    )
    assert [d["id"] for d in inactive.json()["devices"]] == [device.device_id]


async def test_re_enrolment_of_same_hardware_is_a_new_device(hub: Hub) -> None:
    """The hardware id is a label: a wiped gate re-enrolled on the same box gets an identity
    of its own, and the old one keeps its key (it is deactivated by a manager, not taken)."""
    old = Device(hub, secrets.token_bytes(32))
    first = await spend(hub, (await make_code(hub))["code"], old, hardware_id="hw-7")
    old.device_id = first.json()["device_id"]
    new = Device(hub, secrets.token_bytes(32))
    second = await spend(hub, (await make_code(hub))["code"], new, hardware_id="hw-7")
    new.device_id = second.json()["device_id"]
    assert new.device_id != old.device_id
    assert (await new.send("GET", "/api/device/me")).status_code == 200
    resp = await old.send("GET", "/api/device/me")
    assert resp.status_code == 200 and resp.json()["hardware_id"] == "hw-7"
    assert resp.request.headers[HEADER_NONCE]


def scan(seq: int, verdict: str = "admit", reason: str = "admitted", **extra: object) -> dict:
    return {
        "seq": seq,
        "at_ms": 1_790_000_000_000 + seq,
        "payload": f"NATIVE:code-{seq}",
        "ticket_id": f"t-{seq}",
        "verdict": verdict,
        "reason": reason,
        "message": "Welcome in.",
        "direction": "entry",
        "gate": "North",
        "manual": False,
        "confirmed": None,
        "uploaded": False,
        **extra,
    }


async def test_scan_upload_is_acknowledged_after_commit_and_idempotent(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, zone="GA")
    batch = {
        "event_id": add_show(hub, hub.a).event_id,
        "manifest_revision": 3,
        "scans": [scan(1), scan(2, "attention", "attention_required"), scan(3, "deny", "revoked")],
    }
    resp = await device.send("POST", "/api/device/scans", batch)
    assert resp.status_code == 200 and resp.json()["acked"] == [1, 2, 3]
    rows = hub.store.scans_of_device(device.device_id)
    assert [(r["device_seq"], r["counted"], r["device_deactivated"]) for r in rows] == [
        (1, 1, 0),
        (2, 0, 0),
        (3, 0, 0),
    ]
    assert rows[0]["zone"] == "GA" and rows[0]["manifest_revision"] == 3
    assert rows[0]["raw_hash"] and "NATIVE:code-1" in rows[0]["detail_json"]
    # the same batch again, now with the attention scan confirmed by staff
    batch["scans"][1] = scan(2, "attention", "attention_required", confirmed=True)
    batch["scans"][0] = scan(1, "deny", "revoked")  # a rewritten past scan is ignored
    again = await device.send("POST", "/api/device/scans", batch)
    assert again.status_code == 200 and again.json()["acked"] == [1, 2, 3]
    assert "refused" not in again.json()
    rows = hub.store.scans_of_device(device.device_id)
    assert [(r["verdict"], r["counted"]) for r in rows] == [
        ("admit", 1),
        ("attention", 1),
        ("deny", 0),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"scans": []},
        {"scans": [scan(1), scan(1)]},
        {"scans": [scan(1), {**scan(2), "verdict": "maybe"}]},
        {"scans": [scan(1), {**scan(2), "seq": "2"}]},
        {"scans": [scan(1), {**scan(2), "colour": "red"}]},
        {"scans": [scan(1)], "extra": 1},
    ],
)
async def test_bad_scan_batch_is_refused_whole(hub: Hub, bad: dict) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    resp = await device.send("POST", "/api/device/scans", bad)
    assert resp.status_code == 400 and error_code(resp) in {
        "invalid_scan",
        "invalid_field",
        "unknown_field",
    }
    assert hub.store.scans_of_device(device.device_id) == []


async def test_deactivated_device_scans_are_kept_marked_and_refused(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    await hub.client.post(
        f"/api/admin/devices/{device.device_id}/deactivate",
        headers=hub.auth(hub.a.manager_token),
    )
    resp = await device.send("POST", "/api/device/scans", {"scans": [scan(1), scan(2)]})
    assert resp.status_code == 403 and error_code(resp) == "device_deactivated"
    rows = hub.store.scans_of_device(device.device_id)
    assert [(r["device_seq"], r["device_deactivated"]) for r in rows] == [(1, 1), (2, 1)]
    junk = await device.send("POST", "/api/device/scans", {"scans": "nope"})
    assert junk.status_code == 403 and error_code(junk) == "device_deactivated"
    forged = Device(hub, secrets.token_bytes(32), device.device_id)
    resp = await forged.send("POST", "/api/device/scans", {"scans": [scan(3)]})
    assert resp.status_code == 401
    assert len(hub.store.scans_of_device(device.device_id)) == 2


async def test_manager_renames_and_moves_a_device_within_its_venue(hub: Hub) -> None:
    manager = hub.auth(hub.a.manager_token)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, zone="GA")
    gate = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/gates", json={"name": "VIP door"}, headers=manager
    )
    b_gate = await hub.client.post(
        f"/api/admin/venues/{hub.b.venue_id}/gates",
        json={"name": "B door"},
        headers=hub.auth(hub.b.manager_token),
    )
    url = f"/api/admin/devices/{device.device_id}"
    for body, status, code in (
        ({"gate_id": b_gate.json()["id"]}, 404, "not_found"),
        ({"zone": "BACKSTAGE"}, 404, "unknown_zone"),
        ({"name": ""}, 400, "invalid_field"),
        ({}, 400, "missing_field"),
        ({"active": True}, 400, "unknown_field"),
    ):
        resp = await hub.client.patch(url, json=body, headers=manager)
        assert (resp.status_code, error_code(resp)) == (status, code), body
    assert hub.store.get_device(device.device_id)["zone"] == "GA"
    staff = await hub.client.patch(url, json={"name": "x"}, headers=hub.auth(hub.a.staff_token))
    assert staff.status_code == 403
    foreign = await hub.client.patch(url, json={"name": "x"}, headers=hub.auth(hub.b.admin_token))
    assert foreign.status_code == 404
    moved = await hub.client.patch(
        url,
        json={"name": "VIP scanner", "gate_id": gate.json()["id"], "zone": "VIP"},
        headers=manager,
    )
    assert moved.status_code == 200
    assert (moved.json()["name"], moved.json()["zone"]) == ("VIP scanner", "VIP")
    me = (await device.send("GET", "/api/device/me")).json()
    assert (me["gate_id"], me["zone"]) == (gate.json()["id"], "VIP")
    cleared = await hub.client.patch(url, json={"zone": None}, headers=manager)
    assert cleared.json()["zone"] is None
    assert hub.store.audit_entries(hub.a.id)[-1]["action"] == "device.update"
