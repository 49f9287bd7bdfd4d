"""Fixtures shared by the gate tests (a module may still define its own of the same name)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.live_hub import LiveHub
from tests.scanner_fixtures import NOW, EnrolledGates, GateUnderTest, opened_gate


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[GateUnderTest]:
    """A gate service on a fresh gate.db with the fixture's manifest, its clock fixed at NOW."""
    with opened_gate(tmp_path / "gate.db", NOW) as (service, fx, clock):
        yield GateUnderTest(service, fx, clock)


@pytest.fixture
async def gates(live: LiveHub, tmp_path: Path) -> AsyncIterator[EnrolledGates]:
    """Gates enrolled with the live hub on demand, with their sync workers; all of them
    stopped and closed after the test, before the hub stops."""
    enrolled = EnrolledGates(live, tmp_path)
    yield enrolled
    await enrolled.close()
