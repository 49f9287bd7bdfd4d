"""The hub's live push into a gate's history: a real hub on 127.0.0.1, two gates enrolled the
real way. A scan at gate A is uploaded, the hub pushes it over B's WebSocket, B merges it, and
B's very next local decision refuses the same code naming A's gate."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from hub.live import LIVE
from manifests.admission_types import Direction
from protocol.reasons import Reason, Verdict
from scanner.hub_client import HubClient
from scanner.live import LiveChannel, entry_facts
from scanner.service import GateService
from scanner.settings import EVENT, HUB_EVENT
from scanner.store import GateStore
from scanner.sync import SyncWorker
from tests.app_pilot import piloted, wedge
from tests.hub_fixtures import Show, add_show
from tests.live_hub import LiveHub, wait_for
from tests.scanner_fixtures import EnrolledGates


async def two_gates_at_north(
    live: LiveHub, gates: EnrolledGates
) -> tuple[Show, GateStore, GateStore]:
    """A show on now, and gates A (North 1) and B (North 2) enrolled at its north gate."""
    show = add_show(live.hub, live.hub.a)
    gate_a = await gates.enrol("a.db", gate_id=show.north, name="North 1")
    gate_b = await gates.enrol("b.db", gate_id=show.north, name="North 2")
    return show, gate_a, gate_b


async def test_a_scan_at_one_gate_is_refused_at_the_next_within_moments(
    live: LiveHub, gates: EnrolledGates
) -> None:
    hub = live.hub
    show, gate_a, gate_b = await two_gates_at_north(live, gates)
    workers = [gates.worker(s, event_id=show.event_id) for s in (gate_a, gate_b)]
    channel = LiveChannel(gate_b, hub.url, event_id=show.event_id)
    merged: list[str] = []
    channel.on_merge = lambda facts: merged.extend(f.ticket_id for f in facts)
    try:
        for w in workers:  # manifest down, clock measured
            assert await asyncio.to_thread(w.sync_once), w.snapshot().last_error
        ticket = show.tickets[0]  # named: the hub issued its native credential with the manifest
        payload = hub.store.credentials_of([ticket])[(ticket, 0)]
        channel.start()
        assert await asyncio.to_thread(channel.connected.wait, 10)

        outcome = GateService(gate_a).scan(payload)
        assert outcome is not None and outcome.decision.verdict is Verdict.ADMIT
        assert gate_b.history_for(ticket) == []
        # A uploads (what the app's wake() after a commit does); B does NOT sync.
        assert await asyncio.to_thread(workers[0].sync_once)
        assert await wait_for(lambda: gate_b.history_for(ticket) != [])
        (fact,) = gate_b.history_for(ticket)
        assert (fact.device_id, fact.gate_name, fact.counted) == (gate_a.device_id, "North", True)
        assert fact.direction is Direction.ENTRY
        assert abs(fact.at_ms - outcome.at_ms) < 1_000
        assert merged == [ticket] and channel.received == 1

        refused = GateService(gate_b).scan(payload)
        assert refused is not None
        assert refused.decision.verdict is Verdict.DENY
        assert refused.decision.reason is Reason.ALREADY_ADMITTED
        assert "Already admitted at North," in refused.decision.message

        # The same entry coming back with B's next upload ack is merged once only.
        assert await asyncio.to_thread(workers[1].sync_once)
        assert [f.device_id for f in gate_b.history_for(ticket)] == [gate_a.device_id]
    finally:
        await asyncio.to_thread(channel.stop)


async def test_the_channel_reconnects_after_the_hub_comes_back(
    live: LiveHub, gates: EnrolledGates
) -> None:
    hub = live.hub
    show, gate_a, gate_b = await two_gates_at_north(live, gates)
    worker_a = gates.worker(gate_a, event_id=show.event_id)
    channel = LiveChannel(gate_b, hub.url, event_id=show.event_id)
    try:
        channel.start()
        assert await asyncio.to_thread(channel.connected.wait, 10)
        await live.stop()
        assert await wait_for(lambda: not channel.connected.is_set())
        await live.restart()
        assert await asyncio.to_thread(channel.connected.wait, 15)
        assert await asyncio.to_thread(worker_a.sync_once), worker_a.snapshot().last_error
        ticket = show.tickets[2]
        payload = hub.store.credentials_of([ticket])[(ticket, 0)]
        assert GateService(gate_a).scan(payload) is not None
        assert await asyncio.to_thread(worker_a.sync_once)
        assert await wait_for(lambda: gate_b.history_for(ticket) != [])
    finally:
        await asyncio.to_thread(channel.stop)


def test_an_unenrolled_gate_never_connects_and_stops_cleanly(tmp_path: Path) -> None:
    with GateStore(tmp_path / "g.db") as store:
        channel = LiveChannel(store, "http://127.0.0.1:9")
        channel.start()
        time.sleep(0.2)
        assert not channel.connected.is_set()
        assert channel.monitor.failures >= 1
        channel.stop()


def test_pushed_messages_become_history_facts_on_the_gate_clock() -> None:
    msg = {
        "type": "entry_state",
        "ticket_id": "t1",
        "at_ms": 10_000,
        "direction": "exit",
        "gate_name": "South",
        "device_id": "d1",
        "seq": 3,
        "counted": True,
        "verdict": "exit",
    }
    (fact,) = entry_facts(msg, offset_ms=2_500)
    assert (fact.ticket_id, fact.at_ms, fact.direction, fact.gate_name) == (
        "t1",
        7_500,
        Direction.EXIT,
        "South",
    )
    assert entry_facts({"type": "hello", "device_id": "d1"}, 0) == []
    assert entry_facts({**msg, "direction": "sideways"}, 0) == []
    assert entry_facts({k: v for k, v in msg.items() if k != "ticket_id"}, 0) == []
    assert json.loads(json.dumps(msg))  # the wire form is plain JSON


async def test_the_gate_app_shows_the_link_wakes_uploads_and_refuses_live_entries(
    live: LiveHub, gates: EnrolledGates
) -> None:
    from scanner.connection import ConnectionMonitor, LinkPolicy
    from scanner.widgets import StatusBar, VerdictPanel

    hub = live.hub
    show, gate_a, gate_b = await two_gates_at_north(live, gates)
    # Polling once a minute: within this test only a wake() after a commit can upload.
    slow_poll = ConnectionMonitor(LinkPolicy(recover_after=1, poll_s=60.0))
    sync_a = SyncWorker(HubClient(gate_a, hub.url), event_id=show.event_id, monitor=slow_poll)
    worker_b = gates.worker(gate_b, event_id=show.event_id)
    mine, theirs = show.tickets[0], show.tickets[2]
    assert await asyncio.to_thread(worker_b.sync_once), worker_b.snapshot().last_error
    async with piloted(
        GateService(gate_a), sync=sync_a, live=LiveChannel(gate_a, hub.url, event_id=show.event_id)
    ) as (app, pilot):
        bar = app.screen.query_one(StatusBar)
        assert await wait_for(lambda: "ONLINE · synced" in bar.text), bar.text
        assert app.service.status()["sync"]["state"] == "online"
        assert await asyncio.to_thread(app.live.connected.wait, 10)  # type: ignore[union-attr]

        await wedge(pilot, hub.store.credentials_of([mine])[(mine, 0)])
        assert app.screen.query_one(VerdictPanel).word == "ADMIT"
        assert await wait_for(
            lambda: [r["ticket_id"] for r in hub.store.scans_of_device(gate_a.device_id)] == [mine]
        )

        # Gate B admits another ticket and uploads; the app's live channel brings it in.
        payload = hub.store.credentials_of([theirs])[(theirs, 0)]
        assert GateService(gate_b).scan(payload) is not None
        assert await asyncio.to_thread(worker_b.sync_once)
        assert await wait_for(lambda: gate_a.history_for(theirs) != [])
        await wedge(pilot, payload)
        panel = app.screen.query_one(VerdictPanel)
        assert panel.word == "DENY" and "Already admitted at North," in panel.message


def test_the_status_bar_words_for_the_link() -> None:
    from scanner.widgets import link_text

    assert link_text({"connection": "offline"}) == "OFFLINE"
    loading = {"state": "syncing", "download": [300, 1200], "last_sync_ms": 1}
    assert link_text({"connection": "syncing", "sync": loading}) == "SYNCING [##......] 25%"
    never = {"state": "offline", "download": None, "last_sync_ms": None}
    assert link_text({"connection": "offline", "sync": never}) == "OFFLINE · never synced"
    synced = {"state": "online", "download": None, "last_sync_ms": 1_790_000_000_000}
    assert link_text({"connection": "online", "sync": synced}).startswith("ONLINE · synced ")


def test_sync_options_need_an_enrolled_gate_and_change_nothing(tmp_path: Path) -> None:
    from scanner.cli import main

    db = str(tmp_path / "g.db")
    assert main(["--db", db, "stream", "--sync"]) == 3  # refused: exit 3 (README)
    assert main(["--db", db, "stream", "--sync", "--event", " "]) == 3
    with GateStore(db) as store:
        assert store.setting(EVENT) is None
        assert store.pending_uploads() == []


async def test_the_channel_follows_the_gate_to_the_next_event(
    live: LiveHub, gates: EnrolledGates
) -> None:
    hub = live.hub
    show = add_show(hub, hub.a)
    gate = await gates.enrol("g.db", gate_id=show.north)
    gate.set_setting(HUB_EVENT, show.event_id)  # as a heartbeat would name it
    channel = LiveChannel(gate, hub.url)
    channel.event_recheck_s = 0.05
    try:
        channel.start()
        assert await asyncio.to_thread(channel.connected.wait, 10)
        assert channel.connected_path is not None and show.event_id in channel.connected_path
        gate.set_setting(HUB_EVENT, "the-next-event")
        assert await wait_for(
            lambda: (
                channel.connected_path is not None
                and channel.connected_path.endswith("the-next-event")
            )
        )
    finally:
        await asyncio.to_thread(channel.stop)


async def test_tickets_changed_at_the_hub_wake_the_gates_sync(
    live: LiveHub, gates: EnrolledGates
) -> None:
    """A backend pull that changed an event's tickets (hub/backends/runner.py) reaches the
    gate's channel as `tickets_changed`, which calls its sync worker's wake: the gate fetches
    the manifest delta now, not at its next poll."""
    show, _, gate_b = await two_gates_at_north(live, gates)
    channel = LiveChannel(gate_b, live.hub.url, event_id=show.event_id)
    woken: list[int] = []
    channel.on_tickets_changed = lambda: woken.append(1)
    try:
        channel.start()
        assert await asyncio.to_thread(channel.connected.wait, 10)
        live.runner.app[LIVE].tickets_changed({show.event_id: live.hub.a.venue_id})
        assert await wait_for(lambda: woken == [1])
        assert channel.received == 0  # not an entry: nothing merged into the history
    finally:
        await asyncio.to_thread(channel.stop)
