"""The scan upload a gate sends: its scan-log rows (scanner/scanlog.py ScanRecord.to_json)
in one batch, checked whole before any is stored.

Times stay on the device's clock; the device also reports its measured clock offset (hub
time ≈ device time + offset) for the batch and/or per scan, stored beside each scan so
reconciliation can order scans from every gate by corrected time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from hub.errors import ApiError, Body, Fields, integer, raw, text
from manifests.admission_types import Direction
from protocol.limits import EARLIEST_MS, LATEST_MS, MAX_CLOCK_OFFSET_MS, MAX_SEQ, is_time_ms
from protocol.reasons import Reason, Verdict

MAX_BATCH = 500
MAX_MESSAGE = 1000  # characters of the verdict's message a gate showed
MAX_GATE_NAME = 200
_OFFSET = {"type": "integer", "minimum": -MAX_CLOCK_OFFSET_MS, "maximum": MAX_CLOCK_OFFSET_MS}
# One scan as /openapi.json shows it; parse_upload's loop checks the same, field by field.
SCAN: dict[str, Any] = {
    "type": "object",
    "required": ["seq", "at_ms", "payload", "verdict", "reason", "direction"],
    "additionalProperties": False,
    "properties": {
        "seq": {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
        "at_ms": {"type": "integer", "minimum": EARLIEST_MS, "maximum": LATEST_MS - 1},
        "payload": {"type": "string", "maxLength": 4096},
        "ticket_id": {"type": ["string", "null"], "maxLength": 64},
        "verdict": {"enum": [str(v) for v in Verdict]},
        "reason": {"enum": [str(r) for r in Reason]},
        "message": {"type": "string", "maxLength": MAX_MESSAGE},
        "direction": {"enum": [str(d) for d in Direction]},
        "gate": {"type": "string", "maxLength": MAX_GATE_NAME},
        "manual": {"type": "boolean"},
        "confirmed": {"type": ["boolean", "null"]},
        "uploaded": {"description": "The gate's own flag; ignored."},
        "clock_offset_ms": {**_OFFSET, "type": ["integer", "null"]},
    },
}
_SCAN_FIELDS = frozenset(SCAN["properties"])
UPLOAD = Body(
    event_id=text(64, required=False),
    manifest_revision=integer(0, MAX_SEQ, required=False),
    clock_offset_ms=integer(-MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS, required=False),
    peer_cursor=integer(0, MAX_SEQ, required=False),
    scans=raw(
        {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH,
            "items": SCAN,
            "description": "Each scan's seq is its own within the batch (JSON Schema cannot "
            "say so): a repeat is refused with 400 invalid_scan.",
        }
    ),
)
# Enum lookups by value, once: the hot loop checks membership instead of raising.
_VERDICTS = {str(v): v for v in Verdict}
_REASONS = {str(r): r for r in Reason}
_DIRECTIONS = {str(d): d for d in Direction}
_COUNTED = {Verdict.ADMIT, Verdict.EXIT}


@dataclass(frozen=True, slots=True)
class Upload:
    """A checked batch. `clock_offset_ms` is the device's latest measured offset (the
    batch's, else the last scan's own), for its health record. `peer_cursor` is the last
    peer scan id the device already knows (None: it asks for no peer scans)."""

    event_id: str | None
    rows: list[dict[str, Any]]
    clock_offset_ms: int | None
    peer_cursor: int | None


def _bad(index: int, message: str) -> ApiError:
    return ApiError(400, "invalid_scan", f"scans[{index}]: {message}")


def _offset(value: Any) -> bool:
    return type(value) is int and -MAX_CLOCK_OFFSET_MS <= value <= MAX_CLOCK_OFFSET_MS


def _enum(index: int, table: dict[str, Any], value: Any, what: str) -> Any:
    found = table.get(value) if isinstance(value, str) else None
    if found is None:
        raise _bad(index, f"{value!r} is not a valid {what}")
    return found


def parse_upload(
    body: dict[str, Any], device: dict[str, Any], gate_name: str | None = None
) -> Upload:
    """The checked batch (rows for HubStore.record_scans), or a 400 naming the first bad scan.
    `gate_name` is the hub's name for the device's gate: other gates are told that one, never
    the name the device reports (kept for audit as `gate`)."""
    f = Fields(body, UPLOAD)
    event_id = f.text("event_id")
    revision = f.integer("manifest_revision")
    batch_offset = f.integer("clock_offset_ms")
    peer_cursor = f.integer("peer_cursor")
    scans = body.get("scans")
    if not isinstance(scans, list) or not 0 < len(scans) <= MAX_BATCH:
        raise ApiError(400, "invalid_field", f"Field scans must list 1 to {MAX_BATCH} scans.")
    gate_id, zone = device["gate_id"], device["zone"]
    rows = []
    latest_offset = batch_offset
    for index, scan in enumerate(scans):
        if not isinstance(scan, dict):
            raise _bad(index, "must be an object")
        if not scan.keys() <= _SCAN_FIELDS:
            raise _bad(index, f"unknown field {sorted(set(scan) - _SCAN_FIELDS)[0]}")
        seq, at_ms = scan.get("seq"), scan.get("at_ms")
        if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
            raise _bad(index, f"seq must be an integer from 1 to {MAX_SEQ}")
        if not is_time_ms(at_ms):
            raise _bad(index, f"at_ms must be a time in ms from {EARLIEST_MS} to {LATEST_MS}")
        verdict = _enum(index, _VERDICTS, scan.get("verdict"), "Verdict")
        reason = _enum(index, _REASONS, scan.get("reason"), "Reason")
        direction = _enum(index, _DIRECTIONS, scan.get("direction"), "Direction")
        payload, ticket_id = scan.get("payload"), scan.get("ticket_id")
        if not isinstance(payload, str) or len(payload) > 4096:
            raise _bad(index, "payload must be the scanned text")
        if ticket_id is not None and (not isinstance(ticket_id, str) or len(ticket_id) > 64):
            raise _bad(index, "ticket_id must be text or null")
        confirmed = scan.get("confirmed")
        if confirmed is not None and not isinstance(confirmed, bool):
            raise _bad(index, "confirmed must be true, false or null")
        message, gate = scan.get("message", ""), scan.get("gate", "")
        if not isinstance(message, str) or not isinstance(gate, str):
            raise _bad(index, "message and gate must be text")
        if len(message) > MAX_MESSAGE or len(gate) > MAX_GATE_NAME:
            raise _bad(index, f"message (≤{MAX_MESSAGE}) or gate (≤{MAX_GATE_NAME}) too long")
        offset = scan.get("clock_offset_ms", batch_offset)
        if offset is not None and not _offset(offset):
            raise _bad(index, f"clock_offset_ms must be an integer within ±{MAX_CLOCK_OFFSET_MS}")
        if batch_offset is None and offset is not None:
            latest_offset = offset
        counted = verdict in _COUNTED or (verdict is Verdict.ATTENTION and confirmed is True)
        rows.append(
            {
                "seq": seq,
                "event_id": event_id,
                "ticket_id": ticket_id,
                "raw_hash": hashlib.sha256(payload.encode()).hexdigest(),
                "verdict": verdict.value,
                "reason": reason.value,
                "direction": direction.value,
                "gate_id": gate_id,
                "zone": zone,
                "scanned_ms": at_ms,
                "clock_offset_ms": offset or 0,
                "manifest_revision": revision,
                "counted": int(counted),
                "message": message,
                "gate": gate,
                "gate_name": gate_name or gate,
                "manual": bool(scan.get("manual", False)),
                "confirmed": confirmed,
                "payload": payload,
            }
        )
    if len({r["seq"] for r in rows}) != len(rows):
        raise ApiError(400, "invalid_scan", "Each scan in a batch needs its own seq.")
    return Upload(event_id, rows, latest_offset, peer_cursor)
