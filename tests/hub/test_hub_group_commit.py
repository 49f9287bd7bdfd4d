"""Uploads that queue while the database thread is busy are stored in one transaction (one
fsync: hub/group_commit.py), each answered only after that commit; one bad upload among
them is refused alone, and a deactivated gate's scans are still kept for audit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from hub.store_api import DeviceScans, HubStorage
from hub.store_devices import StoredScans
from tests.device_api import upload
from tests.hub_fixtures import Hub, add_show, enroll


async def test_uploads_that_queue_together_share_one_commit(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    gates = [
        await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north) for _ in range(8)
    ]
    foreign = add_show(hub, hub.b)  # another tenant's event: refused, nothing stored
    statements: list[str] = []
    hub.store.db.conn.set_trace_callback(statements.append)
    assert hub.db is not None
    parked, release = threading.Event(), threading.Event()
    hub.db.submit(lambda store: (parked.set(), release.wait(30)))
    assert await asyncio.to_thread(parked.wait, 30)
    at = hub.clock()
    bodies = [upload(show.event_id, show.tickets[n % 6], 1, at) for n in range(len(gates))]
    bodies[3] = upload(foreign.event_id, foreign.tickets[0], 1, at)
    sending = [
        asyncio.create_task(gate.send("POST", "/api/device/scans", body))
        for gate, body in zip(gates, bodies, strict=True)
    ]
    try:
        await asyncio.sleep(0.5)  # every upload is waiting on the held database thread
        assert not any(task.done() for task in sending)
        statements.clear()
    finally:
        release.set()
    answers = await asyncio.gather(*sending)
    hub.store.db.conn.set_trace_callback(None)
    assert [a.status_code for a in answers] == [404 if n == 3 else 200 for n in range(8)]
    assert all(a.json()["acked"] == [1] for n, a in enumerate(answers) if n != 3)
    commits = [sql for sql in statements if sql.strip().upper() == "COMMIT"]
    assert len(commits) == 1, statements
    stored = {g.device_id: hub.store.scans_of_device(g.device_id) for g in gates}
    assert [len(stored[g.device_id]) for g in gates] == [0 if n == 3 else 1 for n in range(8)]


async def test_a_work_that_fails_leaves_the_others_and_nothing_is_heard_early(hub: Hub) -> None:
    ids = [(await enroll(hub, hub.a.manager_token, hub.a.venue_id)).device_id for _ in range(3)]
    heard: list[str] = []
    hub.store.scan_listeners.append(lambda device_id, scans: heard.append(device_id))
    statements: list[str] = []
    hub.store.db.conn.set_trace_callback(statements.append)

    def keep(device_id: str, seq: int) -> Callable[[HubStorage], StoredScans]:
        return lambda s: s.record_scans(
            DeviceScans(device_id, [_scan(seq)], deactivated=False), hub.clock()
        )

    def refuse(store: HubStorage) -> None:
        raise ValueError("a bad upload, refused before it writes")

    outcomes = hub.store.in_one_commit([keep(ids[0], 1), refuse, keep(ids[2], 1)])
    assert isinstance(outcomes[1], ValueError)
    assert [o.acked for o in outcomes if isinstance(o, StoredScans)] == [[1], [1]]
    assert heard == [ids[0], ids[2]]
    assert [s.strip().upper() for s in statements].count("COMMIT") == 1
    assert [len(hub.store.scans_of_device(d)) for d in ids] == [1, 0, 1]

    # One that fails halfway through its writes (its second scan breaks a constraint): the
    # group is rolled back, nobody heard of it, and each runs again alone, so that one
    # stores nothing, as without grouping.
    heard.clear()
    seen_during: list[list[str]] = []

    def look(store: HubStorage) -> StoredScans:
        seen_during.append(list(heard))
        return keep(ids[0], 2)(store)

    def half(store: HubStorage) -> StoredScans:
        broken = {**_scan(3), "scanned_ms": None}
        return store.record_scans(
            DeviceScans(ids[1], [_scan(2), broken], deactivated=False), hub.clock()
        )

    outcomes = hub.store.in_one_commit([look, half, keep(ids[2], 2)])
    hub.store.db.conn.set_trace_callback(None)
    assert seen_during[0] == []  # the group's first try: none heard before its commit
    assert isinstance(outcomes[1], Exception)
    assert [o.acked for o in outcomes if isinstance(o, StoredScans)] == [[2], [2]]
    assert heard == [ids[0], ids[2]]
    assert [len(hub.store.scans_of_device(d)) for d in ids] == [2, 0, 2]


def _scan(seq: int) -> dict[str, object]:
    row = upload("ev", "t-1", seq, 1_790_000_000_000)["scans"][0]
    return {**row, "event_id": None, "scanned_ms": row["at_ms"], "counted": 1}
