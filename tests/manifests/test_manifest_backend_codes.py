"""Backend codes in manifests (manifests/codec.py version 2): the header's code keys and each
row's code hashes round-trip in full manifests and deltas, cost about 16 bytes a ticket, leave
manifests without them as version 1 bodies, and are refused whole when they do not add up;
and the admission engine judges what parsing found with them."""

from __future__ import annotations

import dataclasses
import json
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from demo.sample import sample_header, sample_manifest
from manifests import admission
from manifests.codec import (
    VERSION,
    VERSION_CODES,
    decode_delta,
    decode_manifest,
    decode_manifest_header,
    encode_delta,
    encode_manifest,
    pack_retired_codes,
    unpack_retired_codes,
)
from manifests.model import Manifest, ManifestDelta, ManifestHeader, RetiredCode, TicketRow
from manifests.policy import HOUR_MS
from manifests.signing import ManifestRejected
from protocol.backend_codes import code_digest, hashed_lookup, pretix_public_key
from protocol.credential import CodeMatch, CodeState
from protocol.parse import parse_credential
from protocol.reasons import Reason, Verdict
from tests import factories
from tests.pretix_codes import PRETIX, pretix_code, random_secret

KEY = bytes(range(100, 132))
SIGNING = (pretix_public_key(PRETIX["pubkey"]), bytes(32))
_U32 = struct.Struct("<I")


def with_codes(m: Manifest, seed: int = 1) -> Manifest:
    """Most rows with a code hash, every 7th with retired codes too, and the header's keys."""
    rng = random.Random(seed)
    rows = {}
    for i, (tid, row) in enumerate(m.tickets.items()):
        digest = None if i % 5 == 4 else code_digest(KEY, random_secret(rng))
        retired = ()
        if i % 7 == 0:
            retired = tuple(
                RetiredCode(code_digest(KEY, random_secret(rng)), state)
                for state in (CodeState.SUPERSEDED, CodeState.BLOCKED)[: 1 + i % 2]
            )
        rows[tid] = dataclasses.replace(row, code_digest=digest, retired_codes=retired)
    header = dataclasses.replace(m.header, code_lookup_key=KEY, code_signing_keys=SIGNING)
    return Manifest(header, rows)


@pytest.fixture(scope="module")
def coded() -> Manifest:
    return with_codes(sample_manifest(80, seed=4, named_share=0.5))


def frame(body: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The meta object and sections of a body (the layout manifests/codec.py documents)."""
    payload, sections, pos = zlib.decompress(body[2:]), [], 0
    while pos < len(payload):
        (length,) = _U32.unpack_from(payload, pos)
        sections.append(payload[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return json.loads(sections[0]), sections[1:]


def reframe(body: bytes, edit: Callable[[dict[str, Any], list[bytes]], None]) -> bytes:
    meta, sections = frame(body)
    edit(meta, sections)
    parts = [json.dumps(meta).encode(), *sections]
    payload = b"".join(_U32.pack(len(p)) + p for p in parts)
    return body[:2] + zlib.compress(payload)


def test_a_manifest_with_codes_round_trips_as_version_2(coded: Manifest) -> None:
    body = encode_manifest(coded)
    assert body[1] == VERSION_CODES
    assert decode_manifest(body) == coded
    assert list(decode_manifest(body).tickets) == list(coded.tickets)
    assert decode_manifest_header(body) == coded.header
    rows = coded.tickets.values()
    assert any(r.code_digest is None for r in rows) and any(r.retired_codes for r in rows)


def test_a_delta_with_codes_round_trips(coded: Manifest) -> None:
    upserts = tuple(coded.tickets.values())[:15]
    delta = ManifestDelta(coded.header, 3, upserts, ("gone-1",))
    body = encode_delta(delta)
    assert body[1] == VERSION_CODES and decode_delta(body) == delta
    # a header that brings only the keys (no row changed) is version 2 too
    bare = ManifestDelta(dataclasses.replace(coded.header, code_lookup_key=None), 3)
    assert encode_delta(bare)[1] == VERSION_CODES and decode_delta(encode_delta(bare)) == bare


def test_a_manifest_without_codes_is_the_version_1_body_it_always_was() -> None:
    plain = sample_manifest(80, seed=4, named_share=0.5)
    body = encode_manifest(plain)
    assert body[1] == VERSION
    meta, sections = frame(body)
    assert set(meta) == {"n", "ids", "dicts", "holder_width", "header"}
    assert set(meta["header"]) == {
        *("event", "scope", "revision", "issued_at_ms", "expires_at_ms", "issuer_keys"),
        *("policy", "zone_rules", "legacy", "rotation_secret", "revoked"),
    }
    # ids, 10 dictionary columns (indexes, dictionary), days, holder lengths and blobs
    assert len(sections) == 1 + 2 * 10 + 1 + 2
    assert decode_manifest(body) == plain
    delta = encode_delta(ManifestDelta(plain.header, 1, tuple(plain.tickets.values())[:3]))
    assert delta[1] == VERSION


def test_codes_cost_about_16_bytes_a_ticket() -> None:
    plain = sample_manifest(10_000, seed=3, named_share=0.2)
    rng = random.Random(5)
    rows = {
        tid: dataclasses.replace(row, code_digest=code_digest(KEY, random_secret(rng)))
        for tid, row in plain.tickets.items()
    }
    header = dataclasses.replace(plain.header, code_lookup_key=KEY, code_signing_keys=SIGNING)
    grown = len(encode_manifest(Manifest(header, rows))) - len(encode_manifest(plain))
    assert 16 <= grown / 10_000 < 17, grown  # the hashes do not compress; nothing else shows


_digests = st.binary(min_size=16, max_size=16)
_coded_rows = st.builds(
    TicketRow,
    ticket_id=st.uuids().map(str),
    code_digest=st.none() | _digests,
    retired_codes=st.lists(
        st.builds(
            RetiredCode, _digests, st.sampled_from([CodeState.SUPERSEDED, CodeState.BLOCKED])
        ),
        max_size=300,
    ).map(tuple),
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_coded_rows, max_size=8, unique_by=lambda r: r.ticket_id))
def test_any_coded_rows_round_trip(rows: list[TicketRow]) -> None:
    header = dataclasses.replace(sample_header(), code_lookup_key=KEY)
    m = Manifest(header, {r.ticket_id: r for r in rows})
    assert decode_manifest(encode_manifest(m)) == m


def test_a_ticket_with_hundreds_of_retired_codes_round_trips() -> None:
    many = tuple(RetiredCode(code_digest(KEY, str(i)), CodeState.SUPERSEDED) for i in range(300))
    row = TicketRow(ticket_id=factories.EVENT_ID, retired_codes=many)
    m = Manifest(dataclasses.replace(sample_header(), code_lookup_key=KEY), {row.ticket_id: row})
    assert decode_manifest(encode_manifest(m)) == m


def test_retired_codes_pack_as_hash_and_state_byte() -> None:
    codes = (
        RetiredCode(b"a" * 16, CodeState.SUPERSEDED),
        RetiredCode(b"b" * 16, CodeState.BLOCKED),
    )
    assert pack_retired_codes(codes) == b"a" * 16 + b"\x01" + b"b" * 16 + b"\x02"
    assert unpack_retired_codes(pack_retired_codes(codes)) == codes
    assert unpack_retired_codes(b"") == ()
    for bad in (b"a" * 16, b"a" * 16 + b"\x00", b"a" * 16 + b"\x03"):
        with pytest.raises(ValueError):
            unpack_retired_codes(bad)


def test_the_hub_cannot_write_hashes_a_gate_cannot_use(coded: Manifest) -> None:
    first = next(iter(coded.tickets.values()))
    keyless = dataclasses.replace(coded.header, code_lookup_key=None)
    with pytest.raises(ValueError, match="key"):
        encode_manifest(Manifest(keyless, coded.tickets))
    for bad in (
        dataclasses.replace(first, code_digest=b"short"),
        dataclasses.replace(first, retired_codes=(RetiredCode(b"x" * 16, CodeState.CURRENT),)),
        dataclasses.replace(first, retired_codes=(RetiredCode(b"x" * 15, CodeState.BLOCKED),)),
    ):
        with pytest.raises(ValueError):
            encode_manifest(Manifest(coded.header, {first.ticket_id: bad}))


def _set_header(key: str, value: Any) -> Callable[[dict[str, Any], list[bytes]], None]:
    return lambda meta, sections: meta["header"].__setitem__(key, value)


def _set_section(index: int, value: bytes) -> Callable[[dict[str, Any], list[bytes]], None]:
    return lambda meta, sections: sections.__setitem__(index, value)


def _first_byte(index: int, value: int) -> Callable[[dict[str, Any], list[bytes]], None]:
    def edit(meta: dict[str, Any], sections: list[bytes]) -> None:
        sections[index] = bytes([value]) + sections[index][1:]

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        _set_header("code_lookup_key", None),  # hashes, and no key to hash a scan with
        _set_header("code_lookup_key", "AAAA"),  # a key of 3 bytes
        _set_header("code_signing_keys", ["AAAA"]),
        _set_header("code_signing_keys", {"A" * 43 + "=": 1}),  # an object, not a list
        _first_byte(-4, 2),  # a presence byte that is no 0 or 1
        lambda meta, sections: sections.__setitem__(-4, b"\x02\x00" + sections[-4][2:]),
        _first_byte(-4, 0),  # one hash too many for the presence bytes
        _set_section(-3, b"\x00" * 15),  # a hash cut short
        _first_byte(-2, 9),  # more retired codes than there are
        lambda meta, sections: sections.__setitem__(-1, sections[-1][:-1] + b"\x00"),  # state 0
        lambda meta, sections: sections.__setitem__(-1, sections[-1][:-1] + b"\x03"),  # state 3
        lambda meta, sections: meta["codes"].__setitem__("retired_width", "b"),
        lambda meta, sections: sections.pop(),  # a section missing
    ],
)
def test_a_version_2_body_that_does_not_add_up_is_refused_whole(
    coded: Manifest, edit: Callable[[dict[str, Any], list[bytes]], None]
) -> None:
    body = encode_manifest(coded)
    assert decode_manifest(reframe(body, lambda meta, sections: None)) == coded  # as it was
    with pytest.raises(ManifestRejected) as exc:
        decode_manifest(reframe(body, edit))
    assert exc.value.code == "malformed"


def test_flipped_bits_in_a_version_2_body_are_refused_or_well_typed(coded: Manifest) -> None:
    body = encode_manifest(coded)
    payload = zlib.decompress(body[2:])
    rng = random.Random(3)
    refused = 0
    for _ in range(300):
        flipped = bytearray(payload)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        try:
            decoded = decode_manifest(body[:2] + zlib.compress(bytes(flipped)))
        except ManifestRejected as exc:
            assert exc.code == "malformed"
            refused += 1
        else:
            assert all(type(r.retired_codes) is tuple for r in decoded.tickets.values())
    assert refused > 50


# -- what parsing found, judged -----------------------------------------------------------

NOW = 1_790_000_000_000  # inside the first pretix vector's window
TID = "0a000000-0000-4000-8000-00000000000a"


def show_header(**changes: Any) -> ManifestHeader:
    event = dataclasses.replace(
        factories.EVENT, start_ms=NOW - HOUR_MS, end_ms=NOW + 6 * HOUR_MS, days=()
    )
    return factories.header(event=event, expires_at_ms=NOW + 48 * HOUR_MS, **changes)


def judged(code: str, header: ManifestHeader, held: dict[bytes, list[CodeMatch]]) -> Any:
    lookup = hashed_lookup(header.code_lookup_key, lambda digest: held.get(digest, []))
    parsed = parse_credential(code, admission.parse_context(header, NOW, codes=lookup))
    row = factories.row(TID)
    return admission.decide(parsed, header, row, (), factories.gate(), NOW)


@pytest.mark.parametrize(
    ("index", "verdict", "reason"),
    [
        (0, Verdict.ADMIT, Reason.ADMITTED),  # 2026-09-21 12:00 to 2026-09-22 12:00 UTC
        (1, Verdict.ADMIT, Reason.ADMITTED),  # no window
        (2, Verdict.DENY, Reason.TOO_EARLY),  # from 2026-10-01
        (3, Verdict.DENY, Reason.TOO_LATE),  # until 2026-09-01
    ],
)
def test_a_signed_codes_own_window_is_judged_as_time(
    index: int, verdict: Verdict, reason: Reason
) -> None:
    header = show_header(code_lookup_key=KEY, code_signing_keys=SIGNING)
    code = pretix_code(index)
    decision = judged(code, header, {code_digest(KEY, code): [CodeMatch(TID, CodeState.CURRENT)]})
    assert (decision.verdict, decision.reason, decision.ticket_id) == (verdict, reason, TID)


def test_a_blocked_code_is_a_locked_ticket_and_the_list_is_asked_only_with_a_key() -> None:
    code = random_secret(random.Random(9))
    blocked = {code_digest(KEY, code): [CodeMatch(TID, CodeState.BLOCKED)]}
    decision = judged(code, show_header(code_lookup_key=KEY), blocked)
    assert (decision.verdict, decision.reason, decision.ticket_id) == (
        Verdict.DENY,
        Reason.LOCKED,
        TID,
    )
    assert "blocked by the ticket seller" in decision.message
    # an event without a key has no backend codes: its list is not asked
    listed = {code_digest(KEY, code): [CodeMatch(TID, CodeState.CURRENT)]}
    no_key = judged(code, show_header(), listed)
    assert no_key.reason is Reason.MALFORMED
    context = admission.parse_context(show_header(), NOW, codes=lambda code: [])
    assert context.code_lookup is None
