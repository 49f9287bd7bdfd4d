"""Malformed request bodies on every route that reads one: a 400 with a code, nothing changed
(issue #10, finding 8); a 405 names the allowed methods."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.hub_fixtures import Device, Hub, add_show, enroll

# What the fuzzer of #10 sent: each is a body the hub cannot read as a JSON object of its own.
NESTED = b"[" * 100_000 + b"]" * 100_000
MALFORMED = {
    "deeply_nested": b'{"name": ' + NESTED + b"}",
    "nested_in_object": b'{"name": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
    "huge_integer": b'{"name": ' + b"7" * 5000 + b"}",
    "lone_surrogate": b'{"name": "\\ud800", "code": "\\udfff", "payload": "x\\ud800"}',
    "not_a_number": b'{"name": NaN}',
    "infinity": b'{"name": -Infinity}',
}


def snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table but the request nonces, read beside the hub."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if "nonce" not in r[0]
        ]
        return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    finally:
        conn.close()


Routes = list[tuple[str, str]]


async def routes_with_bodies(hub: Hub) -> tuple[Routes, Routes, Device]:
    """The admin routes and the signed device routes that read a body, and a device."""
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    venue, ticket = hub.a.venue_id, show.tickets[0]
    admin = [
        ("POST", "/api/admin/venues"),
        ("POST", f"/api/admin/venues/{venue}/zones"),
        ("POST", f"/api/admin/venues/{venue}/gates"),
        ("PATCH", f"/api/admin/devices/{device.device_id}"),
        ("POST", f"/api/admin/venues/{venue}/enrollments"),
        ("POST", f"/api/admin/events/{show.event_id}/comps"),
        ("POST", "/api/admin/tickets/lock"),
        ("POST", "/api/admin/tickets/unlock"),
        ("POST", "/api/admin/tickets/status"),
        ("POST", f"/api/admin/tickets/{ticket}/transfer"),
        ("PATCH", f"/api/admin/tickets/{ticket}"),
    ]
    signed = [
        ("POST", "/api/device/heartbeat"),
        ("POST", "/api/device/scans"),
        ("POST", "/api/device/check"),
    ]
    return admin, signed, device


def assert_refused(resp, what: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 400, (what, resp.status_code, resp.text)
    error = resp.json()["error"]
    assert error["code"] == "malformed_json" and error["message"], (what, error)


async def test_malformed_bodies_are_400_on_every_route_and_change_nothing(
    hub: Hub, tmp_path: Path
) -> None:
    admin, signed, device = await routes_with_bodies(hub)
    before = snapshot(tmp_path / "hub.sqlite")
    for kind, body in MALFORMED.items():
        for method, path in admin:
            resp = await hub.client.request(
                method, path, content=body, headers=hub.auth(hub.a.admin_token)
            )
            assert_refused(resp, f"{kind} {method} {path}")
        resp = await hub.client.post("/api/device/enroll", content=body)
        assert_refused(resp, f"{kind} enroll")
        for method, path in signed:
            headers = device.signed(method, path, body)
            resp = await hub.client.request(method, path, content=body, headers=headers)
            assert_refused(resp, f"{kind} {method} {path}")
    assert snapshot(tmp_path / "hub.sqlite") == before


async def test_a_lone_surrogate_deep_in_a_valid_looking_body_is_400(hub: Hub) -> None:
    """Where a handler would take the string: the scan's payload, a venue's name."""
    _, _, device = await routes_with_bodies(hub)
    scan = (
        b'{"seq": 1, "at_ms": 1, "payload": "a\\udc00b", "ticket_id": null, "verdict": "admit",'
        b' "reason": "admitted", "direction": "entry", "gate": "N"}'
    )
    body = b'{"scans": [' + scan + b"]}"
    headers = device.signed("POST", "/api/device/scans", body)
    resp = await hub.client.post("/api/device/scans", content=body, headers=headers)
    assert_refused(resp, "scan payload")
    venue = b'{"name": "Hall \\ud83d", "timezone": "UTC"}'
    resp = await hub.client.post(
        "/api/admin/venues", content=venue, headers=hub.auth(hub.a.admin_token)
    )
    assert_refused(resp, "venue name")
    pair = '{"name": "Hall \\ud83d\\ude00", "timezone": "UTC"}'  # a valid pair is fine
    resp = await hub.client.post(
        "/api/admin/venues", content=pair.encode(), headers=hub.auth(hub.a.admin_token)
    )
    assert resp.status_code == 201 and resp.json()["name"] == "Hall \U0001f600"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/health", {"GET"}),
        ("PUT", "/api/admin/venues", {"GET", "POST"}),
        ("DELETE", "/api/device/check", {"POST"}),
    ],
)
async def test_405_lists_the_allowed_methods(
    hub: Hub, method: str, path: str, allowed: set[str]
) -> None:
    resp = await hub.client.request(method, path)
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"
    listed = {m.strip() for m in resp.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= listed and method not in listed, resp.headers
