"""Codes a ticketing system printed (protocol/backend_codes.py): pretix_sig1 codes made by
pretix's own generator and byte by byte here, their refusals, the strict protobuf reading,
the keyed hash gates find plain codes by, and where these readings sit in parse_credential."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import random
import struct
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

from manifests.sealing import seal_holder, unseal_holder
from protocol.backend_codes import (
    CODE_DIGEST_BYTES,
    Sig1Error,
    Sig1Ticket,
    code_digest,
    code_seal,
    decode_sig1_payload,
    hashed_lookup,
    parse_backend_code,
    pretix_public_key,
    split_sig1,
    verify_sig1,
)
from protocol.credential import (
    CodeMatch,
    CodeState,
    Credential,
    CredentialFormat,
    ParseContext,
    Refusal,
)
from protocol.parse import parse_credential
from protocol.reasons import (
    BLOCKED_CODE_MESSAGE,
    DAMAGED_SIGNED_CODE_MESSAGE,
    SHARED_CODE_MESSAGE,
    UNLISTED_CODE_MESSAGE,
    Reason,
)
from tests import factories
from tests.pretix_codes import (
    PRETIX,
    PRETIX_PEM,
    field,
    pem_setting,
    pretix_code,
    random_secret,
    raw_public,
    sig1_code,
    signing_key,
    text_field,
    ticket_payload,
    varint,
)

PRETIX_KEY = load_pem_public_key(PRETIX_PEM).public_bytes(Encoding.Raw, PublicFormat.Raw)
SELLER, STRANGER = signing_key(7), signing_key(8)
NOW = 1_790_000_000_000
TICKET = "0a000000-0000-4000-8000-00000000000a"
OTHER = "0b000000-0000-4000-8000-00000000000b"
LOOKUP_KEY = bytes(range(32))


def listing(*entries: tuple[str, str, CodeState]) -> dict[str, list[CodeMatch]]:
    """code -> what a ticket list holds for it."""
    found: dict[str, list[CodeMatch]] = {}
    for code, ticket_id, state in entries:
        found.setdefault(code, []).append(CodeMatch(ticket_id, state))
    return found


def ctx(
    codes: dict[str, list[CodeMatch]] | None = None,
    keys: Sequence[bytes] = (PRETIX_KEY,),
    lookup: bool = True,
) -> ParseContext:
    held = codes or {}
    return factories.parse_context(
        now_ms=NOW,
        code_signing_keys=tuple(keys),
        code_lookup=(lambda code: held.get(code, [])) if lookup else None,
    )


def refusal(result: object) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


# -- pretix's own codes -----------------------------------------------------------------


def test_the_pem_setting_pretix_publishes_turns_into_the_raw_key() -> None:
    assert pretix_public_key(PRETIX["pubkey"]) == PRETIX_KEY
    assert pretix_public_key(pem_setting(SELLER)) == raw_public(SELLER)
    assert len(PRETIX_KEY) == 32


@pytest.mark.parametrize(
    "setting",
    [
        "",
        "not base64!",
        "LS0tLS1CRUdJTg==",  # "-----BEGIN"
        pem_setting(SELLER)[:-12],
    ],
)
def test_a_setting_that_is_no_public_key_is_refused(setting: str) -> None:
    with pytest.raises(ValueError):
        pretix_public_key(setting)


def test_a_public_key_of_another_kind_is_refused() -> None:
    ec = generate_private_key(SECP256R1()).public_key()
    pem = ec.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="Ed25519"):
        pretix_public_key(base64.b64encode(pem).decode())


@pytest.mark.parametrize("index", range(len(PRETIX["codes"])))
def test_codes_pretix_made_verify_and_read_as_pretix_read_them(index: int) -> None:
    vector = PRETIX["codes"][index]
    parts = split_sig1(vector["secret"])
    assert parts is not None
    payload, signature = parts
    assert verify_sig1(payload, signature, [raw_public(STRANGER), PRETIX_KEY])
    assert not verify_sig1(payload, signature, [raw_public(STRANGER)])
    seconds = (vector["valid_from_unix"], vector["valid_until_unix"])
    assert decode_sig1_payload(payload) == Sig1Ticket(
        seed=vector["seed"],
        item=vector["item"],
        variation=vector["variation"],
        subevent=vector["subevent"],
        valid_from_ms=seconds[0] * 1000 or None,
        valid_until_ms=seconds[1] * 1000 or None,
    )


def test_a_pretix_code_on_the_list_is_a_credential_with_its_own_window() -> None:
    code = pretix_code(0)
    parsed = parse_credential(code, ctx(listing((code, TICKET, CodeState.CURRENT))))
    assert parsed == Credential(
        CredentialFormat.PRETIX_SIG1,
        ticket_id=TICKET,
        event_id=factories.EVENT_ID,
        valid_from_ms=1_789_992_000_000,
        valid_until_ms=1_790_078_400_000,
        signature=code_seal(code),
    )
    # the reader's framing is gone before anything is read or looked up
    framed = parse_credential(f"]Q1{code}\r\n", ctx(listing((code, TICKET, CodeState.CURRENT))))
    assert framed == parsed


def test_the_layout_built_here_is_the_one_pretix_reads() -> None:
    """The helper that builds codes for the other tests agrees with pretix's vectors: its
    payload for the first vector's fields is the very payload pretix signed."""
    vector = PRETIX["codes"][0]
    parts = split_sig1(vector["secret"])
    assert parts is not None
    assert parts[0] == ticket_payload(
        vector["seed"],
        vector["item"],
        vector["variation"],
        vector["subevent"],
        vector["valid_from_unix"],
        vector["valid_until_unix"],
    )


# -- refusals of signed codes -----------------------------------------------------------


def seller_ctx(code: str, state: CodeState = CodeState.CURRENT) -> ParseContext:
    return ctx(listing((code, TICKET, state)), keys=(raw_public(SELLER),))


def test_a_code_signed_by_another_key_is_not_genuine_even_when_listed() -> None:
    code = sig1_code(ticket_payload(), STRANGER)
    result = refusal(parse_credential(code, seller_ctx(code)))
    assert (result.reason, result.format) == (Reason.BAD_SIGNATURE, CredentialFormat.PRETIX_SIG1)


def test_a_tampered_payload_is_not_genuine() -> None:
    genuine = sig1_code(ticket_payload(item=4711), SELLER)
    parts = split_sig1(genuine)
    assert parts is not None
    forged_payload = ticket_payload(item=4712)
    raw = struct.pack(">BHH", 1, len(forged_payload), 64) + forged_payload + parts[1]
    forged = base64.b64encode(raw).decode()[::-1]
    assert refusal(parse_credential(forged, seller_ctx(forged))).reason is Reason.BAD_SIGNATURE
    assert isinstance(parse_credential(genuine, seller_ctx(genuine)), Credential)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ({"cut": 1}, "announces"),  # truncated signature
        ({"cut": 70}, "announces"),  # into the payload
        ({"payload_len": 0xFFFF}, "announces"),  # a huge announced payload
        ({"sig_len": 0xFFFF}, "64"),  # a huge announced signature
        ({"sig_len": 63}, "64"),
        ({"payload_len": 0}, "announces"),
    ],
)
def test_a_version_1_code_whose_lengths_do_not_add_up_is_damaged(
    shape: dict[str, int], match: str
) -> None:
    code = sig1_code(ticket_payload(), SELLER, **shape)
    with pytest.raises(Sig1Error, match=match):
        split_sig1(code)
    result = refusal(parse_credential(code, seller_ctx(code)))
    assert (result.reason, result.format) == (Reason.MALFORMED, CredentialFormat.PRETIX_SIG1)
    assert result.message == DAMAGED_SIGNED_CODE_MESSAGE and result.detail


def test_a_code_shorter_than_its_header_is_damaged() -> None:
    code = base64.b64encode(b"\x01\x00").decode()[::-1]
    with pytest.raises(Sig1Error, match="header"):
        split_sig1(code)


def test_another_version_is_no_signed_code_and_is_looked_up_as_it_is() -> None:
    code = sig1_code(ticket_payload(), SELLER, version=2)
    assert split_sig1(code) is None
    unknown = refusal(parse_credential(code, seller_ctx("something else")))
    assert (unknown.reason, unknown.format) == (
        Reason.UNKNOWN_TICKET,
        CredentialFormat.BACKEND_CODE,
    )
    listed = parse_credential(code, seller_ctx(code))
    assert isinstance(listed, Credential) and listed.format is CredentialFormat.BACKEND_CODE
    # an event without backend codes reads it as nothing at all, as before
    none = refusal(parse_credential(code, factories.parse_context(now_ms=NOW)))
    assert (none.reason, none.format) == (Reason.MALFORMED, CredentialFormat.UNKNOWN)


def test_base64_that_is_not_canonical_is_damaged() -> None:
    code = sig1_code(ticket_payload(seed="ab"), SELLER)  # 111 bytes: one '=' of padding
    reversed_text = code[::-1]
    assert reversed_text.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(reversed_text[-2])  # its last 2 bits are padding: flip one
    twisted = reversed_text[:-2] + alphabet[last ^ 1] + "="
    assert base64.b64decode(twisted) == base64.b64decode(reversed_text)
    with pytest.raises(Sig1Error, match="canonical"):
        split_sig1(twisted[::-1])


@pytest.mark.parametrize("garbage", ["", "x", "=", "!!!!", "AAAA", "QUJD", "====", "AQ=="[::-1]])
def test_garbage_is_no_signed_code_or_a_damaged_one_never_an_error(garbage: str) -> None:
    with contextlib.suppress(Sig1Error):
        assert split_sig1(garbage) is None
    result = refusal(parse_credential(garbage, ctx()))
    assert result.reason in (Reason.MALFORMED, Reason.UNKNOWN_TICKET)


def test_a_signed_payload_that_is_no_ticket_message_is_damaged() -> None:
    code = sig1_code(field(2, 2, varint(1) + b"x"), SELLER)  # item as a string
    result = refusal(parse_credential(code, seller_ctx(code)))
    assert (result.reason, result.format) == (Reason.MALFORMED, CredentialFormat.PRETIX_SIG1)
    assert result.detail == "item is not a varint"


def test_a_genuine_code_not_on_the_list_is_unknown() -> None:
    """Offline without the ticket's row a gate cannot know it was not cancelled."""
    code = pretix_code(1)
    result = refusal(parse_credential(code, ctx()))
    assert (result.reason, result.format) == (Reason.UNKNOWN_TICKET, CredentialFormat.PRETIX_SIG1)
    assert result.message == UNLISTED_CODE_MESSAGE
    no_lookup = refusal(parse_credential(code, ctx(lookup=False)))
    assert no_lookup.reason is Reason.UNKNOWN_TICKET


def test_without_signing_keys_a_listed_signed_code_is_found_as_a_plain_one() -> None:
    """The list is the seller's own record of its codes: no signature check is needed."""
    code = pretix_code(1)
    parsed = parse_credential(code, ctx(listing((code, TICKET, CodeState.CURRENT)), keys=()))
    assert isinstance(parsed, Credential)
    assert (parsed.format, parsed.ticket_id) == (CredentialFormat.BACKEND_CODE, TICKET)


# -- the protobuf reading ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (field(2, 0, b"\xff" * 10 + b"\x01"), "longer than 10"),
        (field(2, 0, b"\xff" * 9 + b"\x7f"), "beyond 64 bits"),
        (field(2, 0, b"\x80"), "past the end"),
        (text_field(1, b"abc")[:-1], "length runs past"),
        (field(2, 2, varint(1) + b"x"), "item is not a varint"),
        (field(1, 0, varint(5)), "seed is not length-delimited"),
        (field(2, 0, varint(1)) + field(2, 0, varint(2)), "item twice"),
        (field(9, 3, b""), "wire type 3"),
        (field(9, 7, b""), "wire type 7"),
        (field(9, 1, b"\x00" * 7), "fixed-width"),
        (field(0, 0, varint(1)), "field number 0"),
        (text_field(1, b"\xff\xfe"), "UTF-8"),
        (field(5, 0, varint(-1)), "before 1970"),
    ],
)
def test_a_malformed_ticket_message_is_refused(payload: bytes, match: str) -> None:
    with pytest.raises(Sig1Error, match=match):
        decode_sig1_payload(payload)


def test_fields_a_later_pretix_may_add_are_skipped_and_int64_reads_signed() -> None:
    payload = (
        field(9, 0, varint(300))
        + text_field(10, b"later")
        + field(11, 1, b"\x00" * 8)
        + field(12, 5, b"\x00" * 4)
        + field(2, 0, varint(-5))
        + text_field(1, "Zoë".encode())
    )
    assert decode_sig1_payload(payload) == Sig1Ticket("Zoë", -5, 0, 0, None, None)
    assert decode_sig1_payload(b"") == Sig1Ticket("", 0, 0, 0, None, None)


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=80))
def test_any_payload_reads_or_is_refused_as_a_sig1_error(payload: bytes) -> None:
    with contextlib.suppress(Sig1Error):
        decode_sig1_payload(payload)


@settings(max_examples=800, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=150).map(lambda b: sig1_bytes(b)))
def test_any_text_splits_or_is_refused_as_a_sig1_error(text: str) -> None:
    with contextlib.suppress(Sig1Error):
        split_sig1(text)
    assert parse_backend_code(text, ctx()) is not None  # an event with a lookup always answers


def sig1_bytes(raw: bytes) -> str:
    return base64.b64encode(b"\x01" + raw).decode()[::-1]


# -- the keyed hash of plain codes ------------------------------------------------------


def test_the_keyed_hash_is_hmac_sha256_of_the_scanned_code_cut_to_16_bytes() -> None:
    code = random_secret(random.Random(1))
    expected = hmac.new(LOOKUP_KEY, code.encode(), hashlib.sha256).digest()[:16]
    assert code_digest(LOOKUP_KEY, code) == expected and CODE_DIGEST_BYTES == 16
    # as a reader sends it: framing and edge whitespace are not part of the code
    assert code_digest(LOOKUP_KEY, f"]Q1{code}\r\n") == expected
    assert code_digest(LOOKUP_KEY, code.upper()) != expected  # codes are case-sensitive
    assert code_digest(bytes(32), code) != expected  # another event's key
    assert code_digest(LOOKUP_KEY, "\ud800") != expected  # a lone surrogate does not raise


def test_the_seal_of_a_code_is_64_bytes_of_its_own_and_opens_a_name_sealed_with_it() -> None:
    code = random_secret(random.Random(3))
    seal = code_seal(code)
    assert len(seal) == 64 and seal == code_seal(f"  {code}\n")
    assert seal != code_seal(code.upper()) and code_digest(LOOKUP_KEY, code) not in seal
    expected = hashlib.blake2b(code.encode(), digest_size=64, person=b"vg-code-seal1").digest()
    assert seal == expected
    blob = seal_holder("Zoë", seal, TICKET)
    assert unseal_holder(blob, code_seal(code), TICKET) == "Zoë"
    assert unseal_holder(blob, code_seal(PLAIN), TICKET) is None


def test_a_gate_looks_a_code_up_by_its_hash_only() -> None:
    asked: list[bytes] = []

    def by_digest(digest: bytes) -> list[CodeMatch]:
        asked.append(digest)
        return [CodeMatch(TICKET, CodeState.CURRENT)]

    assert hashed_lookup(None, by_digest) is None
    lookup = hashed_lookup(LOOKUP_KEY, by_digest)
    assert lookup is not None
    assert list(lookup("abc")) == [CodeMatch(TICKET, CodeState.CURRENT)]
    assert asked == [code_digest(LOOKUP_KEY, "abc")]


# -- what the list says of a plain code -------------------------------------------------

PLAIN = random_secret(random.Random(2))


def test_a_listed_plain_code_is_a_credential_for_its_ticket() -> None:
    parsed = parse_credential(PLAIN, ctx(listing((PLAIN, TICKET, CodeState.CURRENT))))
    assert parsed == Credential(
        CredentialFormat.BACKEND_CODE,
        ticket_id=TICKET,
        event_id=factories.EVENT_ID,
        signature=code_seal(PLAIN),
    )


def test_a_superseded_code_names_its_ticket() -> None:
    result = refusal(parse_credential(PLAIN, ctx(listing((PLAIN, TICKET, CodeState.SUPERSEDED)))))
    assert (result.reason, result.ticket_id) == (Reason.SUPERSEDED, TICKET)


def test_a_blocked_code_locks_its_ticket_even_while_it_is_the_current_one() -> None:
    held = listing((PLAIN, TICKET, CodeState.CURRENT), (PLAIN, TICKET, CodeState.BLOCKED))
    result = refusal(parse_credential(PLAIN, ctx(held)))
    assert (result.reason, result.ticket_id) == (Reason.LOCKED, TICKET)
    assert result.message == BLOCKED_CODE_MESSAGE
    assert "blocked by the ticket seller" in result.message


def test_the_current_code_wins_over_a_stale_superseded_entry() -> None:
    held = listing((PLAIN, TICKET, CodeState.SUPERSEDED), (PLAIN, TICKET, CodeState.CURRENT))
    assert isinstance(parse_credential(PLAIN, ctx(held)), Credential)


def test_a_code_two_tickets_carry_admits_neither() -> None:
    held = listing((PLAIN, TICKET, CodeState.CURRENT), (PLAIN, OTHER, CodeState.CURRENT))
    result = refusal(parse_credential(PLAIN, ctx(held)))
    assert (result.reason, result.message) == (Reason.UNKNOWN_TICKET, SHARED_CODE_MESSAGE)


def test_an_unlisted_plain_code_is_unknown_where_the_event_has_codes_else_unreadable() -> None:
    unknown = refusal(parse_credential(PLAIN, ctx()))
    assert (unknown.reason, unknown.message) == (Reason.UNKNOWN_TICKET, UNLISTED_CODE_MESSAGE)
    plain_event = refusal(parse_credential(PLAIN, factories.parse_context(now_ms=NOW)))
    assert plain_event.reason is Reason.MALFORMED


def test_native_and_legacy_codes_read_as_before_at_an_event_with_backend_codes() -> None:
    native = factories.credential(TICKET)
    held = listing((native, OTHER, CodeState.CURRENT))  # even if the list held its text
    parsed = parse_credential(native, ctx(held))
    assert isinstance(parsed, Credential) and parsed.format is CredentialFormat.NATIVE
    assert parsed.ticket_id == TICKET
    legacy_c = "t-1:1790000000000:n-1:" + "00" * 32
    assert refusal(parse_credential(legacy_c, ctx())).format is CredentialFormat.LEGACY_C
