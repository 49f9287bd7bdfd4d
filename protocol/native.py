"""The native credential: a fixed 35-byte body signed with Ed25519, base45-encoded.

Gates hold only public keys, so a stolen gate cannot mint tickets. The fixed layout (see
protocol/README.md) keeps the string at 149 characters (153 with the rotating part), which fits
a version 6 QR code at error correction M in alphanumeric mode.
"""

from __future__ import annotations

import hmac
import struct
import uuid

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from protocol import base45
from protocol.credential import Credential, CredentialFormat, ParseContext, ParseResult, Refusal
from protocol.reasons import Reason
from protocol.rotating import (
    DEFAULT_PERIOD_S,
    TOTP_BYTES,
    ticket_rotation_secret,
    totp,
    totp_matches,
)

VERSION = 1
SIGNATURE_DOMAIN = b"GATE-CRED-v1"
_BODY = struct.Struct(">BBI16sHBBI3sH")
BODY_BYTES = _BODY.size  # 35
SIG_BYTES = 64
STATIC_BYTES = BODY_BYTES + SIG_BYTES
STATIC_CHARS = base45.encoded_length(STATIC_BYTES)  # 149
ROTATING_CHARS = base45.encoded_length(STATIC_BYTES + TOTP_BYTES)  # 153

FLAG_COMP = 0x1
FLAG_ATTENTION = 0x2
FLAG_ROTATING = 0x4

MINUTE_MS = 60_000
MAX_SPAN_MINUTES = (1 << 24) - 1
FMT = CredentialFormat.NATIVE


def public_key(seed: bytes) -> bytes:
    """The Ed25519 public key for a 32-byte private seed (what gates are given)."""
    return bytes(SigningKey(seed).verify_key)


def issue_credential(
    *,
    signing_key: bytes,
    key_id: int,
    event_code: int,
    ticket_id: str,
    generation: int,
    valid_from_ms: int,
    valid_until_ms: int,
    ticket_type: int = 0,
    zone: int = 0,
    day_mask: int = 0,
    comp: bool = False,
    attention: bool = False,
    rotating: bool = False,
) -> str:
    """Sign and encode a credential. Validity is kept at minute resolution, widened outward."""
    start_min = valid_from_ms // MINUTE_MS
    end_min = -(-valid_until_ms // MINUTE_MS)
    span = end_min - start_min
    if not 0 <= span <= MAX_SPAN_MINUTES:
        raise ValueError("validity window must be 0 minutes to about 31 years long")
    flags = (FLAG_COMP if comp else 0) | (FLAG_ATTENTION if attention else 0)
    flags |= FLAG_ROTATING if rotating else 0
    body = _BODY.pack(
        VERSION << 4 | flags,
        key_id,
        event_code,
        uuid.UUID(ticket_id).bytes,
        generation,
        ticket_type,
        zone,
        start_min,
        span.to_bytes(3, "big"),
        day_mask,
    )
    signature = SigningKey(signing_key).sign(SIGNATURE_DOMAIN + body).signature
    return base45.encode(body + signature)


def looks_native(text: str) -> bool:
    """Cheap shape test used by the dispatcher before trying legacy formats."""
    return len(_restore(text)) in (STATIC_CHARS, ROTATING_CHARS) and base45.is_base45(text.upper())


def _restore(text: str) -> str:
    """Readers strip surrounding whitespace, but base45 may start with up to two spaces (the
    last character is never a space): pad back to the fixed length."""
    for size in (STATIC_CHARS, ROTATING_CHARS):
        if size - 2 <= len(text) <= size:
            return text.rjust(size)
    return text


def _issued_here(restored: str, ticket_id: str, generation: int, ctx: ParseContext) -> bool:
    """The issuer holds this exact static code (compared in constant time)."""
    if ctx.issued is None or len(restored) != STATIC_CHARS:
        return False
    known = ctx.issued(ticket_id, generation)
    return known is not None and hmac.compare_digest(known.encode(), restored.encode())


def parse_native(text: str, ctx: ParseContext) -> ParseResult:
    """Verify a native code against the trusted keys, the event binding and the rotation."""
    restored = _restore(text.upper())
    try:
        raw = base45.decode(restored)
    except base45.Base45Error as exc:
        return Refusal.of(Reason.MALFORMED, FMT, detail=str(exc))  # codec words: not for staff
    if len(raw) not in (STATIC_BYTES, STATIC_BYTES + TOTP_BYTES):
        return Refusal.of(Reason.MALFORMED, FMT)
    body, signature, live = (
        raw[:BODY_BYTES],
        raw[BODY_BYTES:STATIC_BYTES],
        raw[STATIC_BYTES:],
    )
    head, key_id, event_code, tid, gen, ttype, zone, start_min, span, day_mask = _BODY.unpack(body)
    ticket_id = str(uuid.UUID(bytes=tid))
    if head >> 4 != VERSION:
        return Refusal.of(
            Reason.MALFORMED, FMT, detail=f"ticket code version {head >> 4} is not supported"
        )
    key = ctx.issuer_keys.get(key_id)
    if key is None:
        return Refusal.of(Reason.UNKNOWN_KEY, FMT, ticket_id=ticket_id)
    if not _issued_here(restored, ticket_id, gen, ctx):
        try:
            VerifyKey(key).verify(SIGNATURE_DOMAIN + body, signature)
        except (BadSignatureError, ValueError):
            return Refusal.of(Reason.BAD_SIGNATURE, FMT, ticket_id=ticket_id)
    event_id = ctx.event_codes.get(event_code)
    if ctx.event_id is not None and event_id != ctx.event_id:
        return Refusal.of(Reason.WRONG_EVENT, FMT, ticket_id=ticket_id)
    rotating = bool(head & FLAG_ROTATING)
    refusal = _check_rotation(rotating, live, ticket_id, gen, ctx)
    if refusal is not None:
        return refusal
    start_ms = start_min * MINUTE_MS
    return Credential(
        format=FMT,
        ticket_id=ticket_id,
        event_id=event_id,
        event_code=event_code,
        key_id=key_id,
        generation=gen,
        ticket_type=ttype or None,
        zone=zone or None,
        valid_from_ms=start_ms,
        valid_until_ms=start_ms + int.from_bytes(span, "big") * MINUTE_MS,
        day_mask=day_mask,
        comp=bool(head & FLAG_COMP),
        attention=bool(head & FLAG_ATTENTION),
        rotating=rotating,
        signature=signature,
    )


def _check_rotation(
    rotating: bool, live: bytes, ticket_id: str, generation: int, ctx: ParseContext
) -> Refusal | None:
    if not rotating:
        if live:
            return Refusal.of(Reason.MALFORMED, FMT, ticket_id=ticket_id)
        return None
    if not live:
        return Refusal.of(
            Reason.EXPIRED_CODE,
            FMT,
            "Live part of the ticket is missing (printout or screenshot): "
            "ask for the ticket in the app.",
            ticket_id,
        )
    if ctx.rotation_secret is None:
        return Refusal.of(
            Reason.UNKNOWN_KEY,
            FMT,
            "This gate has no rotation secret for the event: sync the device.",
            ticket_id,
        )
    secret = ticket_rotation_secret(ctx.rotation_secret, ticket_id, generation)
    if not totp_matches(secret, live, ctx.now_ms, ctx.rotation_period_s):
        return Refusal.of(
            Reason.EXPIRED_CODE,
            FMT,
            "Code is not live (screenshot or wrong phone clock): ask for the ticket in the app.",
            ticket_id,
        )
    return None


def rotate(
    static_code: str, ticket_secret: bytes, now_ms: int, period_s: int = DEFAULT_PERIOD_S
) -> str:
    """What the fan's app shows now: the static signed code with the current TOTP appended."""
    raw = base45.decode(_restore(static_code.upper()))[:STATIC_BYTES]
    live = totp(ticket_secret, now_ms, period_s).to_bytes(TOTP_BYTES, "big")
    return base45.encode(raw + live)
