"""The signed envelope a manifest or delta travels in, and the one error every manifest check
raises.

Envelope: magic `GMF1` | hub key id (uint32 big-endian) | body | Ed25519 signature (64 bytes).
The signature covers a domain-separated message (a fixed label, the key id and the body), so
a signature made by a hub key for anything else can never pass as a manifest. Devices trust
several hub keys at once (by id) so the hub can rotate keys without a flag day.
"""

from __future__ import annotations

from collections.abc import Mapping

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

MAGIC = b"GMF1"
KEY_ID_BYTES = 4
SIGNATURE_BYTES = 64
_DOMAIN = b"venue-gate/manifest-envelope/v1\x00"
_MIN_LENGTH = len(MAGIC) + KEY_ID_BYTES + SIGNATURE_BYTES


class ManifestRejected(Exception):
    """A manifest or delta the device must not use; it keeps its last good one.

    `code` is machine-readable: 'malformed', 'unknown_key', 'bad_signature', 'revision_chain',
    'expired', 'wrong_event'. `message` is a sentence for logs and the operator screen.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _signed_message(key_id_bytes: bytes, body: bytes) -> bytes:
    return _DOMAIN + key_id_bytes + body


def sign_envelope(body: bytes, key_id: int, seed: bytes) -> bytes:
    """Wrap `body` for devices; `seed` is the hub's 32-byte Ed25519 private seed."""
    if not 0 <= key_id < 1 << (8 * KEY_ID_BYTES):
        raise ValueError("key_id must fit in an unsigned 32-bit integer")
    kid = key_id.to_bytes(KEY_ID_BYTES, "big")
    signature = SigningKey(seed).sign(_signed_message(kid, body)).signature
    return MAGIC + kid + body + signature


def envelope_key_id(envelope: bytes) -> int:
    """The hub key id an envelope claims, for logs; raises ManifestRejected('malformed')."""
    if len(envelope) < _MIN_LENGTH or envelope[: len(MAGIC)] != MAGIC:
        raise ManifestRejected("malformed", "not a signed manifest envelope")
    return int.from_bytes(envelope[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES], "big")


def open_envelope(envelope: bytes, trusted: Mapping[int, bytes]) -> bytes:
    """Return the body if a trusted hub key signed it; otherwise raise ManifestRejected."""
    if not isinstance(envelope, bytes | bytearray | memoryview):
        raise ManifestRejected("malformed", "envelope is not bytes")
    envelope = bytes(envelope)
    key_id = envelope_key_id(envelope)
    public = trusted.get(key_id)
    if public is None:
        raise ManifestRejected("unknown_key", f"manifest signed by unknown hub key {key_id}")
    start = len(MAGIC) + KEY_ID_BYTES
    kid, body = envelope[len(MAGIC) : start], envelope[start:-SIGNATURE_BYTES]
    try:
        VerifyKey(bytes(public)).verify(_signed_message(kid, body), envelope[-SIGNATURE_BYTES:])
    except BadSignatureError:
        raise ManifestRejected("bad_signature", "manifest signature does not verify") from None
    except (CryptoError, ValueError, TypeError):
        raise ManifestRejected(
            "unknown_key", f"trusted hub key {key_id} is not an Ed25519 public key"
        ) from None
    return body
