"""Shared builders for tests: a realistic 3-day festival header, keys and credentials."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from manifests import admission
from manifests.admission_types import Decision, Direction, GateContext, ScanFact
from manifests.model import EventFacts, ManifestHeader, Scope, TicketRow
from manifests.policy import HOUR_MS, TEMPLATES, ScanPolicy
from protocol.credential import LegacyKeys, ParseContext
from protocol.native import issue_credential, public_key
from protocol.parse import parse_credential

ISSUER_SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
ROTATION_SECRET = b"event-rotation-secret-for-tests!"
EVENT_ID = "5b0c3a1e-8f6d-4d39-9d1e-2f4b7d7e9a10"
VENUE_ID = "venue-riverside"
TZ = "Europe/Berlin"
EVENT_CODE = 0x1A2B3C4D


def ms(text: str) -> int:
    """Local Berlin wall-clock time (CEST in June, UTC+2) to epoch ms."""
    local = datetime.fromisoformat(text)
    return int(local.replace(tzinfo=UTC).timestamp() * 1000) - 2 * HOUR_MS


START = ms("2026-06-12T16:00:00")
END = ms("2026-06-14T23:00:00")

EVENT = EventFacts(
    id=EVENT_ID,
    code=EVENT_CODE,
    name="Riverside Festival 2026",
    venue_id=VENUE_ID,
    venue_name="Riverside Park",
    timezone=TZ,
    start_ms=START,
    end_ms=END,
    doors_ms=START - HOUR_MS,
    days=("2026-06-12", "2026-06-13", "2026-06-14"),
    ticket_types=("Weekend", "Day", "VIP Weekend"),
    zones=("GA", "VIP", "BACKSTAGE"),
)


def header(policy: ScanPolicy | None = None, **changes: object) -> ManifestHeader:
    base = ManifestHeader(
        event=EVENT,
        scope=Scope(venue_id=VENUE_ID, gate_id="gate-3", zones=("GA",)),
        revision=7,
        issued_at_ms=START - 48 * HOUR_MS,
        expires_at_ms=END + 48 * HOUR_MS,
        issuer_keys={1: public_key(ISSUER_SEED)},
        policy=policy or TEMPLATES["standard"],
        legacy=LegacyKeys(),
        rotation_secret=ROTATION_SECRET,
    )
    return replace(base, **changes)


def gate(
    name: str = "Gate 3",
    direction: Direction = Direction.ENTRY,
    zones: tuple[str, ...] = ("GA",),
    **changes: object,
) -> GateContext:
    base = GateContext(
        venue_id=VENUE_ID,
        gate_id=name.lower().replace(" ", "-"),
        gate_name=name,
        direction=direction,
        zones=zones,
    )
    return replace(base, **changes)


def row(ticket_id: str, **changes: object) -> TicketRow:
    return replace(TicketRow(ticket_id=ticket_id, ticket_type="Weekend", zone="GA"), **changes)


def credential(ticket_id: str, **changes: object) -> str:
    fields: dict[str, object] = {
        "signing_key": ISSUER_SEED,
        "key_id": 1,
        "event_code": EVENT_CODE,
        "ticket_id": ticket_id,
        "generation": 0,
        "ticket_type": 1,
        "zone": 1,
        "valid_from_ms": START - 4 * HOUR_MS,
        "valid_until_ms": END + 2 * HOUR_MS,
    }
    fields.update(changes)
    return issue_credential(**fields)  # type: ignore[arg-type]


def entry(ticket_id: str, at_ms: int, gate_name: str = "Gate 3", counted: bool = True) -> ScanFact:
    return ScanFact(ticket_id, at_ms, Direction.ENTRY, counted, gate_name, "dev-1")


def exit_(ticket_id: str, at_ms: int, gate_name: str = "Gate 3") -> ScanFact:
    return ScanFact(ticket_id, at_ms, Direction.EXIT, True, gate_name, "dev-1")


def parse_context(**changes: object) -> ParseContext:
    """The test event's parse context (keys, event, rotation secret, at START), changed where
    a test says so."""
    fields: dict[str, object] = {
        "now_ms": START,
        "issuer_keys": {1: public_key(ISSUER_SEED)},
        "event_id": EVENT_ID,
        "event_codes": {EVENT_CODE: EVENT_ID},
        "rotation_secret": ROTATION_SECRET,
    }
    fields.update(changes)
    return ParseContext(**fields)  # type: ignore[arg-type]


def decide_scan(
    ticket_id: str,
    code: str | None = None,
    *,
    now: int,
    ticket: TicketRow | None = None,
    history: tuple[ScanFact, ...] = (),
    hdr: ManifestHeader | None = None,
    where: GateContext | None = None,
    nonces: frozenset[str] = frozenset(),
    holder: str | None = None,
) -> Decision:
    """A scan decided as a gate decides it: `code` (else the ticket's own credential) parsed
    against the header (else the test event's) at `now`, then judged against the ticket's row
    (else a plain Weekend GA one), its history and the gate (else Gate 3)."""
    hdr = hdr or header()
    context = admission.parse_context(hdr, now, nonces)
    parsed = parse_credential(code or credential(ticket_id), context)
    ticket = row(ticket_id) if ticket is None else ticket
    return admission.decide(parsed, hdr, ticket, history, where or gate(), now, holder)
