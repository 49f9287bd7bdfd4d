"""The values the admission engine takes and gives: kept apart from the rules so stores and
wire messages can import them without pulling the engine in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.reasons import Reason, Verdict
from protocol.wire import EntryState, PeerEntry


class Direction(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class GateContext:
    """The scanning device's place: set at enrollment, changed in settings."""

    venue_id: str
    gate_id: str
    gate_name: str
    direction: Direction = Direction.ENTRY
    zones: tuple[str, ...] = ()  # zones this gate leads into; empty: no zone check
    authorized: bool = True  # False once the hub deactivated the device


@dataclass(frozen=True, slots=True)
class ScanFact:
    """One earlier scan of the ticket, from this device's log or merged from other gates.
    Only movements count: admitted entries (admit, or attention confirmed) and exits."""

    ticket_id: str
    at_ms: int
    direction: Direction
    counted: bool  # True: the person actually passed (entry admitted / exit recorded)
    gate_name: str = ""
    device_id: str = ""

    @classmethod
    def of(
        cls,
        ticket_id: str,
        at_ms: int,
        direction: str,
        counted: bool | int,
        gate_name: str | None,
        device_id: str,
    ) -> ScanFact:
        """The one way a scan becomes a fact, wherever it was read (the gate's log, a peer
        entry, a hub row, a merged scan): the direction from its stored text, SQLite's 0/1 as
        a bool, no gate name as ""."""
        return cls(
            ticket_id, at_ms, Direction(direction), bool(counted), gate_name or "", device_id
        )

    @classmethod
    def pushed(cls, entry: PeerEntry | EntryState, offset_ms: int) -> ScanFact:
        """A movement the hub sent (an upload answer's peer entry, a live entry_state) as a
        fact on the gate's clock (hub ≈ device + offset). Peer entries are movements only, so
        they count."""
        counted = entry.counted if isinstance(entry, EntryState) else True
        return cls.of(
            entry.ticket_id,
            entry.at_ms - offset_ms,
            entry.direction,
            counted,
            entry.gate_name,
            entry.device_id,
        )

    @staticmethod
    def moved(verdict: str, confirmed: bool | int | None) -> bool:
        """Whether a scan was a movement: admitted, an exit recorded, or an attention verdict
        staff confirmed (True, or SQLite's 1)."""
        if verdict == Verdict.ATTENTION:
            return confirmed == 1
        return verdict in (Verdict.ADMIT, Verdict.EXIT)


@dataclass(frozen=True, slots=True)
class DisplayFacts:
    holder: str | None = None
    tier: str | None = None
    zone: str | None = None
    seat: str | None = None
    entries_today: int = 0
    comp: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: Reason
    message: str
    ticket_id: str | None = None
    display: DisplayFacts = DisplayFacts()
    # a refused code's technical words ("base45 triple out of range"): for support and logs;
    # staff read `message`, the reason's sentence
    detail: str | None = None

    @property
    def moves_person(self) -> bool:
        """Whether this decision, once shown (and confirmed, for attention), is a movement."""
        return self.verdict in (Verdict.ADMIT, Verdict.ATTENTION, Verdict.EXIT)

    def to_json(self) -> dict[str, object]:
        d = self.display
        return {
            "verdict": str(self.verdict),
            "reason": str(self.reason),
            "message": self.message,
            "ticket_id": self.ticket_id,
            "display": {
                "holder": d.holder,
                "tier": d.tier,
                "zone": d.zone,
                "seat": d.seat,
                "entries_today": d.entries_today,
                "comp": d.comp,
                "note": d.note,
            },
            **({"detail": self.detail} if self.detail else {}),
        }
