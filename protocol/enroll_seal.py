"""The one-time enrolment code, sealed to the hub's key and bound to the device that asks.

A gate checks the hub's public key against the QR's fingerprint before it sends anything, but
an impostor at the QR's address can show the real hub's *public* key. So the gate never sends
the code in clear: it seals it to that key (the X25519 sealed box of sealed_payload.py), which
only the real hub opens. The device's public key and hardware id are sealed with it, so the
hub can refuse a relay that swaps in a device key of its own; the code stays unspent.

Pure: no I/O; the hub and the gate share this format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from protocol.sealed_payload import open_for_hub, seal_for_hub
from protocol.signing import b64decode

# Inside the box, so a payload sealed for another purpose never reads as an enrolment.
SEAL_PURPOSE = "gatehub-enroll-code/1"


@dataclass(frozen=True, slots=True)
class SealedEnrollment:
    """What the box held: the code and the device it may enrol (raw Ed25519 public key)."""

    code: str
    public_key: bytes
    hardware_id: str


def seal_enrollment_code(
    code: str, *, public_key: str, hardware_id: str, hub_public_key: bytes
) -> str:
    """`public_key` is the device key as the enrolment body carries it (base64url)."""
    doc = {
        "purpose": SEAL_PURPOSE,
        "code": code,
        "public_key": public_key,
        "hardware_id": hardware_id.strip(),
    }
    return seal_for_hub(json.dumps(doc, separators=(",", ":"), sort_keys=True), hub_public_key)


def open_enrollment_code(sealed: str, hub_seed: bytes) -> SealedEnrollment | None:
    """The sealed enrolment, or None when this hub key does not open it or it is not one."""
    text = open_for_hub(sealed, hub_seed)
    if text is None:
        return None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("purpose") != SEAL_PURPOSE:
            return None
        code, key, hardware_id = doc["code"], doc["public_key"], doc["hardware_id"]
        if not all(isinstance(v, str) for v in (code, key, hardware_id)):
            return None
        return SealedEnrollment(code, b64decode(key), hardware_id.strip())
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
