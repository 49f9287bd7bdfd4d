"""The admission engine: the one place where admission rules live.

A pure function of the parsed credential, the manifest facts, the ticket's scan history, the
gate and the time. The gate calls it for every scan, the hub for online checks and for
re-running merged histories during reconciliation, so both always agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from manifests.admission_types import (
    Decision,
    Direction,
    DisplayFacts,
    GateContext,
    ScanFact,
)
from manifests.model import (
    ADMITTING_STATUSES,
    DENYING_LOCK_REASONS,
    ManifestHeader,
    TicketRow,
    TicketStatus,
)
from manifests.policy import EXPIRY_AFTER_END_MS, MINUTE_MS
from manifests.sealing import unseal_holder
from protocol.credential import CodeLookup, Credential, ParseContext, ParseResult, Refusal
from protocol.limits import calendar_ms
from protocol.reasons import Reason, Verdict, default_message

_STATUS_REASONS: dict[str, Reason] = {
    TicketStatus.REVOKED: Reason.REVOKED,
    TicketStatus.CANCELLED: Reason.CANCELLED,
    TicketStatus.REFUNDED: Reason.REFUNDED,
    TicketStatus.EXPIRED: Reason.EXPIRED,
    TicketStatus.USED: Reason.ALREADY_ADMITTED,
    TicketStatus.CHECKED_IN: Reason.ALREADY_ADMITTED,
}


def parse_context(
    header: ManifestHeader,
    now_ms: int,
    seen_nonces: Container[str] = frozenset(),
    codes: CodeLookup | None = None,
) -> ParseContext:
    """The parse facts a manifest provides: keys, event binding, legacy keys, rotation, and
    the codes a ticketing system printed: `codes` finds them (a gate: by their hashes; the
    hub: in its own table), asked only when the header has a code lookup key, so gate and hub
    read the same text alike."""
    return ParseContext(
        now_ms=now_ms,
        issuer_keys=header.issuer_keys,
        event_id=header.event.id,
        event_codes={header.event.code: header.event.id},
        legacy=header.legacy,
        rotation_secret=header.rotation_secret,
        rotation_period_s=header.event.rotation_period_s,
        seen_nonces=seen_nonces,
        code_signing_keys=header.code_signing_keys,
        code_lookup=codes if header.code_lookup_key is not None else None,
    )


class _Deny(Exception):
    """Internal short-cut: the first failing rule ends the decision."""

    def __init__(
        self, reason: Reason, message: str | None = None, detail: str | None = None
    ) -> None:
        self.reason = reason
        self.message = message or default_message(reason)
        self.detail = detail  # a refusal's technical words: for logs, never the message


def decide(
    parsed: ParseResult,
    header: ManifestHeader,
    ticket: TicketRow | None,
    history: Sequence[ScanFact],
    gate: GateContext,
    now_ms: int,
    holder: str | None = None,
) -> Decision:
    ticket_id = parsed.ticket_id
    display = DisplayFacts()
    try:
        _check_device(header, gate, now_ms)
        if isinstance(parsed, Refusal):
            raise _Deny(parsed.reason, parsed.message, parsed.detail)
        cred = parsed
        ticket = _check_ticket(cred, header, ticket, gate)
        display = _display(cred, header, ticket, history, now_ms, holder)
        if gate.direction is Direction.EXIT:  # nobody is kept in: time and zone rules skip
            return Decision(Verdict.EXIT, Reason.EXITED, _exit_message(history), ticket_id, display)
        _check_time(cred, header, ticket, now_ms)
        notes = _zone_notes(cred, header, ticket, gate)
        reason = _check_history(header, ticket, history, now_ms)
    except _Deny as deny:
        return Decision(
            Verdict.DENY, deny.reason, deny.message, ticket_id, display, detail=deny.detail
        )
    display = dataclasses.replace(display, entries_today=display.entries_today + 1)
    notes += _attention_notes(cred, ticket)
    if notes:
        display = dataclasses.replace(display, note="; ".join(notes))
        return Decision(
            Verdict.ATTENTION, Reason.ATTENTION_REQUIRED, "; ".join(notes), ticket_id, display
        )
    message = default_message(reason)
    if display.holder:
        message = f"{message} {display.holder}."
    return Decision(Verdict.ADMIT, reason, message, ticket_id, display)


def _check_device(header: ManifestHeader, gate: GateContext, now_ms: int) -> None:
    if not gate.authorized:
        raise _Deny(Reason.DEVICE_NOT_AUTHORIZED)
    if header.expires_at_ms <= now_ms:
        raise _Deny(Reason.MANIFEST_EXPIRED)


def _check_ticket(
    cred: Credential, header: ManifestHeader, ticket: TicketRow | None, gate: GateContext
) -> TicketRow:
    event = header.event
    if cred.event_id is not None and cred.event_id != event.id:
        raise _Deny(Reason.WRONG_EVENT)
    if gate.venue_id != event.venue_id:
        raise _Deny(Reason.WRONG_VENUE, f"This gate is not at {event.venue_name or 'the'} venue.")
    revoked = header.revoked.get(cred.ticket_id)
    if revoked is not None:
        raise _Deny(Reason.REVOKED, f"Ticket has been revoked ({_words(revoked)}).")
    if ticket is None:
        raise _Deny(Reason.UNKNOWN_TICKET)
    if ticket.status not in ADMITTING_STATUSES:
        reason = _STATUS_REASONS.get(ticket.status, Reason.BAD_STATUS)
        message = default_message(reason)
        if reason is Reason.ALREADY_ADMITTED:
            message = "Ticket is already marked as used."
        elif reason is Reason.BAD_STATUS:
            message = f"Ticket status {ticket.status!s} does not allow entry."
        raise _Deny(reason, message)
    if cred.generation is not None and cred.generation < ticket.generation:
        raise _Deny(Reason.SUPERSEDED)
    if ticket.lock_reason in DENYING_LOCK_REASONS:
        raise _Deny(Reason.LOCKED, f"Ticket is locked: {_words(ticket.lock_reason)}.")
    return ticket


def _check_time(cred: Credential, header: ManifestHeader, ticket: TicketRow, now_ms: int) -> None:
    event = header.event
    tz = _zone(event.timezone)
    if now_ms > event.end_ms + EXPIRY_AFTER_END_MS:
        raise _Deny(Reason.EXPIRED)
    opens = event.start_ms - event.checkin_before_ms
    if cred.valid_from_ms is not None:
        opens = max(opens, cred.valid_from_ms)
    if now_ms < opens:
        raise _Deny(Reason.TOO_EARLY, f"Too early: check-in opens {_when(opens, now_ms, tz)}.")
    closes = event.end_ms + event.checkin_after_ms
    if cred.valid_until_ms is not None:
        closes = min(closes, cred.valid_until_ms)
    if now_ms > closes:
        raise _Deny(Reason.TOO_LATE, f"Too late: check-in closed {_when(closes, now_ms, tz)}.")
    days = _valid_days(cred, ticket, tz)
    today = _local_date(now_ms, tz)
    if days and today not in days:
        listed = ", ".join(d.strftime("%a %d %b") for d in sorted(days))
        raise _Deny(Reason.NOT_VALID_TODAY, f"Not valid today; valid on {listed}.")


def _valid_days(cred: Credential, ticket: TicketRow, tz: ZoneInfo) -> frozenset[date]:
    """The manifest row is authoritative; a code's day mask counts from its first valid day."""
    if ticket.valid_days:
        return frozenset(date.fromisoformat(d) for d in ticket.valid_days)
    if cred.day_mask and cred.valid_from_ms is not None:
        first = _local_date(cred.valid_from_ms, tz)
        bits = range(cred.day_mask.bit_length())
        return frozenset(first + timedelta(days=i) for i in bits if cred.day_mask >> i & 1)
    return frozenset()


def _zone_notes(
    cred: Credential, header: ManifestHeader, ticket: TicketRow, gate: GateContext
) -> list[str]:
    zone = ticket.zone or header.event.zone_name(cred.zone)
    if not gate.zones or zone is None:
        return []
    policy, rules = header.policy, header.zone_rules
    if any(rules.may_enter(zone, g, policy.vip_all_access) for g in gate.zones):
        return []
    message = f"{zone} ticket does not give access to {'/'.join(gate.zones)}."
    if policy.zone_strict:
        raise _Deny(Reason.ZONE_DENIED, message)
    return [f"Check zone: {message}"]


def _check_history(
    header: ManifestHeader, ticket: TicketRow, history: Sequence[ScanFact], now_ms: int
) -> Reason:
    """Duplicate window, re-entry and entry limits over the ticket's counted movements."""
    policy = header.policy
    tz = _zone(header.event.timezone)
    moves = sorted((f for f in history if f.counted), key=lambda f: f.at_ms)
    entries = [f for f in moves if f.direction is Direction.ENTRY]
    if not entries:
        return Reason.ADMITTED
    last = entries[-1]
    inside = moves[-1].direction is Direction.ENTRY
    scoped = _scoped_entries(entries, header, ticket, now_ms, tz)
    window = policy.duplicate_window_minutes
    if inside and window is not None and now_ms - last.at_ms < window * MINUTE_MS:
        raise _Deny(Reason.ALREADY_ADMITTED, _already(last, now_ms, tz))
    if not scoped:
        return Reason.ADMITTED
    if not policy.reentry_enabled:
        raise _Deny(Reason.ALREADY_ADMITTED, _already(scoped[-1], now_ms, tz))
    used = len(scoped) - 1
    if policy.max_reentries is not None and used >= policy.max_reentries:
        raise _Deny(
            Reason.REENTRY_LIMIT,
            f"No re-entries left: {used} of {policy.max_reentries} used "
            f"(last in at {scoped[-1].gate_name or 'a gate'}, "
            f"{venue_clock(scoped[-1].at_ms, tz)}).",
        )
    if ticket.max_entries is not None and len(scoped) >= ticket.max_entries:
        raise _Deny(
            Reason.REENTRY_LIMIT, f"Entry limit reached: {len(scoped)} of {ticket.max_entries}."
        )
    cooldown_end = last.at_ms + policy.cooldown_minutes * MINUTE_MS
    if now_ms < cooldown_end:
        raise _Deny(
            Reason.REENTRY_COOLDOWN, f"Re-entry allowed from {venue_clock(cooldown_end, tz)}."
        )
    return Reason.REENTRY


def _scoped_entries(
    entries: list[ScanFact],
    header: ManifestHeader,
    ticket: TicketRow,
    now_ms: int,
    tz: ZoneInfo,
) -> list[ScanFact]:
    """Multi-day events and passes count entries per local day; others over the whole event."""
    if len(header.event.days) <= 1 and len(ticket.valid_days) <= 1:
        return entries
    today = _local_date(now_ms, tz)
    return [f for f in entries if _local_date(f.at_ms, tz) == today]


def _display(
    cred: Credential,
    header: ManifestHeader,
    ticket: TicketRow,
    history: Sequence[ScanFact],
    now_ms: int,
    holder: str | None,
) -> DisplayFacts:
    event = header.event
    tz = _zone(event.timezone)
    if holder is None and ticket.holder_sealed and cred.signature:
        holder = unseal_holder(ticket.holder_sealed, cred.signature, ticket.ticket_id)
    today = _local_date(now_ms, tz)
    entries_today = sum(
        1
        for f in history
        if f.counted and f.direction is Direction.ENTRY and _local_date(f.at_ms, tz) == today
    )
    return DisplayFacts(
        holder=holder,
        tier=ticket.ticket_type or event.type_name(cred.ticket_type),
        zone=ticket.zone or event.zone_name(cred.zone),
        seat=ticket.seat,
        entries_today=entries_today,
        comp=cred.comp or ticket.comp_reason is not None,
    )


def _attention_notes(cred: Credential, ticket: TicketRow) -> list[str]:
    notes = []
    if ticket.attention:
        notes.append(ticket.attention)
    elif cred.attention:
        notes.append("Check the guest before admitting.")
    if ticket.lock_reason is not None:  # non-denying locks: staff look before admitting
        notes.append(f"Ticket locked ({_words(ticket.lock_reason)})")
    return notes


def _exit_message(history: Sequence[ScanFact]) -> str:
    moves = [f for f in history if f.counted]
    if moves and max(moves, key=lambda f: f.at_ms).direction is Direction.ENTRY:
        return default_message(Reason.EXITED)
    return "Exit recorded (no entry on record for this ticket)."


def _already(fact: ScanFact, now_ms: int, tz: ZoneInfo) -> str:
    ago = max(0, now_ms - fact.at_ms) // MINUTE_MS
    where = fact.gate_name or "another gate"
    return f"Already admitted at {where}, {venue_clock(fact.at_ms, tz)} ({ago} min ago)."


def _words(code: str | None) -> str:
    return (code or "").replace("_", " ")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(ms: int, tz: ZoneInfo) -> datetime:
    """Never raises: a stored absurd time reads as a far date, never a crash."""
    return datetime.fromtimestamp(calendar_ms(ms) / 1000, UTC).astimezone(tz)


@lru_cache(maxsize=1 << 16)  # hub reconciliation re-reads each history time once per later scan
def _local_date(ms: int, tz: ZoneInfo) -> date:
    return _local(ms, tz).date()


def venue_clock(ms: int, timezone: str | ZoneInfo | None) -> str:
    """HH:MM:SS on the venue's clock (the event's timezone in the manifest): the one clock a
    gate shows, in verdicts, history and status bar alike, whatever the machine's zone. No
    venue known yet (no manifest): UTC, and it says so."""
    if timezone is None:
        return _local(ms, ZoneInfo("UTC")).strftime("%H:%M:%S UTC")
    tz = timezone if isinstance(timezone, ZoneInfo) else _zone(timezone)
    return _local(ms, tz).strftime("%H:%M:%S")


def _when(ms: int, now_ms: int, tz: ZoneInfo) -> str:
    """A time, with its date when it is not today."""
    moment = _local(ms, tz)
    if moment.date() == _local_date(now_ms, tz):
        return f"at {moment:%H:%M}"
    return f"{moment:%a %d %b %H:%M}"
