"""A device's signed calls to the real hub, for the hub tests that need them."""

from __future__ import annotations

import itertools
import re
from typing import Any

import aiohttp
import httpx

from protocol.signing import b64decode
from tests.hub_fixtures import (
    Device,
    Hub,
)

_seq = itertools.count(1)


async def trusted_keys(hub: Hub) -> dict[int, bytes]:
    """The hub keys a gate trusts, as /api/hub states them."""
    body = (await hub.client.get("/api/hub")).json()
    return {int(k): b64decode(v) for k, v in body["trusted_keys"].items()}


async def online_check(device: Device, event_id: str, payload: str) -> dict[str, Any]:
    """The hub's online check of a scanned code (stored as the device's scan, a fresh seq)."""
    body = {"event_id": event_id, "payload": payload, "seq": next(_seq)}
    resp = await device.send("POST", "/api/device/check", body)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


async def connect(
    session: aiohttp.ClientSession, device: Device, query: str = ""
) -> aiohttp.ClientWebSocketResponse:
    path = "/api/device/live" + query
    ws = await session.ws_connect(device.hub.url + path, headers=device.signed("GET", path))
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello" and hello["device_id"] == device.device_id
    return ws


async def nothing_arrives(ws: aiohttp.ClientWebSocketResponse) -> bool:
    try:
        await ws.receive(timeout=0.3)
    except TimeoutError:
        return True
    return False


def upload(event_id: str, ticket_id: str, seq: int, at_ms: int) -> dict[str, Any]:
    scan = {
        "seq": seq,
        "at_ms": at_ms,
        "payload": "code",
        "ticket_id": ticket_id,
        "verdict": "admit",
        "reason": "admitted",
        "direction": "entry",
        "gate": "North",
    }
    return {"event_id": event_id, "scans": [scan]}


async def get_manifest(
    device: Device, event_id: str, since: int | None = None, etag: str | None = None
) -> httpx.Response:
    path = f"/api/device/events/{event_id}/manifest"
    if since is not None:
        path += f"?since={since}"
    headers = device.signed("GET", path)
    if etag is not None:
        headers["If-None-Match"] = etag
    return await device.hub.client.get(path, headers=headers)


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line; checks each line's shape."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) \w+ .+", line), line
            continue
        match = re.fullmatch(r"(\w+(?:\{.*\})?) (-?[0-9.e+]+)", line)
        assert match, line
        out[match.group(1)] = float(match.group(2))
    return out
