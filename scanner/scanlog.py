"""The gate's scan log: what one scan row holds and the SQL that keeps the log append-only.

Every scan gets the next per-device sequence number, with no gaps, so the hub can tell a
missing upload from a skipped number. Rows are never deleted or rewritten: triggers refuse it.
The only changes allowed are the two flags that record what happened after the scan: staff
confirmed (or refused) an attention verdict, and the hub acknowledged the upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

import msgspec

from manifests.admission_types import Decision, Direction, DisplayFacts, ScanFact
from protocol.reasons import Reason, Verdict, default_message
from protocol.wire import DirectionName, Scan

# One statement each: scanner/migrations.py runs them inside the transaction of step 1.
SCAN_LOG_SQL = (
    """CREATE TABLE IF NOT EXISTS scans (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    ticket_id TEXT,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    direction TEXT NOT NULL,
    gate TEXT NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0,
    confirmed INTEGER,
    uploaded INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS scans_ticket ON scans(ticket_id, at_ms)",
    "CREATE INDEX IF NOT EXISTS scans_pending ON scans(uploaded, seq)",
    """CREATE TRIGGER IF NOT EXISTS scans_no_delete BEFORE DELETE ON scans
BEGIN
    SELECT RAISE(ABORT, 'scan log is append-only');
END""",
    """CREATE TRIGGER IF NOT EXISTS scans_no_rewrite
BEFORE UPDATE OF seq, at_ms, payload, ticket_id, verdict, reason, message, direction, gate, manual
ON scans
BEGIN
    SELECT RAISE(ABORT, 'scan log is append-only');
END""",
    """CREATE TRIGGER IF NOT EXISTS scans_confirm_once BEFORE UPDATE OF confirmed ON scans
WHEN OLD.confirmed IS NOT NULL OR OLD.verdict != 'attention'
BEGIN
    SELECT RAISE(ABORT, 'only a pending attention scan can be confirmed, once');
END""",
    """CREATE TRIGGER IF NOT EXISTS scans_upload_once BEFORE UPDATE OF uploaded ON scans
WHEN OLD.uploaded = 1 AND NEW.uploaded = 0 AND OLD.confirmed IS NEW.confirmed
BEGIN
    SELECT RAISE(ABORT, 'an uploaded scan stays uploaded');
END""",
    """CREATE TABLE IF NOT EXISTS peer_scans (
    device_id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    direction TEXT NOT NULL,
    counted INTEGER NOT NULL,
    gate_name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (device_id, ticket_id, at_ms, direction)
)""",
)


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One row of this device's scan log, as stored; uploaded as protocol/wire.py Scan."""

    seq: int
    at_ms: int
    payload: str
    ticket_id: str | None
    verdict: Verdict
    reason: str
    message: str
    direction: Direction
    gate: str
    manual: bool = False
    confirmed: bool | None = None  # attention only: None pending, True admitted, False turned away
    uploaded: bool = False

    @property
    def counted(self) -> bool:
        """Whether the person actually moved through the gate."""
        return ScanFact.moved(self.verdict, self.confirmed)

    def to_wire(self) -> Scan:
        return Scan(
            seq=self.seq,
            at_ms=self.at_ms,
            payload=self.payload,
            ticket_id=self.ticket_id,
            verdict=self.verdict,
            reason=Reason(self.reason),
            message=self.message,
            direction=cast(DirectionName, self.direction.value),
            gate=self.gate,
            manual=self.manual,
            confirmed=self.confirmed,
            uploaded=self.uploaded,
        )

    def to_json(self) -> dict[str, Any]:
        """The upload's JSON for this scan (and the export's)."""
        out: dict[str, Any] = msgspec.to_builtins(self.to_wire())
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScanRecord:
        confirmed = row["confirmed"]
        return cls(
            seq=row["seq"],
            at_ms=row["at_ms"],
            payload=row["payload"],
            ticket_id=row["ticket_id"],
            verdict=Verdict(row["verdict"]),
            reason=row["reason"],
            message=row["message"],
            direction=Direction(row["direction"]),
            gate=row["gate"],
            manual=bool(row["manual"]),
            confirmed=None if confirmed is None else bool(confirmed),
            uploaded=bool(row["uploaded"]),
        )


def nameless(decision: Decision) -> Decision:
    """The decision as the scan log may keep it: without the holder's name. The engine greets
    an admitted guest by name ("Welcome in. Ada Lovelace."), opened from the sealed manifest
    with the code being scanned; that is for the screen only, or the log would hold in clear
    what the manifest seals (README: what a stolen gate's disk gives an attacker). Should the
    name turn up anywhere else in the words, the reason's plain words are kept instead."""
    holder = decision.display.holder
    if not holder:
        return decision
    message = decision.message.removesuffix(f" {holder}.")
    if holder in message:
        message = default_message(decision.reason)
    return replace(decision, message=message, display=DisplayFacts())


# Own scans that are movements or may become one: the engine's history.
HISTORY_SQL = """
SELECT ticket_id, at_ms, direction, verdict, confirmed, gate FROM scans
WHERE ticket_id = ? AND verdict IN ('admit', 'exit', 'attention')
"""
PEER_HISTORY_SQL = """
SELECT ticket_id, at_ms, direction, counted, gate_name, device_id FROM peer_scans
WHERE ticket_id = ?
"""


def own_fact(row: tuple[Any, ...], device_id: str) -> ScanFact:
    """A HISTORY_SQL row as a fact: a movement once it counted."""
    ticket_id, at_ms, direction, verdict, confirmed, gate = row
    counted = ScanFact.moved(verdict, confirmed)
    return ScanFact.of(ticket_id, at_ms, direction, counted, gate, device_id)


def peer_fact(row: tuple[Any, ...]) -> ScanFact:
    """A PEER_HISTORY_SQL row as a fact."""
    return ScanFact.of(*row)
