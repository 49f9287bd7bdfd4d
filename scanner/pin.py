"""The venue PIN that guards settings and kiosk exit, kept as a salted scrypt hash: a stolen
gate's disk does not give the PIN away."""

from __future__ import annotations

import hashlib
import hmac
import os

from scanner.settings import VENUE_PIN
from scanner.store import GateStore

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def set_pin(store: GateStore, pin: str) -> None:
    """Stored as a salted scrypt hash: a stolen gate's disk does not give the PIN away."""
    if len(pin) < 4 or not pin.isdigit():
        raise ValueError("the venue PIN must be at least 4 digits")
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, **_SCRYPT)
    store.set_setting(VENUE_PIN, {"salt": salt.hex(), "hash": digest.hex(), **_SCRYPT})


def has_pin(store: GateStore) -> bool:
    return store.setting(VENUE_PIN) is not None


def check_pin(store: GateStore, pin: str) -> bool:
    data = store.setting(VENUE_PIN)
    if data is None:
        return False
    digest = hashlib.scrypt(
        pin.encode(), salt=bytes.fromhex(data["salt"]), n=data["n"], r=data["r"], p=data["p"]
    )
    return hmac.compare_digest(digest, bytes.fromhex(data["hash"]))
