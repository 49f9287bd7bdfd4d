"""payment-service's outbox as a webhook sender, for the tests marked `tickettoken`.

What the extract shows (../shared/context/tickettoken-payment-service.md,
src/workers/outbox.processor.ts), the scheme this module reproduces byte for byte:

    const WEBHOOK_SECRET = process.env.INTERNAL_WEBHOOK_SECRET
                           || 'internal-webhook-secret-change-in-production';
    private createSignature(payload: any, timestamp: string, nonce: string): string {
      const signaturePayload = `${timestamp}.${nonce}.${JSON.stringify(payload)}`;
      return crypto.createHmac('sha256', WEBHOOK_SECRET).update(signaturePayload).digest('hex');
    }
    const timestamp = Date.now().toString();      // epoch MILLISECONDS, decimal digits
    const nonce = crypto.randomUUID();
    axios.post(url, requestBody, { headers: {
      'x-internal-signature': signature,           // lower-case hex HMAC-SHA256
      'x-webhook-timestamp': timestamp,
      'x-webhook-nonce': nonce,
      'x-idempotency-key': requestBody.idempotencyKey,   // order.paid only; payment-failed has none
      'Content-Type': 'application/json' }, timeout: 10000 });

axios sends JSON.stringify(requestBody): compact, keys in insertion order, non-ASCII unescaped;
canonical_json() makes the same bytes, so the signed text and the body are the same bytes.

ticket-service's receiver (tickettoken-ticket-service.md, src/routes/webhookRoutes.ts) checks
something else: `${timestamp}:${nonce}:${JSON.stringify(req.body)}` (colons), re-serialising the
parsed body, after `Math.abs(Date.now() - parseInt(timestamp)) > 5 * 60 * 1000` and after it has
stored the nonce (per endpoint, 10 minutes), comparing with `!==`. So the two never agree: hence
the separator here is a parameter (SENDER_SEPARATOR "." by default, RECEIVER_SEPARATOR ":").

The event is named only by the URL (WEBHOOK_PATHS): order.paid goes to
/api/v1/webhooks/payment-confirmed with the body order_paid_body() builds (handleOrderPaid);
ticket-service listens on /payment-success, another mismatch. The extract's outbox never POSTs
refund.completed (refundController writes it to the outbox, the processor's switch has no case
for it: "Unknown event type", marked processed) nor tickets.create (its case publishes to the
'ticket.mint' queue). We POST both the same way, with the outbox payloads the extract writes
plus what a receiver needs to act (ticketIds, orderId) and an idempotency key made like
order.paid's; the builders say which fields are the extract's and which are ours.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

DEFAULT_SECRET = "internal-webhook-secret-change-in-production"  # payment-service's fallback
SENDER_SEPARATOR = "."  # outbox.processor.ts createSignature
RECEIVER_SEPARATOR = ":"  # webhookRoutes.ts verifyInternalWebhook
MAX_SKEW_MS = 5 * 60 * 1000  # the receiver's window, either side of its clock

SIGNATURE_HEADER = "x-internal-signature"
TIMESTAMP_HEADER = "x-webhook-timestamp"
NONCE_HEADER = "x-webhook-nonce"
IDEMPOTENCY_HEADER = "x-idempotency-key"

# Where payment-service posts each event on ticket-service (the extract's two; ours after).
WEBHOOK_PATHS = {
    "order.paid": "/api/v1/webhooks/payment-confirmed",
    "order.payment_failed": "/api/v1/webhooks/payment-failed",
    "refund.completed": "/api/v1/webhooks/refund-completed",  # ours: never POSTed there
    "tickets.create": "/api/v1/webhooks/tickets-create",  # ours: queued to 'ticket.mint' there
}


def js_iso(moment: datetime | None = None) -> str:
    """`new Date().toISOString()`: UTC, milliseconds, a Z."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """The bytes `JSON.stringify(body)` gives (whole numbers must be ints: 25, not 25.0)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signature(
    secret: str, timestamp: str, nonce: str, raw_body: bytes, separator: str = SENDER_SEPARATOR
) -> str:
    """Hex HMAC-SHA256 of `timestamp<sep>nonce<sep>body` under the shared secret."""
    signed = f"{timestamp}{separator}{nonce}{separator}".encode() + raw_body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    separator: str = SENDER_SEPARATOR,
) -> bool:
    """Whether a request's signature header matches (constant-time); the tests' reference."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        expected = signature(
            secret, lower[TIMESTAMP_HEADER], lower[NONCE_HEADER], raw_body, separator
        )
        return hmac.compare_digest(expected, lower[SIGNATURE_HEADER])
    except KeyError:
        return False


@dataclass(frozen=True)
class SignedRequest:
    """One webhook as sent: re-POST it unchanged to replay it."""

    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass(frozen=True)
class Delivery:
    """The receiver's answer to one SignedRequest."""

    request: SignedRequest
    status: int
    body: bytes


class WebhookSender:
    """Signs and POSTs like payment-service's outbox; every part can be bent for a test."""

    def __init__(
        self,
        secret: str = DEFAULT_SECRET,
        separator: str = SENDER_SEPARATOR,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.secret, self.separator, self.clock_ms = secret, separator, clock_ms

    def sign(
        self,
        url: str,
        body: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        timestamp_ms: int | None = None,
        nonce: str | None = None,
        secret: str | None = None,
    ) -> SignedRequest:
        """The request the outbox would send now (or at `timestamp_ms`, with `nonce`);
        `secret` signs with another key (a forgery). The idempotency header is sent only when
        given, as the outbox sends it only for order.paid."""
        raw = canonical_json(body)
        timestamp = str(self.clock_ms() if timestamp_ms is None else timestamp_ms)
        nonce = nonce or str(uuid.uuid4())
        headers = {
            SIGNATURE_HEADER: signature(
                secret or self.secret, timestamp, nonce, raw, self.separator
            ),
            TIMESTAMP_HEADER: timestamp,
            NONCE_HEADER: nonce,
            "Content-Type": "application/json",
        }
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        return SignedRequest(url, headers, raw)

    def send(self, request: SignedRequest, timeout_s: float = 10.0) -> Delivery:
        """POST a signed request (again, for a replay) and wait for the answer."""
        reply = httpx.post(
            request.url, content=request.body, headers=request.headers, timeout=timeout_s
        )
        return Delivery(request, reply.status_code, reply.content)

    async def asend(self, request: SignedRequest, timeout_s: float = 10.0) -> Delivery:
        """send() for async tests whose receiver runs in the same event loop."""
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            reply = await client.post(request.url, content=request.body, headers=request.headers)
        return Delivery(request, reply.status_code, reply.content)

    def post(
        self, url: str, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Delivery:
        """Sign now and POST: what the outbox does for one event."""
        return self.send(self.sign(url, body, idempotency_key=idempotency_key))

    async def apost(
        self, url: str, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Delivery:
        return await self.asend(self.sign(url, body, idempotency_key=idempotency_key))


def order_paid_body(
    *,
    order_id: uuid.UUID | str,
    payment_id: str,
    user_id: uuid.UUID | str,
    event_id: uuid.UUID | str,
    amount: int,
    ticket_quantity: int,
) -> dict[str, Any]:
    """handleOrderPaid's requestBody, field for field (the idempotency key is in it too)."""
    return {
        "orderId": str(order_id),
        "paymentId": payment_id,
        "userId": str(user_id),
        "eventId": str(event_id),
        "amount": amount,
        "ticketQuantity": ticket_quantity,
        "idempotencyKey": f"payment-{order_id}-{payment_id}",
        "timestamp": js_iso(),
    }


def refund_completed_body(
    *,
    refund_id: str,
    payment_intent: str,
    amount: int,
    tenant_id: uuid.UUID | str,
    user_id: uuid.UUID | str,
    ticket_ids: Sequence[uuid.UUID | str],
    order_id: uuid.UUID | str | None = None,
    reason: str = "requested_by_customer",
) -> dict[str, Any]:
    """refundController's outbox payload ({...mockRefund, tenantId, userId, timestamp}: id,
    payment_intent, amount, status, reason), then ours: ticketIds and orderId (the extract's
    payload names no ticket), and idempotencyKey `refund-<id>` (like order.paid's)."""
    return {
        "id": refund_id,
        "payment_intent": payment_intent,
        "amount": amount,
        "status": "succeeded",
        "reason": reason,
        "tenantId": str(tenant_id),
        "userId": str(user_id),
        "timestamp": js_iso(),
        "ticketIds": [str(t) for t in ticket_ids],
        "orderId": None if order_id is None else str(order_id),
        "idempotencyKey": f"refund-{refund_id}",
    }


def tickets_create_body(
    *, order_id: uuid.UUID | str, tickets: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The tickets.create outbox payload as handleTicketCreation reads it (payload.orderId,
    payload.tickets); idempotencyKey `tickets-<orderId>` is ours."""
    return {
        "orderId": str(order_id),
        "tickets": [dict(t) for t in tickets],
        "idempotencyKey": f"tickets-{order_id}",
        "timestamp": js_iso(),
    }


def new_refund_id() -> str:
    """refundController's mock Stripe id: `re_<ms>_<9 base-36 chars>`."""
    return f"re_{time.time_ns() // 1_000_000}_{secrets.token_hex(5)[:9]}"
