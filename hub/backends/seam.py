"""The one interface between the hub and an upstream ticketing system (a "backend").

An adapter speaks its system's API and nothing else: a pull answers what changed upstream
since a cursor the adapter itself wrote last time (opaque to the hub), as plain values; a push
takes the scans the hub owes upstream and says, per scan, whether upstream now has it. The hub
turns a pull into its own rows (hub/store_backends.py), so an upstream change reaches gates in
their next manifest delta and the online check at once, and keeps the outbox of scans owed;
hub/backends/runner.py schedules both. Adapters never see the hub's database, and the hub
never sees an adapter's wire format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from manifests.model import TicketStatus

RetiredState = Literal["superseded", "blocked"]


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    ref: str  # the backend's own id for it (pretix: the event slug)
    name: str
    timezone: str
    start_ms: int
    end_ms: int
    # raw Ed25519 public keys of the codes its backend signs (pretix_sig1); gates verify
    signing_keys: tuple[bytes, ...] = ()
    # what a push needs later (pretix: the check-in list scans go to); nothing secret
    detail: Mapping[str, Any] = field(default_factory=dict)
    # the id the seller's own codes carry for the event (TicketToken's uuid), which the hub
    # must then use as its own; None: the hub makes one
    hub_id: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamTicketType:
    ref: str
    event_ref: str
    name: str


@dataclass(frozen=True, slots=True)
class UpstreamTicket:
    ref: str  # stable for the ticket's life (pretix: the order position id)
    event_ref: str
    type_ref: str | None
    status: TicketStatus
    code: str | None  # what its QR code says (pretix: the secret)
    holder_name: str | None = None
    order_ref: str | None = None
    blocked: bool = False  # its current code is blocked upstream: it must not admit
    zone: str | None = None  # the venue zone it admits to (None: any the gate leads into)
    seat: str | None = None
    hub_id: str | None = None  # as UpstreamEvent.hub_id: the id its codes carry


@dataclass(frozen=True, slots=True)
class RetiredCode:
    """A code upstream no longer honours: superseded by a newer one, or blocked.
    `active=False` takes a block back."""

    event_ref: str
    code: str
    state: RetiredState
    active: bool = True


@dataclass(frozen=True, slots=True)
class Pull:
    events: Sequence[UpstreamEvent] = ()
    ticket_types: Sequence[UpstreamTicketType] = ()
    tickets: Sequence[UpstreamTicket] = ()
    retired_codes: Sequence[RetiredCode] = ()
    cursor: Mapping[str, Any] = field(default_factory=dict)  # where the next pull starts
    # events whose every ticket this pull lists: a ticket of theirs it does not list is gone
    # upstream (deleted), and the hub revokes it
    complete_events: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class OwedScan:
    """One stored scan upstream does not have yet, with what a push needs."""

    scan_id: int
    idempotency_key: str  # stable per scan: a retry is never a second check-in upstream
    event_ref: str
    event_detail: Mapping[str, Any]
    ticket_ref: str  # the hub's ticket id (the seller's own where its codes carry it)
    code: str | None  # the ticket's code at the seller (pretix: its secret), if it has one
    direction: str  # "entry" | "exit"
    zone: str | None  # the zone of the gate that scanned it
    admitted: bool
    reason: str  # protocol.reasons.Reason value
    at_ms: int  # when it happened, on the hub's clock (the gate's offset applied)
    decided_offline: bool  # a gate decided alone: upstream must record it as it was
    # an admitted entry's place among the ticket's admitted entries the hub knows, by time
    # (1: the first), so a push can set a counter without ever counting a retry twice
    entry_number: int = 0
    single_entry: bool = True  # the ticket admits once: its first entry uses it up


@dataclass(frozen=True, slots=True)
class PushOutcome:
    scan_id: int
    done: bool  # False: try again later (upstream unreachable, overloaded, refusing auth)
    answer: Mapping[str, Any] = field(default_factory=dict)  # what upstream said, for reports
    error: str | None = None  # a sentence for status and logs, never a secret


class BackendError(Exception):
    """Upstream unreachable, refusing or answering nonsense. The message is a sentence for
    `gate-hub backend status` and the log: it never carries a token."""


class Backend(Protocol):
    kind: str

    async def pull(self, cursor: Mapping[str, Any]) -> Pull:
        """What changed upstream since `cursor` ({} : everything). Raises BackendError."""
        ...

    async def push(self, scans: Sequence[OwedScan]) -> list[PushOutcome]:
        """One outcome per scan, in any order; never raises for one scan's trouble."""
        ...

    async def aclose(self) -> None: ...
