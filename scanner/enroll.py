"""Enrolling this gate with a hub: verify the hub, spend a one-time code, keep our own key.

The gate first asks the hub for its public key (nothing secret sent) and, with the
fingerprint from the enrollment QR, refuses a hub whose key does not match before the code
leaves the gate. The code then goes sealed to that key and bound to this device's key, so an
impostor relaying the real hub's public key learns nothing it can spend. The device makes its
Ed25519 key here and sends only the public half; the private seed never leaves the gate's
store. The hub answers with the device's identity, its place (venue, gate, zone) and its
public key, which must be the one it showed and which the gate then trusts for manifests.
"""

from __future__ import annotations

import hmac
import os
import platform
import uuid
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError

from manifests.admission_types import Direction, GateContext
from protocol.enroll_seal import seal_enrollment_code
from protocol.native import public_key
from protocol.signing import b64decode, b64encode, key_fingerprint
from protocol.wire import Enroll, OwnDevice
from scanner.hub_client import APP_VERSION, HubClient, HubError, json_object, read_answer
from scanner.hub_keys import trust_hub_key
from scanner.link_reasons import HUB_UNREACHABLE
from scanner.service import GateService
from scanner.settings import DEVICE_ID, DEVICE_SEED_KEY, HARDWARE_ID, HUB_URL
from scanner.store import GateStore


class EnrollmentFailed(Exception):
    """The hub refused or could not be reached; nothing was stored. `code` is the hub's
    machine-readable error code (or hub_unreachable / bad_hub_response / wrong_hub; reading
    the QR with the camera adds no_camera / no_enrollment_code, scanner/enroll_scan.py)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def from_hub(cls, error: HubError, base: str) -> EnrollmentFailed:
        if error.code == HUB_UNREACHABLE:
            return cls(HUB_UNREACHABLE, f"cannot reach the hub at {base}: {error.detail}")
        return cls(error.code, error.message)


@dataclass(frozen=True, slots=True)
class Enrollment:
    device_id: str
    venue_id: str
    gate: GateContext
    hub_fingerprint: str


def enroll(
    service: GateService,
    hub_url: str,
    code: str,
    *,
    direction: Direction = Direction.ENTRY,
    expected_fingerprint: str | None = None,
    hardware_id: str | None = None,
    timeout_s: float = 10.0,
) -> Enrollment:
    """Verify the hub first, then spend the code.

    The hub's public key is fetched (GET /api/hub, no secret sent) and must match the QR's
    fingerprint before anything else happens: a mismatch is `wrong_hub` and the code was
    never sent. Even a matching key may be relayed by an impostor, so the code goes only
    sealed to that key together with this device's key and hardware id
    (protocol/enroll_seal.py): the real hub alone opens it, and only for this device. The
    hub's answer must name the key it showed. Without a fingerprint (`enroll URL CODE`) the
    key the hub shows is trusted as is, and the code is still never sent in clear.
    """
    store = service.store
    base = hub_url.rstrip("/")
    hub = HubClient(store, base, service.clock, timeout_s=timeout_s)
    try:
        hub_key = _hub_identity(hub)
        fingerprint = key_fingerprint(hub_key)
        if expected_fingerprint is not None and not _same_fingerprint(
            fingerprint, expected_fingerprint
        ):
            raise EnrollmentFailed("wrong_hub", "the hub's key does not match the enrollment QR")
        seed = os.urandom(32)
        device_key = b64encode(public_key(seed))
        hardware = hardware_id or _hardware_id(service)
        try:
            sealed = seal_enrollment_code(
                code, public_key=device_key, hardware_id=hardware, hub_public_key=hub_key
            )
        except (CryptoError, ValueError, TypeError):  # not a usable Ed25519 point
            raise EnrollmentFailed("bad_hub_response", "the hub's key is not Ed25519") from None
        body = Enroll(
            sealed_code=sealed, hardware_id=hardware, public_key=device_key, app_version=APP_VERSION
        )
        answer = _call(hub, "POST", "/api/device/enroll", 201, body)
    finally:
        hub.close()
    try:
        data = read_answer(answer, OwnDevice, "enrolment answer")
        answer_key = b64decode(data.hub_public_key)
    except HubError as exc:
        raise EnrollmentFailed(exc.code, exc.message) from None
    except (ValueError, TypeError):
        raise EnrollmentFailed("bad_hub_response", "the hub's key is not base64") from None
    device_id, venue_id, zone = data.device_id, data.venue_id, data.zone
    name = data.name or "Gate"
    gate_id = data.gate_id or device_id
    manifest_key_id = data.manifest_key_id
    if not hmac.compare_digest(answer_key, hub_key):
        raise EnrollmentFailed("wrong_hub", "the hub answered with another key than it showed")
    gate = GateContext(
        venue_id=venue_id,
        gate_id=gate_id,
        gate_name=name,
        direction=direction,
        zones=(str(zone),) if zone else (),
    )
    store.set_key(DEVICE_SEED_KEY, seed)
    trust_hub_key(store, manifest_key_id, hub_key)
    store.set_setting(DEVICE_ID, device_id)
    store.set_setting(HUB_URL, base)
    service.set_gate(gate)
    return Enrollment(device_id, venue_id, gate, fingerprint)


def _hub_identity(hub: HubClient) -> bytes:
    """The hub's current public key, as it shows it to anyone (no secret). The key id it signs
    manifests with comes in the enrolment answer (OwnDevice.manifest_key_id)."""
    data = json_object(_call(hub, "GET", "/api/hub", 200))
    try:
        key = b64decode(data["public_key"])
    except (KeyError, ValueError, TypeError):
        raise EnrollmentFailed("bad_hub_response", "the hub did not show its public key") from None
    if len(key) != 32:
        raise EnrollmentFailed("bad_hub_response", "the hub's public key is not Ed25519")
    return key


def _same_fingerprint(actual: str, expected: str) -> bool:
    """Constant-time, on bytes: a QR's text may hold anything, compare_digest takes ASCII str
    only."""
    return hmac.compare_digest(actual.encode(), expected.strip().lower().encode())


def _call(hub: HubClient, method: str, path: str, expect: int, payload: Any = None) -> bytes:
    """One unsigned request (the gate has no key the hub knows yet); the answer's body, or
    EnrollmentFailed with the hub's code."""
    try:
        resp = hub.call(method, path, payload, signed=False, expect=expect, ensure_ascii=False)
    except HubError as exc:
        raise EnrollmentFailed.from_hub(exc, hub.hub_url) from None
    return resp.content


def enrolled_hub(store: GateStore) -> str | None:
    """The hub this gate is enrolled with; None for a gate set up by hand (it runs offline
    and may still be enrolled)."""
    return store.setting(HUB_URL) or None


def _hardware_id(service: GateService) -> str:
    """Stable across re-enrollments of this box: the OS machine id, else one made once."""
    try:
        with open("/etc/machine-id", encoding="ascii") as fh:
            machine = fh.read().strip()
    except OSError:
        machine = ""
    if machine:
        return f"{platform.node()}-{machine[:16]}"
    made = service.store.setting(HARDWARE_ID)
    if made is None:
        made = f"{platform.node()}-{uuid.uuid4().hex[:16]}"
        service.store.set_setting(HARDWARE_ID, made)
    return made
