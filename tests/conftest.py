"""Fixtures shared by the test modules (a module may still define its own of the same name)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.hub_fixtures import Hub, start_hub, stop_hub
from tests.live_hub import live  # noqa: F401  (the restartable hub, a fixture)
from tests.pretix_server import PretixServer, missing_pretix


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """The real hub on 127.0.0.1 over a real SQLite file, two tenants (a, b) with tokens."""
    started, runner = await start_hub(tmp_path, expiry_interval_s=None)
    yield started
    await stop_hub(started, runner)


@pytest.fixture(scope="session")
def pretix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PretixServer]:
    """One real pretix for the session (tests/pretix_server.py); tests make their own events.
    Without `make pretix` it fails, saying so: a skip would hide that nothing was tested."""
    problem = missing_pretix()
    if problem:
        pytest.fail(problem, pytrace=False)
    server = PretixServer(tmp_path_factory.mktemp("pretix"))
    server.start()
    yield server
    server.stop()
