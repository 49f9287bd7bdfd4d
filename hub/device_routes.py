"""Device API: enrollment with a one-time code, then only signed requests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from hub.auth import authenticate_device, device_deactivated
from hub.errors import ApiError, not_found, parse_json_object, read_json_object
from hub.group_commit import UPLOADS
from hub.keys import CLOCK, DB, HUB_KEYS
from hub.manifest_build import HubKeys
from hub.openapi import decodes
from hub.reconcile_routes import RECONCILER
from hub.scan_upload import parse_upload
from hub.storage import ENROLLMENT_EXPIRED, ENROLLMENT_INVALID, ENROLLMENT_USED
from hub.store_api import DeviceEnrollment, DeviceReport, DeviceScans, HubStorage
from manifests.policy import event_to_hold
from protocol.enroll_seal import open_enrollment_code
from protocol.signing import HEADER_TIMESTAMP, b64decode, b64encode, key_fingerprint
from protocol.wire import (
    MISSING_FIELD,
    UNKNOWN_FIELD,
    Enroll,
    Heartbeat,
    HeartbeatAnswer,
    OwnDevice,
    PeerEntry,
    RefusedScan,
    ScanBatch,
    ScanBatchAnswer,
    WireError,
    decode,
    read_enroll,
    where,
)

routes = web.RouteTableDef()
log = logging.getLogger("hub.device")
KEY_SET_TYPE = "application/vnd.venue-gate.hub-keys"
T = TypeVar("T")
# A field holding a list of messages: a bad item is refused with this code, named by index.
ITEM_CODES = {"scans": "invalid_scan"}

_ENROLLMENT_MESSAGES = {
    ENROLLMENT_INVALID: "This enrollment code is not valid.",
    ENROLLMENT_EXPIRED: "This enrollment code has expired: ask for a new one.",
    ENROLLMENT_USED: "This enrollment code was already used: ask for a new one.",
}


def read_body(raw: bytes, into: type[T]) -> T:
    """A signed request's body as its wire Struct (protocol/wire.py), or the 400 the hub has
    always answered: malformed_json or expected_object for what is no JSON object,
    unknown_field, missing_field or invalid_field naming the field, and an item of a list
    (`scans[3]: ...`) refused under its list's ITEM_CODES code."""
    try:
        return decode(raw, into, parse_json_object)
    except WireError as exc:
        raise body_error(exc) from None


def body_error(exc: WireError) -> ApiError:
    path = exc.path
    if len(path) > 1 and isinstance(path[1], int) and path[0] in ITEM_CODES:
        inner = where(path[2:])
        if exc.code == UNKNOWN_FIELD:
            words = f"unknown field {inner}"
        elif exc.code == MISSING_FIELD:
            words = f"missing field {inner}"
        else:
            words = f"{inner}: {exc.detail}" if inner else exc.detail
        return ApiError(400, ITEM_CODES[str(path[0])], f"{path[0]}[{path[1]}]: {words}")
    name = where(path)
    if exc.code == UNKNOWN_FIELD:
        return ApiError(400, UNKNOWN_FIELD, f"Unknown field: {name}.")
    if exc.code == MISSING_FIELD:
        return ApiError(400, MISSING_FIELD, f"Field {name} is required.")
    return ApiError(400, "invalid_field", f"Field {name or 'body'}: {exc.detail}.")


def own_device_json(device: dict[str, Any], keys: HubKeys) -> dict[str, Any]:
    """What a device may know about itself (never other devices), and the hub key that signs
    now (the rest of the trusted set comes with the device's first sync)."""
    hub_public_key = keys.public
    return {
        "device_id": device["id"],
        "venue_id": device["venue_id"],
        "hardware_id": device["hardware_id"],
        "name": device["name"],
        "gate_id": device["gate_id"],
        "zone": device["zone"],
        "active": bool(device["active"]),
        "hub_public_key": b64encode(hub_public_key),
        "hub_key_fingerprint": key_fingerprint(hub_public_key),
        "manifest_key_id": keys.key_id,
    }


def _public_key(text: str) -> bytes:
    try:
        key = b64decode(text)
        VerifyKey(key)
    except (ValueError, CryptoError, TypeError):
        raise ApiError(400, "invalid_public_key", "public_key must be an Ed25519 key.") from None
    if len(key) != 32:
        raise ApiError(400, "invalid_public_key", "public_key must be an Ed25519 key.")
    return key


def _sealed_code(sealed: str, keys: HubKeys, key: bytes, hardware_id: str) -> str:
    """The code inside `sealed_code`, only for the device key and hardware id it was sealed
    with: a relay that swaps in its own device key is refused and the code stays unspent."""
    opened = open_enrollment_code(sealed, keys.seed)
    if opened is None:
        raise ApiError(
            403, "invalid_sealed_code", "sealed_code is not an enrollment sealed to this hub."
        )
    if opened.public_key != key or opened.hardware_id != hardware_id:
        raise ApiError(
            403, "sealed_code_mismatch", "This sealed code was made for another device key."
        )
    return opened.code


@routes.post("/api/device/enroll")
@decodes(Enroll)
async def enroll(request: web.Request) -> web.Response:
    """Spend a one-time code. A gate that checked this hub's key (GET /api/hub) against the
    QR's fingerprint sends `sealed_code` (protocol/enroll_seal.py), never the code in clear:
    an impostor showing our public key learns nothing usable. `code` stays for API clients.
    The body is protocol/wire.py Enroll, refused with the codes and words it always was."""
    try:
        body = read_enroll(await read_json_object(request))
    except WireError as exc:
        raise ApiError(400, exc.code, exc.detail) from None
    # exactly one of code and sealed_code (read_enroll); text is taken stripped
    sealed = None if body.sealed_code is None else body.sealed_code.strip()
    code = "" if body.code is None else body.code.strip()
    hardware_id = body.hardware_id.strip()
    key = _public_key(body.public_key)
    app_version = None if body.app_version is None else body.app_version.strip()
    if sealed is not None:
        code = _sealed_code(sealed, request.app[HUB_KEYS](), key, hardware_id)
    enrollment, now = DeviceEnrollment(code, hardware_id, key, app_version), request.app[CLOCK]()
    result = await request.app[DB].run(lambda s: s.enroll_device(enrollment, now))
    if isinstance(result, str):
        log.info("enrolment refused", extra={"code": result, "hardware_id": hardware_id[:64]})
        raise ApiError(403, result, _ENROLLMENT_MESSAGES[result])
    enrolled = {k: result[k] for k in ("venue_id", "gate_id", "zone", "hardware_id")}
    log.info("device enrolled", extra={"device": result["id"], **enrolled})
    return wire_response(OwnDevice(**own_device_json(result, request.app[HUB_KEYS]())), 201)


@routes.get("/api/device/me")
async def me(request: web.Request) -> web.Response:
    device, _ = await authenticate_device(request)
    now = request.app[CLOCK]()
    await request.app[DB].run(lambda s: s.record_heartbeat(device["id"], now, DeviceReport()))
    return wire_response(OwnDevice(**own_device_json(device, request.app[HUB_KEYS]())))


@routes.post("/api/device/heartbeat")
@decodes(Heartbeat)
async def heartbeat(request: web.Request) -> web.Response:
    """The device's health report; the clock offset (hub ≈ device + offset, the sign the
    scans' offsets use) comes from its signed timestamp."""
    device, raw = await authenticate_device(request)
    beat = read_body(raw, Heartbeat)
    now_ms = request.app[CLOCK]()
    report = DeviceReport(
        app_version=None if beat.app_version is None else beat.app_version.strip(),
        pending_uploads=beat.pending_uploads,
        manifest_revisions=beat.manifest_revisions,
        clock_offset_ms=now_ms - int(request.headers[HEADER_TIMESTAMP]),
        hub_keys_version=beat.hub_keys_version,
    )

    def record(store: HubStorage) -> str | None:
        store.record_heartbeat(device["id"], now_ms, report)
        # The event the venue's gates should hold now, so a gate enrolled on the spot needs
        # no setup (a gate given an event by its operator keeps that one).
        return event_to_hold(store.event_times(device["venue_id"]), now_ms)

    event_id = await request.app[DB].run(record)
    keys_version = request.app[HUB_KEYS]().version  # a new one: fetch /api/device/hub-keys
    return wire_response(HeartbeatAnswer(True, now_ms, keys_version, event_id))


@routes.get("/api/device/hub-keys")
async def hub_keys(request: web.Request) -> web.Response:
    """Every hub key the device should trust, signed by the hub's current key (see
    manifests/keyset.py): a device takes it only if it already trusts the signer, so a key
    rotation reaches gates through the keys they hold, never through an unsigned answer."""
    await authenticate_device(request)
    keys = request.app[HUB_KEYS]()
    return web.Response(
        body=keys.key_set(request.app[CLOCK]()),
        content_type=KEY_SET_TYPE,
        headers={"X-Hub-Keys-Version": str(keys.version), "Cache-Control": "no-store"},
    )


def _gate_name(store: HubStorage, device: dict[str, Any]) -> str | None:
    """The hub's name for the device's gate: what every other gate is told."""
    gate = store.get_gate(device["gate_id"], device["venue_id"]) if device["gate_id"] else None
    return None if gate is None else str(gate["name"])


@routes.post("/api/device/scans")
@decodes(ScanBatch)
async def upload_scans(request: web.Request) -> web.Response:
    """Store a batch of scans; acknowledge only after commit. A deactivated device's scans
    are kept for audit (marked) and the device is still refused.

    After the commit the tickets the batch touched are queued for reconciliation (done in
    the background, hub/reconcile_ingest.py), and the answer carries what the hub learnt:
    the manifest `revision` (pull a delta when it moved) and, when the device sends
    `peer_cursor`, the counted scans at other devices of the event stored after it
    (`peer_scans`, at most MAX_PEER_SCANS; `peer_more` when more wait; `peer_cursor` to send
    next time)."""
    device, raw = await authenticate_device(request, allow_inactive=True)
    deactivated = not device["active"]
    now_ms = request.app[CLOCK]()

    def store_batch(store: HubStorage) -> tuple[ScanBatchAnswer | None, StoredBatch | None]:
        """Check, store, then read what the answer tells: in a transaction shared with the
        uploads that arrived with it (hub/group_commit.py); (None, None) for a deactivated
        device, whose scans are kept."""
        try:
            upload = parse_upload(read_body(raw, ScanBatch), device, _gate_name(store, device))
            event = store.event_by_id(upload.event_id) if upload.event_id else None
            if upload.event_id is not None and (
                event is None or event["venue_id"] != device["venue_id"]
            ):
                raise not_found("event")  # another venue's event: nothing is stored
        except ApiError:
            if deactivated:
                raise device_deactivated() from None
            raise
        scans = DeviceScans(device["id"], upload.rows, deactivated, upload.clock_offset_ms)
        stored = store.record_scans(scans, now_ms)
        if deactivated:
            return None, None  # kept for audit; refused below (raising here would undo it)
        answer = ScanBatchAnswer(acked=stored.acked)
        if stored.refused:
            log.error(
                "scans refused: same seq, other content",
                extra={"device": device["id"], "seqs": [r["seq"] for r in stored.refused][:20]},
            )
            answer.refused = [
                RefusedScan(r["seq"], r["code"], r["message"]) for r in stored.refused
            ]
        if event is None:
            return answer, None  # no event named: stored for audit, counted nowhere
        acked = set(stored.acked)
        rows = [r for r in upload.rows if r["seq"] in acked]
        touched = {r["ticket_id"] for r in rows if r["ticket_id"] is not None}
        ticketless = [r["seq"] for r in rows if r["ticket_id"] is None]
        loose = store.scan_ids(device["id"], ticketless) if ticketless else []
        answer.revision = store.event_revision(event["id"])
        if upload.peer_cursor is not None:
            peers, cursor, more = store.peer_scans(event["id"], device["id"], upload.peer_cursor)
            answer.peer_scans = [peer_entry(p) for p in peers]
            answer.peer_cursor = cursor
            answer.peer_more = more
        return answer, StoredBatch(event["id"], touched, loose)

    request.app[RECONCILER].upload_arriving()
    answer, batch = await request.app[UPLOADS].run(store_batch)
    if answer is None:
        raise device_deactivated()
    if batch is not None:
        request.app[RECONCILER].schedule(batch.event_id, batch.tickets, batch.loose_scans)
    return wire_response(answer)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What a stored upload leaves for reconciliation (queued on the event loop)."""

    event_id: str
    tickets: set[str]
    loose_scans: list[int]


def peer_entry(row: dict[str, Any]) -> PeerEntry:
    """A stored scan at another gate (hub/store_reconcile.py peer_scans), as the upload's
    answer tells it."""
    return PeerEntry(
        ticket_id=row["ticket_id"],
        at_ms=row["at_ms"],
        direction=row["direction"],  # the stored text: encoded as the enum's value would be
        gate_name=row["gate_name"],
        device_id=row["device_id"],
        seq=row["seq"],
        verdict=row["verdict"],
    )


def wire_response(message: msgspec.Struct, status: int = 200) -> web.Response:
    """An answer encoded by its Struct (as web.json_response would, but without the dict)."""
    return web.Response(
        body=msgspec.json.encode(message), status=status, content_type="application/json"
    )
