"""Device request signing: every request a gate sends to the hub carries an Ed25519 signature
by the device's own key over a canonical string, so the hub knows which device sent it, that
nothing was changed on the way, and (with timestamp + nonce) that it is not a replay.

Pure: the caller passes the clock (`now_ms`) and the nonce memory (`seen_nonce`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

HEADER_DEVICE_ID = "X-Device-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
SIGNED_HEADERS = (HEADER_DEVICE_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

MAX_SKEW_MS = 5 * 60_000  # a request's timestamp may differ from the hub clock by ±5 min
# A nonce must be remembered at least this long after it was seen: any replay older than that
# already fails the timestamp check.
NONCE_MEMORY_MS = 2 * MAX_SKEW_MS + 60_000

_DOMAIN = "GATE-HUB-REQUEST-V1"
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

# Error codes verify_request returns (also the HTTP error codes the hub sends).
MISSING_SIGNATURE = "missing_signature"
BAD_SIGNATURE = "bad_signature"
STALE_TIMESTAMP = "stale_timestamp"
REPLAYED_NONCE = "replayed_nonce"


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode unpadded URL-safe base64; raises ValueError on anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def key_fingerprint(key: bytes) -> str:
    """Short human-comparable fingerprint of a public key (first 16 bytes of its SHA-256)."""
    digest = hashlib.sha256(key).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def canonical_string(
    method: str, path: str, device_id: str, timestamp_ms: int, nonce: str, body: bytes
) -> bytes:
    """What gets signed. `path` is the raw request target: path plus `?query` as sent."""
    body_hash = hashlib.sha256(body).hexdigest()
    parts = (_DOMAIN, method.upper(), path, device_id, str(timestamp_ms), nonce, body_hash)
    return "\n".join(parts).encode("utf-8")


@dataclass(frozen=True, slots=True)
class DeviceSigner:
    """A device as it signs its requests: its id at the hub and its 32-byte Ed25519 seed.
    The gate (scanner/hub_client.py), the tests' devices and the benches' sign through it."""

    device_id: str
    seed: bytes

    def sign(
        self, method: str, path: str, body: bytes = b"", *, now_ms: int, nonce: str | None = None
    ) -> dict[str, str]:
        """Headers to add to the request `method path` with `body`, signed at `now_ms`."""
        nonce = nonce or new_nonce()
        message = canonical_string(method, path, self.device_id, now_ms, nonce, body)
        signature = SigningKey(self.seed).sign(message).signature
        return {
            HEADER_DEVICE_ID: self.device_id,
            HEADER_TIMESTAMP: str(now_ms),
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: b64encode(signature),
        }


def sign_request(
    *,
    device_id: str,
    seed: bytes,
    method: str,
    path: str,
    body: bytes = b"",
    now_ms: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """`DeviceSigner.sign` for a one-off request, every fact named."""
    return DeviceSigner(device_id, seed).sign(method, path, body, now_ms=now_ms, nonce=nonce)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def device_id_of(headers: Mapping[str, str]) -> str | None:
    """The device a request claims to come from (so the caller can look up its key)."""
    value = _header(headers, HEADER_DEVICE_ID)
    return value if value is not None and _DEVICE_RE.match(value) else None


def verify_request(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    device_public_key: bytes,
    now_ms: int,
    seen_nonce: Callable[[str], bool],
) -> str | None:
    """None when the request is genuine, fresh and new; otherwise an error code.

    `seen_nonce(nonce)` must return True when the nonce was seen before and remember it
    otherwise; it is called only once the signature is valid, so forged requests cannot fill
    the nonce memory or burn a real device's nonces.
    """
    values = [_header(headers, name) for name in SIGNED_HEADERS]
    if any(v is None or v == "" for v in values):
        return MISSING_SIGNATURE
    device_id, timestamp, nonce, signature_text = (str(v) for v in values)
    if not _DEVICE_RE.match(device_id) or not _NONCE_RE.match(nonce):
        return BAD_SIGNATURE
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        return BAD_SIGNATURE
    try:
        signature = b64decode(signature_text)
    except ValueError:
        return BAD_SIGNATURE
    if len(signature) != 64 or len(device_public_key) != 32:
        return BAD_SIGNATURE
    timestamp_ms = int(timestamp)
    message = canonical_string(method, path, device_id, timestamp_ms, nonce, body)
    try:
        VerifyKey(device_public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return BAD_SIGNATURE
    if abs(now_ms - timestamp_ms) > MAX_SKEW_MS:
        return STALE_TIMESTAMP
    if seen_nonce(nonce):
        return REPLAYED_NONCE
    return None


ENROLLMENT_SCHEME = "gatehub-enroll"


def enrollment_uri(hub_url: str, code: str, hub_fingerprint: str) -> str:
    """What the enrollment QR holds: where the hub is, the one-time code, and the hub key's
    fingerprint so the device can check it talks to the right hub."""
    return (
        f"{ENROLLMENT_SCHEME}:?{urlencode({'hub': hub_url, 'code': code, 'fp': hub_fingerprint})}"
    )


def parse_enrollment_uri(text: str) -> tuple[str, str, str] | None:
    """(hub_url, code, fingerprint) from an enrollment QR, or None if it is not one."""
    prefix = f"{ENROLLMENT_SCHEME}:?"
    if not text.startswith(prefix):
        return None
    fields = parse_qs(text[len(prefix) :], strict_parsing=False)
    try:
        (hub,), (code,), (fp,) = fields["hub"], fields["code"], fields["fp"]
    except (KeyError, ValueError):
        return None
    return hub, code, fp
