"""A gate whose device was deactivated stops knocking: the hub's 4403 close (or a 403 on the
upgrade) marks the live channel deactivated and it does not reconnect, instead of retrying
the hub forever. Real hub on 127.0.0.1, a gate enrolled the real way."""

from __future__ import annotations

import asyncio

import httpx

from scanner.live import LiveChannel
from tests.live_hub import LiveHub, deactivate, wait_for
from tests.scanner_fixtures import EnrolledGates


def counting_attempts(channel: LiveChannel) -> list[int]:
    """Count the channel's connection attempts (each one is a signed upgrade)."""
    attempts: list[int] = []
    listen = channel._listen

    async def counted(client: httpx.AsyncClient) -> None:
        attempts.append(1)
        await listen(client)

    channel._listen = counted  # type: ignore[method-assign]
    return attempts


async def test_a_deactivated_gate_stops_its_live_channel(
    live: LiveHub, gates: EnrolledGates
) -> None:
    gate = await gates.enrol()
    channel = LiveChannel(gate, live.hub.url)
    attempts = counting_attempts(channel)
    try:
        channel.start()
        assert await asyncio.to_thread(channel.connected.wait, 10)
        await deactivate(live, gate)
        assert await wait_for(lambda: not channel.connected.is_set(), 2.0)
        await asyncio.sleep(2.5)  # today's channel is back within ~1 s and keeps retrying
        assert len(attempts) == 1
        assert channel.deactivated.is_set()
    finally:
        await asyncio.to_thread(channel.stop)


async def test_a_refused_upgrade_marks_the_channel_deactivated(
    live: LiveHub, gates: EnrolledGates
) -> None:
    gate = await gates.enrol()
    await deactivate(live, gate)
    channel = LiveChannel(gate, live.hub.url)
    attempts = counting_attempts(channel)
    try:
        channel.start()
        assert await wait_for(lambda: len(attempts) >= 1, 5.0)
        await asyncio.sleep(2.0)
        assert len(attempts) == 1 and not channel.connected.is_set()
        assert channel.deactivated.is_set()
    finally:
        await asyncio.to_thread(channel.stop)
