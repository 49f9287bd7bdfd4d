"""What a gate knows about one event: the manifest and its delta, as plain values.

The wire encoding lives in `manifests/codec.py`, signing in `manifests/signing.py`; the gate's
SQLite store and the hub's database both build and read these same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from manifests.policy import (
    DEFAULT_CHECKIN_AFTER_MS,
    DEFAULT_CHECKIN_BEFORE_MS,
    ScanPolicy,
    ZoneRules,
)
from protocol.credential import CodeState, LegacyKeys


class TicketStatus(StrEnum):
    """The backend's ticket state machine, as far as a gate cares."""

    AVAILABLE = "AVAILABLE"
    RESERVED = "RESERVED"
    SOLD = "SOLD"
    MINTED = "MINTED"
    ACTIVE = "ACTIVE"
    TRANSFERRED = "TRANSFERRED"
    CHECKED_IN = "CHECKED_IN"
    USED = "USED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


# Statuses whose ticket may come in; anything else (including a status we do not know) denies.
ADMITTING_STATUSES = frozenset(
    {TicketStatus.SOLD, TicketStatus.MINTED, TicketStatus.ACTIVE, TicketStatus.TRANSFERRED}
)

LOCK_REASONS = (
    "fraud_investigation",
    "chargeback_pending",
    "dispute",
    "admin_request",
    "event_policy",
    "legal_hold",
)
# A lock for these keeps the holder out; the others only stop transfers and ask staff to look.
DENYING_LOCK_REASONS = frozenset(
    {"fraud_investigation", "chargeback_pending", "dispute", "legal_hold"}
)

# What the venue may turn a ticket into outright (the backend's terminal states): from any
# admitting status, never back.
WITHDRAWN_STATUSES = (TicketStatus.CANCELLED, TicketStatus.REFUNDED, TicketStatus.REVOKED)

COMP_REASONS = (
    "press_pass",
    "artist_guest",
    "vip_guest",
    "staff",
    "promotional",
    "sponsor",
    "contest_winner",
    "customer_service",
)


@dataclass(frozen=True, slots=True)
class EventFacts:
    id: str
    code: int  # short code native credentials carry (uint32), bound to `id` here
    name: str
    venue_id: str
    timezone: str
    start_ms: int
    end_ms: int
    doors_ms: int | None = None
    days: tuple[str, ...] = ()  # ISO dates of a multi-day event, in the event's timezone
    venue_name: str = ""
    checkin_before_ms: int = DEFAULT_CHECKIN_BEFORE_MS
    checkin_after_ms: int = DEFAULT_CHECKIN_AFTER_MS
    ticket_types: tuple[str, ...] = ()  # native ticket-type code n names ticket_types[n - 1]
    zones: tuple[str, ...] = ()  # native zone code n names zones[n - 1]
    rotation_period_s: int = 15

    def type_name(self, code: int | None) -> str | None:
        return _by_code(self.ticket_types, code)

    def zone_name(self, code: int | None) -> str | None:
        return _by_code(self.zones, code)


def _by_code(names: tuple[str, ...], code: int | None) -> str | None:
    if code is None or code < 1 or code > len(names):
        return None
    return names[code - 1]


@dataclass(frozen=True, slots=True)
class RetiredCode:
    """A code the ticketing system printed for the ticket that no longer admits, by its keyed
    hash (protocol/backend_codes.code_digest): superseded by a newer one, or blocked."""

    digest: bytes
    state: CodeState


@dataclass(frozen=True, slots=True)
class TicketRow:
    ticket_id: str
    status: str = TicketStatus.ACTIVE
    generation: int = 0
    ticket_type: str | None = None
    zone: str | None = None
    seat: str | None = None
    valid_days: tuple[str, ...] = ()  # ISO dates; empty: every day of the event
    max_entries: int | None = None
    attention: str | None = None  # a note that makes staff look (e.g. "Check student ID")
    lock_reason: str | None = None
    comp_reason: str | None = None
    order_ref: str | None = None
    holder_sealed: bytes | None = None  # holder name, sealed with the credential's own key
    # The keyed hash of the code the ticketing system printed on it now (a pretix secret),
    # and of the codes it printed before that no longer admit; never the codes themselves.
    code_digest: bytes | None = None
    retired_codes: tuple[RetiredCode, ...] = ()


@dataclass(frozen=True, slots=True)
class Scope:
    """Who a manifest was issued for: one device's venue, gate and zones."""

    venue_id: str
    gate_id: str | None = None
    zones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ManifestHeader:
    """Everything but the ticket rows; small, so a delta carries it whole."""

    event: EventFacts
    scope: Scope
    revision: int
    issued_at_ms: int
    expires_at_ms: int
    issuer_keys: Mapping[int, bytes] = field(default_factory=dict)  # credential keys
    policy: ScanPolicy = field(default_factory=ScanPolicy)
    zone_rules: ZoneRules = field(default_factory=ZoneRules)
    legacy: LegacyKeys = field(default_factory=LegacyKeys)
    rotation_secret: bytes | None = None
    revoked: Mapping[str, str] = field(default_factory=dict)  # ticket id -> reason
    # Codes a ticketing system printed (protocol/backend_codes.py): the key rows' code hashes
    # were made with, and the event's public keys for the codes it signs (raw Ed25519).
    code_lookup_key: bytes | None = None
    code_signing_keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    header: ManifestHeader
    tickets: Mapping[str, TicketRow]

    @property
    def revision(self) -> int:
        return self.header.revision


@dataclass(frozen=True, slots=True)
class ManifestDelta:
    """Changes from revision `base_revision` to `header.revision`."""

    header: ManifestHeader
    base_revision: int
    upserts: tuple[TicketRow, ...] = ()
    removed: tuple[str, ...] = ()
