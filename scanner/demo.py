"""`make demo`: a gate's first minute, told through the real parser and admission engine.

The hub and the gate's Textual app are still being built (issues 3-5); until then this walks a
realistic festival gate through a stream of scans and prints each verdict as the gate would
show it, so a newcomer sees what the system decides and why.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, replace

from manifests.admission import decide, parse_context
from manifests.admission_types import Direction, GateContext, ScanFact
from manifests.model import EventFacts, ManifestHeader, Scope, TicketRow
from manifests.policy import HOUR_MS, MINUTE_MS, TEMPLATES
from manifests.sealing import seal_holder
from protocol.credential import Credential
from protocol.native import issue_credential, public_key
from protocol.parse import parse_credential
from protocol.reasons import Verdict

COLOURS = {
    Verdict.ADMIT: "\033[42;30m",
    Verdict.DENY: "\033[41;97m",
    Verdict.ATTENTION: "\033[43;30m",
    Verdict.EXIT: "\033[44;97m",
}
RESET = "\033[0m"


@dataclass
class Guest:
    label: str
    row: TicketRow
    code: str


def main() -> None:
    seed = os.urandom(32)
    now = 1_781_280_000_000  # Friday 12 June 2026, 16:00 UTC
    event = EventFacts(
        id=str(uuid.uuid4()),
        code=0x00C0FFEE,
        name="Riverside Festival 2026",
        venue_id="riverside",
        venue_name="Riverside Park",
        timezone="Europe/Berlin",
        start_ms=now,
        end_ms=now + 55 * HOUR_MS,
        days=("2026-06-12", "2026-06-13", "2026-06-14"),
        ticket_types=("Weekend", "Day", "VIP Weekend"),
        zones=("GA", "VIP", "BACKSTAGE"),
    )
    header = ManifestHeader(
        event=event,
        scope=Scope(venue_id="riverside", gate_id="north", zones=("GA",)),
        revision=1,
        issued_at_ms=now - HOUR_MS,
        expires_at_ms=now + 72 * HOUR_MS,
        issuer_keys={1: public_key(seed)},
        policy=TEMPLATES["concert"],
        revoked={},
    )

    def guest(label: str, name: str, **row: object) -> Guest:
        tid = str(uuid.uuid4())
        code = issue_credential(
            signing_key=seed,
            key_id=1,
            event_code=event.code,
            ticket_id=tid,
            generation=int(row.pop("generation", 0)),  # type: ignore[call-overload]
            valid_from_ms=now - 4 * HOUR_MS,
            valid_until_ms=event.end_ms + 2 * HOUR_MS,
            ticket_type=1,
            zone=1,
        )
        parsed = parse_credential(code, parse_context(header, now))
        assert isinstance(parsed, Credential) and parsed.signature
        sealed = seal_holder(name, parsed.signature, tid)
        fields = {"ticket_type": "Weekend", "zone": "GA", **row}
        return Guest(label, TicketRow(ticket_id=tid, holder_sealed=sealed, **fields), code)

    ada = guest("Ada, weekend pass", "Ada Lovelace")
    grace = guest("Grace, GA ticket", "Grace Hopper")
    alan = guest("Alan, refunded ticket", "Alan Turing", status="REFUNDED")
    old = guest("Resold ticket, old holder's code", "Old Holder", generation=0)
    katherine = guest(
        "Katherine, student ticket", "Katherine Johnson", attention="Check student ID"
    )
    tickets = {g.row.ticket_id: g.row for g in (ada, grace, alan, katherine)}
    tickets[old.row.ticket_id] = replace(old.row, generation=1)
    header = replace(header, revoked={})

    north = GateContext("riverside", "north", "North Gate", Direction.ENTRY, ("GA",))
    south = GateContext("riverside", "south", "South Gate", Direction.ENTRY, ("GA",))
    vip = GateContext("riverside", "vip", "VIP Gate", Direction.ENTRY, ("VIP",))
    exit_gate = GateContext("riverside", "exit", "North Exit", Direction.EXIT, ("GA",))
    history: dict[str, list[ScanFact]] = {}
    stream = [
        (0, north, ada, "first entry"),
        (MINUTE_MS // 2, north, ada, "same code shown again"),
        (2 * MINUTE_MS, south, ada, "screenshot at another gate"),
        (3 * MINUTE_MS, vip, grace, "wrong zone"),
        (4 * MINUTE_MS, north, alan, "refunded"),
        (5 * MINUTE_MS, north, old, "transferred ticket"),
        (6 * MINUTE_MS, north, katherine, "needs a look"),
        (30 * MINUTE_MS, exit_gate, ada, "leaves for food"),
        (50 * MINUTE_MS, south, ada, "comes back (concert: 1 re-entry)"),
        (90 * MINUTE_MS, exit_gate, ada, "leaves again"),
        (120 * MINUTE_MS, north, ada, "re-entry limit"),
    ]
    print(f"\n{event.name} at {event.venue_name}, policy: concert (10-min window, 1 re-entry)\n")
    for offset, where, g, story in stream:
        at = now + offset
        parsed = parse_credential(g.code, parse_context(header, at))
        row = tickets.get(g.row.ticket_id)
        past = history.setdefault(g.row.ticket_id, [])
        d = decide(parsed, header, row, past, where, at)
        if d.moves_person:
            past.append(ScanFact(g.row.ticket_id, at, where.direction, True, where.gate_name))
        word = f"{COLOURS[d.verdict]} {d.verdict.upper():^9} {RESET}"
        when = f"+{offset // MINUTE_MS:>3} min"
        print(f"{when}  {where.gate_name:<11} {word} {d.reason:<18} {d.message}")
        print(f"{'':>8}  {g.label} — {story}")
    print(
        "\nNext: the gate app (Textual), the hub (aiohttp) and sync make this a live system;"
        " see README.md.\n"
    )


if __name__ == "__main__":
    main()
