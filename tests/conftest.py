"""Fixtures shared by the test modules (a module may still define its own of the same name)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.hub_fixtures import Hub, start_hub, stop_hub
from tests.live_hub import live  # noqa: F401  (the restartable hub, a fixture)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """The real hub on 127.0.0.1 over a real SQLite file, two tenants (a, b) with tokens."""
    started, runner = await start_hub(tmp_path, expiry_interval_s=None)
    yield started
    await stop_hub(started, runner)
