"""Scans in a gate's database as its decision loop stores them, for the tests and benches that
need a scan history (offline scans to upload, say) without scanning codes."""

from __future__ import annotations

from collections.abc import Iterable

from manifests.admission_types import Decision, Direction
from protocol.reasons import Reason, Verdict
from scanner.store import GateStore


def record_admits(
    store: GateStore, scans: Iterable[tuple[str, str]], start_ms: int, gate: str = "North 1"
) -> list[int]:
    """Committed admits, as the decision loop stores them: each (payload, ticket id) of
    `scans` entering at `gate`, one a millisecond from `start_ms`. Their sequence numbers."""
    return [
        store.record_scan(
            payload,
            Decision(Verdict.ADMIT, Reason.ADMITTED, "Welcome in.", ticket_id),
            at_ms=start_ms + i,
            direction=Direction.ENTRY,
            gate=gate,
        )
        for i, (payload, ticket_id) in enumerate(scans)
    ]
