"""Online checks over the real server: the admission engine against the hub's state, the scan
stored with the decision, and concurrent checks of one ticket admitting exactly once."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from hub import check_writer
from hub.check_routes import CHECKS
from tests.hub_fixtures import (
    Device,
    Hub,
    Show,
    add_show,
    credential_text,
    enroll,
    start_hub,
    stop_hub,
)

_seq = itertools.count(1)


async def check(
    device: Device, show: Show, payload: str, seq: int | None = None, **extra: object
) -> httpx.Response:
    body = {"event_id": show.event_id, "payload": payload, "seq": seq or next(_seq), **extra}
    return await device.send("POST", "/api/device/check", body)


def stored(hub: Hub, ticket_id: str | None) -> list[dict]:  # type: ignore[type-arg]
    return [s for s in hub.store.db["scans"].rows if s["ticket_id"] == ticket_id]


async def test_admit_then_already_admitted_at_another_gate_with_the_first_gate_named(
    hub: Hub, show: Show, north: Device
) -> None:
    other = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    tid = show.tickets[0]  # GA, named
    code = await credential_text(hub, tid)
    first = await check(north, show, code)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["verdict"], body["reason"], body["ticket_id"]) == ("admit", "admitted", tid)
    assert body["display"]["holder"] == show.holders[tid]
    again = (await check(other, show, code)).json()
    assert (again["verdict"], again["reason"]) == ("deny", "already_admitted")
    assert "North" in again["message"]
    rows = stored(hub, tid)
    assert [(r["verdict"], r["counted"]) for r in rows] == [("admit", 1), ("deny", 0)]
    assert json.loads(rows[0]["detail_json"])["decision"]["verdict"] == "admit"


async def test_concurrent_checks_of_one_ticket_at_two_gates_admit_exactly_once(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=4)
    gates = [
        await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north) for _ in range(2)
    ]
    codes = [await credential_text(hub, tid) for tid in show.tickets[:2]]  # both GA
    calls = [check(gates[i % 2], show, codes[i % 4 // 2]) for i in range(24)]
    answers = [r.json() for r in await asyncio.gather(*calls)]
    for tid in show.tickets[:2]:
        verdicts = [a["verdict"] for a in answers if a["ticket_id"] == tid]
        assert len(verdicts) == 12 and verdicts.count("admit") == 1, verdicts
        assert sum(r["counted"] for r in stored(hub, tid)) == 1
        assert len(stored(hub, tid)) == 12


async def test_retry_with_the_same_seq_returns_the_stored_decision_and_stores_nothing(
    hub: Hub, show: Show, north: Device
) -> None:
    code = await credential_text(hub, show.tickets[1])
    first = (await check(north, show, code, seq=7)).json()
    retry = (await check(north, show, code, seq=7)).json()
    assert retry["repeated"] is True and first["repeated"] is False
    assert (
        (retry["verdict"], retry["scan_id"])
        == (first["verdict"], first["scan_id"])
        == (
            "admit",
            first["scan_id"],
        )
    )
    assert len(stored(hub, show.tickets[1])) == 1


async def test_zone_superseded_locked_and_garbage_are_refused_with_reasons(
    hub: Hub, show: Show, south: Device, north: Device
) -> None:
    ga, other_ga, vip = show.tickets[0], show.tickets[1], show.tickets[2]
    wrong_zone = (await check(south, show, await credential_text(hub, ga))).json()
    assert (wrong_zone["verdict"], wrong_zone["reason"]) == ("deny", "zone_denied")
    vip_at_ga = (await check(north, show, await credential_text(hub, vip))).json()
    assert vip_at_ga["verdict"] == "admit"  # VIP may use GA gates
    old = await credential_text(hub, other_ga)
    manager = hub.auth(hub.a.manager_token)
    await hub.client.post(f"/api/admin/tickets/{other_ga}/reissue", headers=manager)
    superseded = (await check(north, show, old)).json()
    assert (superseded["verdict"], superseded["reason"]) == ("deny", "superseded")
    await hub.lock([other_ga], "legal_hold")
    locked = (await check(north, show, await credential_text(hub, other_ga))).json()
    assert (locked["verdict"], locked["reason"]) == ("deny", "locked")
    garbage = await check(north, show, "HELLO WORLD")
    assert garbage.status_code == 200 and garbage.json()["verdict"] == "deny"
    assert garbage.json()["reason"] and garbage.json()["message"]
    assert len(stored(hub, None)) == 1  # a refused unreadable code is kept too


async def test_exit_gate_direction_records_an_exit(hub: Hub, show: Show, north: Device) -> None:
    code = await credential_text(hub, show.tickets[0])
    assert (await check(north, show, code)).json()["verdict"] == "admit"
    out = (await check(north, show, code, direction="exit")).json()
    assert (out["verdict"], out["reason"]) == ("exit", "exited")
    assert [r["direction"] for r in stored(hub, show.tickets[0])] == ["entry", "exit"]


async def test_bad_requests_are_refused_and_store_nothing(
    hub: Hub, show: Show, north: Device
) -> None:
    gateless = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    resp = await check(gateless, show, "X")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "no_gate"
    missing = await north.send("POST", "/api/device/check", {"event_id": show.event_id})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_field"
    bad_dir = await check(north, show, "X", direction="sideways")
    assert bad_dir.status_code == 400
    elsewhere = await enroll(hub, hub.b.manager_token, hub.b.venue_id)
    assert (await check(elsewhere, show, "X")).status_code == 404
    unsigned = await hub.client.post("/api/device/check", json={})
    assert unsigned.status_code == 401
    assert hub.store.db["scans"].count == 0


async def test_a_check_writer_killed_mid_batch_fails_the_check_and_the_retry_stores_it_once(
    tmp_path: Path,
) -> None:
    """The writer process is stopped with a check in it, then SIGKILLed: the gate gets a
    503 with a code and nothing is stored; its retry (same seq) goes to a new writer and is
    stored exactly once."""
    hub, runner = await start_hub(tmp_path, expiry_interval_s=None)
    try:
        show = add_show(hub, hub.a)
        gate = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
        assert (await check(gate, show, await credential_text(hub, show.tickets[1]))).is_success
        writer = runner.app[CHECKS].writer
        first_pid = writer.pid
        assert first_pid is not None
        code = await credential_text(hub, show.tickets[0])
        os.kill(first_pid, signal.SIGSTOP)
        in_flight = asyncio.create_task(check(gate, show, code, seq=900))
        await asyncio.sleep(0.3)
        assert not in_flight.done()  # waiting on the stopped writer
        os.kill(first_pid, signal.SIGKILL)
        failed = await in_flight
        assert failed.status_code == 503 and failed.json()["error"]["code"] == "check_failed"
        assert stored(hub, show.tickets[0]) == []
        retry = await check(gate, show, code, seq=900)
        assert retry.status_code == 200 and retry.json()["verdict"] == "admit"
        assert writer.pid not in (None, first_pid)
        assert len(stored(hub, show.tickets[0])) == 1
    finally:
        await stop_hub(hub, runner)


async def test_batches_queued_at_the_writer_share_one_transaction_and_keep_their_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four batches sent while the writer is stopped reach it together and go into one
    transaction; each gets its own answer. The hub may hold one gate's event facts at a
    time here (MAX_CONTEXTS = 1), so every batch tells the writer to drop the facts the
    batch before it needed: none of the four may lose its own."""
    monkeypatch.setattr(check_writer, "MAX_CONTEXTS", 1)
    hub, runner = await start_hub(tmp_path, expiry_interval_s=None)
    try:
        show = add_show(hub, hub.a)
        north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
        south = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
        ga, other_ga, vip = show.tickets[0], show.tickets[1], show.tickets[2]
        codes = {t: await credential_text(hub, t) for t in (ga, other_ga, vip)}
        writer = runner.app[CHECKS].writer
        await writer.start()
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGSTOP)
        try:
            calls = []
            for gate, ticket in ((north, ga), (south, vip), (north, other_ga), (south, ga)):
                calls.append(asyncio.create_task(check(gate, show, codes[ticket])))
                await asyncio.sleep(0.05)  # its own turn of the loop: a batch of its own
        finally:
            os.kill(writer.pid, signal.SIGCONT)
        answers = [(await call).json() for call in calls]
        assert [(a["verdict"], a["reason"], a["ticket_id"]) for a in answers] == [
            ("admit", "admitted", ga),
            ("admit", "admitted", vip),
            ("admit", "admitted", other_ga),
            ("deny", "zone_denied", ga),
        ]
        assert len({a["scan_id"] for a in answers}) == 4
    finally:
        await stop_hub(hub, runner)
