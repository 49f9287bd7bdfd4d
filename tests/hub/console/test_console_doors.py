"""The console's live doors page against the real hub: the store's running sums, the page, and
its event stream while real signed gates upload and report in."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hub.console import doors as doors_page
from hub.console import doors_feed
from hub.console.doors_feed import DoorsTally, entries_chart
from hub.console.session import SESSION_COOKIE
from hub.store_doors import MINUTE_MS
from protocol.signing import MAX_SKEW_MS
from tests.console_session import ConsoleClient, sign_in
from tests.hub_fixtures import Device, Hub, Show, add_show, enroll

_seq = itertools.count(1)


def scan(
    ticket_id: str | None,
    at_ms: int,
    verdict: str = "admit",
    reason: str = "admitted",
    direction: str = "entry",
    seq: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One scan as a gate uploads it."""
    return {
        "seq": next(_seq) if seq is None else seq,
        "at_ms": at_ms,
        "payload": f"code-{ticket_id}",
        "ticket_id": ticket_id,
        "verdict": verdict,
        "reason": reason,
        "direction": direction,
        "gate": "North",
        **extra,
    }


async def upload(device: Device, event_id: str, *scans: dict[str, Any]) -> dict[str, Any]:
    resp = await device.send("POST", "/api/device/scans", {"event_id": event_id, "scans": scans})
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


async def heartbeat(device: Device, **fields: Any) -> None:
    resp = await device.send("POST", "/api/device/heartbeat", fields)
    assert resp.status_code == 200, resp.text


async def gates_of_a(hub: Hub) -> tuple[Show, Device, Device]:
    """Tenant a's show, a scanner at its North gate (GA) and one at its South gate (VIP)."""
    show = add_show(hub, hub.a, n_tickets=9)
    north = await enroll(
        hub, hub.a.manager_token, hub.a.venue_id, name="North 1", gate_id=show.north
    )
    south = await enroll(
        hub, hub.a.manager_token, hub.a.venue_id, name="South 1", gate_id=show.south
    )
    return show, north, south


def totals(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', html))


# -- the store's sums and the tally -------------------------------------------------------


async def test_door_counts_read_only_what_was_stored_since(hub: Hub) -> None:
    show, north, south = await gates_of_a(hub)
    now = hub.clock()
    t = show.tickets
    await upload(
        north, show.event_id, scan(t[0], now), scan(t[1], now), scan(None, now, "deny", "malformed")
    )
    await upload(
        south, show.event_id, scan(t[2], now), scan(t[2], now + 1, "deny", "already_admitted")
    )
    since = now - 2 * 3_600_000
    first = hub.store.door_counts(show.event_id, 0, since)
    tally = DoorsTally()
    tally.add(first)
    assert (tally.zones["GA"].admitted, tally.zones["VIP"].admitted) == (2, 1)
    assert tally.zones["GA"].denied == {"malformed": 1}  # no ticket: the gate's one zone
    assert tally.zones["VIP"].denied == {"already_admitted": 1}
    assert tally.devices[north.device_id].scans == 3
    assert sum(n for _, _, n in first.entries_by_minute) == 3

    await upload(north, show.event_id, scan(t[0], now + 5, "exit", "exited", "exit"))
    again = hub.store.door_counts(show.event_id, first.last_scan_id, since)
    assert [(g.verdict, g.scans) for g in again.groups] == [("exit", 1)]  # only the new scan
    tally.add(again)
    assert tally.zones["GA"].inside == 1 and tally.zones["GA"].exits == 1
    everything = DoorsTally()
    everything.add(hub.store.door_counts(show.event_id, 0, since))
    assert everything == tally  # read at once or bit by bit, the same sums


async def test_a_deactivated_gates_scans_count_nowhere(hub: Hub) -> None:
    show, north, _ = await gates_of_a(hub)
    manager = await sign_in(hub, "a", "venue_manager")
    await manager.post(f"/devices/{north.device_id}/deactivate")
    now = hub.clock()
    resp = await north.send(
        "POST",
        "/api/device/scans",
        {"event_id": show.event_id, "scans": [scan(show.tickets[0], now)]},
    )
    assert resp.status_code == 403  # refused, its scan kept for the record
    assert hub.store.latest_device_scans(north.device_id, 5)
    counts = hub.store.door_counts(show.event_id, 0, now - 60_000)
    assert counts.groups == [] and counts.entries_by_minute == []


def test_the_chart_has_one_bar_per_busy_minute_of_the_last_two_hours() -> None:
    now = 1_800_000_000_000
    minute = now // MINUTE_MS
    chart = entries_chart({minute: 4, minute - 119: 2, minute - 120: 50}, now, "Europe/London")
    assert chart.peak == 4 and chart.total == 6  # the minute before the window is not drawn
    assert len(chart.bars) == 2
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.y == chart.plot_bottom - tallest.height
    assert chart.bars[0].x < chart.bars[1].x  # oldest on the left
    assert "6 in all" in chart.summary


# -- the page ------------------------------------------------------------------------------


async def test_the_doors_page_shows_gates_zones_and_counts(hub: Hub) -> None:
    show, north, south = await gates_of_a(hub)
    now = hub.clock()
    t = show.tickets
    await heartbeat(north, pending_uploads=3, manifest_revisions={show.event_id: 1})
    await upload(
        north, show.event_id, scan(t[0], now), scan(t[1], now), scan(t[3], now, "deny", "locked")
    )
    await upload(south, show.event_id, scan(t[2], now))
    staff = await sign_in(hub, "a", "venue_staff")
    page = await staff.get("/doors")
    assert page.status_code == 200, page.text
    html = page.text
    expected = {"admitted": "3", "inside": "3", "denied": "1", "online": "2 of 2"}
    assert totals(html).items() >= expected.items()  # online: heard lately, live link or not
    assert "Ticket is locked." in html  # the reason's sentence, from protocol/reasons.py
    assert "North 1" in html and "South 1" in html
    row = html[html.index(f'data-device="{north.device_id}"') :]
    row = row[: row.index("</tr>")]
    assert "Online" in row and ">3<" in row and "rev 1" in row
    assert "<svg" in html and "Entries per minute, last 2 hours: 3 in all" in html
    assert 'data-stream="/doors/stream?venue=' in html
    assert re.search(r"<script>|style=\"| on\w+=", html) is None  # the CSP allows none


async def test_the_doors_page_keeps_to_the_users_venue_and_role(hub: Hub) -> None:
    show_b = add_show(hub, hub.b)
    manager = await sign_in(hub, "a", "venue_manager")
    foreign = await manager.get(f"/doors?event={show_b.event_id}")
    assert foreign.status_code == 404
    stream = await manager.get(f"/doors/stream?event={show_b.event_id}")
    assert stream.status_code == 404
    box_office = await sign_in(hub, "a", "box_office")
    assert (await box_office.get("/doors")).status_code == 403  # no device.read
    stranger = await hub.client.get("/doors/stream", follow_redirects=False)
    assert stranger.status_code == 303 and stranger.headers["location"].startswith("/sign-in")


async def test_a_refused_gate_says_why(hub: Hub) -> None:
    _, north, south = await gates_of_a(hub)
    stale = await north.send(
        "POST", "/api/device/heartbeat", {}, now_ms=hub.clock() - 2 * MAX_SKEW_MS
    )
    assert stale.status_code == 401
    impostor = Device(hub, bytes(32), south.device_id)  # south's id, another key
    assert (await impostor.send("POST", "/api/device/heartbeat", {})).status_code == 401
    page = (await (await sign_in(hub, "a", "venue_manager")).get("/doors")).text
    assert "Refused: clock off 10 min" in page
    assert "Refused: key mismatch" in page
    await heartbeat(north)  # its clock fixed: heard again, no longer refused
    page = (await (await sign_in(hub, "a", "venue_staff")).get("/doors")).text
    assert "Refused: clock off" not in page


# -- the stream ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """No re-render for the clock's sake: every update a test sees was pushed by news."""
    monkeypatch.setattr(doors_feed, "TICK_S", 3600.0)


class Stream:
    """The doors stream as a browser's EventSource reads it: its `doors` events, read in the
    background (a wait that times out loses nothing)."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read(lines))

    async def _read(self, lines: AsyncIterator[str]) -> None:
        name, data = None, []
        async for line in lines:
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "":
                if name == "doors":
                    self.events.put_nowait(json.loads("\n".join(data)))
                name, data = None, []
        self.events.put_nowait(None)

    async def next(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """The next `doors` event's data."""
        event = await asyncio.wait_for(self.events.get(), timeout_s)
        if event is None:
            raise AssertionError("the stream ended")
        return event

    async def until(self, wanted: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """The first event whose parts hold `wanted`."""
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.next(timeout_s)
                if any(wanted in html for html in event["parts"].values()):
                    return event


@asynccontextmanager
async def stream_of(client: ConsoleClient, query: str = "") -> AsyncIterator[Stream]:
    headers = {"Cookie": f"{SESSION_COOKIE}={client.cookie}", "Accept": "text/event-stream"}
    async with client.hub.client.stream(
        "GET", "/doors/stream" + query, headers=headers, timeout=30
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        stream = Stream(resp.aiter_lines())
        try:
            yield stream
        finally:
            stream.reader.cancel()


async def test_a_stored_scan_reaches_the_open_page(hub: Hub) -> None:
    show, north, _ = await gates_of_a(hub)
    manager = await sign_in(hub, "a", "venue_manager")
    async with stream_of(manager) as events:
        first = await events.next()
        assert totals(first["parts"]["summary"])["admitted"] == "0"
        seq = next(_seq)
        await upload(north, show.event_id, scan(show.tickets[0], hub.clock(), seq=seq))
        update = await events.until(f'data-scan="{north.device_id}:{seq}"')
        assert totals(update["parts"]["summary"])["admitted"] == "1"
        assert update["version"] > first["version"]
        await heartbeat(north, pending_uploads=7)
        await events.until('<td class="num">7<span class="sub">at its last report')


async def test_the_stream_carries_only_its_venues_news(hub: Hub) -> None:
    show, north, _ = await gates_of_a(hub)
    show_b = add_show(hub, hub.b)
    gate_b = await enroll(
        hub, hub.b.manager_token, hub.b.venue_id, name="Bravo 1", gate_id=show_b.north
    )
    manager_a = await sign_in(hub, "a", "venue_manager")
    async with stream_of(manager_a) as events:
        first = await events.next()
        await upload(gate_b, show_b.event_id, scan(show_b.tickets[0], hub.clock()))
        await heartbeat(gate_b, pending_uploads=1)
        with pytest.raises(TimeoutError):
            await events.next(timeout_s=1.0)  # nothing of tenant b's pokes a's feed
        await upload(north, show.event_id, scan(show.tickets[0], hub.clock()))
        update = await events.next()
        assert update["version"] > first["version"]
        assert "Bravo" not in json.dumps(update)


async def test_a_burst_of_scans_comes_as_a_few_updates(hub: Hub) -> None:
    """Twenty uploads 20 ms apart: at most one update every UPDATE_GAP_S, not one each."""
    show = add_show(hub, hub.a, n_tickets=20)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    manager = await sign_in(hub, "a", "venue_manager")
    async with stream_of(manager) as events:
        await events.next()
        started = asyncio.get_running_loop().time()
        for ticket in show.tickets:
            await upload(north, show.event_id, scan(ticket, hub.clock()))
            await asyncio.sleep(0.02)
        seen, admitted = 0, ""
        while admitted != "20":
            admitted = totals((await events.next())["parts"]["summary"])["admitted"]
            seen += 1
        took_s = asyncio.get_running_loop().time() - started
        assert seen <= took_s / doors_feed.UPDATE_GAP_S + 2, (seen, took_s)
        assert seen < 20, seen  # unthrottled: about one an upload


async def test_the_stream_ends_with_its_session(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doors_page, "KEEPALIVE_S", 0.1)
    monkeypatch.setattr(doors_page, "SESSION_CHECK_S", 0.0)
    manager = await sign_in(hub, "a", "venue_manager")
    async with stream_of(manager) as events:
        await events.next()
        assert (await manager.post("/sign-out")).status_code == 303
        with pytest.raises(AssertionError, match="the stream ended"):
            await events.next(timeout_s=5.0)
