"""Live entry state over real WebSockets: a stored scan (upload or online check) reaches every
OTHER device of the venue, not the sender and not other venues."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from hub import live as hub_live
from hub.live import LIVE, MAX_BATCH, outgoing
from tests.device_api import connect, nothing_arrives, upload
from tests.hub_fixtures import Hub, add_show, credential_text, enroll
from tests.live_hub import LiveHub


async def test_uploads_and_checks_reach_the_other_devices_of_the_venue_only(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    south = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
    foreign = await enroll(hub, hub.b.manager_token, hub.b.venue_id)
    async with aiohttp.ClientSession() as session:
        ws_north = await connect(session, north)
        ws_south = await connect(session, south)
        ws_foreign = await connect(session, foreign)
        at = hub.clock()
        sent = await north.send("POST", "/api/device/scans", upload(show.event_id, "t-1", 1, at))
        assert sent.status_code == 200
        got = await ws_south.receive_json(timeout=5)
        assert got == {
            "type": "entry_state",
            "ticket_id": "t-1",
            "event_id": show.event_id,
            "at_ms": at,
            "direction": "entry",
            "gate_name": "North",
            "device_id": north.device_id,
            "seq": 1,
            "verdict": "admit",
            "counted": True,
        }
        assert await nothing_arrives(ws_north)
        assert await nothing_arrives(ws_foreign)

        code = await credential_text(hub, show.tickets[2])  # VIP, fits the south gate
        body = {"event_id": show.event_id, "payload": code, "seq": 5}
        checked = await south.send("POST", "/api/device/check", body)
        assert checked.json()["verdict"] == "admit"
        pushed = await ws_north.receive_json(timeout=5)
        assert (pushed["ticket_id"], pushed["gate_name"], pushed["device_id"]) == (
            show.tickets[2],
            "South",
            south.device_id,
        )
        assert pushed["counted"] is True and pushed["seq"] == 5
        assert await nothing_arrives(ws_south)
        assert await nothing_arrives(ws_foreign)
        for ws in (ws_north, ws_south, ws_foreign):
            await ws.close()


async def test_a_gate_that_reads_batches_gets_an_upload_as_one_message(hub: Hub) -> None:
    """Five scans stored at once reach a gate that asked for batches (`?batch=1`) as one
    Entries message, in order; a gate that did not ask gets five entry_state messages."""
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    batching = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
    single = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
    at = hub.clock()
    scans = [upload(show.event_id, f"t-{n}", n, at)["scans"][0] for n in range(1, 6)]
    async with aiohttp.ClientSession() as session:
        ws_batching = await connect(session, batching, "?batch=1")
        ws_single = await connect(session, single)
        body = {"event_id": show.event_id, "scans": scans}
        assert (await north.send("POST", "/api/device/scans", body)).status_code == 200
        got = await ws_batching.receive_json(timeout=5)
        assert got["type"] == "entries"
        assert [(e["type"], e["ticket_id"]) for e in got["entries"]] == [
            ("entry_state", f"t-{n}") for n in range(1, 6)
        ]
        assert await nothing_arrives(ws_batching)
        singles = [await ws_single.receive_json(timeout=5) for _ in range(5)]
        assert [(m["type"], m["ticket_id"]) for m in singles] == [
            ("entry_state", f"t-{n}") for n in range(1, 6)
        ]
        for ws in (ws_batching, ws_single):
            await ws.close()


async def test_a_batching_gate_gets_a_burst_in_one_message_after_a_prompt_first(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first entry after a quiet spell goes at once; what comes within BATCH_GAP_S of it
    (here three uploads, one after another) waits for the gap and goes as one message. A
    gate that did not ask for batches gets each entry as it is stored."""
    monkeypatch.setattr(hub_live, "BATCH_GAP_S", 2.0)
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    batching = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
    single = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
    at = hub.clock()
    async with aiohttp.ClientSession() as session:
        ws_batching = await connect(session, batching, "?batch=1")
        ws_single = await connect(session, single)
        first = upload(show.event_id, "t-1", 1, at)
        assert (await north.send("POST", "/api/device/scans", first)).status_code == 200
        prompt = await ws_batching.receive_json(timeout=1.0)  # not held for the gap
        assert (prompt["type"], prompt["ticket_id"]) == ("entry_state", "t-1")
        for n in range(2, 5):
            body = upload(show.event_id, f"t-{n}", n, at)
            assert (await north.send("POST", "/api/device/scans", body)).status_code == 200
        singles = [await ws_single.receive_json(timeout=1.0) for _ in range(4)]
        assert [m["ticket_id"] for m in singles] == ["t-1", "t-2", "t-3", "t-4"]
        burst = await ws_batching.receive_json(timeout=5)
        assert burst["type"] == "entries"
        assert [e["ticket_id"] for e in burst["entries"]] == ["t-2", "t-3", "t-4"]
        assert await nothing_arrives(ws_batching)
        for ws in (ws_batching, ws_single):
            await ws.close()


def test_what_queued_goes_out_in_order_with_runs_of_entries_batched() -> None:
    entries = [(f'{{"n":{n}}}', True) for n in range(MAX_BATCH + 2)]
    changed = ('{"type":"tickets_changed"}', False)
    queued = [entries[0], changed, *entries[1:]]
    sent = outgoing(queued, batches=True)
    assert sent[:2] == ['{"n":0}', changed[0]]  # a run of one stays as it is
    assert len(sent) == 4
    batch = json.loads(sent[2])
    assert batch["type"] == "entries"
    assert batch["entries"] == [{"n": n} for n in range(1, MAX_BATCH + 1)]  # at most MAX_BATCH
    assert sent[3] == f'{{"n":{MAX_BATCH + 1}}}'
    assert outgoing(queued, batches=False) == [text for text, _ in queued]


async def test_event_filter_and_online_count(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    sender = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    listener = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, listener, "?event_id=another-event")
        metrics = (await hub.client.get("/metrics")).text
        assert "hub_devices_online 1" in metrics.splitlines()
        at = hub.clock()
        await sender.send("POST", "/api/device/scans", upload(show.event_id, "t-9", 1, at))
        assert await nothing_arrives(ws)
        await ws.close()
        await asyncio.sleep(0.05)
        assert "hub_devices_online 0" in (await hub.client.get("/metrics")).text.splitlines()


async def test_unsigned_or_replayed_upgrade_is_refused(hub: Hub) -> None:
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(hub.url + "/api/device/live")
        assert refused.value.status == 401
        headers = device.signed("GET", "/api/device/live")
        ws = await session.ws_connect(hub.url + "/api/device/live", headers=headers)
        await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as replayed:
            await session.ws_connect(hub.url + "/api/device/live", headers=headers)
        assert replayed.value.status == 401


async def test_a_backend_change_tells_the_events_venue_to_sync_now(live: LiveHub) -> None:
    """After a pull changed tickets (hub/backends/runner.py), every device at that event's
    venue hears `tickets_changed` and nothing else does; a gate's live channel then wakes
    its sync worker (tests/scanner)."""
    hub = live.hub
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    foreign = await enroll(hub, hub.b.manager_token, hub.b.venue_id)
    async with aiohttp.ClientSession() as session:
        ws_north = await connect(session, north)
        ws_foreign = await connect(session, foreign)
        live.runner.app[LIVE].tickets_changed({show.event_id: hub.a.venue_id})
        got = await ws_north.receive_json(timeout=5)
        assert got == {"type": "tickets_changed", "event_id": show.event_id}
        assert await nothing_arrives(ws_foreign)
