"""Native credential: layout, size, signature, key rotation, event binding, rotation."""

from __future__ import annotations

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import base45
from protocol.base45 import ALPHABET
from protocol.credential import Credential, CredentialFormat, Refusal
from protocol.native import ROTATING_CHARS, STATIC_CHARS, public_key, rotate
from protocol.normalize import normalize_scan
from protocol.parse import parse_credential
from protocol.reasons import Reason
from protocol.rotating import ticket_rotation_secret
from tests.factories import (
    END,
    EVENT_ID,
    ISSUER_SEED,
    OTHER_SEED,
    ROTATION_SECRET,
    START,
    credential,
)
from tests.factories import parse_context as ctx

TID = "3f2c6a0e-1b5d-4c8e-9a7f-0d1e2f3a4b5c"


def test_round_trip_carries_every_field() -> None:
    code = credential(TID, generation=3, comp=True, attention=True, day_mask=0b101, zone=2)
    parsed = parse_credential(code, ctx())
    assert isinstance(parsed, Credential)
    assert parsed.format is CredentialFormat.NATIVE
    assert (parsed.ticket_id, parsed.event_id, parsed.generation) == (TID, EVENT_ID, 3)
    assert (parsed.comp, parsed.attention, parsed.day_mask, parsed.zone) == (True, True, 5, 2)
    assert parsed.valid_from_ms is not None and parsed.valid_from_ms <= START - 4 * 3_600_000
    assert parsed.valid_until_ms is not None and parsed.valid_until_ms >= END + 2 * 3_600_000


def test_fits_qr_version_6_m_in_alphanumeric_mode() -> None:
    static = credential(TID)
    live = rotate(static, ticket_rotation_secret(ROTATION_SECRET, TID, 0), START)
    assert len(static) == STATIC_CHARS <= 154
    assert len(live) == ROTATING_CHARS <= 154
    for code in (static, live):
        qr = segno.make_qr(code, error="m", boost_error=False)
        assert qr.version <= 6 and qr.mode == "alphanumeric"


def test_tampering_any_character_is_refused() -> None:
    code = credential(TID)
    for i in range(0, len(code), 7):
        swapped = ALPHABET[(ALPHABET.index(code[i]) + 1) % 45]
        tampered = code[:i] + swapped + code[i + 1 :]
        parsed = parse_credential(tampered, ctx())
        assert isinstance(parsed, Refusal), i
        assert parsed.reason in {
            Reason.BAD_SIGNATURE,
            Reason.MALFORMED,
            Reason.UNKNOWN_KEY,
            Reason.WRONG_EVENT,
        }


def test_key_rotation_and_unknown_key() -> None:
    old = credential(TID)
    new = credential(TID, signing_key=OTHER_SEED, key_id=2)
    both = ctx(issuer_keys={1: public_key(ISSUER_SEED), 2: public_key(OTHER_SEED)})
    assert isinstance(parse_credential(old, both), Credential)
    assert isinstance(parse_credential(new, both), Credential)
    refused = parse_credential(new, ctx())
    assert isinstance(refused, Refusal) and refused.reason is Reason.UNKNOWN_KEY
    forged = credential(TID, signing_key=OTHER_SEED, key_id=1)
    refused = parse_credential(forged, ctx())
    assert isinstance(refused, Refusal) and refused.reason is Reason.BAD_SIGNATURE


def test_event_binding() -> None:
    other = credential(TID, event_code=99)
    refused = parse_credential(other, ctx())
    assert isinstance(refused, Refusal) and refused.reason is Reason.WRONG_EVENT
    assert refused.ticket_id == TID


@pytest.mark.parametrize(
    ("shown_offset_s", "ok"),
    [(0, True), (15, True), (-15, True), (30, False), (-30, False), (600, False)],
)
def test_rotating_code_accepts_one_period_of_skew(shown_offset_s: int, ok: bool) -> None:
    period_start = (START // 15_000) * 15_000
    static = credential(TID, rotating=True)
    secret = ticket_rotation_secret(ROTATION_SECRET, TID, 0)
    live = rotate(static, secret, period_start + shown_offset_s * 1000)
    parsed = parse_credential(live, ctx(now_ms=period_start + 1000))
    if ok:
        assert isinstance(parsed, Credential) and parsed.rotating
    else:
        assert isinstance(parsed, Refusal) and parsed.reason is Reason.EXPIRED_CODE


def test_rotating_code_without_live_part_is_a_screenshot() -> None:
    static = credential(TID, rotating=True)
    refused = parse_credential(static, ctx())
    assert isinstance(refused, Refusal) and refused.reason is Reason.EXPIRED_CODE


def test_new_generation_changes_rotation_secret() -> None:
    static = credential(TID, rotating=True, generation=1)
    stale_secret = ticket_rotation_secret(ROTATION_SECRET, TID, 0)
    refused = parse_credential(rotate(static, stale_secret, START), ctx())
    assert isinstance(refused, Refusal) and refused.reason is Reason.EXPIRED_CODE


def test_scanner_noise_around_a_native_code() -> None:
    code = credential(TID)
    for raw in (f"  {code}\r\n", f"]Q1{code}", f"]Q3\\000026{code}\t", code.lower()):
        assert isinstance(parse_credential(raw, ctx()), Credential), raw


def test_leading_spaces_stripped_by_a_reader_are_restored() -> None:
    # (0x10 << 8 | 35) % 45 == 36: key id 35 makes the first base45 character a space
    code = credential(TID, signing_key=OTHER_SEED, key_id=35)
    assert code.startswith(" ")
    parsed = parse_credential(f"{code}\r\n".strip(), ctx(issuer_keys={35: public_key(OTHER_SEED)}))
    assert isinstance(parsed, Credential) and parsed.key_id == 35


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_refuses(raw: str) -> None:
    result = parse_credential(raw, ctx())
    assert isinstance(result, Credential | Refusal)


CODE = credential(TID)


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, len(CODE) - 1), st.sampled_from(ALPHABET + "abc#\x00é"), st.booleans())
def test_mutated_codes_never_crash_or_pass(pos: int, char: str, insert: bool) -> None:
    mutated = CODE[:pos] + char + CODE[pos + (0 if insert else 1) :]
    result = parse_credential(mutated, ctx())
    if mutated.upper() == CODE:
        assert isinstance(result, Credential)
    elif isinstance(result, Credential):  # only edits a reader's noise explains may pass
        assert normalize_scan(mutated).upper() == CODE


def test_a_code_the_issuer_holds_needs_no_signature_check_and_no_other_code_skips_it() -> None:
    """ParseContext.issued: the hub's record of the codes it issued. Only an exact match of
    the static code skips the signature check; everything else is verified as before."""
    code = credential(TID, generation=2)
    forged = credential(TID, generation=2, signing_key=OTHER_SEED, key_id=1)
    records = {(TID, 2): code}
    asked: list[tuple[str, int]] = []

    def issued(ticket_id: str, generation: int) -> str | None:
        asked.append((ticket_id, generation))
        return records.get((ticket_id, generation))

    parsed = parse_credential(code, ctx(issued=issued))
    assert isinstance(parsed, Credential) and asked == [(TID, 2)]
    # Not the code on record (same ticket and generation, another signer): verified, refused.
    refused = parse_credential(forged, ctx(issued=issued))
    assert isinstance(refused, Refusal) and refused.reason is Reason.BAD_SIGNATURE
    # A record proves the signature only: a key the gate no longer trusts still refuses it.
    retired = parse_credential(code, ctx(issued=issued, issuer_keys={}))
    assert isinstance(retired, Refusal) and retired.reason is Reason.UNKNOWN_KEY
    # The record is what skips the check: a "record" holding a code with a broken signature
    # is believed, so only the issuer's own store may ever answer `issued`.
    raw = bytearray(base45.decode(code))
    raw[-1] ^= 1  # the last signature byte
    broken = base45.encode(bytes(raw))
    unrecorded = parse_credential(broken, ctx())
    assert isinstance(unrecorded, Refusal) and unrecorded.reason is Reason.BAD_SIGNATURE
    assert isinstance(parse_credential(broken, ctx(issued=lambda t, g: broken)), Credential)
