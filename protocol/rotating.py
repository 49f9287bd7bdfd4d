"""The rotating part of a native credential: a TOTP (RFC 6238) that makes a screenshot go
stale after one period. Each ticket's TOTP secret is derived from the event's rotation secret,
so the fan's app holds only its own ticket's secret."""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

TOTP_BYTES = 3  # six decimal digits fit in 24 bits
DIGITS = 6
DEFAULT_PERIOD_S = 15
SKEW_PERIODS = 1  # accept one period either side for clock drift


def ticket_rotation_secret(event_secret: bytes, ticket_id: str, generation: int) -> bytes:
    """Per-ticket secret; bumping the generation (transfer, reissue) changes it."""
    msg = b"ticket-rotation" + uuid.UUID(ticket_id).bytes + generation.to_bytes(2, "big")
    return hmac.new(event_secret, msg, hashlib.sha256).digest()


def hotp(secret: bytes, counter: int) -> int:
    """RFC 4226 HOTP with HMAC-SHA1, six digits."""
    digest = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return code % 10**DIGITS


def totp(secret: bytes, now_ms: int, period_s: int = DEFAULT_PERIOD_S) -> int:
    return hotp(secret, now_ms // (period_s * 1000))


def totp_matches(secret: bytes, live: bytes, now_ms: int, period_s: int) -> bool:
    """Constant-time comparison against the current period and one either side."""
    counter = now_ms // (period_s * 1000)
    ok = False
    for step in range(counter - SKEW_PERIODS, counter + SKEW_PERIODS + 1):
        expected = hotp(secret, step).to_bytes(TOTP_BYTES, "big")
        ok |= hmac.compare_digest(expected, live)
    return ok
