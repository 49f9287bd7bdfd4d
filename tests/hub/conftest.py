"""Fixtures shared by the hub tests: tenant a's show at the hub (the shared `hub`, tests/
conftest.py) and devices enrolled at its gates, the set-up most device API tests start from."""

from __future__ import annotations

import pytest

from tests.hub_fixtures import Device, Hub, Show, add_show, enroll


@pytest.fixture
def show(hub: Hub) -> Show:
    """A show of tenant a on now (add_show): its event, tickets, and North (GA) and South
    (VIP) gates."""
    return add_show(hub, hub.a)


@pytest.fixture
async def north(hub: Hub, show: Show) -> Device:
    """A device enrolled by tenant a's venue manager at the show's North gate."""
    return await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)


@pytest.fixture
async def south(hub: Hub, show: Show) -> Device:
    """A device enrolled by tenant a's venue manager at the show's South gate."""
    return await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
