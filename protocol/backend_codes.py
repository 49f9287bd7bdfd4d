"""Codes an upstream ticketing system printed on its tickets (pretix's "secrets"), read offline.

Both kinds pretix prints are found in the ticket list the gate holds:

- plain codes (pretix's default: 12-64 random characters). The manifest carries only their
  keyed hashes, `code_digest(lookup_key, code)`, so no code that admits sits on a gate's disk;
- pretix_sig1 codes ("signature scheme 1", pretix/base/secrets.py Sig1TicketSecretGenerator):
  Ed25519-signed by the event's key, so a forged one is refused as not genuine before the list
  is asked, and a genuine one brings its own validity window.

A code is admitted only when the list holds its ticket: a gate without the ticket's row cannot
know whether it was cancelled. pretixSCAN's "offline without data" mode (admit any genuinely
signed sig1 code, trusting a revocation list) is out of scope.

pretix_sig1 layout: base64 (standard alphabet, padded) of `0x01 | payload length (2 bytes BE)
| signature length (2 bytes BE) | payload | Ed25519 signature over the payload`, the whole
string REVERSED. The payload is the protobuf message `Ticket { string seed = 1; int64 item = 2;
int64 variation = 3; int64 subevent = 4; optional int64 validFromUnixTime = 5; optional int64
validUntilUnixTime = 6; }`, read here by a decoder for exactly that message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from protocol.credential import (
    CodeLookup,
    CodeMatch,
    CodeState,
    Credential,
    CredentialFormat,
    ParseContext,
    ParseResult,
    Refusal,
)
from protocol.normalize import normalize_scan
from protocol.reasons import (
    BLOCKED_CODE_MESSAGE,
    DAMAGED_SIGNED_CODE_MESSAGE,
    SHARED_CODE_MESSAGE,
    UNLISTED_CODE_MESSAGE,
    Reason,
)

LOOKUP_KEY_BYTES = 32  # an event's code lookup key (HMAC-SHA256 key)
# 128 bits. Finding a text whose hash matches any of 10^5 listed codes takes about 2^111 tries
# even with the key in hand (a stolen gate); two of 10^6 codes share a hash with odds about
# 2^-89. The full 32 bytes would add 16 incompressible bytes a ticket to every manifest.
CODE_DIGEST_BYTES = 16

SIG1_VERSION = 1
SIG1_SIGNATURE_BYTES = 64  # Ed25519
ED25519_KEY_BYTES = 32
_SIG1_HEAD = struct.Struct(">BHH")  # version, payload length, signature length
_SEAL_PERSON = b"vg-code-seal1"
SEAL_BYTES = 64  # as a native code's signature, which seals the names of native tickets

_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5
_SKIP_FIXED = {_WIRE_I64: 8, _WIRE_I32: 4}
_SIG1_FIELDS = {1: "seed", 2: "item", 3: "variation", 4: "subevent", 5: "from", 6: "until"}
_MAX_VARINT_BYTES = 10
_MAX_FIELD_NUMBER = (1 << 29) - 1

# Of several entries for one code, the one that decides: a blocked code stays blocked even
# while it is the ticket's current code (pretix blocks a position by blocking its secret).
_PRECEDENCE = {CodeState.BLOCKED: 0, CodeState.CURRENT: 1, CodeState.SUPERSEDED: 2}


class Sig1Error(ValueError):
    """A pretix_sig1 code or payload that does not hold together."""


@dataclass(frozen=True, slots=True)
class Sig1Ticket:
    """What a pretix_sig1 payload says; pretix ids, 0 where the ticket has none."""

    seed: str  # pretix's random part: what makes two codes of one product differ
    item: int
    variation: int
    subevent: int
    valid_from_ms: int | None  # None: no limit (pretix writes 0)
    valid_until_ms: int | None


# -- plain codes: the keyed hash ------------------------------------------------------------


def code_digest(lookup_key: bytes, code: str) -> bytes:
    """HMAC-SHA256 of the code as a reader sends it after normalize_scan, cut to
    CODE_DIGEST_BYTES: what a manifest carries instead of the code. Never raises on text."""
    text = normalize_scan(code).encode("utf-8", "surrogatepass")
    return hmac.digest(lookup_key, text, "sha256")[:CODE_DIGEST_BYTES]


def code_seal(code: str) -> bytes:
    """What a ticket's holder name is sealed with when its holder carries this code
    (manifests/sealing.py; a native code's signature plays this part): only whoever holds the
    code can make it, so a gate reads the name only while the code is scanned. Derived apart
    from code_digest, so the hashes a manifest carries open no name."""
    text = normalize_scan(code).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=SEAL_BYTES, person=_SEAL_PERSON).digest()


def hashed_lookup(
    lookup_key: bytes | None, by_digest: Callable[[bytes], Sequence[CodeMatch]]
) -> CodeLookup | None:
    """A gate's ParseContext.code_lookup: the scanned code hashed with the event's key, then
    found by its hash. None when the event has no key (no backend codes)."""
    if lookup_key is None:
        return None
    key = lookup_key
    return lambda code: by_digest(code_digest(key, code))


# -- pretix_sig1 ---------------------------------------------------------------------------


def pretix_public_key(setting: str) -> bytes:
    """The raw 32-byte Ed25519 key of pretix's event setting `ticket_secrets_pretix_sig1_pubkey`
    (base64 of a PEM SubjectPublicKeyInfo), as the hub stores it. ValueError otherwise."""
    try:
        pem = base64.b64decode("".join(setting.split()), validate=True)
        key = load_pem_public_key(pem)
    except (binascii.Error, ValueError, TypeError, AttributeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not the base64 of a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def split_sig1(text: str) -> tuple[bytes, bytes] | None:
    """(payload, signature) of a pretix_sig1 code. None when the text is no version-1 code at
    all (not reversed base64, or another first byte), so other readings may be tried;
    Sig1Error when it is one whose lengths do not add up (truncated, padded, not Ed25519)."""
    reversed_text = text[::-1]
    try:
        raw = base64.b64decode(reversed_text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or raw[0] != SIG1_VERSION:
        return None
    if base64.b64encode(raw).decode() != reversed_text:
        raise Sig1Error("not the canonical base64 of its bytes")
    if len(raw) < _SIG1_HEAD.size:
        raise Sig1Error("shorter than its header")
    _, payload_len, sig_len = _SIG1_HEAD.unpack_from(raw)
    if sig_len != SIG1_SIGNATURE_BYTES:
        raise Sig1Error(f"a signature of {sig_len} bytes; Ed25519 signatures have 64")
    if len(raw) != _SIG1_HEAD.size + payload_len + sig_len:
        announced = _SIG1_HEAD.size + payload_len + sig_len
        raise Sig1Error(f"{len(raw)} bytes where its header announces {announced}")
    start = _SIG1_HEAD.size
    return raw[start : start + payload_len], raw[start + payload_len :]


def verify_sig1(payload: bytes, signature: bytes, keys: Sequence[bytes]) -> bool:
    """Whether one of the event's public keys signed the payload."""
    for key in keys:
        try:
            VerifyKey(key).verify(payload, signature)
        except (CryptoError, ValueError, TypeError):  # BadSignatureError is a CryptoError
            continue
        return True
    return False


def decode_sig1_payload(payload: bytes) -> Sig1Ticket:
    """The Ticket message, strictly: every varint at most 10 bytes and 64 bits, every length
    inside the payload, each known field once with its own wire type, the seed UTF-8; fields
    a later pretix may add are skipped as protobuf says. Sig1Error otherwise."""
    seen: dict[str, int | str] = {}
    pos = 0
    while pos < len(payload):
        tag, pos = _varint(payload, pos)
        number, wire = tag >> 3, tag & 7
        if not 1 <= number <= _MAX_FIELD_NUMBER:
            raise Sig1Error(f"field number {number}")
        name = _SIG1_FIELDS.get(number)
        if name is None:
            pos = _skip(payload, pos, wire)
            continue
        if name in seen:
            raise Sig1Error(f"field {name} twice")
        if name == "seed":
            if wire != _WIRE_LEN:
                raise Sig1Error("seed is not length-delimited")
            raw, pos = _length_delimited(payload, pos)
            try:
                seen[name] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Sig1Error("seed is not UTF-8") from exc
        else:
            if wire != _WIRE_VARINT:
                raise Sig1Error(f"{name} is not a varint")
            value, pos = _varint(payload, pos)
            seen[name] = value - (1 << 64) if value >> 63 else value  # int64: two's complement
    return Sig1Ticket(
        seed=str(seen.get("seed", "")),
        item=int(seen.get("item", 0)),
        variation=int(seen.get("variation", 0)),
        subevent=int(seen.get("subevent", 0)),
        valid_from_ms=_unix_ms(int(seen.get("from", 0))),
        valid_until_ms=_unix_ms(int(seen.get("until", 0))),
    )


def _unix_ms(seconds: int) -> int | None:
    if seconds < 0:
        raise Sig1Error("a validity time before 1970")
    return seconds * 1000 if seconds else None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos >= len(data):
            raise Sig1Error("a varint runs past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value >> 64:
                raise Sig1Error("a varint beyond 64 bits")
            return value, pos
    raise Sig1Error("a varint longer than 10 bytes")


def _length_delimited(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = _varint(data, pos)
    if length > len(data) - pos:
        raise Sig1Error("a length runs past the end")
    return data[pos : pos + length], pos + length


def _skip(data: bytes, pos: int, wire: int) -> int:
    if wire == _WIRE_VARINT:
        return _varint(data, pos)[1]
    if wire == _WIRE_LEN:
        return _length_delimited(data, pos)[1]
    size = _SKIP_FIXED.get(wire)
    if size is None:  # groups (3, 4) and the undefined 6, 7
        raise Sig1Error(f"wire type {wire}")
    if size > len(data) - pos:
        raise Sig1Error("a fixed-width field runs past the end")
    return pos + size


# -- parsing --------------------------------------------------------------------------------


def parse_backend_code(text: str, ctx: ParseContext) -> ParseResult | None:
    """A normalised scan no native or legacy reading took: a pretix_sig1 code (when the event
    has signing keys), else a code the event's list holds (when it has a lookup). None when
    the event has no backend codes at all: the caller refuses the text as unreadable."""
    if ctx.code_signing_keys:
        try:
            parts = split_sig1(text)
        except Sig1Error as exc:
            return Refusal.of(
                Reason.MALFORMED,
                CredentialFormat.PRETIX_SIG1,
                DAMAGED_SIGNED_CODE_MESSAGE,
                detail=str(exc),
            )
        if parts is not None:
            return _signed(text, *parts, ctx)
    if ctx.code_lookup is None:
        return None
    return _listed(text, CredentialFormat.BACKEND_CODE, ctx)


def _signed(text: str, payload: bytes, signature: bytes, ctx: ParseContext) -> ParseResult:
    fmt = CredentialFormat.PRETIX_SIG1
    if not verify_sig1(payload, signature, ctx.code_signing_keys):
        return Refusal.of(Reason.BAD_SIGNATURE, fmt)
    try:
        ticket = decode_sig1_payload(payload)
    except Sig1Error as exc:  # signed by the seller, yet not its Ticket message
        return Refusal.of(Reason.MALFORMED, fmt, DAMAGED_SIGNED_CODE_MESSAGE, detail=str(exc))
    return _listed(text, fmt, ctx, ticket.valid_from_ms, ticket.valid_until_ms)


def _listed(
    text: str,
    fmt: CredentialFormat,
    ctx: ParseContext,
    valid_from_ms: int | None = None,
    valid_until_ms: int | None = None,
) -> ParseResult:
    """The ticket the list holds this code for, as the code's state there allows."""
    matches = list(ctx.code_lookup(text)) if ctx.code_lookup is not None else []
    if not matches:
        return Refusal.of(Reason.UNKNOWN_TICKET, fmt, UNLISTED_CODE_MESSAGE)
    first = min(_PRECEDENCE[m.state] for m in matches)
    deciding = {m.ticket_id: m for m in matches if _PRECEDENCE[m.state] == first}
    if len(deciding) > 1:
        return Refusal.of(Reason.UNKNOWN_TICKET, fmt, SHARED_CODE_MESSAGE)
    (match,) = deciding.values()
    if match.state == CodeState.BLOCKED:
        return Refusal.of(Reason.LOCKED, fmt, BLOCKED_CODE_MESSAGE, match.ticket_id)
    if match.state == CodeState.SUPERSEDED:
        return Refusal.of(Reason.SUPERSEDED, fmt, ticket_id=match.ticket_id)
    return Credential(
        fmt,
        ticket_id=match.ticket_id,
        event_id=ctx.event_id,
        valid_from_ms=valid_from_ms,
        valid_until_ms=valid_until_ms,
        signature=code_seal(text),
    )
