"""Scanned payloads at rest on a gate, sealed to the hub.

A native payload is the credential itself: kept in clear, a stolen gate's scan log would hand
out working codes and the keys to their sealed holder names. The gate seals each payload to the
hub's key (X25519 sealed box from the hub's Ed25519 key) the moment it stores the scan; only the
hub can open it, for audit. The gate keeps the ticket id in clear for its own history.
"""

from __future__ import annotations

import base64

from nacl.exceptions import CryptoError
from nacl.public import SealedBox
from nacl.signing import SigningKey, VerifyKey

SEALED_PREFIX = "sealed1:"


def seal_for_hub(payload: str, hub_public_key: bytes) -> str:
    box = SealedBox(VerifyKey(hub_public_key).to_curve25519_public_key())
    return SEALED_PREFIX + base64.urlsafe_b64encode(box.encrypt(payload.encode())).decode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def open_for_hub(stored: str, hub_seed: bytes) -> str | None:
    """The original payload, or None when this hub key does not open it."""
    if not is_sealed(stored):
        return None
    try:
        sealed = base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :])
        box = SealedBox(SigningKey(hub_seed).to_curve25519_private_key())
        return box.decrypt(sealed).decode()
    except (CryptoError, ValueError, UnicodeDecodeError):
        return None
