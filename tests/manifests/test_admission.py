"""The admission engine, table by table: every reason code, every policy template,
multi-day passes, entry/exit and re-entry counting, and the time-window edges."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest

from manifests.admission import decide, parse_context
from manifests.admission_types import Direction, ScanFact
from manifests.model import TicketStatus
from manifests.policy import HOUR_MS, MINUTE_MS, TEMPLATES, ScanPolicy
from manifests.sealing import seal_holder
from protocol.credential import Credential, Refusal
from protocol.parse import parse_credential
from protocol.reasons import Reason, Verdict
from tests.factories import END, START, credential, decide_scan, entry, exit_, gate, header, ms, row

T = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
NOW = ms("2026-06-12T19:00:00")  # Friday evening, day 1


run = partial(decide_scan, T, now=NOW)  # this module's ticket, at NOW unless a test says when


def test_admit_shows_display_facts_and_holder_from_the_sealed_row() -> None:
    code = credential(T)
    parsed = parse_credential(code, parse_context(header(), NOW))
    assert isinstance(parsed, Credential) and parsed.signature
    sealed = seal_holder("Ada Lovelace", parsed.signature, T)
    d = run(code, ticket=row(T, seat="B-12", holder_sealed=sealed))
    assert (d.verdict, d.reason) == (Verdict.ADMIT, Reason.ADMITTED)
    assert d.display.holder == "Ada Lovelace" and "Ada Lovelace" in d.message
    assert (d.display.tier, d.display.zone, d.display.seat) == ("Weekend", "GA", "B-12")
    assert d.display.entries_today == 1 and d.ticket_id == T


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("SOLD", Reason.ADMITTED),
        ("MINTED", Reason.ADMITTED),
        ("ACTIVE", Reason.ADMITTED),
        ("TRANSFERRED", Reason.ADMITTED),
        ("USED", Reason.ALREADY_ADMITTED),
        ("CANCELLED", Reason.CANCELLED),
        ("REFUNDED", Reason.REFUNDED),
        ("REVOKED", Reason.REVOKED),
        ("EXPIRED", Reason.EXPIRED),
        ("RESERVED", Reason.BAD_STATUS),
        ("SOMETHING_NEW", Reason.BAD_STATUS),
    ],
)
def test_ticket_statuses(status: str, reason: Reason) -> None:
    d = run(ticket=row(T, status=status))
    assert d.reason is reason
    assert d.verdict is (Verdict.ADMIT if reason is Reason.ADMITTED else Verdict.DENY)


@pytest.mark.parametrize(
    ("lock", "verdict", "reason"),
    [
        ("fraud_investigation", Verdict.DENY, Reason.LOCKED),
        ("chargeback_pending", Verdict.DENY, Reason.LOCKED),
        ("dispute", Verdict.DENY, Reason.LOCKED),
        ("legal_hold", Verdict.DENY, Reason.LOCKED),
        ("admin_request", Verdict.ATTENTION, Reason.ATTENTION_REQUIRED),
        ("event_policy", Verdict.ATTENTION, Reason.ATTENTION_REQUIRED),
    ],
)
def test_locks(lock: str, verdict: Verdict, reason: Reason) -> None:
    d = run(ticket=row(T, lock_reason=lock))
    assert (d.verdict, d.reason) == (verdict, reason)
    assert lock.replace("_", " ") in d.message


def test_refusals_from_the_parser_carry_through() -> None:
    cases = {
        "garbage!!": Reason.MALFORMED,
        credential(T, event_code=5): Reason.WRONG_EVENT,
        credential(T, key_id=9): Reason.UNKNOWN_KEY,
        credential(T, rotating=True): Reason.EXPIRED_CODE,
    }
    for code, reason in cases.items():
        d = run(code)
        assert (d.verdict, d.reason) == (Verdict.DENY, reason), code
        assert d.message


def test_bad_signature_and_replay() -> None:
    forged = credential(T, signing_key=bytes(32))
    assert run(forged).reason is Reason.BAD_SIGNATURE
    replay = Refusal.of(Reason.REPLAYED)
    d = decide(replay, header(), row(T), (), gate(), NOW)
    assert d.reason is Reason.REPLAYED and d.verdict is Verdict.DENY


def test_ticket_level_reasons() -> None:
    assert run(ticket=None).reason is Reason.ADMITTED  # row(T) default
    d = decide(
        parse_credential(credential(T), parse_context(header(), NOW)),
        header(),
        None,
        (),
        gate(),
        NOW,
    )
    assert d.reason is Reason.UNKNOWN_TICKET
    assert run(hdr=header(revoked={T: "duplicate_ticket"})).reason is Reason.REVOKED
    assert run(ticket=row(T, generation=2)).reason is Reason.SUPERSEDED
    assert run(credential(T, generation=2), ticket=row(T, generation=2)).verdict is Verdict.ADMIT
    assert run(where=gate(venue_id="elsewhere")).reason is Reason.WRONG_VENUE
    assert run(where=gate(authorized=False)).reason is Reason.DEVICE_NOT_AUTHORIZED
    stale = header(expires_at_ms=NOW - 1)
    assert run(hdr=stale).reason is Reason.MANIFEST_EXPIRED


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (START - 4 * HOUR_MS - 1, Reason.TOO_EARLY),
        (START - 4 * HOUR_MS, Reason.ADMITTED),
        (END + 2 * HOUR_MS, Reason.ADMITTED),
        (END + 2 * HOUR_MS + 1, Reason.TOO_LATE),
        (END + 24 * HOUR_MS + 1, Reason.EXPIRED),
    ],
)
def test_check_in_window_edges(now: int, reason: Reason) -> None:
    code = credential(T, valid_from_ms=START - 10 * HOUR_MS, valid_until_ms=END + 30 * HOUR_MS)
    hdr = header(expires_at_ms=END + 72 * HOUR_MS)
    assert run(code, now=now, hdr=hdr).reason is reason


def test_credential_validity_window_narrows_the_event_window() -> None:
    code = credential(T, valid_from_ms=NOW + HOUR_MS, valid_until_ms=END)
    d = run(code)
    assert d.reason is Reason.TOO_EARLY and "opens at" in d.message
    code = credential(T, valid_from_ms=START - HOUR_MS, valid_until_ms=NOW - MINUTE_MS)
    assert run(code).reason is Reason.TOO_LATE


def test_check_in_window_is_per_event() -> None:
    event = replace(header().event, checkin_before_ms=HOUR_MS)
    hdr = header(event=event)
    assert run(now=START - 2 * HOUR_MS, hdr=hdr).reason is Reason.TOO_EARLY
    assert run(now=START - HOUR_MS, hdr=hdr).reason is Reason.ADMITTED


SAT = ms("2026-06-13T15:00:00")
SUN = ms("2026-06-14T15:00:00")


def test_multi_day_pass_from_manifest_days() -> None:
    saturday_only = row(T, valid_days=("2026-06-13",))
    d = run(ticket=saturday_only)
    assert d.reason is Reason.NOT_VALID_TODAY and "Sat 13 Jun" in d.message
    assert run(ticket=saturday_only, now=SAT).reason is Reason.ADMITTED


def test_multi_day_pass_from_credential_day_mask() -> None:
    # valid_from is Friday (local); mask bits: Fri=1, Sat=2, Sun=4 -> Fri + Sun
    code = credential(T, day_mask=0b101)
    assert run(code, now=NOW).reason is Reason.ADMITTED
    assert run(code, now=SAT).reason is Reason.NOT_VALID_TODAY
    assert run(code, now=SUN).reason is Reason.ADMITTED


def test_entries_are_counted_per_day_on_multi_day_events() -> None:
    friday = (entry(T, NOW - HOUR_MS),)
    assert run(history=friday).reason is Reason.ALREADY_ADMITTED  # standard: no re-entry
    d = run(history=friday, now=SAT)
    assert d.reason is Reason.ADMITTED and d.display.entries_today == 1


def test_duplicate_window_names_gate_and_time() -> None:
    d = run(history=(entry(T, NOW - 4 * MINUTE_MS - 10_000, "Gate 5"),))
    assert d.reason is Reason.ALREADY_ADMITTED
    assert d.message == "Already admitted at Gate 5, 18:55:50 (4 min ago)."


def test_uncounted_scans_do_not_count() -> None:
    denied_before = (entry(T, NOW - MINUTE_MS, counted=False),)
    assert run(history=denied_before).reason is Reason.ADMITTED


# Each template against the same story: in at 18:00, out at 18:20, back at the time given.
IN_AT = NOW - HOUR_MS
OUT_AT = IN_AT + 20 * MINUTE_MS


@pytest.mark.parametrize(
    ("template", "history", "now", "reason"),
    [
        ("standard", (entry(T, IN_AT),), IN_AT + 2 * MINUTE_MS, Reason.ALREADY_ADMITTED),
        ("standard", (entry(T, IN_AT), exit_(T, OUT_AT)), NOW, Reason.ALREADY_ADMITTED),
        ("festival", (entry(T, IN_AT),), IN_AT + 29 * MINUTE_MS, Reason.ALREADY_ADMITTED),
        ("festival", (entry(T, IN_AT), exit_(T, OUT_AT)), OUT_AT + MINUTE_MS, Reason.REENTRY),
        ("festival", tuple(entry(T, IN_AT + i) for i in range(9)), NOW, Reason.REENTRY),
        ("concert", (entry(T, IN_AT),), IN_AT + 9 * MINUTE_MS, Reason.ALREADY_ADMITTED),
        ("concert", (entry(T, IN_AT), exit_(T, OUT_AT)), NOW, Reason.REENTRY),
        (
            "concert",
            (entry(T, IN_AT), exit_(T, OUT_AT), entry(T, OUT_AT + 1), exit_(T, OUT_AT + 2)),
            NOW,
            Reason.REENTRY_LIMIT,
        ),
        ("conference", (entry(T, IN_AT),), IN_AT + 1, Reason.REENTRY),
        ("vip_event", (entry(T, IN_AT),), IN_AT + 4 * MINUTE_MS, Reason.ALREADY_ADMITTED),
        ("vip_event", (), NOW, Reason.ADMITTED),
    ],
)
def test_policy_templates(
    template: str, history: tuple[ScanFact, ...], now: int, reason: Reason
) -> None:
    assert run(history=history, now=now, hdr=header(TEMPLATES[template])).reason is reason


def test_reentry_cooldown_and_row_entry_limit() -> None:
    policy = ScanPolicy(duplicate_window_minutes=None, reentry_enabled=True, cooldown_minutes=30)
    hist = (entry(T, IN_AT), exit_(T, OUT_AT))
    d = run(history=hist, now=IN_AT + 29 * MINUTE_MS, hdr=header(policy))
    assert d.reason is Reason.REENTRY_COOLDOWN and "18:30:00" in d.message
    assert run(history=hist, now=IN_AT + 30 * MINUTE_MS, hdr=header(policy)).reason is (
        Reason.REENTRY
    )
    limited = row(T, max_entries=1)
    assert run(ticket=limited, history=hist, hdr=header(policy)).reason is Reason.REENTRY_LIMIT


def test_exit_direction() -> None:
    out = gate("Exit North", Direction.EXIT)
    d = run(where=out, history=(entry(T, IN_AT),))
    assert (d.verdict, d.reason) == (Verdict.EXIT, Reason.EXITED)
    assert "no entry on record" in run(where=out).message
    assert run(where=out, ticket=row(T, status=TicketStatus.REVOKED)).verdict is Verdict.DENY
    # a day-pass holder leaving after midnight, or after check-in closed, still gets out
    after_midnight = ms("2026-06-13T01:30:00")
    friday_only = row(T, valid_days=("2026-06-12",))
    assert run(where=out, ticket=friday_only, now=after_midnight).verdict is Verdict.EXIT
    late = END + 3 * HOUR_MS
    assert run(where=out, now=late, hdr=header(expires_at_ms=END + 72 * HOUR_MS)).verdict is (
        Verdict.EXIT
    )


@pytest.mark.parametrize(
    ("ticket_zone", "gate_zones", "policy", "verdict"),
    [
        ("GA", ("GA",), ScanPolicy(), Verdict.ADMIT),
        ("GA", ("VIP",), ScanPolicy(), Verdict.DENY),
        ("VIP", ("GA",), ScanPolicy(), Verdict.ADMIT),
        ("VIP", ("BACKSTAGE",), ScanPolicy(), Verdict.DENY),
        ("VIP", ("BACKSTAGE",), ScanPolicy(vip_all_access=True), Verdict.ADMIT),
        ("BACKSTAGE", ("VIP",), ScanPolicy(), Verdict.ADMIT),
        ("GA", ("BACKSTAGE",), ScanPolicy(zone_strict=False), Verdict.ATTENTION),
        ("GA", ("VIP", "GA"), ScanPolicy(), Verdict.ADMIT),
    ],
)
def test_zones(ticket_zone: str, gate_zones: tuple[str, ...], policy, verdict) -> None:
    d = run(ticket=row(T, zone=ticket_zone), where=gate(zones=gate_zones), hdr=header(policy))
    assert d.verdict is verdict
    if verdict is Verdict.DENY:
        assert d.reason is Reason.ZONE_DENIED and ticket_zone in d.message


def test_attention_from_row_note_and_credential_flag() -> None:
    d = run(ticket=row(T, attention="Check student ID"))
    assert (d.verdict, d.reason, d.message) == (
        Verdict.ATTENTION,
        Reason.ATTENTION_REQUIRED,
        "Check student ID",
    )
    assert run(credential(T, attention=True)).verdict is Verdict.ATTENTION
    assert run(credential(T, comp=True)).display.comp


def test_every_reason_code_is_reachable_by_this_table() -> None:
    """Guards the list: a reason added without a case here fails."""
    covered = {
        Reason.ADMITTED, Reason.REENTRY, Reason.EXITED, Reason.ATTENTION_REQUIRED,
        Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.UNKNOWN_KEY, Reason.EXPIRED_CODE,
        Reason.REPLAYED, Reason.WRONG_EVENT, Reason.WRONG_VENUE, Reason.UNKNOWN_TICKET,
        Reason.REVOKED, Reason.SUPERSEDED, Reason.CANCELLED, Reason.REFUNDED, Reason.LOCKED,
        Reason.BAD_STATUS, Reason.TOO_EARLY, Reason.TOO_LATE, Reason.EXPIRED,
        Reason.NOT_VALID_TODAY, Reason.ZONE_DENIED, Reason.ALREADY_ADMITTED,
        Reason.REENTRY_COOLDOWN, Reason.REENTRY_LIMIT, Reason.DEVICE_NOT_AUTHORIZED,
        Reason.MANIFEST_EXPIRED,
    }  # fmt: skip
    assert covered == set(Reason)
