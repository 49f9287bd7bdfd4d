"""Enrolling this gate with a hub: spend a one-time code, keep our own key, learn the hub's.

The device makes its Ed25519 key here and sends only the public half; the private seed never
leaves the gate's store. The hub answers with the device's identity, its place (venue, gate,
zone) and the hub's public key, which the gate then trusts for manifests. With the
fingerprint from the enrollment QR, a device refuses a hub that is not the one the code was
made for.
"""

from __future__ import annotations

import hmac
import os
import platform
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from manifests.admission_types import Direction, GateContext
from protocol.native import public_key
from protocol.signing import b64decode, b64encode, key_fingerprint
from scanner.hub_link import HUB_URL_KEY
from scanner.service import GateService, trust_hub_key
from scanner.store import GateStore

DEVICE_SEED_KEY = "device_seed"
APP_VERSION = "0.1.0"
# The hub signs manifests with key id 1 unless it says otherwise (hub/manifest_build.py).
DEFAULT_MANIFEST_KEY_ID = 1


class EnrollmentFailed(Exception):
    """The hub refused or could not be reached; nothing was stored. `code` is the hub's
    machine-readable error code (or hub_unreachable / bad_hub_response / wrong_hub; reading
    the QR with the camera adds no_camera / no_enrollment_code, scanner/enroll_scan.py)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
    store = service.store
    seed = os.urandom(32)
    body = {
        "code": code,
        "hardware_id": hardware_id or _hardware_id(service),
        "public_key": b64encode(public_key(seed)),
        "app_version": APP_VERSION,
    }
    url = hub_url.rstrip("/") + "/api/device/enroll"
    try:
        resp = httpx.post(url, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise EnrollmentFailed(
            "hub_unreachable", f"cannot reach the hub at {hub_url}: {exc}"
        ) from None
    data = _json(resp)
    if resp.status_code != 201:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        raise EnrollmentFailed(
            str(error.get("code", f"http_{resp.status_code}")),
            str(error.get("message", f"the hub answered HTTP {resp.status_code}")),
        )
    try:
        hub_key = b64decode(data["hub_public_key"])
        device_id, venue_id = str(data["device_id"]), str(data["venue_id"])
        name = str(data.get("name") or "Gate")
        gate_id = str(data.get("gate_id") or device_id)
        zone = data.get("zone")
    except (KeyError, ValueError, TypeError):
        raise EnrollmentFailed("bad_hub_response", "the hub's answer is incomplete") from None
    if len(hub_key) != 32:
        raise EnrollmentFailed("bad_hub_response", "the hub's public key is not Ed25519")
    fingerprint = key_fingerprint(hub_key)
    if expected_fingerprint is not None and not hmac.compare_digest(
        fingerprint, expected_fingerprint
    ):
        raise EnrollmentFailed("wrong_hub", "the hub's key does not match the enrollment QR")
    gate = GateContext(
        venue_id=venue_id,
        gate_id=gate_id,
        gate_name=name,
        direction=direction,
        zones=(str(zone),) if zone else (),
    )
    store.set_key(DEVICE_SEED_KEY, seed)
    trust_hub_key(store, int(data.get("manifest_key_id", DEFAULT_MANIFEST_KEY_ID)), hub_key)
    store.set_config("device_id", device_id)
    store.set_config(HUB_URL_KEY, hub_url.rstrip("/"))
    service.set_gate(gate)
    return Enrollment(device_id, venue_id, gate, fingerprint)


def enrolled_hub(store: GateStore) -> str | None:
    """The hub this gate is enrolled with; None for a gate set up by hand (it runs offline
    and may still be enrolled)."""
    hub = store.config(HUB_URL_KEY)
    return str(hub) if hub else None


def _hardware_id(service: GateService) -> str:
    """Stable across re-enrollments of this box: the OS machine id, else one made once."""
    try:
        with open("/etc/machine-id", encoding="ascii") as fh:
            machine = fh.read().strip()
    except OSError:
        machine = ""
    if machine:
        return f"{platform.node()}-{machine[:16]}"
    made = service.store.config("hardware_id")
    if made is None:
        made = f"{platform.node()}-{uuid.uuid4().hex[:16]}"
        service.store.set_config("hardware_id", made)
    return str(made)


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
