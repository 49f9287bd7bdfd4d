"""Realistic, seed-deterministic manifests for benches, tests and demos.

A three-day festival in Berlin: weekend and day passes, VIP and backstage zones, orders of one
to six tickets, a grandstand with seats, a few attention notes, locks and comps, transfers, and
a share of tickets with a sealed holder name. Same seed, same manifest, byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import uuid
from collections.abc import Callable

from nacl.signing import SigningKey

from manifests.model import (
    COMP_REASONS,
    LOCK_REASONS,
    EventFacts,
    Manifest,
    ManifestHeader,
    Scope,
    TicketRow,
    TicketStatus,
)
from manifests.policy import BACKSTAGE, GA, HOUR_MS, TEMPLATES, VIP
from manifests.sealing import seal_holder

DEFAULT_NOW_MS = 1_783_670_400_000  # 2026-07-10 08:00 UTC, the festival's first morning
DAY_MS = 24 * HOUR_MS
DAYS = ("2026-07-10", "2026-07-11", "2026-07-12")
TICKET_TYPES = ("Weekend Pass", "Day Pass", "VIP Weekend", "VIP Day", "Backstage Crew", "Student")
# (ticket type, zone, every day?, weight)
_MIX = (
    ("Weekend Pass", GA, True, 50),
    ("Day Pass", GA, False, 27),
    ("Student", GA, True, 8),
    ("VIP Weekend", VIP, True, 8),
    ("VIP Day", VIP, False, 5),
    ("Backstage Crew", BACKSTAGE, True, 2),
)
_STATUSES = (
    (TicketStatus.ACTIVE, 72),
    (TicketStatus.MINTED, 9),
    (TicketStatus.SOLD, 7),
    (TicketStatus.TRANSFERRED, 5),
    (TicketStatus.CHECKED_IN, 2),
    (TicketStatus.CANCELLED, 2),
    (TicketStatus.REFUNDED, 2),
    (TicketStatus.REVOKED, 0.5),
    (TicketStatus.USED, 0.5),
)
ATTENTION_NOTES = ("Check photo ID", "Wheelchair user: accessible lane", "Under 18: give wristband")
_FIRST = (
    "Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannah", "Ivan", "Jonas",
    "Katarzyna", "Leon", "Mia", "Noah", "Olivia", "Paul", "Quentin", "Sofia", "Tim", "Yusuf",
)  # fmt: skip
_LAST = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Nowak", "Yılmaz", "Hoffmann", "Schulz", "Koch", "Richter", "Klein", "Wolf", "Rossi",
)  # fmt: skip

SignatureFor = Callable[[str, int], bytes]


def sample_signature(ticket_id: str, generation: int, seed: int = 1) -> bytes:
    """A stand-in for the native credential's 64-byte signature (what seals the name)."""
    return hashlib.blake2b(f"{seed}:{ticket_id}:{generation}".encode(), digest_size=64).digest()


def sample_hub_seed(seed: int = 1, key_id: int = 1) -> bytes:
    """A deterministic 32-byte Ed25519 seed for benches and tests (never for production)."""
    return hashlib.blake2b(f"hub:{seed}:{key_id}".encode(), digest_size=32).digest()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def sample_header(*, seed: int = 1, now_ms: int = DEFAULT_NOW_MS, revision: int = 1,
                  valid_for_ms: int = 2 * DAY_MS) -> ManifestHeader:  # fmt: skip
    rng = random.Random(f"header:{seed}")
    start_ms = 1_783_684_800_000  # 2026-07-10 12:00 UTC = 14:00 in Berlin
    event = EventFacts(
        id=_uuid(rng),
        code=rng.getrandbits(32),
        name="Riverside Sound Festival 2026",
        venue_id=_uuid(rng),
        timezone="Europe/Berlin",
        start_ms=start_ms,
        end_ms=start_ms + 2 * DAY_MS + 12 * HOUR_MS,
        doors_ms=start_ms - 2 * HOUR_MS,
        days=DAYS,
        venue_name="Spreeufer Park",
        ticket_types=TICKET_TYPES,
        zones=(GA, VIP, BACKSTAGE),
    )
    issuer = SigningKey(hashlib.blake2b(f"issuer:{seed}".encode(), digest_size=32).digest())
    return ManifestHeader(
        event=event,
        scope=Scope(venue_id=event.venue_id, gate_id="north-1", zones=(GA, VIP)),
        revision=revision,
        issued_at_ms=now_ms,
        expires_at_ms=now_ms + valid_for_ms,
        issuer_keys={1: bytes(issuer.verify_key)},
        policy=TEMPLATES["festival"],
        rotation_secret=rng.randbytes(32),
    )


def sample_manifest(
    n_tickets: int,
    *,
    seed: int = 1,
    now_ms: int = DEFAULT_NOW_MS,
    named_share: float = 0.2,
    seated_share: float = 0.08,
    revision: int = 1,
    signature_for: SignatureFor | None = None,
) -> Manifest:
    """`n_tickets` rows in orders of 1-6; `signature_for(ticket_id, generation)` gives the
    credential signature that seals a holder name (default: `sample_signature`)."""
    sig = signature_for or (lambda tid, gen: sample_signature(tid, gen, seed))
    rng = random.Random(f"tickets:{seed}")
    header = sample_header(seed=seed, now_ms=now_ms, revision=revision)
    kinds = rng.choices(_MIX, weights=[m[3] for m in _MIX], k=n_tickets)
    statuses = rng.choices([s for s, _ in _STATUSES], [w for _, w in _STATUSES], k=n_tickets)
    tickets: dict[str, TicketRow] = {}
    revoked: dict[str, str] = {}
    order_no, left_in_order, seat_no = 4_100_000, 0, 0
    for i in range(n_tickets):
        if left_in_order == 0:
            order_no += rng.randint(1, 3)
            left_in_order = rng.choices((1, 2, 3, 4, 5, 6), (30, 35, 12, 15, 5, 3))[0]
            seated = rng.random() < seated_share
        left_in_order -= 1
        ticket_type, zone, every_day, _ = kinds[i]
        status = statuses[i]
        tid = _uuid(rng)
        generation = rng.randint(1, 2) if status == TicketStatus.TRANSFERRED else 0
        seat = None
        if seated:
            seat_no += 1
            block, rest = divmod(seat_no, 600)
            seat = f"T{block + 1}-R{rest // 30 + 1}-S{rest % 30 + 1}"
        roll = rng.random()
        attention = ATTENTION_NOTES[0] if ticket_type == "Student" else None
        if roll < 0.01:
            attention = rng.choice(ATTENTION_NOTES)
        holder = None
        if rng.random() < named_share:
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            holder = seal_holder(name, sig(tid, generation), tid)
        if status == TicketStatus.REVOKED:
            revoked[tid] = "fraud_investigation"
        tickets[tid] = TicketRow(
            ticket_id=tid,
            status=status,
            generation=generation,
            ticket_type=ticket_type,
            zone=zone,
            seat=seat,
            valid_days=() if every_day else (rng.choice(DAYS),),
            max_entries=1 if ticket_type == "Day Pass" and roll > 0.9 else None,
            attention=attention,
            lock_reason=rng.choice(LOCK_REASONS) if 0.01 <= roll < 0.013 else None,
            comp_reason=rng.choice(COMP_REASONS) if 0.02 <= roll < 0.04 else None,
            order_ref=f"TT-{order_no}",
            holder_sealed=holder,
        )
    return Manifest(dataclasses.replace(header, revoked=revoked), tickets)


def sample_changes(
    m: Manifest, n_changes: int, *, seed: int = 2, now_ms: int | None = None
) -> Manifest:
    """The next revision of `m` with `n_changes` realistic changes: transfers, check-ins,
    refunds, locks, new sales (added rows) and removed rows."""
    rng = random.Random(f"changes:{seed}")
    tickets = dict(m.tickets)
    ids = rng.sample(list(tickets), min(n_changes, len(tickets)))
    for k, tid in enumerate(ids):
        row = tickets[tid]
        action = k % 10
        if action == 0:
            del tickets[tid]
        elif action == 1:
            new_id = _uuid(rng)
            tickets[new_id] = dataclasses.replace(row, ticket_id=new_id, holder_sealed=None)
        elif action in (2, 3):
            tickets[tid] = dataclasses.replace(
                row, status=TicketStatus.TRANSFERRED, generation=row.generation + 1,
                holder_sealed=None,
            )  # fmt: skip
        elif action == 4:
            tickets[tid] = dataclasses.replace(row, lock_reason=rng.choice(LOCK_REASONS))
        elif action == 5:
            tickets[tid] = dataclasses.replace(row, status=TicketStatus.REFUNDED)
        else:
            tickets[tid] = dataclasses.replace(row, status=TicketStatus.CHECKED_IN)
    issued = m.header.issued_at_ms + 60_000 if now_ms is None else now_ms
    header = dataclasses.replace(
        m.header,
        revision=m.header.revision + 1,
        issued_at_ms=issued,
        expires_at_ms=issued + (m.header.expires_at_ms - m.header.issued_at_ms),
    )
    return Manifest(header, tickets)
