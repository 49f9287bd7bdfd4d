"""Manifest wire format, envelope signing and holder sealing: exact round trips, and every
kind of bad input refused as ManifestRejected with its code."""

from __future__ import annotations

import base64
import dataclasses
import random
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from demo.sample import (
    DAYS,
    sample_header,
    sample_hub_seed,
    sample_manifest,
    sample_signature,
)
from manifests.codec import decode_delta, decode_manifest, encode_delta, encode_manifest
from manifests.model import Manifest, ManifestDelta, TicketRow
from manifests.policy import ZoneRules
from manifests.sealing import seal_holder, unseal_holder
from manifests.signing import ManifestRejected, open_envelope, sign_envelope
from protocol.credential import LegacyKeys
from tests.manifests.test_manifest_backend_codes import frame, reframe

SEED_1, SEED_2 = sample_hub_seed(key_id=1), sample_hub_seed(key_id=2)
PUB_1 = bytes(SigningKey(SEED_1).verify_key)
PUB_2 = bytes(SigningKey(SEED_2).verify_key)


@pytest.fixture(scope="module")
def small() -> Manifest:
    return sample_manifest(60, seed=7, named_share=0.5, seated_share=0.3)


def test_sample_manifest_round_trips_exactly(small: Manifest) -> None:
    decoded = decode_manifest(encode_manifest(small))
    assert decoded == small
    assert list(decoded.tickets) == list(small.tickets)  # row order survives too
    assert any(r.holder_sealed for r in small.tickets.values())
    assert any(r.seat for r in small.tickets.values())


def test_sample_is_deterministic_from_its_seed() -> None:
    a, b = sample_manifest(40, seed=3), sample_manifest(40, seed=3)
    assert encode_manifest(a) == encode_manifest(b)
    assert encode_manifest(a) != encode_manifest(sample_manifest(40, seed=4))


def test_many_valued_columns_use_sequence_and_front_coding() -> None:
    """More than 256 distinct order refs and seats take the compact path; it must be exact,
    including None in the middle, strings too long to front-code, and non-UUID ids."""
    m = sample_manifest(700, seed=11, seated_share=0.6)
    assert decode_manifest(encode_manifest(m)) == m
    rows = list(m.tickets.values())
    rows = [
        dataclasses.replace(
            r,
            ticket_id=f"legacy-{i}" if i % 3 == 0 else r.ticket_id,
            order_ref=None if i % 5 == 0 else ("x" * 300 + str(i) if i == 9 else r.order_ref),
            valid_days=(DAYS[2], DAYS[0]) if i == 4 else r.valid_days,  # not in event order
            generation=i,  # a many-valued int column
        )
        for i, r in enumerate(rows)
    ]
    odd = Manifest(m.header, {r.ticket_id: r for r in rows})
    assert decode_manifest(encode_manifest(odd)) == odd


def test_header_round_trips_with_every_optional_part() -> None:
    header = dataclasses.replace(
        sample_header(seed=5),
        issuer_keys={1: PUB_1, 70000: PUB_2},
        zone_rules=ZoneRules({}),
        legacy=LegacyKeys(
            format_a_keys=(b"a" * 32,), format_c_secrets=(b"c",), rotation_interval_ms=5
        ),
        rotation_secret=None,
        revoked={"t-1": "fraud_investigation"},
    )
    m = Manifest(header, {})
    assert decode_manifest(encode_manifest(m)) == m


ROTATING = LegacyKeys(
    format_a_keys=(b"a" * 32, b"A" * 40, b"n" * 32),
    format_b_keys=(b"b" * 32,),
    format_c_secrets=(b"c", b"C" * 32),
    rotation_interval_ms=5,
    format_c_validity_ms=7,
)


def test_every_key_of_a_rotation_round_trips_in_its_order() -> None:
    header = dataclasses.replace(sample_header(seed=5), legacy=ROTATING)
    m = Manifest(header, {})
    assert decode_manifest(encode_manifest(m)).header.legacy == ROTATING
    d = ManifestDelta(header, 1)
    assert decode_delta(encode_delta(d)).header.legacy == ROTATING


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_one_key_a_format_is_written_as_earlier_releases_read_it() -> None:
    """What a gate of an earlier release reads: the five fields of its LegacyKeys, in their
    order; a manifest with at most one key a format is the body it always was."""
    one = LegacyKeys(format_a_keys=(b"a" * 32,), format_c_secrets=(b"c",), format_c_validity_ms=9)
    legacy = _legacy_meta(one)
    assert list(legacy.items()) == [
        ("format_a_key", _b64(b"a" * 32)),
        ("format_b_key", None),
        ("format_c_secret", _b64(b"c")),
        ("rotation_interval_ms", 30_000),
        ("format_c_validity_ms", 9),
    ]
    assert _legacy_meta(LegacyKeys()) == {
        **dict.fromkeys(("format_a_key", "format_b_key", "format_c_secret")),
        "rotation_interval_ms": 30_000,
        "format_c_validity_ms": 30_000,
    }


def test_further_keys_go_beside_the_first_where_earlier_releases_do_not_look() -> None:
    legacy = _legacy_meta(ROTATING)
    # an earlier gate reads the current key of each format and skips the rest
    assert legacy["format_a_key"] == _b64(b"a" * 32)
    assert legacy["format_b_key"] == _b64(b"b" * 32)
    assert legacy["format_c_secret"] == _b64(b"c")
    assert legacy["format_a_more_keys"] == [_b64(b"A" * 40), _b64(b"n" * 32)]
    assert legacy["format_c_more_secrets"] == [_b64(b"C" * 32)]
    assert "format_b_more_keys" not in legacy


def _legacy_meta(keys: LegacyKeys) -> dict[str, Any]:
    header = dataclasses.replace(sample_header(seed=5), legacy=keys)
    meta, _ = frame(encode_manifest(Manifest(header, {})))
    legacy: dict[str, Any] = meta["header"]["legacy"]
    return legacy


@pytest.mark.parametrize(
    "legacy",
    [
        None,
        [],
        {"format_a_key": None, "format_a_more_keys": [_b64(b"A" * 32)]},  # more, no first
        {"format_a_key": _b64(b"a" * 32), "format_a_more_keys": _b64(b"A" * 32)},
        {"format_a_key": _b64(b"a" * 32), "format_a_more_keys": [None]},
        {"format_a_key": _b64(b"a" * 32), "format_a_more_keys": ["not base64!"]},
        {"format_c_secret": 7},
        {"rotation_interval_ms": "30000"},
        {"format_c_validity_ms": 1.5},
    ],
)
def test_legacy_keys_that_do_not_add_up_are_refused_whole(legacy: Any) -> None:
    header = dataclasses.replace(sample_header(seed=5), legacy=ROTATING)
    body = encode_manifest(Manifest(header, {}))
    assert decode_manifest(reframe(body, lambda meta, sections: None)).header.legacy == ROTATING
    broken = reframe(body, lambda meta, sections: meta["header"].__setitem__("legacy", legacy))
    with pytest.raises(ManifestRejected) as exc:
        decode_manifest(broken)
    assert exc.value.code == "malformed"


def test_a_2000_ticket_manifest_stays_compact() -> None:
    """Size is measured in the bench; this only guards the columnar layout from regressing
    to row-wise JSON (which costs well over 100 bytes per ticket)."""
    m = sample_manifest(2000, seed=2, named_share=0.0)
    assert len(encode_manifest(m)) / 2000 < 22


_text = st.text(max_size=12)
_rows = st.builds(
    TicketRow,
    ticket_id=st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=40)),
    status=st.sampled_from(["ACTIVE", "SOLD", "REVOKED", "whatever"]),
    generation=st.integers(0, 2**40),
    ticket_type=st.none() | _text,
    zone=st.none() | _text,
    seat=st.none() | _text,
    valid_days=st.lists(st.sampled_from([*DAYS, "2030-01-01"]), max_size=4).map(tuple),
    max_entries=st.none() | st.integers(-5, 2**33),
    attention=st.none() | _text,
    lock_reason=st.none() | _text,
    comp_reason=st.none() | _text,
    order_ref=st.none() | _text,
    holder_sealed=st.none() | st.binary(max_size=300),
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_rows, max_size=12, unique_by=lambda r: r.ticket_id))
def test_any_rows_round_trip(rows: list[TicketRow]) -> None:
    m = Manifest(sample_header(), {r.ticket_id: r for r in rows})
    assert decode_manifest(encode_manifest(m)) == m


@settings(max_examples=25, deadline=None)
@given(
    upserts=st.lists(_rows, max_size=6).map(tuple),
    removed=st.lists(st.one_of(st.uuids().map(str), st.text(max_size=9)), max_size=6).map(tuple),
    base=st.integers(0, 2**40),
)
def test_any_delta_round_trips(upserts, removed, base) -> None:
    d = ManifestDelta(sample_header(revision=base + 1), base, upserts, removed)
    assert decode_delta(encode_delta(d)) == d


def test_kinds_are_not_interchangeable(small: Manifest) -> None:
    delta = encode_delta(ManifestDelta(small.header, 0))
    with pytest.raises(ManifestRejected) as exc:
        decode_manifest(delta)
    assert exc.value.code == "malformed"
    with pytest.raises(ManifestRejected):
        decode_delta(encode_manifest(small))


def _garbage(seed: int, body: bytes) -> list[bytes]:
    rng = random.Random(seed)
    out = [b"", b"M", b"M\x01", b"M\x01" + zlib.compress(b"\x05\x00\x00\x00{}"), b"\x00" * 40]
    out.append(b"M\x01" + zlib.compress(b"\xff\xff\xff\xff"))
    out.append(b"M\x01" + zlib.compress(b"\x00" * 10_000_000, 9))  # decompresses to junk
    for _ in range(300):
        flipped = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(bytes(flipped))
        out.append(body[: rng.randrange(len(body))])
    payload = zlib.decompress(body[2:])
    for _ in range(200):  # valid compression around a corrupted payload: reaches the parser
        flipped = bytearray(payload)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(body[:2] + zlib.compress(bytes(flipped)))
    return out


def test_garbage_raises_manifest_rejected_and_nothing_else(small: Manifest) -> None:
    body = encode_manifest(small)
    refused = 0
    for junk in _garbage(1, body):
        try:
            decoded = decode_manifest(junk)
        except ManifestRejected as exc:
            assert exc.code == "malformed"
            refused += 1
        else:  # a flip inside a string may still decode: then it is a well-typed manifest
            assert all(type(r) is TicketRow for r in decoded.tickets.values())
    assert refused > 400


def test_garbage_delta_raises_manifest_rejected_only(small: Manifest) -> None:
    body = encode_delta(ManifestDelta(small.header, 1, tuple(small.tickets.values())[:20]))
    for junk in _garbage(2, body):
        try:
            decode_delta(junk)
        except ManifestRejected as exc:
            assert exc.code == "malformed"


def test_envelope_opens_with_its_key_and_rotation_keeps_both_working() -> None:
    body = b"manifest body"
    trusted = {1: PUB_1, 2: PUB_2}
    assert open_envelope(sign_envelope(body, 1, SEED_1), trusted) == body
    assert open_envelope(sign_envelope(body, 2, SEED_2), trusted) == body
    # after rotation the old key is dropped: its envelopes stop opening
    with pytest.raises(ManifestRejected) as exc:
        open_envelope(sign_envelope(body, 1, SEED_1), {2: PUB_2})
    assert exc.value.code == "unknown_key"


def test_envelope_signed_by_wrong_key_under_a_trusted_id_is_refused() -> None:
    with pytest.raises(ManifestRejected) as exc:
        open_envelope(sign_envelope(b"x", 2, SEED_1), {1: PUB_1, 2: PUB_2})
    assert exc.value.code == "bad_signature"


def test_any_single_byte_change_is_refused(small: Manifest) -> None:
    envelope = sign_envelope(encode_manifest(small), 1, SEED_1)
    for pos in range(len(envelope)):
        tampered = bytearray(envelope)
        tampered[pos] ^= 0x01
        with pytest.raises(ManifestRejected) as exc:
            open_envelope(bytes(tampered), {1: PUB_1, 0x01000001: PUB_1})
        assert exc.value.code in {"malformed", "unknown_key", "bad_signature"}
        assert pos < 8 or exc.value.code == "bad_signature"


def test_a_plain_signature_over_the_body_does_not_pass_as_an_envelope() -> None:
    """Domain separation: the hub key signing something else must never yield a manifest."""
    body = b"manifest body"
    forged = b"GMF1" + (1).to_bytes(4, "big") + body + SigningKey(SEED_1).sign(body).signature
    with pytest.raises(ManifestRejected) as exc:
        open_envelope(forged, {1: PUB_1})
    assert exc.value.code == "bad_signature"


@pytest.mark.parametrize("junk", [b"", b"GMF1", b"GMF1" + b"\x00" * 67, b"XXXX" + b"\x00" * 80])
def test_short_or_foreign_envelopes_are_malformed(junk: bytes) -> None:
    with pytest.raises(ManifestRejected) as exc:
        open_envelope(junk, {0: PUB_1})
    assert exc.value.code == "malformed"


def test_a_broken_trusted_key_is_refused_not_crashed() -> None:
    with pytest.raises(ManifestRejected) as exc:
        open_envelope(sign_envelope(b"x", 1, SEED_1), {1: b"short"})
    assert exc.value.code == "unknown_key"


def test_sealed_name_opens_only_with_its_credential_signature() -> None:
    tid = "0b6f5d8e-5b43-4c59-9a52-3c8f2f1e7a10"
    sig = sample_signature(tid, 0)
    blob = seal_holder("Zoë Ağaoğlu", sig, tid)
    assert unseal_holder(blob, sig, tid) == "Zoë Ağaoğlu"
    assert len(blob) == len("Zoë Ağaoğlu".encode()) + 16
    assert b"Zo" not in blob
    assert unseal_holder(blob, sample_signature(tid, 1), tid) is None  # new generation
    assert unseal_holder(blob, sig, "another-ticket") is None
    assert unseal_holder(blob[:-1], sig, tid) is None
    assert unseal_holder(b"", sig, tid) is None
    assert unseal_holder(blob, sig[:32], tid) is None
    assert unseal_holder(None, sig, tid) is None and unseal_holder(blob, None, tid) is None


def test_sample_names_open_with_the_sample_signatures(small: Manifest) -> None:
    named = [r for r in small.tickets.values() if r.holder_sealed]
    names = {unseal_holder(r.holder_sealed, sample_signature(r.ticket_id, r.generation, 7),
                           r.ticket_id) for r in named}  # fmt: skip
    assert None not in names and len(names) > 3
