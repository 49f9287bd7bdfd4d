"""The scan upload a gate sends: its scan-log rows (protocol/wire.py ScanBatch, decoded and
checked field by field by msgspec) turned into the rows the hub stores, checked whole before
any is stored.

Times stay on the device's clock; the device also reports its measured clock offset (hub
time ≈ device time + offset) for the batch and/or per scan, stored beside each scan so
reconciliation can order scans from every gate by corrected time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from msgspec import UnsetType

from hub.errors import ApiError
from manifests.admission_types import ScanFact
from protocol.wire import ScanBatch


@dataclass(frozen=True, slots=True)
class Upload:
    """A checked batch. `clock_offset_ms` is the device's latest measured offset (the
    batch's, else the last scan's own), for its health record. `peer_cursor` is the last
    peer scan id the device already knows (None: it asks for no peer scans)."""

    event_id: str | None
    rows: list[dict[str, Any]]
    clock_offset_ms: int | None
    peer_cursor: int | None


def parse_upload(batch: ScanBatch, device: dict[str, Any], gate_name: str | None = None) -> Upload:
    """The batch's rows for HubStore.record_scans, or a 400 when two scans share a seq (the
    one rule of the batch its Struct cannot state). `gate_name` is the hub's name for the
    device's gate: other gates are told that one, never the name the device reports (kept
    for audit as `gate`)."""
    event_id = None if batch.event_id is None else batch.event_id.strip()
    revision, batch_offset = batch.manifest_revision, batch.clock_offset_ms
    gate_id, zone = device["gate_id"], device["zone"]
    rows = []
    latest_offset = batch_offset
    for scan in batch.scans:
        # absent: the batch's offset; null: this scan has none (stored as 0)
        own = scan.clock_offset_ms
        offset = batch_offset if isinstance(own, UnsetType) else own
        if batch_offset is None and offset is not None:
            latest_offset = offset
        rows.append(
            {
                "seq": scan.seq,
                "event_id": event_id,
                "ticket_id": scan.ticket_id,
                "raw_hash": hashlib.sha256(scan.payload.encode()).hexdigest(),
                "verdict": scan.verdict.value,
                "reason": scan.reason.value,
                "direction": scan.direction,
                "gate_id": gate_id,
                "zone": zone,
                "scanned_ms": scan.at_ms,
                "clock_offset_ms": offset or 0,
                "manifest_revision": revision,
                "counted": int(ScanFact.moved(scan.verdict, scan.confirmed)),
                "message": scan.message,
                "gate": scan.gate,
                "gate_name": gate_name or scan.gate,
                "manual": scan.manual,
                "confirmed": scan.confirmed,
                "payload": scan.payload,
            }
        )
    if len({r["seq"] for r in rows}) != len(rows):
        raise ApiError(400, "invalid_scan", "Each scan in a batch needs its own seq.")
    return Upload(event_id, rows, latest_offset, batch.peer_cursor)
