"""TicketToken's signed webhooks, checked without its database driver (the hub's HTTP side
imports this on every start; the adapter's psycopg only loads when a TicketToken backend
runs)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

WEBHOOK_WINDOW_MS = 5 * 60 * 1000
# payment-service's sender signs timestamp.nonce.body; ticket-service's receiver checks
# timestamp:nonce:body. The venue says which its sender uses.
SEPARATORS = (".", ":")


def verify_webhook(
    secret: bytes, separator: str, headers: Mapping[str, str], body: bytes, now_ms: int
) -> tuple[str, str] | None:
    """None when a TicketToken webhook is genuine and fresh, else (code, sentence). The MAC
    is compared in constant time BEFORE anything is recorded (ticket-service's receiver
    stores the nonce first and compares with !==; we do not)."""
    signature = headers.get("x-internal-signature", "")
    timestamp = headers.get("x-webhook-timestamp", "")
    nonce = headers.get("x-webhook-nonce", "")
    if not signature or not timestamp.isdigit() or not nonce or len(nonce) > 200:
        return (
            "missing_signature",
            "A TicketToken webhook needs its signature, timestamp and nonce.",
        )
    signed = f"{timestamp}{separator}{nonce}{separator}".encode() + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        return "bad_signature", "The webhook's signature does not match."
    if abs(now_ms - int(timestamp)) > WEBHOOK_WINDOW_MS:
        return "stale_timestamp", "The webhook's timestamp is more than 5 minutes off."
    return None
