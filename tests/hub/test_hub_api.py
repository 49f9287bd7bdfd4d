"""Admin API over a real server: health, JSON errors, and tenant/venue isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hub_fixtures import Hub, enroll, start_hub, stop_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    started, runner = await start_hub(tmp_path, client_max_size=4096)
    yield started
    await stop_hub(started, runner)


def error_code(resp) -> str:  # type: ignore[no-untyped-def]
    body = resp.json()
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    return body["error"]["code"]


async def test_health_and_db_health(hub: Hub) -> None:
    assert (await hub.client.get("/health")).json() == {"status": "ok"}
    assert (await hub.client.get("/health/db")).status_code == 200
    hub.store.db.conn.close()  # the database goes away under a running hub
    resp = await hub.client.get("/health/db")
    assert resp.status_code == 503 and error_code(resp) == "db_unavailable"


async def test_unknown_route_and_method_are_json_errors(hub: Hub) -> None:
    resp = await hub.client.get("/api/nothing-here")
    assert resp.status_code == 404 and error_code(resp) == "not_found"
    resp = await hub.client.delete("/health")
    assert resp.status_code == 405 and error_code(resp) == "method_not_allowed"


async def test_tokens_required_and_checked(hub: Hub) -> None:
    resp = await hub.client.get("/api/admin/venues")
    assert resp.status_code == 401 and error_code(resp) == "missing_token"
    resp = await hub.client.get("/api/admin/venues", headers=hub.auth("ght_forged"))
    assert resp.status_code == 401 and error_code(resp) == "invalid_token"
    resp = await hub.client.get("/api/admin/whoami", headers=hub.auth(hub.a.manager_token))
    assert resp.json() == {
        "tenant_id": hub.a.id,
        "venue_id": hub.a.venue_id,
        "role": "venue_manager",
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "expected_object"),
        (b'{"name": 5, "timezone": "UTC"}', "invalid_field"),
        (b'{"timezone": "UTC"}', "missing_field"),
        (b'{"name": "   ", "timezone": "UTC"}', "invalid_field"),
        (b'{"name": "X", "timezone": "UTC", "owner": "me"}', "unknown_field"),
        (b"\xff\xfe", "malformed_json"),
    ],
)
async def test_bad_input_is_refused_with_a_code_and_changes_nothing(
    hub: Hub, body: bytes, code: str
) -> None:
    before = hub.store.list_venues(hub.a.id)
    resp = await hub.client.post(
        "/api/admin/venues", content=body, headers=hub.auth(hub.a.admin_token)
    )
    assert resp.status_code == 400 and error_code(resp) == code
    assert hub.store.list_venues(hub.a.id) == before


async def test_oversize_body_is_413(hub: Hub) -> None:
    resp = await hub.client.post(
        "/api/admin/venues",
        content=b'{"name": "' + b"x" * 10_000 + b'", "timezone": "UTC"}',
        headers=hub.auth(hub.a.admin_token),
    )
    assert resp.status_code == 413 and error_code(resp) == "body_too_large"
    assert len(hub.store.list_venues(hub.a.id)) == 1


async def test_admin_builds_a_venue_and_duplicates_conflict(hub: Hub) -> None:
    auth = hub.auth(hub.a.admin_token)
    resp = await hub.client.post(
        "/api/admin/venues", json={"name": "Hall 2", "timezone": "UTC"}, headers=auth
    )
    assert resp.status_code == 201
    venue_id = resp.json()["id"]
    again = await hub.client.post(
        "/api/admin/venues", json={"name": "Hall 2", "timezone": "UTC"}, headers=auth
    )
    assert again.status_code == 409 and error_code(again) == "already_exists"
    zone = await hub.client.post(
        f"/api/admin/venues/{venue_id}/zones", json={"name": "GA"}, headers=auth
    )
    assert zone.status_code == 201
    gate = await hub.client.post(
        f"/api/admin/venues/{venue_id}/gates",
        json={"name": "North", "direction": "entry", "zones": ["GA"]},
        headers=auth,
    )
    assert gate.status_code == 201 and gate.json()["zones"] == ["GA"]
    bad = await hub.client.post(
        f"/api/admin/venues/{venue_id}/gates",
        json={"name": "South", "direction": "entry", "zones": ["BACKSTAGE"]},
        headers=auth,
    )
    assert bad.status_code == 404 and error_code(bad) == "unknown_zone"
    bad = await hub.client.post(
        f"/api/admin/venues/{venue_id}/gates",
        json={"name": "South", "direction": "sideways"},
        headers=auth,
    )
    assert bad.status_code == 400 and error_code(bad) == "invalid_field"
    gates = await hub.client.get(f"/api/admin/venues/{venue_id}/gates", headers=auth)
    assert [g["name"] for g in gates.json()["gates"]] == ["North"]
    actions = [e["action"] for e in hub.store.audit_entries(hub.a.id)]
    assert actions[-3:] == ["venue.create", "zone.create", "gate.create"]


async def test_roles_limit_what_a_token_may_do(hub: Hub) -> None:
    staff = hub.auth(hub.a.staff_token)
    resp = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments", json={"name": "x"}, headers=staff
    )
    assert resp.status_code == 403 and error_code(resp) == "forbidden_role"
    resp = await hub.client.get("/api/admin/devices", headers=hub.auth(hub.a.box_office_token))
    assert resp.status_code == 403 and error_code(resp) == "forbidden_role"
    resp = await hub.client.post(
        "/api/admin/venues",
        json={"name": "Mine", "timezone": "UTC"},
        headers=hub.auth(hub.a.manager_token),
    )
    assert resp.status_code == 403
    assert (await hub.client.get("/api/admin/devices", headers=staff)).status_code == 200


async def test_a_token_never_sees_another_tenants_objects(hub: Hub) -> None:
    device_b = await enroll(hub, hub.b.manager_token, hub.b.venue_id)
    a_admin = hub.auth(hub.a.admin_token)
    b_venue = hub.b.venue_id
    for path in (
        f"/api/admin/venues/{b_venue}",
        f"/api/admin/venues/{b_venue}/zones",
        f"/api/admin/venues/{b_venue}/gates",
        f"/api/admin/devices/{device_b.device_id}",
        f"/api/admin/devices?venue_id={b_venue}",
    ):
        resp = await hub.client.get(path, headers=a_admin)
        assert resp.status_code == 404 and error_code(resp) == "not_found", path
    for path, body in (
        (f"/api/admin/venues/{b_venue}/zones", {"name": "Sneaky"}),
        (f"/api/admin/venues/{b_venue}/gates", {"name": "Sneaky"}),
        (f"/api/admin/venues/{b_venue}/enrollments", {"name": "Sneaky"}),
        (f"/api/admin/devices/{device_b.device_id}/deactivate", None),
    ):
        resp = await hub.client.post(path, json=body, headers=a_admin)
        assert resp.status_code == 404 and error_code(resp) == "not_found", path
    listed = (await hub.client.get("/api/admin/devices", headers=a_admin)).json()["devices"]
    assert listed == []
    venues = (await hub.client.get("/api/admin/venues", headers=a_admin)).json()["venues"]
    assert [v["id"] for v in venues] == [hub.a.venue_id]
    assert hub.store.get_device(device_b.device_id)["active"] == 1
    assert hub.store.list_zones(b_venue) and "Sneaky" not in {
        z["name"] for z in hub.store.list_zones(b_venue)
    }
    audit = (await hub.client.get("/api/admin/audit", headers=a_admin)).json()["entries"]
    assert audit and all(e["target"] != device_b.device_id for e in audit)


async def test_a_venue_token_never_sees_another_venue(hub: Hub) -> None:
    admin = hub.auth(hub.a.admin_token)
    other = await hub.client.post(
        "/api/admin/venues", json={"name": "Annex", "timezone": "UTC"}, headers=admin
    )
    other_id = other.json()["id"]
    await hub.client.post(f"/api/admin/venues/{other_id}/zones", json={"name": "GA"}, headers=admin)
    device = await enroll(hub, hub.a.admin_token, other_id)
    manager = hub.auth(hub.a.manager_token)
    for path in (
        f"/api/admin/venues/{other_id}",
        f"/api/admin/devices/{device.device_id}",
        f"/api/admin/devices?venue_id={other_id}",
    ):
        resp = await hub.client.get(path, headers=manager)
        assert resp.status_code == 404, path
    resp = await hub.client.post(
        f"/api/admin/devices/{device.device_id}/deactivate", headers=manager
    )
    assert resp.status_code == 404
    assert (await hub.client.get("/api/admin/devices", headers=manager)).json()["devices"] == []
    all_devices = (await hub.client.get("/api/admin/devices", headers=admin)).json()["devices"]
    assert [d["id"] for d in all_devices] == [device.device_id]
