"""Reconciliation: merge every device's scans of an event into one history per ticket and
judge each scan against it, as the TicketToken backend's offline reconciliation did.

Pure: no disk, socket or clock. The hub reads scans and the manifest from its store, calls
`reconcile` (whole event) or `reconcile_ticket` (only tickets a new upload touched) and stores
the report beside the scans, which are never dropped or rewritten.

Rules are not repeated here: each scan the gate let through is re-run through
`manifests.admission.decide` at its corrected time with the merged history before it, so the
hub and the gates can never disagree on what the policy allows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from manifests.admission import decide
from manifests.admission_types import Decision, Direction, GateContext, ScanFact
from manifests.model import ManifestHeader, TicketRow
from protocol.credential import Credential, CredentialFormat
from protocol.reasons import Reason, Verdict, default_message


class Outcome(StrEnum):
    """The backend's offline-sync result codes."""

    SUCCESS = "SUCCESS"  # a valid movement in the merged history
    DUPLICATE = "DUPLICATE"  # the gate let the guest in; the merged history says already in
    ERROR = "ERROR"  # refused at the gate, or the merged facts do not allow it at all


@dataclass(frozen=True, slots=True)
class HubScan:
    """One scan as a device uploaded it. `hub_arrival` is the hub's order of arrival (e.g. the
    row id): it breaks ties between equal corrected times."""

    device_id: str
    seq: int
    gate_name: str
    direction: Direction
    ticket_id: str | None
    device_time_ms: int  # the device's own clock
    clock_offset_ms: int  # measured by the device: hub time ≈ device time + offset
    hub_arrival: int
    verdict: Verdict  # what the gate showed
    reason: Reason
    confirmed: bool | None = None  # attention only: None pending, True let in, False refused
    manual: bool = False  # staff looked the ticket up: no code was read
    payload: str | None = None  # kept for audit, not re-parsed (see reconcile_ticket)
    credential_format: CredentialFormat | None = None
    gate_zones: tuple[str, ...] = ()  # zones the gate leads into; empty: no zone re-check

    @property
    def corrected_ms(self) -> int:
        return self.device_time_ms + self.clock_offset_ms

    @property
    def moved(self) -> bool:
        """Whether the guest physically passed: the gate admitted, recorded an exit, or staff
        confirmed an attention verdict."""
        return ScanFact.moved(self.verdict, self.confirmed)


@dataclass(frozen=True, slots=True)
class ScanRef:
    """Enough to find a scan and tell a supervisor where and when it happened."""

    device_id: str
    seq: int
    gate_name: str
    corrected_ms: int

    @classmethod
    def of(cls, scan: HubScan) -> ScanRef:
        return cls(scan.device_id, scan.seq, scan.gate_name, scan.corrected_ms)


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    device_id: str
    seq: int
    ticket_id: str | None
    outcome: Outcome
    reason: Reason  # the merged decision's reason; the gate's own for refused scans
    message: str
    corrected_ms: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two scans let the same ticket in where the policy allowed one entry (usually two
    offline gates; one device twice is reported alike). The winner is the latest counted
    entry before the duplicate in merged order: the admission the duplicate collided with."""

    ticket_id: str
    winner: ScanRef
    duplicate: ScanRef
    reason: Reason  # why the duplicate was not allowed (already admitted, limit, cool-down)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Outcomes by ticket id, then merged order (scans without a ticket id last)."""

    outcomes: tuple[ScanOutcome, ...]
    conflicts: tuple[Conflict, ...]

    def counts(self) -> dict[Outcome, int]:
        totals = dict.fromkeys(Outcome, 0)
        for o in self.outcomes:
            totals[o.outcome] += 1
        return totals


def merge_key(scan: HubScan) -> tuple[int, int, str, int]:
    """Merged order: corrected time, then hub arrival; device and seq make it total."""
    return (scan.device_time_ms + scan.clock_offset_ms, scan.hub_arrival, scan.device_id, scan.seq)


def reconcile(
    header: ManifestHeader, tickets: Mapping[str, TicketRow], scans: Iterable[HubScan]
) -> ReconcileReport:
    """The whole event: the same answer as `reconcile_ticket` on every ticket's scans."""
    by_ticket: dict[str, list[HubScan]] = defaultdict(list)
    unread: list[HubScan] = []
    for scan in scans:
        if scan.ticket_id is None:
            unread.append(scan)
        else:
            by_ticket[scan.ticket_id].append(scan)
    outcomes: list[ScanOutcome] = []
    conflicts: list[Conflict] = []
    for ticket_id in sorted(by_ticket):
        done, clashes = reconcile_ticket(header, tickets.get(ticket_id), by_ticket[ticket_id])
        outcomes += done
        conflicts += clashes
    outcomes += (_unreadable(s) for s in sorted(unread, key=merge_key))
    return ReconcileReport(tuple(outcomes), tuple(conflicts))


def reconcile_ticket(
    header: ManifestHeader,
    ticket: TicketRow | None,
    scans: Sequence[HubScan],
    settled: Mapping[tuple[str, int], ScanOutcome] | None = None,
) -> tuple[list[ScanOutcome], list[Conflict]]:
    """One ticket's scans, from every device, in merged order.

    `settled`: outcomes, by (device_id, seq), from an earlier reconciliation of this ticket
    under the same header and ticket row. A scan's outcome depends only on the scans before
    it in merged order, so the longest merged-order prefix of settled scans is reused (its
    SUCCESS scans are the history) and only the rest is judged and returned, with the
    conflicts of the returned scans. A new upload usually adds scans at the end: cheap.
    Without `settled` every scan is judged and returned.

    The engine gets a minimal `Credential` (the ticket id only), not the re-parsed payload:
    the gate already judged the code itself (signature, generation, code validity) with the
    code in hand and its clock, and a re-parse at the hub would refuse genuine rotating or
    time-limited codes (native rotating, legacy A/C) and lacks the device's nonce memory. So
    the manifest row is authoritative for ticket facts (status, valid days, zone, limits), and
    what the merge can change (order, duplicates, re-entry, times) is re-judged here.

    A scan counts as a movement in the merged history only when the guest passed at the gate
    AND the re-run allows it: a duplicate never uses up an entry of the ticket's allowance.
    A gate-admitted scan the re-run refuses is a DUPLICATE when the same scan with no history
    would be allowed (the refusal comes from the merged history), otherwise an ERROR.
    """
    ticket_id = _one_ticket(scans)
    ordered = sorted(scans, key=merge_key)
    history: list[ScanFact] = []
    last_entry: HubScan | None = None
    start = 0
    while settled and start < len(ordered):
        prior = settled.get((ordered[start].device_id, ordered[start].seq))
        if prior is None:
            break
        if prior.outcome is Outcome.SUCCESS:
            last_entry = _count(history, ordered[start], last_entry)
        start += 1
    outcomes: list[ScanOutcome] = []
    conflicts: list[Conflict] = []
    for scan in ordered[start:]:
        at = scan.corrected_ms
        if not scan.moved:
            outcomes.append(_refused(scan))
            continue
        gate = GateContext(
            header.event.venue_id, "", scan.gate_name, scan.direction, scan.gate_zones
        )
        cred = Credential(_format(scan), ticket_id)
        decision = decide(cred, header, ticket, history, gate, at)
        if decision.moves_person:
            outcome = Outcome.SUCCESS
            last_entry = _count(history, scan, last_entry)
        elif history and decide(cred, header, ticket, (), gate, at).moves_person:
            outcome = Outcome.DUPLICATE
            if last_entry is not None:
                conflicts.append(
                    Conflict(ticket_id, ScanRef.of(last_entry), ScanRef.of(scan), decision.reason)
                )
        else:
            outcome = Outcome.ERROR
        outcomes.append(_outcome(scan, outcome, decision))
    return outcomes, conflicts


def _count(history: list[ScanFact], scan: HubScan, last_entry: HubScan | None) -> HubScan | None:
    """Add a movement to the merged history; give the latest counted entry."""
    ticket_id, at_ms = scan.ticket_id or "", scan.corrected_ms
    history.append(
        ScanFact.of(ticket_id, at_ms, scan.direction, True, scan.gate_name, scan.device_id)
    )
    return scan if scan.direction is Direction.ENTRY else last_entry


def _one_ticket(scans: Sequence[HubScan]) -> str:
    if not scans:
        raise ValueError("reconcile_ticket needs at least one scan")
    ticket_id = scans[0].ticket_id
    if ticket_id is None or any(s.ticket_id != ticket_id for s in scans):
        raise ValueError("reconcile_ticket takes the scans of exactly one ticket id")
    if len({(s.device_id, s.seq) for s in scans}) != len(scans):
        raise ValueError(f"scans of ticket {ticket_id} repeat a (device_id, seq)")
    return ticket_id


def _format(scan: HubScan) -> CredentialFormat:
    if scan.manual:  # as the gate's manual admit: no code was read
        return CredentialFormat.UNKNOWN
    return scan.credential_format or CredentialFormat.NATIVE


def _outcome(scan: HubScan, outcome: Outcome, decision: Decision) -> ScanOutcome:
    return ScanOutcome(
        scan.device_id,
        scan.seq,
        scan.ticket_id,
        outcome,
        decision.reason,
        decision.message,
        scan.corrected_ms,
    )


def _unreadable(scan: HubScan) -> ScanOutcome:
    """No ticket id was recorded: nothing to merge it with."""
    if not scan.moved:
        return _refused(scan)
    message = "Guest passed but no ticket id was recorded: cannot be reconciled."
    return ScanOutcome(
        scan.device_id,
        scan.seq,
        None,
        Outcome.ERROR,
        Reason.UNKNOWN_TICKET,
        message,
        scan.corrected_ms,
    )


def _refused(scan: HubScan) -> ScanOutcome:
    """The guest did not pass at the gate: an ERROR whatever the merge says."""
    if scan.verdict is Verdict.ATTENTION:
        message = (
            "Staff turned the guest away after the check."
            if scan.confirmed is False
            else "Check never confirmed by staff: the guest did not pass."
        )
    else:
        message = f"Refused at {scan.gate_name or 'the gate'}: {default_message(scan.reason)}"
    return ScanOutcome(
        scan.device_id,
        scan.seq,
        scan.ticket_id,
        Outcome.ERROR,
        scan.reason,
        message,
        scan.corrected_ms,
    )
