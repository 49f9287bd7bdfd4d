"""A database with a schema step this release does not know is refused with a sentence that
names the step, the last one known and what to do; one with known steps only passes."""

from __future__ import annotations

import pytest

from protocol.schema_steps import SchemaTooNew, refuse_newer

KNOWN = ("0001_tables", "0002_more")


def test_a_known_history_passes_and_an_unknown_step_is_named() -> None:
    refuse_newer([], KNOWN, "gate.db", "gate", "Install the newer release.")
    refuse_newer(KNOWN[:1], KNOWN, "gate.db", "gate", "Install the newer release.")
    with pytest.raises(SchemaTooNew) as refused:
        refuse_newer([*KNOWN, "0003_x", "0004_y"], KNOWN, "gate.db", "gate", "Install it.")
    assert str(refused.value) == (
        "gate.db was upgraded by a newer release of the gate (schema step 0004_y); this release"
        " knows steps up to 0002_more. Install it."
    )
