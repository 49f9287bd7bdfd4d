"""HubStore's device half: enrollment codes, devices, request nonces and uploaded scans."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.store_base import Row, StoreBase, new_id, secret_hash
from protocol.wire import SEQ_CONFLICT, SEQ_CONFLICT_MESSAGE

if TYPE_CHECKING:
    from hub.store_api import DeviceEnrollment, DeviceReport, DeviceScans, NewEnrollment

ENROLLMENT_INVALID = "invalid_enrollment_code"
ENROLLMENT_EXPIRED = "expired_enrollment_code"
ENROLLMENT_USED = "used_enrollment_code"

_SCAN_COLUMNS = (
    "event_id",
    "ticket_id",
    "raw_hash",
    "verdict",
    "reason",
    "direction",
    "gate_id",
    "zone",
    "scanned_ms",
    "clock_offset_ms",
    "manifest_revision",
    "counted",
)
_NOT_DETAIL = {*_SCAN_COLUMNS, "seq", "gate_name"}
_DEFAULTS = {"clock_offset_ms": 0, "counted": 0}
_INSERT_SCAN = (
    "INSERT INTO scans (device_id, device_seq, "
    + ", ".join(_SCAN_COLUMNS)
    + ", detail_json, arrived_ms, device_deactivated) VALUES ("
    + ", ".join("?" * (len(_SCAN_COLUMNS) + 5))
    + ") ON CONFLICT (device_id, device_seq) DO UPDATE SET"
    " counted = excluded.counted, detail_json = excluded.detail_json"
    " WHERE scans.verdict = 'attention' AND excluded.verdict = 'attention'"
    " AND json_extract(scans.detail_json, '$.confirmed') IS NULL"
)


@dataclass(frozen=True, slots=True)
class StoredScans:
    """An upload's outcome: seqs stored (or already held identically), and those refused."""

    acked: list[int]
    refused: list[dict[str, Any]]


def _same_scan(held: tuple[Any, ...], scan: Mapping[str, Any]) -> bool:
    """The same read: same payload (sealed as the gate stored it) and time; a scan an online
    check stored first (its payload hashed in the clear, at hub time) by its ticket."""
    raw_hash, scanned_ms, ticket_id, online = held
    if online:
        return bool(ticket_id == scan.get("ticket_id"))
    return bool(raw_hash == scan.get("raw_hash") and scanned_ms == scan.get("scanned_ms"))


class DeviceStore(StoreBase):
    # enrollment ---------------------------------------------------------------------------
    def create_enrollment(
        self, tenant_id: str, grant: NewEnrollment, actor: str, now_ms: int
    ) -> tuple[Row, str]:
        """A one-time code for one device; only its hash is stored."""
        # base32: 80 random bits a staff member can type, never starting with "-" (which a
        # command line would take for an option), alphanumeric in a QR code
        code = base64.b32encode(secrets.token_bytes(10)).decode()
        row: Row = {
            "id": new_id(),
            "code_hash": secret_hash(code),
            "tenant_id": tenant_id,
            "venue_id": grant.venue_id,
            "gate_id": grant.gate_id,
            "zone": grant.zone,
            "name": grant.name,
            "created_by": actor,
            "created_ms": now_ms,
            "expires_ms": now_ms + grant.ttl_ms,
        }
        detail = {k: row[k] for k in ("gate_id", "zone", "name", "expires_ms")}
        action = "enrollment.create"
        self._insert_audited(
            "enrollment_codes", row, tenant_id, grant.venue_id, actor, action, now_ms, detail
        )
        return row, code

    def enroll_device(self, enrollment: DeviceEnrollment, now_ms: int) -> Row | str:
        """Spend an enrollment code on a device: the device row, or an error code.

        Every enrolment makes a new device, whatever hardware id it names (a label, never a
        key): a device id with its scans, its sequence numbers and its deactivation belongs
        to one gate database alone.
        """
        with self._writing():
            grant = self._one(
                "SELECT * FROM enrollment_codes WHERE code_hash = ?",
                [secret_hash(enrollment.code)],
            )
            if grant is None:
                return ENROLLMENT_INVALID
            if grant["used_ms"] is not None:
                return ENROLLMENT_USED
            if now_ms >= grant["expires_ms"]:
                return ENROLLMENT_EXPIRED
            device_id = new_id()
            self.db.table("devices").insert(
                {
                    "id": device_id,
                    "tenant_id": grant["tenant_id"],
                    "venue_id": grant["venue_id"],
                    "hardware_id": enrollment.hardware_id,
                    "name": grant["name"],
                    "gate_id": grant["gate_id"],
                    "zone": grant["zone"],
                    "public_key": enrollment.public_key,
                    "active": 1,
                    "enrolled_ms": now_ms,
                    "last_seen_ms": now_ms,
                    "app_version": enrollment.app_version,
                }
            )
            claimed = self.db.execute(
                "UPDATE enrollment_codes SET used_ms = ?, device_id = ? "
                "WHERE id = ? AND used_ms IS NULL",
                [now_ms, device_id, grant["id"]],
            ).rowcount
            if claimed != 1:
                raise sqlite3.IntegrityError("enrollment code claimed twice")
            detail = {"hardware_id": enrollment.hardware_id}
            self._audit(
                grant["tenant_id"],
                grant["venue_id"],
                f"enrollment:{grant['id']}",
                "device.enroll",
                device_id,
                detail,
                now_ms,
            )
        device = self.get_device(device_id)
        assert device is not None
        return device

    # devices ------------------------------------------------------------------------------
    def get_device(self, device_id: str) -> Row | None:
        """Unscoped: for authenticating a device's own signed requests (cached: every
        device request reads it; the writes below drop it)."""
        return self._cached(
            "devices",
            device_id,
            lambda: self._one("SELECT * FROM devices WHERE id = ?", [device_id]),
        )

    def remembered_device(self, device_id: str) -> Row | None:
        return self._remembered("devices", device_id)

    def get_device_scoped(
        self, device_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None:
        device = self._one(
            "SELECT * FROM devices WHERE id = ? AND tenant_id = ?", [device_id, tenant_id]
        )
        if device is None or (scope_venue is not None and device["venue_id"] != scope_venue):
            return None
        return device

    def deactivate_device(self, device: Row, actor: str, now_ms: int) -> Row:
        with self._writing():
            self.db.execute(
                "UPDATE devices SET active = 0, deactivated_ms = ? WHERE id = ?",
                [now_ms, device["id"]],
            )
            self._forget("devices", device["id"])
            self._audit(
                device["tenant_id"],
                device["venue_id"],
                actor,
                "device.deactivate",
                device["id"],
                {"was_active": bool(device["active"])},
                now_ms,
            )
        updated = self.get_device(device["id"])
        assert updated is not None
        return updated

    def update_device(
        self, device: Row, changes: Mapping[str, Any], actor: str, now_ms: int
    ) -> Row:
        """Rename a device or move it to another gate/zone of its venue (as re-register did)."""
        allowed = {"name", "gate_id", "zone"}
        if not set(changes) <= allowed:
            raise ValueError(f"only {sorted(allowed)} may change")
        with self._writing():
            if changes:
                self.db.table("devices").update(device["id"], dict(changes))
                self._forget("devices", device["id"])
            detail = {k: [device[k], v] for k, v in changes.items()}
            self._audit(
                device["tenant_id"],
                device["venue_id"],
                actor,
                "device.update",
                device["id"],
                detail,
                now_ms,
            )
        updated = self.get_device(device["id"])
        assert updated is not None
        return updated

    def record_heartbeat(self, device_id: str, now_ms: int, report: DeviceReport) -> None:
        """The device was seen now, and what it reports about itself."""
        fields: dict[str, Any] = {"last_seen_ms": now_ms}
        if report.app_version is not None:
            fields["app_version"] = report.app_version
        if report.pending_uploads is not None:
            fields["pending_uploads"] = report.pending_uploads
        if report.manifest_revisions is not None:
            fields["manifest_revisions_json"] = json.dumps(dict(report.manifest_revisions))
        if report.clock_offset_ms is not None:
            fields["clock_offset_ms"] = report.clock_offset_ms
        if report.hub_keys_version is not None:
            fields["hub_keys_version"] = report.hub_keys_version
        with self._writing():
            self._record_seen(device_id, fields)
        for listener in self.heartbeat_listeners:
            listener(device_id)

    def _record_seen(self, device_id: str, fields: Mapping[str, Any]) -> None:
        """Heartbeat fields into the device's row (inside the caller's transaction) and into
        its cached copy: none of them is one a request is judged by, so the copy stays and
        the device's next request needs no database read."""
        assignments = ", ".join(f"{column} = ?" for column in fields)
        self.db.execute(
            f"UPDATE devices SET {assignments} WHERE id = ?", [*fields.values(), device_id]
        )
        self._amend_cached("devices", device_id, fields)

    def devices_behind_keys(self, version: int) -> list[Row]:
        """Active devices that have not reported taking hub key set `version` yet."""
        return list(
            self.db.query(
                "SELECT id, name, venue_id, hub_keys_version, last_seen_ms FROM devices"
                " WHERE active = 1 AND (hub_keys_version IS NULL OR hub_keys_version < ?)"
                " ORDER BY venue_id, name",
                [version],
            )
        )

    # scans --------------------------------------------------------------------------------
    def record_scans(self, upload: DeviceScans, now_ms: int) -> StoredScans:
        """Store scans idempotently by (device, device_seq), in one transaction.

        A seq already stored with the same content (a re-sent batch) is acknowledged again
        and changes nothing, except that a pending attention scan may take its later
        confirmation. A seq stored with OTHER content (a wiped or cloned gate counting from 1
        again) is refused by code, never acknowledged: that scan stays on its gate. A
        deactivated device's scans are kept for audit, marked. An active device's upload is
        also its heartbeat (last seen, and `clock_offset_ms` unless None), in the same
        transaction: one commit an upload."""
        device_id, deactivated = upload.device_id, upload.deactivated
        scans = list(upload.scans)
        by_seq = {int(scan["seq"]): scan for scan in scans}
        with self._writing():
            held = self._stored_identities(device_id, list(by_seq))
            fresh, refused = [], []
            for seq, scan in by_seq.items():
                if seq in held and not _same_scan(held[seq], scan):
                    refused.append(
                        {"seq": seq, "code": SEQ_CONFLICT, "message": SEQ_CONFLICT_MESSAGE}
                    )
                else:
                    fresh.append(scan)
            values = [
                (
                    device_id,
                    scan["seq"],
                    *[scan.get(c, _DEFAULTS.get(c)) for c in _SCAN_COLUMNS],
                    json.dumps({k: v for k, v in scan.items() if k not in _NOT_DETAIL}),
                    now_ms,
                    int(deactivated),
                )
                for scan in fresh
            ]
            self.db.conn.executemany(_INSERT_SCAN, values)
            if not deactivated:
                seen: dict[str, Any] = {"last_seen_ms": now_ms}
                if upload.clock_offset_ms is not None:
                    seen["clock_offset_ms"] = upload.clock_offset_ms
                self._record_seen(device_id, seen)
        if not deactivated:
            self.scans_committed(device_id, fresh)
        return StoredScans([int(s["seq"]) for s in fresh], refused)

    def _stored_identities(self, device_id: str, seqs: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """(raw hash, scanned time, ticket, whether an online check stored it) by seq."""
        columns = (
            "device_seq, raw_hash, scanned_ms, ticket_id, json_extract(detail_json, '$.online')"
        )
        return {seq: tuple(rest) for seq, *rest in self._by_seq(columns, device_id, seqs)}

    def scan_ids(self, device_id: str, seqs: Sequence[int]) -> list[int]:
        """Row ids of a device's scans by seq."""
        return [row[0] for row in self._by_seq("id", device_id, seqs)]

    def _by_seq(self, columns: str, device_id: str, seqs: Sequence[int]) -> Iterator[Any]:
        """`columns` of a device's scans with these seqs, 500 seqs a statement (under the
        bound-parameter limit of older SQLite builds, 999)."""
        for start in range(0, len(seqs), 500):
            chunk = list(seqs[start : start + 500])
            sql = (
                f"SELECT {columns} FROM scans WHERE device_id = ?"
                f" AND device_seq IN ({','.join('?' * len(chunk))})"
            )
            yield from self.db.conn.execute(sql, [device_id, *chunk])

    def scans_of_device(self, device_id: str) -> list[Row]:
        return list(
            self.db.query(
                "SELECT * FROM scans WHERE device_id = ? ORDER BY device_seq", [device_id]
            )
        )
