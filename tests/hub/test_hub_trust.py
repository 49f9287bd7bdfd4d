"""What a device may make the hub believe: its scans are stored or refused, never silently
dropped; it writes only into its own venue's events; no number it sends can poison a ticket,
a report or another gate; every time crossing the hub is on the hub's clock, every gate name
the hub's. Each test here failed on the code before its fix."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.hub_fixtures import (
    Device,
    Hub,
    Show,
    add_show,
    credential_text,
    enroll,
)

HOUR_MS = 3_600_000


def scan(seq: int, at_ms: int, ticket_id: str | None, **fields: Any) -> dict[str, Any]:
    """One scan-log row as a gate uploads it."""
    return {
        "seq": seq,
        "at_ms": at_ms,
        "payload": fields.pop("payload", f"sealed-{seq}-{ticket_id}"),
        "ticket_id": ticket_id,
        "verdict": "admit",
        "reason": "admitted",
        "message": "Welcome in.",
        "direction": "entry",
        "gate": "Gate B",
        **fields,
    }


async def upload(device: Device, event_id: str | None, scans: list[dict[str, Any]], **body: Any):  # type: ignore[no-untyped-def]
    payload: dict[str, Any] = {"scans": scans, **body}
    if event_id is not None:
        payload["event_id"] = event_id
    return await device.send("POST", "/api/device/scans", payload)


async def check(device: Device, show: Show, payload: str, seq: int):  # type: ignore[no-untyped-def]
    body = {"event_id": show.event_id, "payload": payload, "seq": seq}
    return await device.send("POST", "/api/device/check", body)


def stored(hub: Hub, device: Device) -> list[dict[str, Any]]:
    return list(
        hub.store.db.query(
            "SELECT * FROM scans WHERE device_id = ? ORDER BY device_seq", [device.device_id]
        )
    )


# -- 1. a scan is stored or refused, never acknowledged and dropped -------------------------


async def test_same_seq_with_other_content_is_refused_not_acknowledged(
    hub: Hub, show: Show, north: Device
) -> None:
    now = hub.clock()
    first = [scan(1, now, show.tickets[0]), scan(2, now + 1, show.tickets[1])]
    resp = await upload(north, show.event_id, first)
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked"] == [1, 2]
    # The identical batch again (a lost answer): acknowledged, nothing new stored.
    again = await upload(north, show.event_id, first)
    assert again.json()["acked"] == [1, 2] and "refused" not in again.json()
    # A wiped or cloned gate starting its seq at 1 again with other scans: seq 1 and 2 are
    # refused by code, seq 3 is new and stored.
    clone = [scan(1, now + 50, show.tickets[2]), scan(2, now + 51, show.tickets[3])]
    clone.append(scan(3, now + 52, show.tickets[4]))
    resp = await upload(north, show.event_id, clone)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["acked"] == [3]
    assert [(r["seq"], r["code"]) for r in body["refused"]] == [
        (1, "seq_conflict"),
        (2, "seq_conflict"),
    ]
    rows = stored(hub, north)
    assert [(r["device_seq"], r["ticket_id"]) for r in rows] == [
        (1, show.tickets[0]),
        (2, show.tickets[1]),
        (3, show.tickets[4]),
    ]


async def test_online_check_with_a_reused_seq_and_another_code_is_a_conflict(
    hub: Hub, show: Show, north: Device
) -> None:
    code_a = await credential_text(hub, show.tickets[0])
    code_b = await credential_text(hub, show.tickets[2])
    first = await check(north, show, code_a, 7)
    assert first.status_code == 200 and first.json()["verdict"] == "admit"
    retry = await check(north, show, code_a, 7)
    assert retry.json()["repeated"] is True and retry.json()["ticket_id"] == show.tickets[0]
    other = await check(north, show, code_b, 7)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "seq_conflict"
    # ticket b was never judged: it still gets in on a fresh seq
    fresh = await check(north, show, code_b, 8)
    assert fresh.json()["verdict"] == "admit"


async def test_every_enrolment_is_a_new_device_and_a_deactivated_one_stays_so(hub: Hub) -> None:
    async def spend(hardware_id: str) -> Device:
        made = await hub.client.post(
            f"/api/admin/venues/{hub.a.venue_id}/enrollments",
            json={"name": "North scanner"},
            headers=hub.auth(hub.a.manager_token),
        )
        device = Device(hub, secrets.token_bytes(32))
        resp = await hub.client.post(
            "/api/device/enroll",
            json={
                "code": made.json()["code"],
                "hardware_id": hardware_id,
                "public_key": device.public_key,
            },
        )
        assert resp.status_code == 201, resp.text
        device.device_id = resp.json()["device_id"]
        return device

    first = await spend("raspberrypi-0123456789abcdef")
    second = await spend("raspberrypi-0123456789abcdef")  # same box, wiped or second database
    assert first.device_id != second.device_id
    # the first one is not locked out by the second
    assert (await first.send("POST", "/api/device/heartbeat", {})).status_code == 200
    assert (await second.send("POST", "/api/device/heartbeat", {})).status_code == 200
    off = await hub.client.post(
        f"/api/admin/devices/{first.device_id}/deactivate", headers=hub.auth(hub.a.manager_token)
    )
    assert off.status_code == 200, off.text
    third = await spend("raspberrypi-0123456789abcdef")  # a fresh code and a known hardware id
    assert third.device_id not in {first.device_id, second.device_id}
    refused = await first.send("POST", "/api/device/heartbeat", {})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "device_deactivated"
    device = hub.store.get_device(first.device_id)
    assert device is not None and not device["active"]


# -- 2. a device writes only into its own venue's events -------------------------------------


async def test_scans_for_another_tenants_event_are_refused_and_count_nowhere(hub: Hub) -> None:
    victim = add_show(hub, hub.b)
    guard = await enroll(hub, hub.b.manager_token, hub.b.venue_id, gate_id=victim.north)
    mine = add_show(hub, hub.a)
    attacker = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=mine.north)
    now = hub.clock()
    resp = await upload(attacker, victim.event_id, [scan(1, now - 60_000, victim.tickets[0])])
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "not_found"
    # Without an event, or under its own event with the victim's ticket: stored for audit at
    # most, never counted against the victim's ticket.
    await upload(attacker, None, [scan(2, now - 50_000, victim.tickets[0])])
    await upload(attacker, mine.event_id, [scan(3, now - 40_000, victim.tickets[0])])
    assert not [r for r in stored(hub, attacker) if r["event_id"] == victim.event_id]
    code = await credential_text_b(hub, victim.tickets[0])
    answer = await check(guard, victim, code, 1)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["verdict"], answer.json()["reason"]) == ("admit", "admitted")
    report = await hub.client.get(
        f"/api/admin/events/{victim.event_id}/reconciliation", headers=hub.auth(hub.b.manager_token)
    )
    assert report.status_code == 200, report.text
    assert attacker.device_id not in report.text


async def credential_text_b(hub: Hub, ticket_id: str) -> str:
    resp = await hub.client.get(
        f"/api/admin/tickets/{ticket_id}/credential", headers=hub.auth(hub.b.box_office_token)
    )
    assert resp.status_code == 200, resp.text
    return resp.text


# -- 3. no number a device sends can poison a ticket ----------------------------------------

YEAR_10000_MS = 253_402_300_800_000


IN_A_SCAN = [
    {"at_ms": YEAR_10000_MS},
    {"at_ms": 10**30},
    {"seq": 10**30},
    {"seq": 2**63},
    {"clock_offset_ms": 10**30},
]
BESIDE_THE_SCANS = [
    {"manifest_revision": 10**30},
    {"peer_cursor": 10**30},
    {"peer_cursor": -1},
    {"clock_offset_ms": 10**30},
]


@pytest.mark.parametrize(
    ("in_scan", "beside", "code"),
    [
        *[pytest.param(bad, {}, "invalid_scan", id=f"scan-{bad}") for bad in IN_A_SCAN],
        *[pytest.param({}, bad, "invalid_field", id=f"body-{bad}") for bad in BESIDE_THE_SCANS],
    ],
)
async def test_an_absurd_number_in_an_upload_is_refused_with_a_code(
    hub: Hub, show: Show, north: Device, in_scan: dict[str, int], beside: dict[str, int], code: str
) -> None:
    """In a scan row it is that scan's error (invalid_scan), beside the scans the batch's
    (invalid_field); either way nothing of the batch is stored."""
    bad = {**scan(1, hub.clock(), show.tickets[0]), **in_scan}
    resp = await upload(north, show.event_id, [bad], **beside)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code
    assert stored(hub, north) == []


@pytest.mark.parametrize(
    "body",
    [
        {"pending_uploads": 10**30},
        {"manifest_revisions": {"e": 10**30}},
        {"hub_keys_version": 10**30},
    ],
)
async def test_an_absurd_number_in_a_heartbeat_is_refused(hub: Hub, body: dict[str, Any]) -> None:
    gate = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    resp = await gate.send("POST", "/api/device/heartbeat", body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_field"


async def test_a_poisoned_stored_time_breaks_no_reader(
    hub: Hub, show: Show, north: Device, tmp_path: Path
) -> None:
    """A row stored before the edge checked times (or by any other path) must not crash the
    online check, the reconciliation report, the peer feed or a gate merging it."""
    other = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    tid = show.tickets[0]
    ok = await upload(north, show.event_id, [scan(1, hub.clock() - 60_000, tid)])
    assert ok.status_code == 200, ok.text
    with hub.store._writing():  # as if a device had slipped it past the edge
        hub.store.db.execute(
            "UPDATE scans SET scanned_ms = ? WHERE device_id = ?",
            [YEAR_10000_MS + 5, north.device_id],
        )
    code = await credential_text(hub, tid)
    innocent = await credential_text(hub, show.tickets[2])
    answers = await asyncio.gather(check(other, show, code, 1), check(other, show, innocent, 2))
    for answer in answers:
        assert answer.status_code == 200, answer.text
    assert answers[1].json()["verdict"] == "admit"
    assert answers[0].json()["verdict"] in {"admit", "deny"}
    report = await hub.client.get(
        f"/api/admin/events/{show.event_id}/reconciliation", headers=hub.auth(hub.a.manager_token)
    )
    assert report.status_code == 200, report.text
    peers = await upload(
        other, show.event_id, [scan(9, hub.clock(), show.tickets[4])], peer_cursor=0
    )
    assert peers.status_code == 200, peers.text
    assert peers.json()["peer_scans"], "the peer feed still carries the stored entry"


# -- 7. one clock and one gate name across the hub -----------------------------------------


async def test_live_push_and_online_check_correct_the_senders_clock(hub: Hub) -> None:
    """Gate B runs two hours slow and says so (its measured offset): its entry must reach the
    other gate, and the online check, at the time it happened, under the hub's gate name."""
    show = add_show(hub, hub.a)
    slow = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    listener = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    tid = show.tickets[0]
    path = f"/api/device/live?event_id={show.event_id}"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(hub.url + path, headers=listener.signed("GET", path)) as ws,
    ):
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        now = hub.clock()
        resp = await upload(
            slow,
            show.event_id,
            [scan(1, now - 2 * HOUR_MS - 10_000, tid)],
            clock_offset_ms=2 * HOUR_MS,
        )
        assert resp.status_code == 200, resp.text
        pushed = await ws.receive_json(timeout=5)
    assert pushed["type"] == "entry_state" and pushed["ticket_id"] == tid
    assert abs(pushed["at_ms"] - (now - 10_000)) < 1_000, pushed
    assert pushed["gate_name"] == "North", pushed  # the hub's gate, not the device's "Gate B"
    peers = await upload(listener, show.event_id, [scan(1, now, show.tickets[4])], peer_cursor=0)
    same = [p for p in peers.json()["peer_scans"] if p["ticket_id"] == tid]
    assert [(p["at_ms"], p["gate_name"]) for p in same] == [(pushed["at_ms"], pushed["gate_name"])]
    code = await credential_text(hub, tid)
    answer = (await check(listener, show, code, 2)).json()
    assert (answer["verdict"], answer["reason"]) == ("deny", "already_admitted"), answer
    assert "North" in answer["message"] and "(0 min ago)" in answer["message"], answer


async def test_a_gate_that_says_nothing_of_its_clock_is_taken_at_its_word(
    hub: Hub, show: Show, north: Device
) -> None:
    resp = await upload(north, show.event_id, [scan(1, hub.clock(), show.tickets[0])])
    assert resp.status_code == 200
    row = stored(hub, north)[0]
    assert row["clock_offset_ms"] == 0 and json.loads(row["detail_json"])["gate"] == "Gate B"


async def test_a_check_that_cannot_be_judged_fails_alone_not_its_batch(hub: Hub) -> None:
    """A ticket row no reader can take (damaged outside the hub's edge) fails its own checks
    with 503, and the checks judged in the same transaction still commit."""
    show = add_show(hub, hub.a, n_tickets=12)
    gates = [
        await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north) for _ in range(2)
    ]
    broken = show.tickets[0]
    with hub.store._writing():
        hub.store.db.execute("UPDATE tickets SET valid_days_json = '{' WHERE id = ?", [broken])
    innocent = [t for i, t in enumerate(show.tickets) if i % 3 != 2 and t != broken]
    codes = [await credential_text(hub, t) for t in [broken, *innocent]]
    answers = await asyncio.gather(
        *(check(gates[i % 2], show, code, 100 + i) for i, code in enumerate(codes))
    )
    assert answers[0].status_code == 503 and answers[0].json()["error"]["code"] == "check_failed"
    for answer in answers[1:]:
        assert answer.status_code == 200, answer.text
        assert answer.json()["verdict"] == "admit"
    assert [
        r["ticket_id"] for r in hub.store.db["scans"].rows_where("ticket_id = ?", [broken])
    ] == []


async def test_a_gate_the_hub_does_not_know_is_named_alike_by_the_check_and_the_feed(
    hub: Hub, show: Show, north: Device
) -> None:
    """A device with no hub gate: every reader names the gate it reported, the online check
    as the peer feed does."""
    loose = await enroll(hub, hub.a.manager_token, hub.a.venue_id)  # no gate assigned
    tid = show.tickets[0]
    resp = await upload(loose, show.event_id, [scan(1, hub.clock() - 5_000, tid, gate="Side door")])
    assert resp.status_code == 200, resp.text
    peers = await upload(
        north, show.event_id, [scan(1, hub.clock(), show.tickets[4])], peer_cursor=0
    )
    assert [p["gate_name"] for p in peers.json()["peer_scans"] if p["ticket_id"] == tid] == [
        "Side door"
    ]
    answer = (await check(north, show, await credential_text(hub, tid), 2)).json()
    assert answer["reason"] == "already_admitted"
    assert "Already admitted at Side door," in answer["message"], answer
