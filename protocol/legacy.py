"""The TicketToken backend's legacy QR formats (A, B, B-unsigned, C), read without I/O.

Venues migrating from TicketToken still hold printed and in-app codes in these shapes, so a
gate reads them next to native codes. Only what a format authenticates is trusted: a refusal
names a ticket only when the code proved it was issued for that ticket.

| format     | shape                                   | authenticated by           |
|------------|-----------------------------------------|----------------------------|
| A          | `TKT:<hex iv>:<hex AES-256-CBC>`        | AES key, rotates each 30 s |
| B          | `<b64 iv>:<b64 AES-256-CBC>`            | AES key, static            |
| B-unsigned | bare base64 JSON                        | nothing: always refused    |
| C          | `ticketId:timestamp:nonce:hmac`         | HMAC-SHA256, once a device |

A venue may hold several keys a format (protocol/credential.LegacyKeys: the current one first,
then the next and retired ones of a rotation): a code is genuine when any of them opens or
signs it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocol.credential import (
    Credential,
    CredentialFormat,
    LegacyKeys,
    ParseContext,
    ParseResult,
    Refusal,
)
from protocol.reasons import Reason

log = logging.getLogger(__name__)

AES_KEY_BYTES = 32  # AES-256: TicketToken keys are UTF-8 strings, cut to their first 32 bytes
AES_BLOCK_BYTES = 16
A_PREFIX = "TKT:"
A_LAG_MIN, A_LAG_MAX = -1, 2  # rotation windows: one ahead (skewed phone), two behind
MAX_TIMESTAMP_DIGITS = 19  # epoch ms fits in far fewer; longer is garbage, not a time

_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGITS = re.compile(r"[0-9]+")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_B64_LOOSE = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")  # url-safe or unpadded copies of B-unsigned

_DAMAGED = "Damaged or unreadable TicketToken code: ask the guest to show it again."
_UNDECRYPTABLE = (
    "TicketToken code does not open with this venue's key (another venue's code, or damaged)."
)
_UNSIGNED = (
    "Unsigned old-style TicketToken code: anyone who knows a ticket number could forge it, "
    "so it cannot be accepted. Ask the guest for the ticket in the app."
)


def parse_legacy(text: str, ctx: ParseContext) -> ParseResult | None:
    """A credential or refusal for any legacy-shaped text; None when it looks like none of them,
    so the dispatcher can try other formats. Never raises."""
    try:
        return _dispatch(text, ctx)
    except Exception:  # the guarantee: a reader's garbage must never crash a gate
        log.exception("legacy parser failed on an input of %d chars", len(text or ""))
        return Refusal.of(Reason.MALFORMED, message=_DAMAGED)


def legacy_keys_from_vectors(doc: Mapping[str, Any]) -> LegacyKeys:
    """The venue keys as a TicketToken vectors file states them (UTF-8 AES keys, hex HMAC)."""
    defaults = LegacyKeys()
    c_hex = _doc_text(doc, "format_c_hmac_secret_hex")
    try:
        c_secret = bytes.fromhex(c_hex) if c_hex else None
    except ValueError as exc:
        raise ValueError("format_c_hmac_secret_hex is not a hex string") from exc
    a_key, b_key = _doc_text(doc, "format_a_key_utf8"), _doc_text(doc, "format_b_key_utf8")
    return LegacyKeys(
        format_a_keys=(a_key.encode("utf-8"),) if a_key else (),
        format_b_keys=(b_key.encode("utf-8"),) if b_key else (),
        format_c_secrets=(c_secret,) if c_secret else (),
        rotation_interval_ms=int(doc.get("rotation_interval_ms", defaults.rotation_interval_ms)),
        format_c_validity_ms=int(doc.get("format_c_validity_ms", defaults.format_c_validity_ms)),
    )


def _doc_text(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _dispatch(text: str, ctx: ParseContext) -> ParseResult | None:
    if not isinstance(text, str) or not text:
        return None
    if text.startswith(A_PREFIX):
        return _parse_a(text[len(A_PREFIX) :], ctx)
    parts = text.split(":")
    if len(parts) == 4:
        return _parse_c(parts, ctx)
    if len(parts) == 2 and _B64.fullmatch(parts[0]) and _B64.fullmatch(parts[1]):
        return _parse_b(parts[0], parts[1], ctx)
    if len(parts) == 1:
        return _parse_b_unsigned(text)
    return None


# --- format A: rotating, AES-256-CBC, hex ------------------------------------------------------


def _parse_a(body: str, ctx: ParseContext) -> ParseResult:
    fmt = CredentialFormat.LEGACY_A
    pieces = body.split(":")
    if len(pieces) != 2 or not all(_HEX.fullmatch(p) and len(p) % 2 == 0 for p in pieces):
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    iv, ciphertext = bytes.fromhex(pieces[0]), bytes.fromhex(pieces[1])
    if not _cbc_shaped(iv, ciphertext):
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    keys = _aes_keys(ctx.legacy.format_a_keys)
    if not keys:
        return _no_key(fmt, "A", ctx.legacy.format_a_keys)
    interval = ctx.legacy.rotation_interval_ms
    if interval <= 0:
        return Refusal.of(
            Reason.UNKNOWN_KEY, fmt, "TicketToken format A is misconfigured on this gate."
        )
    payload = _open(keys, iv, ciphertext)
    if payload is None:
        return Refusal.of(Reason.MALFORMED, fmt, _UNDECRYPTABLE)
    ticket_id, event_id = payload.get("ticketId"), payload.get("eventId")
    timestamp, nonce = payload.get("timestamp"), payload.get("nonce")
    if not (_text(ticket_id) and _text(event_id) and _text(nonce) and _integer(timestamp)):
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    if ctx.event_id is not None and event_id != ctx.event_id:
        return Refusal.of(Reason.WRONG_EVENT, fmt, ticket_id=ticket_id)
    lag = ctx.now_ms // interval - timestamp
    if not A_LAG_MIN <= lag <= A_LAG_MAX:
        return Refusal.of(Reason.EXPIRED_CODE, fmt, ticket_id=ticket_id)
    # The nonce is not carried: an A code is legitimately shown for a whole window (entry then
    # exit); the admission engine's history, not a nonce memory, stops a second entry.
    return Credential(fmt, ticket_id=ticket_id, event_id=event_id, rotating=True)


# --- format B: static, AES-256-CBC, base64 -----------------------------------------------------


def _parse_b(iv_b64: str, ciphertext_b64: str, ctx: ParseContext) -> ParseResult:
    fmt = CredentialFormat.LEGACY_B
    iv, ciphertext = _b64(iv_b64), _b64(ciphertext_b64)
    if iv is None or ciphertext is None or not _cbc_shaped(iv, ciphertext):
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    keys = _aes_keys(ctx.legacy.format_b_keys)
    if not keys:
        return _no_key(fmt, "B", ctx.legacy.format_b_keys)
    payload = _open(keys, iv, ciphertext)
    if payload is None:
        return Refusal.of(Reason.MALFORMED, fmt, _UNDECRYPTABLE)
    ticket_id, event_id, user_id = (payload.get(k) for k in ("ticketId", "eventId", "userId"))
    if not (_text(ticket_id) and _text(event_id)) or (user_id is not None and not _text(user_id)):
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    if ctx.event_id is not None and event_id != ctx.event_id:
        return Refusal.of(Reason.WRONG_EVENT, fmt, ticket_id=ticket_id)
    return Credential(fmt, ticket_id=ticket_id, event_id=event_id, user_id=user_id)


def _parse_b_unsigned(text: str) -> ParseResult | None:
    """Bare base64 JSON proves nothing; say so rather than 'unreadable'. The ticket it names is
    not attached: the code is unauthenticated, so that id is not a fact."""
    if len(text) < 8 or not _B64_LOOSE.fullmatch(text):
        return None
    core = text.rstrip("=").replace("-", "+").replace("_", "/")
    raw = _b64(core + "=" * (-len(core) % 4))
    if raw is None or _json_object(raw) is None:
        return None
    return Refusal.of(Reason.MALFORMED, CredentialFormat.LEGACY_B_UNSIGNED, _UNSIGNED)


# --- format C: HMAC-SHA256, nonce once per device ----------------------------------------------


def _parse_c(parts: list[str], ctx: ParseContext) -> ParseResult:
    fmt = CredentialFormat.LEGACY_C
    ticket_id, stamp, nonce, mac_hex = parts
    if not (ticket_id and nonce) or not _DIGITS.fullmatch(stamp):
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    if len(stamp) > MAX_TIMESTAMP_DIGITS or not (_HEX.fullmatch(mac_hex) and len(mac_hex) % 2 == 0):
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    secrets = tuple(s for s in ctx.legacy.format_c_secrets if s)
    if not secrets:
        return _no_key(fmt, "C", ())
    try:
        signed = f"{ticket_id}:{stamp}:{nonce}".encode()
    except UnicodeEncodeError:  # lone surrogates: no issuer could have signed this
        return Refusal.of(Reason.MALFORMED, fmt, _DAMAGED)
    mac = bytes.fromhex(mac_hex)
    # every secret compared, in constant time each: how long it takes tells nothing
    matches = [
        hmac.compare_digest(hmac.new(secret, signed, hashlib.sha256).digest(), mac)
        for secret in secrets
    ]
    if not any(matches):
        return Refusal.of(Reason.BAD_SIGNATURE, fmt)
    if abs(ctx.now_ms - int(stamp)) > ctx.legacy.format_c_validity_ms:
        return Refusal.of(Reason.EXPIRED_CODE, fmt, ticket_id=ticket_id)
    if nonce in ctx.seen_nonces:
        return Refusal.of(Reason.REPLAYED, fmt, ticket_id=ticket_id)
    return Credential(fmt, ticket_id=ticket_id, nonce=nonce)


# --- shared pieces -----------------------------------------------------------------------------


def _no_key(fmt: CredentialFormat, name: str, configured: tuple[bytes, ...]) -> Refusal:
    """Say which: a venue that never enabled the format, or keys that cannot be right."""
    if configured:
        message = f"TicketToken format {name} key on this gate is unusable: ask the organiser."
    else:
        message = f"TicketToken format {name} codes are not enabled at this venue."
    return Refusal.of(Reason.UNKNOWN_KEY, fmt, message)


def _aes_keys(configured: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """TicketToken cut its UTF-8 keys to 32 bytes; a shorter key cannot be what it used."""
    return tuple(k[:AES_KEY_BYTES] for k in configured if len(k) >= AES_KEY_BYTES)


def _cbc_shaped(iv: bytes, ciphertext: bytes) -> bool:
    return (
        len(iv) == AES_BLOCK_BYTES
        and len(ciphertext) > 0
        and len(ciphertext) % AES_BLOCK_BYTES == 0
    )


def _open(keys: tuple[bytes, ...], iv: bytes, ciphertext: bytes) -> dict[str, Any] | None:
    """The JSON object inside, by the first key it opens with; None when none does."""
    for key in keys:
        payload = _open_with(key, iv, ciphertext)
        if payload is not None:
            return payload
    return None


def _open_with(key: bytes, iv: bytes, ciphertext: bytes) -> dict[str, Any] | None:
    """The JSON object inside, or None when the key, padding or content do not fit."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(AES_BLOCK_BYTES * 8).unpadder()
    try:
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:  # bad PKCS7 padding: wrong key or altered ciphertext
        return None
    return _json_object(plain)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    return value if isinstance(value, dict) else None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


def _integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
