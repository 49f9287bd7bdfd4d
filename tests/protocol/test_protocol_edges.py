"""The parser's edges: input-size and version bounds, what each native refusal carries, the
fields a code holds, and the crash guard kept for real crashes only. Each case here was a
mutant `make mutation` found alive.

`parse_credential` turns any exception into a refusal, so a broken refusal path (a reason or
format lost on the way) still "refuses" the code. The `parsed` helper therefore also checks
that the guard stayed silent: a refusal has to come from the rule that owns it."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from nacl.signing import SigningKey

from protocol import base45
from protocol.credential import Credential, CredentialFormat, ParseContext, ParseResult, Refusal
from protocol.native import (
    BODY_BYTES,
    MAX_SPAN_MINUTES,
    SIGNATURE_DOMAIN,
    STATIC_BYTES,
    issue_credential,
    parse_native,
    public_key,
    rotate,
)
from protocol.parse import MAX_INPUT_CHARS, parse_credential
from protocol.reasons import Reason, default_message
from protocol.rotating import ticket_rotation_secret
from tests.factories import (
    EVENT_CODE,
    ISSUER_SEED,
    OTHER_SEED,
    ROTATION_SECRET,
    START,
    credential,
)
from tests.factories import parse_context as ctx

TID = "7a3e9c1d-2b4f-4e6a-8c0d-1f2e3a4b5c6d"
MINUTE = 60_000
NATIVE = CredentialFormat.NATIVE


@pytest.fixture
def parsed(caplog: pytest.LogCaptureFixture):
    """parse_credential, failing the test if the parser's crash guard fired."""

    def parse(raw: object, context: ParseContext | None = None) -> ParseResult:
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="protocol.parse"):
            result = parse_credential(raw, context or ctx())  # type: ignore[arg-type]
        crashes = [r for r in caplog.records if r.name == "protocol.parse"]
        assert not crashes, f"the parser crashed: {crashes[0].exc_info}"
        return result

    return parse


def refusal(result: ParseResult) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


# --- the input the dispatcher accepts ---------------------------------------------------------


def test_a_code_padded_to_the_input_limit_is_read_and_one_more_char_is_not(parsed) -> None:
    code = credential(TID)
    at_limit = code + " " * (MAX_INPUT_CHARS - len(code))
    assert isinstance(parsed(at_limit), Credential)
    over = refusal(parsed(at_limit + " "))
    assert (over.reason, over.message) == (Reason.MALFORMED, "Input too long to be a ticket code.")


@pytest.mark.parametrize("raw", [None, b"bytes are not text", 42])
def test_non_text_is_refused_by_the_input_rule(parsed, raw: object) -> None:
    r = refusal(parsed(raw))
    assert (r.reason, r.format) == (Reason.MALFORMED, CredentialFormat.UNKNOWN)


def test_an_empty_scan_says_so(parsed) -> None:
    r = refusal(parsed(" \r\n\t"))
    assert (r.reason, r.message) == (Reason.MALFORMED, "Empty scan.")


def test_text_of_no_known_format_is_refused_as_unknown(parsed) -> None:
    r = refusal(parsed("hello, gate"))
    assert (r.reason, r.format, r.message) == (
        Reason.MALFORMED,
        CredentialFormat.UNKNOWN,
        default_message(Reason.MALFORMED),
    )


def test_a_real_crash_is_logged_by_size_only_and_refused(caplog) -> None:
    code = credential(TID)

    def issued(ticket_id: str, generation: int) -> str | None:
        raise sqlite3.OperationalError("database is locked")  # the store behind the lookup

    with caplog.at_level(logging.ERROR, logger="protocol.parse"):
        result = parse_credential(code, ctx(issued=issued))
    r = refusal(result)
    assert (r.reason, r.message) == (Reason.MALFORMED, default_message(Reason.MALFORMED))
    (record,) = [r for r in caplog.records if r.name == "protocol.parse"]
    logged = record.getMessage()
    assert f"{len(code)} chars" in logged and code not in logged  # a code is a credential
    assert record.exc_info is not None


# --- native refusals: reason, format and (once readable) the ticket ---------------------------


def resigned(code: str, head: int) -> str:
    """`code` with its first byte replaced and signed again by the issuer: a genuine code of
    another layout version."""
    raw = bytearray(base45.decode(code))
    raw[0] = head
    body = bytes(raw[:BODY_BYTES])
    signature = SigningKey(ISSUER_SEED).sign(SIGNATURE_DOMAIN + body).signature
    return base45.encode(body + signature)


def test_a_native_looking_code_that_is_not_base45_is_malformed(parsed) -> None:
    r = refusal(parsed(":" * 149))  # every triple is above 65535
    assert (r.reason, r.format, r.ticket_id) == (Reason.MALFORMED, NATIVE, None)


def test_a_genuine_code_of_another_layout_version_is_malformed(parsed) -> None:
    r = refusal(parsed(resigned(credential(TID), 2 << 4)))
    assert (r.reason, r.format) == (Reason.MALFORMED, NATIVE)


def test_base45_text_three_characters_short_is_not_taken_for_a_native_code(parsed) -> None:
    r = refusal(parsed(credential(TID)[3:]))  # a reader drops at most two (leading spaces)
    assert (r.reason, r.format) == (Reason.MALFORMED, CredentialFormat.UNKNOWN)


def test_parse_native_refuses_a_body_of_the_wrong_length() -> None:
    r = refusal(parse_native("00", ctx()))
    assert (r.reason, r.format) == (Reason.MALFORMED, NATIVE)


STATIC = credential(TID)
ROTATING = credential(TID, rotating=True)
LIVE = rotate(ROTATING, ticket_rotation_secret(ROTATION_SECRET, TID, 0), START)
STATIC_WITH_LIVE_PART = rotate(STATIC, ticket_rotation_secret(ROTATION_SECRET, TID, 0), START)


@pytest.mark.parametrize(
    ("code", "context", "reason", "words"),
    [
        (credential(TID, key_id=9), ctx(), Reason.UNKNOWN_KEY, None),
        (credential(TID, signing_key=OTHER_SEED), ctx(), Reason.BAD_SIGNATURE, None),
        (credential(TID, event_code=99), ctx(), Reason.WRONG_EVENT, None),
        (STATIC_WITH_LIVE_PART, ctx(), Reason.MALFORMED, None),
        (ROTATING, ctx(), Reason.EXPIRED_CODE, "Live part of the ticket is missing"),
        (LIVE, ctx(rotation_secret=None), Reason.UNKNOWN_KEY, "sync the device"),
        (LIVE, ctx(now_ms=START + 10 * MINUTE), Reason.EXPIRED_CODE, "Code is not live"),
    ],
    ids=[
        "unknown-key",
        "bad-signature",
        "wrong-event",
        "static-with-live-part",
        "rotating-printed",
        "no-rotation-secret",
        "stale-live-part",
    ],
)
def test_a_native_refusal_names_the_format_and_the_ticket(
    parsed, code: str, context: ParseContext, reason: Reason, words: str | None
) -> None:
    r = refusal(parsed(code, context))
    assert (r.reason, r.format, r.ticket_id) == (reason, NATIVE, TID)
    if words is not None:  # the words tell staff what to do; the reason alone does not
        assert words in r.message and r.message != default_message(reason)


# --- what a native code carries ---------------------------------------------------------------


def test_a_code_carries_its_event_code_and_exact_minute_window(parsed) -> None:
    c = parsed(credential(TID, valid_from_ms=START, valid_until_ms=START + 90 * MINUTE))
    assert isinstance(c, Credential)
    assert (c.event_code, c.valid_from_ms, c.valid_until_ms) == (
        EVENT_CODE,
        START,
        START + 90 * MINUTE,
    )
    assert (c.ticket_type, c.zone, c.comp, c.attention) == (1, 1, False, False)


def test_a_code_issued_without_type_or_zone_carries_none(parsed) -> None:
    code = issue_credential(
        signing_key=ISSUER_SEED,
        key_id=1,
        event_code=EVENT_CODE,
        ticket_id=TID,
        generation=0,
        valid_from_ms=START,
        valid_until_ms=START + MINUTE,
    )
    c = parsed(code)
    assert isinstance(c, Credential) and (c.ticket_type, c.zone) == (None, None)


@pytest.mark.parametrize("minutes", [0, MAX_SPAN_MINUTES])
def test_the_validity_window_may_be_empty_or_as_long_as_three_bytes_hold(
    parsed, minutes: int
) -> None:
    c = parsed(credential(TID, valid_from_ms=START, valid_until_ms=START + minutes * MINUTE))
    assert isinstance(c, Credential) and c.valid_until_ms == START + minutes * MINUTE


@pytest.mark.parametrize("minutes", [-1, MAX_SPAN_MINUTES + 1])
def test_a_validity_window_that_does_not_fit_is_not_issued(minutes: int) -> None:
    with pytest.raises(ValueError, match="validity window"):
        credential(TID, valid_from_ms=START, valid_until_ms=START + minutes * MINUTE)


def test_rotate_uses_the_period_it_is_given(parsed) -> None:
    secret = ticket_rotation_secret(ROTATION_SECRET, TID, 0)
    shown = rotate(ROTATING, secret, START, period_s=60)
    assert isinstance(parsed(shown, ctx(rotation_period_s=60, now_ms=START + 50_000)), Credential)


def test_two_leading_spaces_stripped_by_a_reader_are_restored(parsed) -> None:
    # first two bytes 0x16 0x4A (rotating + attention, key 74) encode to two leading spaces
    static = credential(TID, key_id=74, rotating=True, attention=True)
    shown = rotate(static, ticket_rotation_secret(ROTATION_SECRET, TID, 0), START)
    assert shown.startswith("  ") and not shown.startswith("   ")
    c = parsed(shown.strip(), ctx(issuer_keys={74: public_key(ISSUER_SEED)}))
    assert isinstance(c, Credential) and c.key_id == 74 and c.rotating
    assert len(base45.decode(shown)) == STATIC_BYTES + 3
