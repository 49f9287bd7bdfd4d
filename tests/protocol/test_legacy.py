"""Legacy TicketToken codes: every published vector in order on one device, then the edges the
vectors leave out (window lags, age limits, wrong or missing keys, tampering), built by
encrypting and signing our own payloads with the vector keys."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.credential import Credential, CredentialFormat, LegacyKeys, ParseContext, Refusal
from protocol.legacy import legacy_keys_from_vectors, parse_legacy
from protocol.normalize import normalize_scan
from protocol.reasons import Reason
from tests.legacy_codes import A_KEY, B_KEY, C_SECRET, DOC, code_a, code_b, code_c

KEYS = legacy_keys_from_vectors(DOC)
NOW = DOC["now_ms"]
EVENT = DOC["event_id"]
OTHER_EVENT = "d2f4e2f0-bd83-4f21-84c7-8f346df30e7b"
INTERVAL = DOC["rotation_interval_ms"]
VALIDITY = DOC["format_c_validity_ms"]
TICKET = "0b8e2f4c-6a51-4d7e-9c3b-1f2a3b4c5d6e"
USER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
PAYLOADS = [v["payload"] for v in DOC["vectors"]]

FORMATS = {
    "A": CredentialFormat.LEGACY_A,
    "B": CredentialFormat.LEGACY_B,
    "B-unsigned": CredentialFormat.LEGACY_B_UNSIGNED,
    "C": CredentialFormat.LEGACY_C,
}
EXPECT = {"expired": Reason.EXPIRED_CODE}  # the vectors' word for a code past its own life
AUTHENTICATED_REFUSALS = {Reason.WRONG_EVENT, Reason.EXPIRED_CODE, Reason.REPLAYED}


def ctx(
    now_ms: int = NOW,
    *,
    legacy: LegacyKeys = KEYS,
    event_id: str | None = EVENT,
    seen: frozenset[str] | set[str] = frozenset(),
) -> ParseContext:
    return ParseContext(now_ms=now_ms, event_id=event_id, legacy=legacy, seen_nonces=seen)


def fields_a(timestamp: int, **extra: Any) -> dict[str, Any]:
    return {"ticketId": TICKET, "eventId": EVENT, "timestamp": timestamp, "nonce": "ab12"} | extra


def fields_b(**extra: Any) -> dict[str, Any]:
    return {"ticketId": TICKET, "eventId": EVENT, "userId": USER, "timestamp": NOW - 10**9} | extra


def refused(result: object, reason: Reason, fmt: CredentialFormat) -> Refusal:
    assert isinstance(result, Refusal), result
    assert (result.reason, result.format) == (reason, fmt), result
    assert result.message
    return result


# --- the published vectors ---------------------------------------------------------------------


def test_vector_keys_are_read_from_the_file() -> None:
    assert KEYS.format_a_keys == (A_KEY.encode(),)
    assert KEYS.format_b_keys == (B_KEY.encode(),)
    assert KEYS.format_c_secrets == (C_SECRET,)
    assert (KEYS.rotation_interval_ms, KEYS.format_c_validity_ms) == (INTERVAL, VALIDITY)


def test_every_vector_in_file_order_on_one_device() -> None:
    seen: set[str] = set()
    misses = []
    for i, vector in enumerate(DOC["vectors"]):
        result = parse_legacy(vector["payload"], ctx(seen=seen))
        fmt = FORMATS[vector["format"]]
        if isinstance(result, Credential):
            got = (
                "valid",
                result.format,
                result.ticket_id,
                result.event_id if "event_id" in vector else None,
                result.user_id,
            )
            want = (
                vector["expect"],
                fmt,
                vector.get("ticket_id"),
                vector.get("event_id"),
                vector.get("user_id"),
            )
            if result.nonce is not None:
                seen.add(result.nonce)  # the device keeps the nonce once the scan is committed
        else:
            assert isinstance(result, Refusal), f"vector {i}: not legacy-shaped"
            authenticated = result.reason in AUTHENTICATED_REFUSALS
            got = (result.reason, result.format, result.ticket_id)
            want = (
                EXPECT.get(vector["expect"], Reason(vector["expect"])),
                fmt,
                vector.get("ticket_id") if authenticated else None,
            )
        if got != want:
            misses.append((i, vector["note"], got, want))
    assert misses == []
    assert len(seen) == 4  # the four accepted C codes, one nonce each


def test_unsigned_vector_is_refused_as_forgeable() -> None:
    (unsigned,) = [v["payload"] for v in DOC["vectors"] if v["format"] == "B-unsigned"]
    result = refused(
        parse_legacy(unsigned, ctx()), Reason.MALFORMED, CredentialFormat.LEGACY_B_UNSIGNED
    )
    assert "forge" in result.message and result.ticket_id is None
    core = unsigned.rstrip("=").replace("+", "-").replace("/", "_")  # url-safe, unpadded copy
    refused(parse_legacy(core, ctx()), Reason.MALFORMED, CredentialFormat.LEGACY_B_UNSIGNED)


@pytest.mark.parametrize(
    ("fmt", "wrong"),
    [
        (CredentialFormat.LEGACY_A, {"format_a_keys": (b"W" * 40,)}),
        (CredentialFormat.LEGACY_B, {"format_b_keys": (b"W" * 32,)}),
    ],
)
def test_vectors_under_another_venue_key_are_unreadable(
    fmt: CredentialFormat, wrong: dict[str, tuple[bytes, ...]]
) -> None:
    other = replace(KEYS, **wrong)
    payloads = [v["payload"] for v in DOC["vectors"] if FORMATS[v["format"]] is fmt]
    for payload in payloads:
        if payload.count(":") < 2 or len(payload) > 20:  # skip the empty/not-hex A vectors
            refused(parse_legacy(payload, ctx(legacy=other)), Reason.MALFORMED, fmt)


# --- format A: the rotation window ------------------------------------------------------------


@pytest.mark.parametrize(
    ("lag", "reason"),
    [
        (-2, Reason.EXPIRED_CODE),
        (-1, None),
        (0, None),
        (1, None),
        (2, None),
        (3, Reason.EXPIRED_CODE),
    ],
)
@pytest.mark.parametrize("phase_ms", [0, 1, INTERVAL - 1])
def test_format_a_window_edges(lag: int, reason: Reason | None, phase_ms: int) -> None:
    now = (NOW // INTERVAL) * INTERVAL + phase_ms  # start, just after, last ms of a window
    result = parse_legacy(code_a(fields_a(now // INTERVAL - lag)), ctx(now))
    if reason is None:
        assert result == Credential(
            CredentialFormat.LEGACY_A, ticket_id=TICKET, event_id=EVENT, rotating=True
        )
    else:
        assert refused(result, reason, CredentialFormat.LEGACY_A).ticket_id == TICKET


def test_format_a_follows_the_configured_interval() -> None:
    slow = replace(KEYS, rotation_interval_ms=60_000)
    code = code_a(fields_a(NOW // 60_000 - 2))
    assert isinstance(parse_legacy(code, ctx(legacy=slow)), Credential)
    refused(parse_legacy(code, ctx()), Reason.EXPIRED_CODE, CredentialFormat.LEGACY_A)


def test_format_a_event_binding() -> None:
    code = code_a(fields_a(NOW // INTERVAL, eventId=OTHER_EVENT))
    result = refused(parse_legacy(code, ctx()), Reason.WRONG_EVENT, CredentialFormat.LEGACY_A)
    assert result.ticket_id == TICKET
    anywhere = parse_legacy(code, ctx(event_id=None))  # a gate not bound to one event
    assert isinstance(anywhere, Credential) and anywhere.event_id == OTHER_EVENT


@pytest.mark.parametrize(
    "text",
    [
        "TKT:",
        "TKT:00112233445566778899aabbccddeeff",  # no ciphertext part
        "TKT:00112233445566778899aabbccddeeff:",
        "TKT:0011:" + "00" * 16,  # IV too short
        "TKT:00112233445566778899aabbccddeef:" + "00" * 16,  # odd-length hex
        "TKT:00112233445566778899aabbccddeeff:" + "00" * 15,  # not whole blocks
        "TKT:00112233445566778899aabbccddeeff:" + "00" * 16 + ":00",
        "TKT: 00112233445566778899aabbccddeeff:" + "00" * 16,  # fromhex would skip spaces
        code_a(b"not json"),
        code_a(b"[1, 2]"),
        code_a(b"\xff\xfe{}"),
        code_a({"ticketId": TICKET, "eventId": EVENT, "nonce": "n"}),  # no timestamp
        code_a(fields_a(58909058, ticketId="")),
        code_a(fields_a(58909058, nonce=None)),
        code_a(fields_a("58909058")),  # timestamp as text
        code_a(fields_a(True)),
        code_a(fields_a(58909058.0)),
    ],
)
def test_format_a_damaged_codes_are_malformed(text: str) -> None:
    refused(parse_legacy(text, ctx()), Reason.MALFORMED, CredentialFormat.LEGACY_A)


def test_format_a_without_a_key_is_unknown_key() -> None:
    code = code_a(fields_a(NOW // INTERVAL))
    for keys, says in (((), "not enabled"), ((b"too short for AES-256", b""), "unusable")):
        result = parse_legacy(code, ctx(legacy=replace(KEYS, format_a_keys=keys)))
        message = refused(result, Reason.UNKNOWN_KEY, CredentialFormat.LEGACY_A).message
        assert "format A" in message and says in message


def test_format_a_uses_only_the_first_32_key_bytes() -> None:
    code = code_a(fields_a(NOW // INTERVAL))
    longer = replace(KEYS, format_a_keys=(A_KEY.encode()[:32] + b"-anything-after-byte-32",))
    assert isinstance(parse_legacy(code, ctx(legacy=longer)), Credential)


# --- format B: static codes -------------------------------------------------------------------


def test_format_b_own_payloads() -> None:
    assert parse_legacy(code_b(fields_b()), ctx(now_ms=NOW + 10**11)) == Credential(
        CredentialFormat.LEGACY_B, ticket_id=TICKET, event_id=EVENT, user_id=USER
    )
    no_user = parse_legacy(code_b(fields_b(userId=None)), ctx())
    assert isinstance(no_user, Credential) and no_user.user_id is None
    wrong = parse_legacy(code_b(fields_b(eventId=OTHER_EVENT)), ctx())
    assert refused(wrong, Reason.WRONG_EVENT, CredentialFormat.LEGACY_B).ticket_id == TICKET


@pytest.mark.parametrize(
    "text",
    [
        code_b(b"{broken"),
        code_b(fields_b(ticketId=7)),
        code_b(fields_b(userId=42)),
        code_b(fields_b(), key="W" * 32),  # another venue's key
        "AAECAwQFBgcICQoLDA0ODw==:AAAA",  # ciphertext not a whole block
        "AAECAwQ=:" + base64.b64encode(bytes(16)).decode(),  # IV too short
        "AAECAwQFBgcICQoLDA0ODw=:" + base64.b64encode(bytes(16)).decode(),  # bad padding
    ],
)
def test_format_b_damaged_codes_are_malformed(text: str) -> None:
    refused(parse_legacy(text, ctx()), Reason.MALFORMED, CredentialFormat.LEGACY_B)


def test_format_b_without_a_key_is_unknown_key() -> None:
    result = parse_legacy(code_b(fields_b()), ctx(legacy=replace(KEYS, format_b_keys=())))
    refused(result, Reason.UNKNOWN_KEY, CredentialFormat.LEGACY_B)


# --- format C: HMAC, age, nonce ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_ms", "valid"),
    [(0, True), (VALIDITY, True), (-VALIDITY, True), (VALIDITY + 1, False), (-VALIDITY - 1, False)],
)
def test_format_c_age_edges(age_ms: int, valid: bool) -> None:
    result = parse_legacy(code_c(TICKET, NOW - age_ms, "n1"), ctx())
    if valid:
        assert result == Credential(CredentialFormat.LEGACY_C, ticket_id=TICKET, nonce="n1")
    else:
        assert refused(result, Reason.EXPIRED_CODE, CredentialFormat.LEGACY_C).ticket_id == TICKET


def _tamper(code: str, index: int, value: str) -> str:
    parts = code.split(":")
    parts[index] = value
    return ":".join(parts)


GOOD_C = code_c(TICKET, NOW, "c0ffee")
FLIPPED_MAC = GOOD_C.split(":")[3][:-1] + ("0" if GOOD_C[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_tamper(GOOD_C, 0, "0b8e2f4c-6a51-4d7e-9c3b-1f2a3b4c5d6f"), Reason.BAD_SIGNATURE),
        (_tamper(GOOD_C, 1, str(NOW + 1)), Reason.BAD_SIGNATURE),
        (_tamper(GOOD_C, 2, "c0ffef"), Reason.BAD_SIGNATURE),
        (_tamper(GOOD_C, 3, FLIPPED_MAC), Reason.BAD_SIGNATURE),
        (_tamper(GOOD_C, 3, GOOD_C.split(":")[3][:-2]), Reason.BAD_SIGNATURE),  # truncated
        (code_c(TICKET, NOW, "c0ffee", secret=b"another venue"), Reason.BAD_SIGNATURE),
        (_tamper(GOOD_C, 3, "zz" * 32), Reason.MALFORMED),
        (_tamper(GOOD_C, 3, GOOD_C.split(":")[3][:-1]), Reason.MALFORMED),  # odd-length hex
        (_tamper(GOOD_C, 1, "17e12"), Reason.MALFORMED),
        (_tamper(GOOD_C, 1, "-" + str(NOW)), Reason.MALFORMED),
        (_tamper(GOOD_C, 1, "١٢٣"), Reason.MALFORMED),  # non-ASCII digits
        (_tamper(GOOD_C, 1, "9" * 40), Reason.MALFORMED),
        (_tamper(GOOD_C, 2, ""), Reason.MALFORMED),
        (_tamper(GOOD_C, 0, ""), Reason.MALFORMED),
        (_tamper(GOOD_C, 0, "\ud800"), Reason.MALFORMED),  # lone surrogate cannot be signed
    ],
)
def test_format_c_tampered_fields(text: str, reason: Reason) -> None:
    result = refused(parse_legacy(text, ctx()), reason, CredentialFormat.LEGACY_C)
    assert result.ticket_id is None  # nothing in a code that failed its MAC is a fact


def test_format_c_mac_hex_case_does_not_matter() -> None:
    upper = _tamper(GOOD_C, 3, GOOD_C.split(":")[3].upper())
    assert isinstance(parse_legacy(upper, ctx()), Credential)


def test_format_c_nonce_is_spent_only_by_a_genuine_fresh_code() -> None:
    seen = {"c0ffee"}
    replay = refused(
        parse_legacy(GOOD_C, ctx(seen=seen)), Reason.REPLAYED, CredentialFormat.LEGACY_C
    )
    assert replay.ticket_id == TICKET
    forged = _tamper(GOOD_C, 3, FLIPPED_MAC)  # a forger cannot probe the replay memory
    refused(parse_legacy(forged, ctx(seen=seen)), Reason.BAD_SIGNATURE, CredentialFormat.LEGACY_C)
    stale = code_c(TICKET, NOW - VALIDITY - 1, "c0ffee")
    refused(parse_legacy(stale, ctx(seen=seen)), Reason.EXPIRED_CODE, CredentialFormat.LEGACY_C)
    fresh = parse_legacy(code_c(TICKET, NOW, "beef"), ctx(seen=seen))
    assert isinstance(fresh, Credential) and fresh.nonce == "beef"


def test_format_c_without_a_secret_is_unknown_key() -> None:
    for secrets in ((), (b"",)):
        result = parse_legacy(GOOD_C, ctx(legacy=replace(KEYS, format_c_secrets=secrets)))
        message = refused(result, Reason.UNKNOWN_KEY, CredentialFormat.LEGACY_C).message
        assert "not enabled" in message


# --- several keys a format: a rotation ---------------------------------------------------------

OLD_A, OLD_B, OLD_C = "o" * 32, "p" * 32, b"the secret before the rotation"
ROTATED = replace(
    KEYS,
    format_a_keys=(A_KEY.encode(), b"short", OLD_A.encode()),
    format_b_keys=(B_KEY.encode(), OLD_B.encode()),
    format_c_secrets=(C_SECRET, b"", OLD_C),
)


def test_a_code_made_with_any_of_the_venues_keys_is_genuine() -> None:
    now_a = fields_a(NOW // INTERVAL)
    for key in (A_KEY, OLD_A):
        assert isinstance(parse_legacy(code_a(now_a, key=key), ctx(legacy=ROTATED)), Credential)
    for key in (B_KEY, OLD_B):
        assert isinstance(
            parse_legacy(code_b(fields_b(), key=key), ctx(legacy=ROTATED)), Credential
        )
    for secret in (C_SECRET, OLD_C):
        made = parse_legacy(code_c(TICKET, NOW, "n", secret=secret), ctx(legacy=ROTATED))
        assert made == Credential(CredentialFormat.LEGACY_C, ticket_id=TICKET, nonce="n")
    # the order is only which key is tried first
    backwards = replace(ROTATED, format_a_keys=ROTATED.format_a_keys[::-1])
    assert isinstance(parse_legacy(code_a(now_a, key=OLD_A), ctx(legacy=backwards)), Credential)


def test_a_code_made_with_none_of_the_venues_keys_is_refused() -> None:
    other = "W" * 32
    refused(
        parse_legacy(code_a(fields_a(NOW // INTERVAL), key=other), ctx(legacy=ROTATED)),
        Reason.MALFORMED,
        CredentialFormat.LEGACY_A,
    )
    refused(
        parse_legacy(code_b(fields_b(), key=other), ctx(legacy=ROTATED)),
        Reason.MALFORMED,
        CredentialFormat.LEGACY_B,
    )
    forged = parse_legacy(code_c(TICKET, NOW, "n", secret=b"W" * 32), ctx(legacy=ROTATED))
    assert refused(forged, Reason.BAD_SIGNATURE, CredentialFormat.LEGACY_C).ticket_id is None
    # a key that is dropped no longer opens its codes
    kept = replace(ROTATED, format_a_keys=(A_KEY.encode(),), format_c_secrets=(C_SECRET,))
    old_a = code_a(fields_a(NOW // INTERVAL), key=OLD_A)
    refused(parse_legacy(old_a, ctx(legacy=kept)), Reason.MALFORMED, CredentialFormat.LEGACY_A)
    old_c = code_c(TICKET, NOW, "n", secret=OLD_C)
    refused(parse_legacy(old_c, ctx(legacy=kept)), Reason.BAD_SIGNATURE, CredentialFormat.LEGACY_C)


def test_the_keys_never_show_in_a_repr() -> None:
    shown = repr(ctx(legacy=ROTATED))
    for secret in (A_KEY, B_KEY, C_SECRET.hex(), OLD_A, OLD_B, "secret before"):
        assert secret not in shown
    assert str(C_SECRET) not in shown and "rotation_interval_ms=30000" in shown


# --- shapes that are not legacy, and the never-raise guarantee ---------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "hello", "a:b:c", "a:b:c:d:e", "http://example.com/t/1", "aGVsbG8gd29ybGQ=", "x:y z"],
)
def test_other_shapes_are_left_to_other_parsers(text: str) -> None:
    assert parse_legacy(text, ctx()) is None


def test_legacy_keys_from_a_partial_or_bad_file() -> None:
    assert legacy_keys_from_vectors({}) == LegacyKeys()
    with pytest.raises(ValueError, match="format_c_hmac_secret_hex"):
        legacy_keys_from_vectors({"format_c_hmac_secret_hex": "not hex"})
    with pytest.raises(ValueError, match="format_a_key_utf8"):
        legacy_keys_from_vectors({"format_a_key_utf8": 1234})


def test_a_broken_context_is_refused_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """The last line of defence: even a caller's bug ends as a refusal, and is logged."""
    broken = ParseContext(now_ms=NOW, legacy=KEYS, seen_nonces=None)  # type: ignore[arg-type]
    refused(parse_legacy(GOOD_C, broken), Reason.MALFORMED, CredentialFormat.UNKNOWN)
    assert "legacy parser failed" in caplog.text


def _typed(result: object) -> None:
    assert result is None or isinstance(result, Credential | Refusal)
    if isinstance(result, Refusal):
        assert isinstance(result.reason, Reason) and result.message


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_never_raises(raw: str) -> None:
    _typed(parse_legacy(raw, ctx()))
    _typed(parse_legacy(normalize_scan(raw), ctx()))


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(PAYLOADS),
    st.integers(0, 400),
    st.integers(0, 3),
    st.text(alphabet="0af:=+/TKz\x00 é", max_size=3),
)
def test_mutated_vector_payloads_never_raise(payload: str, pos: int, cut: int, insert: str) -> None:
    pos %= len(payload) + 1
    mutated = payload[:pos] + insert + payload[pos + cut :]
    _typed(parse_legacy(mutated, ctx(seen={"db1fc43592e16234"})))
    _typed(parse_legacy(normalize_scan(mutated), ctx(event_id=None)))
