"""The admission engine at its edges: exact boundaries, the words staff read, the venue's clock
around midnight, and the facts each kind of decision carries. Each case here was a mutant
`make mutation` found alive (the suite passed with the rule changed)."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import pytest

from manifests.admission import decide, parse_context
from manifests.admission_types import Direction, DisplayFacts
from manifests.model import ManifestHeader
from manifests.policy import EXPIRY_AFTER_END_MS, HOUR_MS, MINUTE_MS, TEMPLATES, ScanPolicy
from manifests.sealing import seal_holder
from protocol.credential import Credential, CredentialFormat, LegacyKeys, Refusal
from protocol.legacy import legacy_keys_from_vectors
from protocol.native import rotate
from protocol.parse import parse_credential
from protocol.reasons import Reason, Verdict, default_message
from protocol.rotating import ticket_rotation_secret
from tests.factories import (
    END,
    EVENT,
    ROTATION_SECRET,
    credential,
    decide_scan,
    entry,
    exit_,
    gate,
    header,
    ms,
    row,
)
from tests.paths import VECTORS

T = "6d1f0c2b-3a4e-4f5d-8e7c-9b0a1c2d3e4f"
NOW = ms("2026-06-12T19:00:00")  # Friday evening, day 1 of the festival (Berlin)
IN_AT = NOW - HOUR_MS  # 18:00
OUT_AT = IN_AT + 20 * MINUTE_MS  # 18:20
SAT_0030 = ms("2026-06-13T00:30:00")  # Berlin is UTC+2 in June: still Friday in UTC
REENTRY_ANY = ScanPolicy(duplicate_window_minutes=None, reentry_enabled=True)


run = partial(decide_scan, T, now=NOW)  # this module's ticket, at NOW unless a test says when


def decide_cred(cred: Credential, hdr: ManifestHeader | None = None):
    return decide(cred, hdr or header(), row(T), (), gate(), NOW)


# --- boundaries -----------------------------------------------------------------------------


def test_a_manifest_stops_admitting_at_the_instant_it_expires() -> None:
    assert run(hdr=header(expires_at_ms=NOW)).reason is Reason.MANIFEST_EXPIRED
    assert run(hdr=header(expires_at_ms=NOW + 1)).reason is Reason.ADMITTED


def test_tickets_expire_only_after_the_full_day_past_the_end() -> None:
    code = credential(T, valid_until_ms=END + 30 * HOUR_MS)
    hdr = header(expires_at_ms=END + 72 * HOUR_MS)
    boundary = END + EXPIRY_AFTER_END_MS
    assert run(code, hdr=hdr, now=boundary).reason is Reason.TOO_LATE  # closed, not yet expired
    assert run(code, hdr=hdr, now=boundary + 1).reason is Reason.EXPIRED


def test_the_duplicate_window_ends_exactly_after_its_minutes() -> None:
    policy = ScanPolicy(duplicate_window_minutes=5, reentry_enabled=True)
    hdr = header(policy)
    assert run(history=(entry(T, NOW - 5 * MINUTE_MS),), hdr=hdr).reason is Reason.REENTRY
    inside = (entry(T, NOW - 5 * MINUTE_MS + 1),)
    assert run(history=inside, hdr=hdr).reason is Reason.ALREADY_ADMITTED


# --- what staff read --------------------------------------------------------------------------


def test_wrong_venue_names_the_venue_or_says_the_venue() -> None:
    away = gate(venue_id="elsewhere")
    assert run(where=away).message == "This gate is not at Riverside Park venue."
    nameless = header(event=replace(EVENT, venue_name=""))
    assert run(where=away, hdr=nameless).message == "This gate is not at the venue."


def test_revoked_says_why_in_words() -> None:
    d = run(hdr=header(revoked={T: "duplicate_ticket"}))
    assert (d.reason, d.message) == (Reason.REVOKED, "Ticket has been revoked (duplicate ticket).")


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        ("USED", Reason.ALREADY_ADMITTED, "Ticket is already marked as used."),
        ("CHECKED_IN", Reason.ALREADY_ADMITTED, "Ticket is already marked as used."),
        ("CANCELLED", Reason.CANCELLED, default_message(Reason.CANCELLED)),
        ("REFUNDED", Reason.REFUNDED, default_message(Reason.REFUNDED)),
        ("RESERVED", Reason.BAD_STATUS, "Ticket status RESERVED does not allow entry."),
    ],
)
def test_a_refusing_status_is_explained(status: str, reason: Reason, message: str) -> None:
    d = run(ticket=row(T, status=status))
    assert (d.verdict, d.reason, d.message) == (Verdict.DENY, reason, message)


def test_no_reentry_names_the_earlier_entry_even_after_an_exit() -> None:
    d = run(history=(entry(T, IN_AT, "Gate 5"), exit_(T, OUT_AT)))
    assert d.reason is Reason.ALREADY_ADMITTED
    assert d.message == "Already admitted at Gate 5, 18:00:00 (60 min ago)."


def test_an_entry_from_an_unnamed_gate_reads_another_gate() -> None:
    d = run(history=(entry(T, NOW - 4 * MINUTE_MS, ""),))
    assert d.message == "Already admitted at another gate, 18:56:00 (4 min ago)."


def test_no_reentries_left_names_the_last_entry() -> None:
    policy = replace(REENTRY_ANY, max_reentries=2)
    hist = (
        entry(T, IN_AT, "Gate 2"),
        exit_(T, IN_AT + 5 * MINUTE_MS),
        entry(T, IN_AT + 10 * MINUTE_MS, "Gate 4"),
        exit_(T, IN_AT + 15 * MINUTE_MS),
        entry(T, OUT_AT + MINUTE_MS, "Gate 7"),
        exit_(T, OUT_AT + 10 * MINUTE_MS),
    )
    d = run(history=hist, hdr=header(policy))
    assert d.reason is Reason.REENTRY_LIMIT
    assert d.message == "No re-entries left: 2 of 2 used (last in at Gate 7, 18:21:00)."
    unnamed = (*hist[:4], entry(T, OUT_AT + MINUTE_MS, ""), hist[5])
    message = run(history=unnamed, hdr=header(policy)).message
    assert message.endswith("(last in at a gate, 18:21:00).")


def test_a_row_entry_limit_says_how_many() -> None:
    hist = (entry(T, IN_AT), exit_(T, OUT_AT), entry(T, OUT_AT + 1), exit_(T, OUT_AT + 2))
    d = run(history=hist, ticket=row(T, max_entries=2), hdr=header(REENTRY_ANY))
    assert (d.reason, d.message) == (Reason.REENTRY_LIMIT, "Entry limit reached: 2 of 2.")


def test_check_in_window_messages_give_the_venue_time_and_the_day_when_not_today() -> None:
    late = run(credential(T, valid_until_ms=NOW - MINUTE_MS))
    assert (late.reason, late.message) == (Reason.TOO_LATE, "Too late: check-in closed at 18:59.")
    early = run(credential(T, valid_from_ms=ms("2026-06-13T10:00:00")))
    assert early.reason is Reason.TOO_EARLY
    assert early.message == "Too early: check-in opens Sat 13 Jun 10:00."
    after_midnight = run(credential(T, valid_from_ms=ms("2026-06-13T10:00:00")), now=SAT_0030)
    assert after_midnight.message == "Too early: check-in opens at 10:00."  # today, venue time


def test_not_valid_today_lists_the_valid_days_in_order() -> None:
    d = run(ticket=row(T, valid_days=("2026-06-14", "2026-06-13")))
    assert d.reason is Reason.NOT_VALID_TODAY
    assert d.message == "Not valid today; valid on Sat 13 Jun, Sun 14 Jun."


def test_zone_messages_list_every_gate_zone() -> None:
    d = run(where=gate(zones=("VIP", "BACKSTAGE")))
    assert d.reason is Reason.ZONE_DENIED
    assert d.message == "GA ticket does not give access to VIP/BACKSTAGE."


def test_attention_notes_are_joined_and_shown() -> None:
    lenient = header(ScanPolicy(zone_strict=False))
    d = run(ticket=row(T, attention="Check student ID"), where=gate(zones=("VIP",)), hdr=lenient)
    expected = "Check zone: GA ticket does not give access to VIP.; Check student ID"
    assert (d.verdict, d.reason, d.message) == (
        Verdict.ATTENTION,
        Reason.ATTENTION_REQUIRED,
        expected,
    )
    assert d.display.note == expected and d.ticket_id == T
    assert (d.display.tier, d.display.zone, d.display.entries_today) == ("Weekend", "GA", 1)


def test_the_credential_attention_flag_has_its_own_words() -> None:
    assert run(credential(T, attention=True)).message == "Check the guest before admitting."


def test_an_admission_without_a_holder_reads_the_plain_sentence() -> None:
    d = run()
    assert (d.verdict, d.message) == (Verdict.ADMIT, default_message(Reason.ADMITTED))


def test_the_parsers_own_words_reach_staff() -> None:
    code = credential(T, rotating=True)  # printed: the live part is missing
    parsed = parse_credential(code, parse_context(header(), NOW))
    d = run(code)
    assert d.reason is Reason.EXPIRED_CODE and d.message == parsed.message
    assert d.message != default_message(Reason.EXPIRED_CODE)


# --- the venue's clock, whatever the machine's ------------------------------------------------
# Berlin is UTC+2 in June: 00:30 on Saturday at the venue is still Friday in UTC. These pass on
# any machine; they catch a rule reading the machine's zone only where that zone is not Berlin's.


def test_a_saturday_pass_opens_at_the_venues_midnight() -> None:
    saturday = row(T, valid_days=("2026-06-13",))
    assert run(ticket=saturday, now=SAT_0030).reason is Reason.ADMITTED
    assert run(ticket=saturday, now=ms("2026-06-12T23:30:00")).reason is Reason.NOT_VALID_TODAY


def test_a_day_mask_counts_from_the_local_date_of_the_first_valid_minute() -> None:
    code = credential(T, valid_from_ms=ms("2026-06-12T00:30:00"), day_mask=0b1)  # Friday only
    assert run(code).reason is Reason.ADMITTED
    assert run(code, now=ms("2026-06-13T15:00:00")).reason is Reason.NOT_VALID_TODAY


def test_after_the_venues_midnight_a_multi_day_ticket_starts_a_new_day() -> None:
    hist = (entry(T, ms("2026-06-12T23:30:00")), exit_(T, ms("2026-06-12T23:50:00")))
    d = run(history=hist, now=SAT_0030)  # standard: no re-entry on the same day
    assert d.reason is Reason.ADMITTED and d.display.entries_today == 1


def test_an_entry_just_after_the_venues_midnight_counts_for_the_new_day() -> None:
    hist = (entry(T, ms("2026-06-13T00:10:00")), exit_(T, ms("2026-06-13T00:20:00")))
    d = run(history=hist, now=ms("2026-06-13T02:30:00"))
    assert d.reason is Reason.ALREADY_ADMITTED
    assert run(where=gate("Exit", Direction.EXIT), history=hist[:1], now=SAT_0030).display == (
        DisplayFacts(tier="Weekend", zone="GA", entries_today=1)
    )


# --- which entries count ----------------------------------------------------------------------


def test_a_one_day_event_counts_entries_across_midnight() -> None:
    one_day = header(event=replace(EVENT, days=("2026-06-12",)))
    hist = (entry(T, ms("2026-06-12T23:30:00")), exit_(T, ms("2026-06-12T23:50:00")))
    assert run(history=hist, hdr=one_day, now=SAT_0030).reason is Reason.ALREADY_ADMITTED


def test_a_two_day_event_counts_entries_per_day() -> None:
    two_days = header(event=replace(EVENT, days=("2026-06-12", "2026-06-13")))
    hist = (entry(T, IN_AT), exit_(T, OUT_AT))
    assert run(history=hist, hdr=two_days, now=ms("2026-06-13T15:00:00")).reason is (
        Reason.ADMITTED
    )


def test_a_two_day_ticket_counts_entries_per_day_even_on_an_unlisted_event() -> None:
    undated = header(event=replace(EVENT, days=()))
    two_days = row(T, valid_days=("2026-06-12", "2026-06-13"))
    hist = (entry(T, IN_AT), exit_(T, OUT_AT))
    d = run(history=hist, ticket=two_days, hdr=undated, now=ms("2026-06-13T15:00:00"))
    assert d.reason is Reason.ADMITTED


# --- the facts a decision carries -------------------------------------------------------------


def test_tier_and_zone_come_from_the_code_when_the_row_has_none() -> None:
    bare = row(T, ticket_type=None, zone=None)
    d = run(credential(T, ticket_type=3, zone=2), ticket=bare)  # VIP Weekend, VIP at a GA gate
    assert (d.verdict, d.display.tier, d.display.zone) == (Verdict.ADMIT, "VIP Weekend", "VIP")
    d = run(credential(T, zone=1), ticket=bare, where=gate(zones=("VIP",)))  # GA at VIP
    assert d.reason is Reason.ZONE_DENIED


def test_the_row_wins_over_the_code_for_tier_and_zone() -> None:
    d = run(credential(T, ticket_type=1, zone=1), ticket=row(T, ticket_type="Day", zone="VIP"))
    assert (d.display.tier, d.display.zone) == ("Day", "VIP")


def test_a_ticket_with_no_zone_anywhere_is_not_zone_checked() -> None:
    d = run(credential(T, zone=0), ticket=row(T, zone=None), where=gate(zones=("VIP",)))
    assert d.verdict is Verdict.ADMIT and d.display.zone is None


def test_a_gate_with_no_zones_checks_none() -> None:
    d = run(ticket=row(T, zone="GA"), where=gate(zones=()))
    assert (d.verdict, d.display.zone) == (Verdict.ADMIT, "GA")


def test_comp_comes_from_the_code_or_the_row_and_is_off_otherwise() -> None:
    assert run().display.comp is False
    assert run(ticket=row(T, comp_reason="press")).display.comp is True


def test_a_holder_name_given_by_the_caller_wins_over_the_sealed_row() -> None:
    code = credential(T)
    parsed = parse_credential(code, parse_context(header(), NOW))
    assert isinstance(parsed, Credential) and parsed.signature
    sealed = row(T, holder_sealed=seal_holder("Ada Lovelace", parsed.signature, T))
    d = run(code, ticket=sealed, holder="Grace Hopper")
    assert d.display.holder == "Grace Hopper" and d.message.endswith(" Grace Hopper.")
    assert run(code, ticket=row(T), holder="Grace Hopper").display.holder == "Grace Hopper"


def test_entries_today_counts_todays_counted_entries() -> None:
    d = run(history=(entry(T, IN_AT), exit_(T, OUT_AT)), hdr=header(TEMPLATES["festival"]))
    assert (d.reason, d.display.entries_today) == (Reason.REENTRY, 2)
    out = run(where=gate("Exit", Direction.EXIT), history=(entry(T, IN_AT),))
    assert out.display.entries_today == 1  # leaving does not add one


def test_an_exit_carries_the_ticket_and_its_facts() -> None:
    d = run(where=gate("Exit", Direction.EXIT), history=(entry(T, IN_AT),))
    assert (d.verdict, d.ticket_id, d.display.tier) == (Verdict.EXIT, T, "Weekend")
    assert d.message == default_message(Reason.EXITED)


def test_an_exit_reads_the_latest_move_whatever_the_order_given() -> None:
    out = gate("Exit", Direction.EXIT)
    no_entry = "Exit recorded (no entry on record for this ticket)."
    assert run(where=out).message == no_entry
    already_out = (entry(T, IN_AT), exit_(T, OUT_AT))
    assert run(where=out, history=already_out).message == no_entry
    back_in = (exit_(T, OUT_AT), entry(T, NOW - 10 * MINUTE_MS))
    assert run(where=out, history=back_in).message == default_message(Reason.EXITED)


def test_a_denial_carries_the_ticket_and_what_is_known_of_it() -> None:
    d = run(credential(T, valid_until_ms=NOW - MINUTE_MS))
    assert (d.verdict, d.ticket_id, d.display.tier, d.display.zone) == (
        Verdict.DENY,
        T,
        "Weekend",
        "GA",
    )
    early = run(where=gate(authorized=False))  # before any ticket fact is read
    assert (early.ticket_id, early.display) == (T, DisplayFacts())


def test_a_credential_bound_to_another_event_is_refused_and_an_unbound_one_is_not() -> None:
    other = Credential(CredentialFormat.LEGACY_C, T, event_id="another-event")
    d = decide_cred(other)
    assert (d.reason, d.message) == (Reason.WRONG_EVENT, default_message(Reason.WRONG_EVENT))
    assert decide_cred(Credential(CredentialFormat.LEGACY_C, T)).verdict is Verdict.ADMIT


def test_a_day_mask_without_a_first_day_limits_nothing() -> None:
    cred = Credential(CredentialFormat.NATIVE, T, day_mask=0b10)
    assert decide_cred(cred).verdict is Verdict.ADMIT


# --- what the manifest gives the parser -------------------------------------------------------


def test_a_live_rotating_code_is_admitted_with_the_events_rotation_period() -> None:
    static = credential(T, rotating=True)
    secret = ticket_rotation_secret(ROTATION_SECRET, T, 0)
    hdr = header(event=replace(EVENT, rotation_period_s=60))
    shown = rotate(static, secret, NOW, period_s=60)
    assert run(shown, hdr=hdr, now=NOW + 50_000).verdict is Verdict.ADMIT
    assert run(shown, hdr=header(), now=NOW).reason is Reason.EXPIRED_CODE  # 15 s period


LEGACY = json.loads((VECTORS / "tickettoken-legacy.json").read_text())


def test_the_manifests_legacy_keys_and_the_nonce_memory_reach_the_parser() -> None:
    vector = next(v for v in LEGACY["vectors"] if v["format"] == "C" and v["expect"] == "valid")
    hdr = header(
        event=replace(EVENT, id=LEGACY["event_id"]),
        legacy=legacy_keys_from_vectors(LEGACY),
        expires_at_ms=LEGACY["now_ms"] + HOUR_MS,
    )
    first = parse_credential(vector["payload"], parse_context(hdr, LEGACY["now_ms"]))
    assert isinstance(first, Credential) and first.nonce
    now = LEGACY["now_ms"]
    again = parse_credential(vector["payload"], parse_context(hdr, now, {first.nonce}))
    assert isinstance(again, Refusal) and again.reason is Reason.REPLAYED
    keyless = parse_credential(
        vector["payload"], parse_context(replace(hdr, legacy=LegacyKeys()), now)
    )
    assert not isinstance(keyless, Credential)
