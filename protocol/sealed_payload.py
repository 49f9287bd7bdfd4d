"""Scanned payloads at rest on a gate, sealed to the hub.

A native payload is the credential itself: kept in clear, a stolen gate's scan log would hand
out working codes and the keys to their sealed holder names. The gate seals each payload to the
hub's key the moment it stores the scan; only the hub can open it, for audit. The gate keeps the
ticket id in clear for its own history.

A sealer draws one X25519 key pair per process and keeps its secret half in memory only, so
each scan costs one symmetric encryption (the verdict path stays fast), while the disk alone
opens nothing: that needs the hub's private key.
"""

from __future__ import annotations

import base64

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

SEALED_PREFIX = "sealed1:"
_KEY_BYTES = 32


class PayloadSealer:
    def __init__(self, hub_public_key: bytes) -> None:
        self.hub_public_key = hub_public_key
        ephemeral = PrivateKey.generate()
        self._public = bytes(ephemeral.public_key)
        self._box = Box(ephemeral, VerifyKey(hub_public_key).to_curve25519_public_key())

    def seal(self, payload: str) -> str:
        sealed = self._public + bytes(self._box.encrypt(payload.encode()))
        return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode()


def seal_for_hub(payload: str, hub_public_key: bytes) -> str:
    return PayloadSealer(hub_public_key).seal(payload)


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def open_for_hub(stored: str, hub_seed: bytes) -> str | None:
    """The original payload, or None when this hub key does not open it."""
    if not is_sealed(stored):
        return None
    try:
        raw = base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :])
        hub = SigningKey(hub_seed).to_curve25519_private_key()
        box = Box(hub, PublicKey(raw[:_KEY_BYTES]))
        return box.decrypt(raw[_KEY_BYTES:]).decode()
    except (CryptoError, ValueError, TypeError, UnicodeDecodeError):
        return None
