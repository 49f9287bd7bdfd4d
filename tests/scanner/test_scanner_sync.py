"""Gate sync against the real hub on 127.0.0.1: a gate enrolled the real way, its scans
pushed in order and marked only once acknowledged, the link going offline and back as the
hub is stopped and restarted on the same port, manifests pulled full / 304 / delta, and the
clock offset measured. The worker's HTTP runs in a thread so the hub's event loop can answer.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import httpx
import pytest

from hub.store_api import CatalogueImport
from manifests.admission_types import Decision, Direction
from manifests.policy import HOUR_MS, event_to_hold
from protocol.native import public_key
from protocol.reasons import Reason, Verdict
from scanner.connection import ConnectionMonitor, LinkPolicy, LinkState
from scanner.hub_client import HubClient, HubError, OffsetEstimator
from scanner.service import GateService
from scanner.settings import (
    CLOCK_OFFSET,
    DEVICE_SEED_KEY,
    EVENT,
    HUB_EVENT,
    HUB_KEY_PREFIX,
    MANIFEST_SYNC,
    peer_cursor,
)
from scanner.store import GateStore
from scanner.sync import (
    SyncSnapshot,
    SyncWorker,
    acknowledged,
)
from tests.faultproxy import FaultProxy
from tests.gate_scans import record_admits
from tests.hub_fixtures import add_show, credential_text
from tests.live_hub import POLICY, LiveHub, hub_seqs, wait_for
from tests.scanner_fixtures import EnrolledGates


def record(store: GateStore, n: int, start_ms: int = 1_700_000_000_000) -> list[int]:
    """n committed scans (admits of distinct tickets), as the decision loop stores them."""
    return record_admits(
        store, [(f"sha256:{i:064x}", f"ticket-{i:04d}") for i in range(n)], start_ms
    )


async def test_offline_scans_go_up_in_order_and_are_marked_only_once_acked(
    live: LiveHub, gates: EnrolledGates
) -> None:
    store = await gates.enrol()
    seqs = record(store, 7)
    worker = gates.worker(store, batch_size=3)
    # Signed with a key the hub does not know: refused, and nothing is marked.
    real_seed = store.key(DEVICE_SEED_KEY)
    assert real_seed is not None
    store.set_key(DEVICE_SEED_KEY, bytes(32))
    assert not await asyncio.to_thread(worker.sync_once)
    assert worker.snapshot().last_error == "bad_signature"
    assert [r.seq for r in store.pending_uploads()] == seqs
    assert hub_seqs(live, store) == []

    store.set_key(DEVICE_SEED_KEY, real_seed)
    assert await asyncio.to_thread(worker.sync_once)
    assert store.pending_uploads() == []
    rows = live.hub.store.scans_of_device(store.device_id)
    assert [r["device_seq"] for r in rows] == seqs
    # Arrival order (hub row id) follows the gate's seq order, batch after batch.
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert [r["ticket_id"] for r in rows] == [f"ticket-{i:04d}" for i in range(7)]
    snap = worker.snapshot()
    assert snap.pending_uploads == 0 and snap.last_error is None
    assert snap.last_sync_ms is not None


async def test_an_attention_scan_confirmed_in_flight_stays_pending(
    live: LiveHub, gates: EnrolledGates
) -> None:
    store = await gates.enrol()
    decision = Decision(Verdict.ATTENTION, Reason.ATTENTION_REQUIRED, "Check ID", "ticket-att")
    seq = store.record_scan(
        "sha256:" + "a" * 64,
        decision,
        at_ms=1_700_000_000_000,
        direction=Direction.ENTRY,
        gate="North 1",
    )
    sent = store.pending_uploads()
    store.confirm_attention(seq, True)  # staff decided while the batch was on the wire
    assert store.mark_uploaded_as_sent(sent) == 0
    worker = gates.worker(store)
    assert await asyncio.to_thread(worker.sync_once)
    assert store.pending_uploads() == []
    (row,) = live.hub.store.scans_of_device(store.device_id)
    assert row["counted"] == 1  # the hub got the confirmation, not the stale pending scan


async def test_hub_down_goes_offline_with_backoff_and_back_uploads_exactly_once(
    live: LiveHub, gates: EnrolledGates
) -> None:
    store = await gates.enrol()
    seen: list[SyncSnapshot] = []
    worker = gates.worker(store, on_change=seen.append)
    assert worker.snapshot().state is LinkState.OFFLINE  # nothing known yet
    assert await asyncio.to_thread(worker.sync_once)
    assert worker.snapshot().state is LinkState.OFFLINE  # one good exchange is not enough
    assert await asyncio.to_thread(worker.sync_once)
    assert worker.snapshot().state is LinkState.ONLINE
    before = record(store, 3)
    assert await asyncio.to_thread(worker.sync_once)
    assert LinkState.SYNCING in {s.state for s in seen}  # shown while scans went up
    assert hub_seqs(live, store) == before

    await live.stop()
    offline_scans = record(store, 4, start_ms=1_700_000_100_000)
    ceilings, states = [], []
    for _ in range(4):
        assert not await asyncio.to_thread(worker.sync_once)
        ceilings.append(worker.monitor.backoff_ceiling_s())
        delay = worker.monitor.next_delay_s()
        assert ceilings[-1] / 2 <= delay <= ceilings[-1]  # jittered below the ceiling
        states.append(worker.snapshot().state)
    assert states == [LinkState.ONLINE, LinkState.ONLINE, LinkState.OFFLINE, LinkState.OFFLINE]
    assert ceilings == [1.0, 2.0, 4.0, 8.0]
    snap = worker.snapshot()
    assert snap.last_error == "hub_unreachable" and snap.pending_uploads == 4
    assert [r.seq for r in store.pending_uploads()] == offline_scans

    await live.restart()
    assert await asyncio.to_thread(worker.sync_once)
    assert worker.snapshot().state is LinkState.OFFLINE  # hysteresis: still offline
    assert store.pending_uploads() == []  # but the backlog already went up
    assert await asyncio.to_thread(worker.sync_once)
    assert worker.snapshot().state is LinkState.ONLINE
    assert hub_seqs(live, store) == before + offline_scans  # each scan exactly once


async def test_resending_a_batch_changes_nothing_at_the_hub(
    live: LiveHub, gates: EnrolledGates
) -> None:
    store = await gates.enrol()
    record(store, 5)
    batch = store.pending_uploads()
    worker = gates.worker(store)
    assert await asyncio.to_thread(worker.sync_once)
    first = [dict(r) for r in live.hub.store.scans_of_device(store.device_id)]
    # As if the hub's answer had been lost: the same batch again.
    body = {"scans": [r.to_json() for r in batch]}
    resp = await asyncio.to_thread(worker.hub.call, "POST", "/api/device/scans", body)
    assert resp.json()["acked"] == [r.seq for r in batch]
    assert [dict(r) for r in live.hub.store.scans_of_device(store.device_id)] == first


async def test_manifest_full_then_304_then_delta_with_progress(
    live: LiveHub, gates: EnrolledGates
) -> None:
    hub = live.hub
    show, store = await gates.enrol_at_show(n_tickets=30)
    kinds: list[str] = []

    def seen(resp: httpx.Response) -> None:
        if "/manifest" in resp.request.url.path:
            kinds.append(resp.headers.get("X-Manifest-Kind", str(resp.status_code)))

    progress: list[tuple[int, int | None]] = []
    http = httpx.Client(timeout=10, event_hooks={"response": [seen]})
    worker = gates.worker(
        store,
        http=http,
        event_id=show.event_id,
        on_progress=lambda received, total: progress.append((received, total)),
    )
    try:
        assert await asyncio.to_thread(worker.sync_once)
        first = store.manifest_revision()
        assert first is not None and store.ticket_count() == len(show.tickets)
        assert kinds == ["full"]
        total = progress[-1][1]
        assert total is not None and total > 0 and progress[-1] == (total, total)
        assert store.setting(MANIFEST_SYNC)["revision"] == first

        progress.clear()
        assert await asyncio.to_thread(worker.pull_manifest) is None
        assert kinds == ["full", "304"] and progress == []

        locked = show.tickets[0]
        await hub.lock([locked], "fraud_investigation")
        revision = await asyncio.to_thread(worker.pull_manifest)
        assert kinds == ["full", "304", "delta"]
        assert revision is not None and revision > first
        assert store.manifest_revision() == revision
        row = store.ticket(locked)
        assert row is not None and row.lock_reason == "fraud_investigation"
        assert store.ticket_count() == len(show.tickets)
        # The service decodes the stored (delta-applied) manifest at the new revision.
        header = GateService(store).header()
        assert header is not None and header.revision == revision
        # A worker not told the event syncs the one its installed manifest is for.
        assert SyncWorker(HubClient(store, hub.url, http=http)).event_id() == show.event_id
    finally:
        http.close()


async def test_clock_offset_is_measured_stored_and_fixes_a_far_off_gate_clock(
    live: LiveHub, gates: EnrolledGates
) -> None:
    hub = live.hub
    store = await gates.enrol()
    hub.clock.offset_ms = 1_234  # the hub runs 1.234 s ahead of the gate
    worker = gates.worker(store)
    assert await asyncio.to_thread(worker.sync_once)
    offset = store.setting(CLOCK_OFFSET)
    assert abs(offset - 1_234) < 500 and worker.snapshot().clock_offset_ms == offset
    # Uploads carry the offset; the hub keeps it beside each scan for reconciliation.
    record(store, 1)
    assert await asyncio.to_thread(worker.sync_once)
    (row,) = hub.store.scans_of_device(store.device_id)
    assert row["clock_offset_ms"] == worker.snapshot().clock_offset_ms
    assert abs(row["clock_offset_ms"] - 1_234) < 500
    worker.stop()

    # A gate clock 10 minutes slow: the hub refuses its signature, the worker learns the
    # hub's time from the refusal and signs with corrected time from then on.
    hub.clock.offset_ms = 0
    store.set_setting(CLOCK_OFFSET, None)

    def slow_clock() -> int:
        return time.time_ns() // 1_000_000 - 600_000

    record(store, 2)
    hub_client = HubClient(store, hub.url, slow_clock)
    worker = gates.adopt(SyncWorker(hub_client, monitor=ConnectionMonitor(POLICY)))
    assert worker.hub.offset is None
    assert not await asyncio.to_thread(worker.sync_once)
    assert worker.snapshot().last_error == "stale_timestamp"
    assert abs(worker.hub.offset - 600_000) < 2_000  # from the Date header: whole seconds
    assert await asyncio.to_thread(worker.sync_once)
    assert abs(store.setting(CLOCK_OFFSET) - 600_000) < 500  # then to the millisecond
    assert store.pending_uploads() == [] and len(hub_seqs(live, store)) == 3


async def test_background_thread_syncs_new_scans_and_reports_state(
    live: LiveHub, gates: EnrolledGates
) -> None:
    store = await gates.enrol()
    states: list[LinkState] = []
    worker = gates.worker(store, on_change=lambda s: states.append(s.state))
    worker.start()
    seqs = record(store, 3)
    worker.wake()
    deadline = time.monotonic() + 10
    while (
        worker.snapshot().pending_uploads or worker.snapshot().state is not LinkState.ONLINE
    ) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert worker.snapshot().state is LinkState.ONLINE
    assert hub_seqs(live, store) == seqs
    assert LinkState.ONLINE in states


async def test_a_scan_wakes_an_upload_alone_and_a_moved_revision_pulls_the_manifest(
    live: LiveHub, gates: EnrolledGates
) -> None:
    """Between whole cycles (heartbeat, upload, manifest) a scan's wake sends its upload
    and nothing else, unless the upload's answer says the manifest moved; the hub saying
    tickets changed brings a whole cycle at once."""
    show, store = await gates.enrol_at_show(n_tickets=30)
    paths: list[str] = []
    bodies: list[bytes] = []

    def sent(request: httpx.Request) -> None:
        paths.append(request.url.path)
        if request.url.path == "/api/device/scans":
            bodies.append(request.read())

    http = httpx.Client(timeout=10, event_hooks={"request": [sent]})
    seldom = LinkPolicy(fail_after=3, recover_after=1, slow_after_s=2.0, poll_s=600.0)
    worker = gates.worker(
        store, http=http, event_id=show.event_id, monitor=ConnectionMonitor(seldom)
    )
    worker.start()
    assert await wait_for(lambda: store.manifest_revision() is not None and "/scans" not in paths)
    assert "/api/device/heartbeat" in paths
    revision = store.manifest_revision()

    def scanned(n: int) -> list[int]:
        at = time.time_ns() // 1_000_000
        return record_admits(store, [(f"sha256:{n:064x}", show.tickets[n])], at)

    paths.clear()
    seqs = scanned(1)
    worker.wake()
    assert await wait_for(lambda: hub_seqs(live, store) == seqs and not store.pending_uploads())
    assert paths == ["/api/device/scans"]

    await live.hub.lock([show.tickets[5]], "fraud_investigation")
    paths.clear()
    seqs += scanned(2)
    worker.wake()
    assert await wait_for(lambda: store.manifest_revision() != revision)
    assert paths[0] == "/api/device/scans" and "/api/device/heartbeat" not in paths
    assert any(p.endswith("/manifest") for p in paths), paths

    paths.clear()
    worker.wake_whole()
    assert await wait_for(lambda: "/api/device/heartbeat" in paths)
    assert await wait_for(lambda: not worker._cycle.locked())

    bodies.clear()  # with the live socket open, an upload alone asks for no peer entries
    worker.live_connected = lambda: True
    scanned(3)
    worker.wake()
    assert await wait_for(lambda: not store.pending_uploads() and len(bodies) == 1)
    assert "peer_cursor" not in json.loads(bodies[0])
    scanned(4)
    worker.wake_whole()  # a whole cycle asks again: what the socket missed comes there
    assert await wait_for(lambda: not store.pending_uploads() and len(bodies) == 2)
    assert "peer_cursor" in json.loads(bodies[1])


async def test_other_gates_movements_come_back_with_the_ack_on_the_gate_clock(
    live: LiveHub, gates: EnrolledGates
) -> None:
    hub = live.hub
    hub.clock.offset_ms = 5_000  # both gates run 5 s behind the hub
    show = add_show(hub, hub.a)
    north = await gates.enrol("north.db", gate_id=show.north)
    south = await gates.enrol("south.db", gate_id=show.south)
    workers = [gates.worker(s, event_id=show.event_id) for s in (north, south)]
    ticket = show.tickets[0]
    for w in workers:  # both measure their offset first
        assert await asyncio.to_thread(w.sync_once), w.snapshot().last_error
    admitted_at = time.time_ns() // 1_000_000
    decision = Decision(Verdict.ADMIT, Reason.ADMITTED, "Welcome in.", ticket)
    north.record_scan("sha256:" + "b" * 64, decision, at_ms=admitted_at,
                      direction=Direction.ENTRY, gate="North")  # fmt: skip
    assert await asyncio.to_thread(workers[0].sync_once)
    assert south.history_for(ticket) == []
    record(south, 1)  # the south gate's next upload brings the north gate's entry back
    assert await asyncio.to_thread(workers[1].sync_once)
    (fact,) = south.history_for(ticket)
    assert (fact.device_id, fact.direction, fact.counted) == (
        north.device_id,
        Direction.ENTRY,
        True,
    )
    assert abs(fact.at_ms - admitted_at) < 500  # hub time back onto the south gate's clock
    cursor = south.setting(peer_cursor(show.event_id))  # one cursor per event
    assert isinstance(cursor, int) and cursor > 0


async def test_a_manifest_that_does_not_verify_changes_nothing_and_keeps_the_link(
    gates: EnrolledGates,
) -> None:
    show, store = await gates.enrol_at_show()
    real_key = store.key(f"{HUB_KEY_PREFIX}1")
    assert real_key is not None
    store.set_key(f"{HUB_KEY_PREFIX}1", public_key(bytes(range(1, 33))))  # not the hub's key
    worker = gates.worker(store, event_id=show.event_id)
    for _ in range(2):
        assert not await asyncio.to_thread(worker.sync_once)
    snap = worker.snapshot()
    assert snap.last_error == "manifest_bad_signature" and snap.manifest_revision is None
    assert store.ticket_count() == 0
    assert snap.state is LinkState.ONLINE  # the hub answered: only its manifest was refused
    store.set_key(f"{HUB_KEY_PREFIX}1", real_key)
    assert await asyncio.to_thread(worker.sync_once)
    assert store.ticket_count() == len(show.tickets) and worker.snapshot().last_error is None


def test_slow_answers_count_as_failures_and_recovery_needs_a_run_of_good_ones() -> None:
    monitor = ConnectionMonitor(POLICY, random.Random(1))
    monitor.good(0.01)
    monitor.good(0.01)
    assert monitor.online
    monitor.good(2.5)
    monitor.good(2.5)
    assert monitor.online and monitor.failures == 2
    monitor.good(0.01)  # a fast answer resets the run of failures
    for _ in range(3):
        monitor.good(3.0)
    assert not monitor.online
    monitor.good(0.01)
    monitor.bad()
    monitor.good(0.01)
    assert not monitor.online  # good exchanges must come in a row
    monitor.good(0.01)
    assert monitor.online and monitor.next_delay_s() == POLICY.poll_s
    for _ in range(10):
        monitor.bad()
    assert monitor.backoff_ceiling_s() == POLICY.backoff_cap_s
    assert POLICY.backoff_cap_s / 2 <= monitor.next_delay_s() <= POLICY.backoff_cap_s


def test_an_unenrolled_gate_sends_nothing_and_says_why(tmp_path: Path) -> None:
    with GateStore(tmp_path / "gate.db") as store:
        record(store, 1)
        worker = SyncWorker(
            HubClient(store, "http://127.0.0.1:9"), monitor=ConnectionMonitor(POLICY)
        )
        try:
            assert not worker.sync_once()
            assert worker.snapshot().last_error == "not_enrolled"
            assert worker.snapshot().pending_uploads == 1
        finally:
            worker.stop()


def test_acknowledgement_is_the_listed_seqs_of_the_batch(tmp_path: Path) -> None:
    # ScanBatchAnswer.acked is a list of seqs (a bare number, or anything else there, fails
    # the answer's decoding: test_a_malformed_upload_answer_fails_the_cycle_and_marks_nothing)
    with GateStore(tmp_path / "gate.db") as store:
        record(store, 4)
        batch = store.pending_uploads()
        assert [r.seq for r in acknowledged([1, 2, 4, 9], batch)] == [1, 2, 4]
        assert acknowledged([], batch) == [] and acknowledged([5, 9], batch[:2]) == []


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        # (offset_ms, rtt_ms) in arrival order -> the offset the gate uses after the last one
        ([(7_200_000, 2.0)], 7_200_000),
        # a reply held 300 ms on the way back: its midpoint is 150 ms off; the fast one wins
        ([(7_200_000, 2.0), (7_199_850, 302.0)], 7_200_000),
        ([(7_199_850, 302.0), (7_200_001, 3.0)], 7_200_001),
        # the device clock was set back an hour: the old samples cannot agree, start over
        ([(7_200_000, 2.0), (10_800_000, 40.0)], 10_800_000),
    ],
)
def test_clock_offset_trusts_the_shortest_round_trip(
    samples: list[tuple[int, float]], expected: int
) -> None:
    estimator = OffsetEstimator()
    offsets = [estimator.add(offset, rtt) for offset, rtt in samples]
    assert offsets[-1] == expected


async def test_a_gate_with_no_event_set_holds_the_one_the_hub_names(
    gates: EnrolledGates,
) -> None:
    """Enrolled on the spot (no --event): the first sync learns the venue's current event
    from the heartbeat and installs its manifest in the same cycle."""
    show, store = await gates.enrol_at_show(n_tickets=5)
    worker = gates.worker(store)  # no event_id given, none configured
    assert worker.event_id() is None
    assert await asyncio.to_thread(worker.sync_once)
    assert store.setting(HUB_EVENT) == show.event_id
    assert worker.event_id() == show.event_id and store.manifest_revision() is not None
    # An operator's choice wins over the hub's.
    store.set_setting(EVENT, "operator-choice")
    assert worker.event_id() == "operator-choice"


@pytest.mark.parametrize(
    ("now_h", "expected"),
    [
        (0, "tonight"),  # tonight's check-in is open (opens 4 h before its start at 2 h)
        (-3, "tonight"),  # still 1 h before check-in opens: the next to open
        (9, "tomorrow"),  # tonight's check-in closed (end 5 h + 2 h): tomorrow is next
        (30, "tomorrow"),  # tomorrow's and late's check-ins overlap: the first to close
        (32, "late"),  # tomorrow's check-in closed at 31 h
        (100, None),  # everything is over
    ],
)
def test_the_event_a_venue_holds_now(now_h: int, expected: str | None) -> None:
    h = 3_600_000
    events = [
        ("tonight", 2 * h, 5 * h),
        ("tomorrow", 26 * h, 29 * h),
        ("late", 28 * h, 40 * h),
    ]
    assert event_to_hold(events, now_h * h) == expected


async def test_a_cut_manifest_download_installs_nothing_and_the_retry_installs_it_whole(
    live: LiveHub, gates: EnrolledGates
) -> None:
    """Restart, never half-apply: a download cut mid-body (full or delta) leaves the gate on
    what it had; the next pull fetches the whole thing again."""
    hub = live.hub
    show, store = await gates.enrol_at_show(n_tickets=3000)
    proxy = FaultProxy(live.port)
    proxy.start()
    progress: list[tuple[int, int | None]] = []
    worker = gates.adopt(
        SyncWorker(
            HubClient(store, proxy.url),
            event_id=show.event_id,
            monitor=ConnectionMonitor(POLICY, random.Random(7)),
            on_progress=lambda received, total: progress.append((received, total)),
        )
    )
    try:
        proxy.set_mode("truncate")
        with pytest.raises(HubError):
            await asyncio.to_thread(worker.pull_manifest)
        assert proxy.counts["truncated"] >= 1
        received, total = progress[-1]
        assert total is not None and 0 < received < total  # cut in the middle of the body
        assert store.manifest_revision() is None and store.ticket_count() == 0

        proxy.set_mode("pass")
        first = await asyncio.to_thread(worker.pull_manifest)
        assert first is not None and store.ticket_count() == len(show.tickets)

        locked = show.tickets[0]
        await hub.lock([locked], "legal_hold")
        proxy.set_mode("truncate")
        with pytest.raises(HubError):
            await asyncio.to_thread(worker.pull_manifest)
        assert store.manifest_revision() == first
        row = store.ticket(locked)
        assert row is not None and row.lock_reason is None  # the old manifest, untouched

        proxy.set_mode("pass")
        moved = await asyncio.to_thread(worker.pull_manifest)
        assert moved is not None and moved > first
        row = store.ticket(locked)
        assert row is not None and row.lock_reason == "legal_hold"
        assert store.ticket_count() == len(show.tickets)
    finally:
        proxy.close()


async def test_scans_go_up_under_the_event_they_were_decided_for_when_the_hub_moves_on(
    live: LiveHub, gates: EnrolledGates
) -> None:
    hub = live.hub
    first, store = await gates.enrol_at_show(n_tickets=3)
    worker = gates.worker(store)
    assert await asyncio.to_thread(worker.sync_once)
    assert worker.installed_event() == first.event_id
    payload = await credential_text(hub, first.tickets[0])
    outcome = GateService(store).scan(payload)
    assert outcome is not None and outcome.decision.verdict == Verdict.ADMIT
    # A second event at the venue whose check-in closes first: the hub now names it.
    now, second = hub.clock(), "second-show"
    hub.store.import_catalogue(
        hub.a.id,
        CatalogueImport(
            events=[
                {
                    "id": second,
                    "venue_id": hub.a.venue_id,
                    "code": 4_000_001,
                    "name": "Matinee",
                    "timezone": "UTC",
                    "start_ms": now - 2 * HOUR_MS,
                    "end_ms": now + HOUR_MS,
                }
            ]
        ),
        "test",
        now,
    )
    assert await asyncio.to_thread(worker.sync_once)
    assert store.setting(HUB_EVENT) == second
    assert worker.installed_event() == second  # its manifest came down after the upload
    stored = live.hub.store.scans_of_device(store.device_id)
    assert [(s["event_id"], s["ticket_id"]) for s in stored] == [(first.event_id, first.tickets[0])]
