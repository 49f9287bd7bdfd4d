"""The scan upload a gate sends: its scan-log rows (scanner/scanlog.py ScanRecord.to_json)
in one batch, checked whole before any is stored."""

from __future__ import annotations

import hashlib
from typing import Any

from hub.errors import ApiError, Fields
from manifests.admission_types import Direction
from protocol.reasons import Reason, Verdict

MAX_BATCH = 500
_SCAN_FIELDS = {
    "seq",
    "at_ms",
    "payload",
    "ticket_id",
    "verdict",
    "reason",
    "message",
    "direction",
    "gate",
    "manual",
    "confirmed",
    "uploaded",
}


def _bad(index: int, message: str) -> ApiError:
    return ApiError(400, "invalid_scan", f"scans[{index}]: {message}")


def parse_upload(body: dict[str, Any], device: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for HubStore.record_scans, or a 400 naming the first bad scan."""
    f = Fields(body, {"event_id", "manifest_revision", "scans"})
    event_id = f.text("event_id", required=False, max_len=64)
    revision = f.integer("manifest_revision", required=False)
    scans = body.get("scans")
    if not isinstance(scans, list) or not 0 < len(scans) <= MAX_BATCH:
        raise ApiError(400, "invalid_field", f"Field scans must list 1 to {MAX_BATCH} scans.")
    rows = []
    for index, scan in enumerate(scans):
        if not isinstance(scan, dict):
            raise _bad(index, "must be an object")
        unknown = sorted(set(scan) - _SCAN_FIELDS)
        if unknown:
            raise _bad(index, f"unknown field {unknown[0]}")
        seq, at_ms = scan.get("seq"), scan.get("at_ms")
        for name, value in (("seq", seq), ("at_ms", at_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _bad(index, f"{name} must be a positive integer")
        try:
            verdict = Verdict(scan.get("verdict"))
            reason = Reason(scan.get("reason"))
            direction = Direction(scan.get("direction"))
        except ValueError as exc:
            raise _bad(index, str(exc)) from None
        payload, ticket_id = scan.get("payload"), scan.get("ticket_id")
        if not isinstance(payload, str) or len(payload) > 4096:
            raise _bad(index, "payload must be the scanned text")
        if ticket_id is not None and (not isinstance(ticket_id, str) or len(ticket_id) > 64):
            raise _bad(index, "ticket_id must be text or null")
        confirmed = scan.get("confirmed")
        if confirmed is not None and not isinstance(confirmed, bool):
            raise _bad(index, "confirmed must be true, false or null")
        for name in ("message", "gate"):
            if not isinstance(scan.get(name, ""), str):
                raise _bad(index, f"{name} must be text")
        counted = verdict in (Verdict.ADMIT, Verdict.EXIT) or (
            verdict is Verdict.ATTENTION and confirmed is True
        )
        rows.append(
            {
                "seq": seq,
                "event_id": event_id,
                "ticket_id": ticket_id,
                "raw_hash": hashlib.sha256(payload.encode()).hexdigest(),
                "verdict": str(verdict),
                "reason": str(reason),
                "direction": str(direction),
                "gate_id": device["gate_id"],
                "zone": device["zone"],
                "scanned_ms": at_ms,
                "manifest_revision": revision,
                "counted": int(counted),
                "message": scan.get("message", ""),
                "gate": scan.get("gate", ""),
                "manual": bool(scan.get("manual", False)),
                "confirmed": confirmed,
                "payload": payload,
            }
        )
    if len({r["seq"] for r in rows}) != len(rows):
        raise ApiError(400, "invalid_scan", "Each scan in a batch needs its own seq.")
    return rows
