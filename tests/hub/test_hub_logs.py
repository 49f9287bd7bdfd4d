"""What the hub tells its operator, over a real hub on 127.0.0.1: its log at INFO, set up as
`gate-hub serve` sets it up (configure_logging), is JSON lines that name enrolments, refused
devices with their code, and database faults, and never a code, token, key, signature or
holder name; /metrics counts every error answer by its code."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import secrets
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hub.errors import OTHER_CODE, ErrorCounts
from hub.logs import configure_logging
from protocol.signing import HEADER_NONCE, HEADER_SIGNATURE
from tests.hub_fixtures import Device, Hub, add_show, enroll

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def hub_log() -> Iterator[Lines]:
    """The hub's log as `gate-hub serve` sets it up (configure_logging), written here instead
    of stderr; each call gives the lines so far, failing on one that is not a JSON object."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("info")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    written = io.StringIO()
    handler.setStream(written)

    def lines() -> list[dict[str, Any]]:
        entries = [json.loads(line) for line in written.getvalue().splitlines()]
        assert all(isinstance(entry, dict) for entry in entries)
        return entries

    yield lines
    root.handlers[:], level = saved
    root.setLevel(level)


def spied(hub: Hub) -> list[str]:
    """Every secret the test's client sends or receives from here on: tokens, signatures,
    nonces, request bodies, and the enrolment codes and payloads the hub answers."""
    sent: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        for header in ("Authorization", HEADER_SIGNATURE, HEADER_NONCE):
            if header in request.headers:
                sent.append(request.headers[header].removeprefix("Bearer "))
        if request.content:
            sent.append(request.content.decode())

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        if response.request.url.path.endswith("/enrollments") and response.status_code == 201:
            sent.extend(response.json()[k] for k in ("code", "payload"))

    hub.client.event_hooks = {"request": [on_request], "response": [on_response]}
    return sent


def error_counts(text: str) -> Counter[str]:
    found = re.findall(r'^hub_errors_total\{code="([a-z_]+)"\} (\d+)$', text, re.M)
    return Counter({code: int(n) for code, n in found})


async def scrape(hub: Hub) -> Counter[str]:
    resp = await hub.client.get("/metrics")
    assert resp.status_code == 200
    assert "# TYPE hub_errors_total counter" in resp.text
    return error_counts(resp.text)


def said(lines: list[dict[str, Any]], msg: str) -> list[dict[str, Any]]:
    return [entry for entry in lines if entry["msg"] == msg]


async def test_enrolments_and_refused_devices_are_logged_without_secrets(
    hub: Hub, hub_log: Lines
) -> None:
    secrets_sent = spied(hub)
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    assert (await device.send("GET", "/api/device/me")).status_code == 200

    stranger = Device(hub, secrets.token_bytes(32), str(uuid.uuid4()))
    impostor = Device(hub, secrets.token_bytes(32), device.device_id)  # another key, same id
    replayed = device.signed("GET", "/api/device/me")
    answers = [
        await stranger.send("GET", "/api/device/me"),
        await impostor.send("POST", "/api/device/heartbeat", {"pending_uploads": 1}),
        await hub.client.get("/api/device/me", headers=replayed),
        await hub.client.get("/api/device/me", headers=replayed),
        await hub.client.get("/api/device/me"),  # unsigned
    ]
    assert [a.status_code for a in answers] == [401, 401, 200, 401, 401]
    deactivate = f"/api/admin/devices/{device.device_id}/deactivate"
    resp = await hub.client.post(deactivate, headers=hub.auth(hub.a.manager_token))
    assert resp.status_code == 200
    assert (await device.send("GET", "/api/device/me")).status_code == 403

    lines = hub_log()
    (enrolled,) = said(lines, "device enrolled")
    assert enrolled["level"] == "info" and enrolled["device"] == device.device_id
    assert (enrolled["venue_id"], enrolled["gate_id"]) == (hub.a.venue_id, show.north)
    refusals = [(e["device"], e["code"]) for e in said(lines, "device refused")]
    assert refusals == [
        (stranger.device_id, "unknown_device"),
        (device.device_id, "bad_signature"),
        (device.device_id, "replayed_nonce"),
        (None, "missing_signature"),
        (device.device_id, "device_deactivated"),
    ]
    assert all(e["level"] == "info" for e in said(lines, "device refused"))
    logged = "\n".join(json.dumps(entry) for entry in lines)
    tenant = hub.a
    tokens = [tenant.admin_token, tenant.manager_token, tenant.staff_token]
    names = [*show.holders.values(), "Gate 1 scanner"]
    leaked = [s for s in [*secrets_sent, *tokens, *names, device.public_key] if s in logged]
    assert len(secrets_sent) > 10 and leaked == []


async def test_a_spent_enrolment_code_is_logged_by_its_code_name_only(
    hub: Hub, hub_log: Lines
) -> None:
    secrets_sent = spied(hub)
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North scanner"},
        headers=hub.auth(hub.a.manager_token),
    )
    key = Device(hub, secrets.token_bytes(32)).public_key
    body = {"code": made.json()["code"], "hardware_id": "hw-7", "public_key": key}
    assert (await hub.client.post("/api/device/enroll", json=body)).status_code == 201
    again = await hub.client.post("/api/device/enroll", json=body)
    assert again.status_code == 403
    lines = hub_log()
    (refusal,) = said(lines, "enrolment refused")
    assert (refusal["code"], refusal["hardware_id"]) == ("used_enrollment_code", "hw-7")
    logged = "\n".join(json.dumps(entry) for entry in lines)
    assert [s for s in secrets_sent if s in logged] == []


async def test_database_faults_are_logged_answered_503_and_counted(
    hub: Hub, hub_log: Lines
) -> None:
    before = await scrape(hub)
    store, name = hub.store, "x" * 150
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now: once the
    with contextlib.suppress(sqlite3.OperationalError):  # pages it has hold no more venues
        for i in range(10_000):
            store.create_venue(hub.a.id, f"{i} {name}", "UTC", "test", hub.clock())
    venue = {"name": f"Overflow {name}", "timezone": "UTC"}
    for _ in range(2):
        resp = await hub.client.post(
            "/api/admin/venues", json=venue, headers=hub.auth(hub.a.admin_token)
        )
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "disk_full"
    hub.store.db.execute("PRAGMA max_page_count = 1073741823")
    assert (await scrape(hub)) - before == Counter(disk_full=2)

    hub.store.db.conn.close()  # the database goes away under the running hub
    assert (await hub.client.get("/health/db")).status_code == 503
    faults = said(hub_log(), "database fault")
    assert [(f["level"], f["code"]) for f in faults] == [
        ("error", "disk_full"),
        ("error", "disk_full"),
        ("error", "db_unavailable"),
    ]
    assert faults[0]["path"] == "/api/admin/venues" and "full" in faults[0]["error"]


async def test_metrics_count_error_answers_by_code(hub: Hub) -> None:
    before = await scrape(hub)
    for _ in range(2):
        assert (await hub.client.get("/api/admin/venues")).status_code == 401
    assert (await hub.client.get('/api/nothing"}here')).status_code == 404
    stranger = Device(hub, secrets.token_bytes(32), str(uuid.uuid4()))
    assert (await stranger.send("GET", "/api/device/me")).status_code == 401
    bad = await hub.client.post("/api/admin/venues", headers=hub.auth(hub.a.admin_token))
    assert bad.status_code == 400
    after = await scrape(hub)
    assert after - before == Counter(
        missing_token=2, not_found=1, unknown_device=1, malformed_json=1
    )


def test_the_error_label_set_stays_bounded() -> None:
    counts = ErrorCounts()
    counts.add('bad"} 1\nfake_metric')  # not shaped like a code: never a label
    assert counts.items() == [(OTHER_CODE, 1)]
    for i in range(3 * ErrorCounts.MAX_CODES):
        counts.add(f"code_{i}")
    codes = dict(counts.items())
    assert len(codes) == ErrorCounts.MAX_CODES
    assert codes[OTHER_CODE] == 2 * ErrorCounts.MAX_CODES + 2
    counts.add("code_0")  # one already counted keeps its own label
    assert dict(counts.items())["code_0"] == 2


async def test_the_enrolment_answer_says_when_it_expires_in_utc(hub: Hub) -> None:
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North scanner", "ttl_s": 90},
        headers=hub.auth(hub.a.manager_token),
    )
    answer = made.json()
    expires_at = answer["expires_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", expires_at)
    moment = datetime.fromisoformat(expires_at)
    assert moment.tzinfo == UTC and moment.timestamp() * 1000 == answer["expires_ms"]
