"""A deactivated device stops listening: its live sockets close within a second of the admin
call (close code 4403, "device_deactivated"), a reconnect is refused with 403, and the other
devices of the venue keep receiving. A deactivation the HTTP process did not make itself (a
CLI, another process: simulated with a second store on the same database) is honoured within
the row cache's lifetime."""

from __future__ import annotations

import time

import aiohttp
import pytest

from hub import live as hub_live
from hub.storage import HubStore
from hub.store_base import ROW_CACHE_S
from protocol.wire import DEACTIVATED_CLOSE_CODE
from tests.device_api import connect, nothing_arrives, upload
from tests.hub_fixtures import Device, Hub, Show, enroll


async def closed_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> aiohttp.WSMessage:
    """The next message must be the close frame, within `seconds` (entries before it fail)."""
    msg = await ws.receive(timeout=seconds)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return msg


async def refused_on_reconnect(session: aiohttp.ClientSession, device: Device) -> None:
    path = "/api/device/live"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(device.hub.url + path, headers=device.signed("GET", path))
    assert refused.value.status == 403
    plain = await device.send("GET", path)  # same route, no upgrade: the error body is readable
    assert plain.status_code == 403
    assert plain.json()["error"]["code"] == "device_deactivated"


@pytest.fixture
def no_active_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live sockets' periodic active-flag re-check is an hour away (set before the hub
    starts)."""
    monkeypatch.setattr(hub_live, "ACTIVE_RECHECK_S", 3600.0)


@pytest.fixture
def unswept_hub(no_active_recheck: None, hub: Hub) -> Hub:
    """The shared hub, started with no re-check to come: only the admin route's own call
    can close the socket in time."""
    return hub


async def test_deactivation_closes_the_devices_sockets_at_once_and_refuses_reconnects(
    unswept_hub: Hub, show: Show, north: Device, south: Device
) -> None:
    hub = unswept_hub
    east = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    async with aiohttp.ClientSession() as session:
        south_sockets = [
            await connect(session, south),
            await connect(session, south, f"?event_id={show.event_id}"),
        ]
        ws_east = await connect(session, east)

        started = time.monotonic()
        resp = await hub.client.post(
            f"/api/admin/devices/{south.device_id}/deactivate",
            headers=hub.auth(hub.a.manager_token),
        )
        assert resp.status_code == 200 and resp.json()["active"] is False
        for ws in south_sockets:
            msg = await closed_within(ws, 1.0)
            assert (msg.data, msg.extra) == (DEACTIVATED_CLOSE_CODE, "device_deactivated")
        assert time.monotonic() - started < 1.0
        assert "hub_devices_online 1" in (await hub.client.get("/metrics")).text.splitlines()

        await refused_on_reconnect(session, south)

        # The rest of the venue keeps listening.
        at = hub.clock()
        sent = await north.send("POST", "/api/device/scans", upload(show.event_id, "t-1", 1, at))
        assert sent.status_code == 200
        got = await ws_east.receive_json(timeout=5)
        assert (got["ticket_id"], got["device_id"]) == ("t-1", north.device_id)
        assert await nothing_arrives(ws_east)
        for ws in south_sockets:
            assert ws.closed and ws.close_code == DEACTIVATED_CLOSE_CODE
        await ws_east.close()


async def test_a_deactivation_by_another_process_closes_the_socket_within_seconds(
    hub: Hub, north: Device, south: Device
) -> None:
    async with aiohttp.ClientSession() as session:
        ws_south = await connect(session, south)
        ws_north = await connect(session, north)
        # The hub process has the device row cached; another process writes the database.
        other = HubStore(hub.store.path)
        try:
            device = other.get_device(south.device_id)
            assert device is not None
            other.deactivate_device(device, "cli", hub.clock())
        finally:
            other.close()
        started = time.monotonic()
        msg = await closed_within(ws_south, ROW_CACHE_S + 2.0)
        assert (msg.data, msg.extra) == (DEACTIVATED_CLOSE_CODE, "device_deactivated")
        assert time.monotonic() - started < ROW_CACHE_S + 2.0
        await refused_on_reconnect(session, south)
        await ws_north.close()
