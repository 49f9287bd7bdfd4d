"""Fixtures shared by the gate tests (a module may still define its own of the same name)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scanner_fixtures import NOW, GateUnderTest, opened_gate


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[GateUnderTest]:
    """A gate service on a fresh gate.db with the fixture's manifest, its clock fixed at NOW."""
    with opened_gate(tmp_path / "gate.db", NOW) as (service, fx, clock):
        yield GateUnderTest(service, fx, clock)
