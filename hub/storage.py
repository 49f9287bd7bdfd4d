"""HubStore: the one door to the hub's database.

Handlers call these methods and never write SQL, so a PostgreSQL store with the same methods
can replace this SQLite one. Every read an admin makes is scoped by tenant (and venue, when
the token has one) inside the query itself, so an id from another tenant simply is not found.
Every admin change appends to the audit log in the same transaction. The device and ticket
operations live in hub/store_devices.py, hub/store_tickets.py, hub/store_manifests.py,
hub/store_reconcile.py, hub/store_search.py (listings), hub/store_backends.py and
hub/store_venue_keys.py, only to keep files short.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.store_api import HubStorage, NewGate
from hub.store_backends import BackendStore
from hub.store_base import Row, StoreUnavailable, new_id, secret_hash
from hub.store_console_reports import ConsoleReportStore
from hub.store_devices import (
    ENROLLMENT_EXPIRED,
    ENROLLMENT_INVALID,
    ENROLLMENT_USED,
    DeviceStore,
)
from hub.store_doors import DoorsStore
from hub.store_manifests import ManifestStore
from hub.store_reconcile import ReconcileStore
from hub.store_search import SearchStore
from hub.store_staff import StaffStore
from hub.store_tickets import TicketStore
from hub.store_venue_keys import VenueKeyStore
from hub.store_will_call import WillCallStore

__all__ = [
    "ENROLLMENT_EXPIRED",
    "ENROLLMENT_INVALID",
    "ENROLLMENT_USED",
    "HubStore",
    "Row",
    "StoreUnavailable",
    "secret_hash",
]


class HubStore(
    DeviceStore,
    WillCallStore,  # a TicketStore with will-call (hub/store_will_call.py)
    TicketStore,
    ManifestStore,
    ReconcileStore,
    SearchStore,
    BackendStore,
    VenueKeyStore,
    StaffStore,
    ConsoleReportStore,
    DoorsStore,
):
    # tenants ------------------------------------------------------------------------------
    def create_tenant(self, name: str, now_ms: int) -> Row:
        row = {"id": new_id(), "name": name, "created_ms": now_ms}
        self.db.table("tenants").insert(row)
        return row

    def find_tenant(self, id_or_name: str) -> Row | None:
        return self._one("SELECT * FROM tenants WHERE id = ? OR name = ?", [id_or_name] * 2)

    # venues, zones, gates -----------------------------------------------------------------
    def create_venue(
        self, tenant_id: str, name: str, timezone: str, actor: str, now_ms: int
    ) -> Row:
        row: Row = {
            "id": new_id(),
            "tenant_id": tenant_id,
            "name": name,
            "timezone": timezone,
            "created_ms": now_ms,
        }
        self._insert_audited("venues", row, tenant_id, row["id"], actor, "venue.create", now_ms)
        return row

    def get_venue(
        self, venue_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None:
        """The venue if it belongs to the tenant (and is the scoped venue, when scoped)."""
        if scope_venue is not None and scope_venue != venue_id:
            return None
        return self._one(
            "SELECT * FROM venues WHERE id = ? AND tenant_id = ?", [venue_id, tenant_id]
        )

    def create_zone(self, tenant_id: str, venue_id: str, name: str, actor: str, now_ms: int) -> Row:
        row = {"id": new_id(), "venue_id": venue_id, "name": name}
        self._insert_audited("zones", row, tenant_id, venue_id, actor, "zone.create", now_ms)
        return row

    def list_zones(self, venue_id: str) -> list[Row]:
        return list(
            self.db.query("SELECT * FROM zones WHERE venue_id = ? ORDER BY name", [venue_id])
        )

    def create_gate(self, tenant_id: str, gate: NewGate, actor: str, now_ms: int) -> Row:
        row: Row = {
            "id": new_id(),
            "venue_id": gate.venue_id,
            "name": gate.name,
            "direction": gate.direction,
            "zones_json": json.dumps(list(gate.zones)),
        }
        self._insert_audited("gates", row, tenant_id, gate.venue_id, actor, "gate.create", now_ms)
        return row

    def get_gate(self, gate_id: str, venue_id: str) -> Row | None:
        """Cached: every online check reads it (gates are never changed, only created)."""
        return self._cached(
            "gates",
            f"{venue_id}/{gate_id}",
            lambda: self._one(
                "SELECT * FROM gates WHERE id = ? AND venue_id = ?", [gate_id, venue_id]
            ),
        )

    def remembered_gate(self, gate_id: str, venue_id: str) -> Row | None:
        return self._remembered("gates", f"{venue_id}/{gate_id}")

    def list_gates(self, venue_id: str) -> list[Row]:
        return list(
            self.db.query("SELECT * FROM gates WHERE venue_id = ? ORDER BY name", [venue_id])
        )

    # admin tokens -------------------------------------------------------------------------
    def create_token(
        self, tenant_id: str, venue_id: str | None, role: str, label: str, now_ms: int
    ) -> tuple[Row, str]:
        """Mint a bearer token; only its hash is stored, the token is returned once."""
        token = "ght_" + secrets.token_urlsafe(32)
        row: Row = {
            "id": new_id(),
            "token_hash": secret_hash(token),
            "tenant_id": tenant_id,
            "venue_id": venue_id,
            "role": role,
            "label": label,
            "created_ms": now_ms,
        }
        detail = {"role": role, "venue_id": venue_id, "label": label}
        self._insert_audited(
            "admin_tokens", row, tenant_id, venue_id, "cli", "token.create", now_ms, detail
        )
        return row, token

    def token_for(self, token: str) -> Row | None:
        return self._one(
            "SELECT * FROM admin_tokens WHERE token_hash = ? AND revoked_ms IS NULL",
            [secret_hash(token)],
        )

    # audit --------------------------------------------------------------------------------
    def audit_entries(self, tenant_id: str, scope_venue: str | None = None) -> list[Row]:
        sql = "SELECT * FROM audit_log WHERE tenant_id = ?"
        params: list[Any] = [tenant_id]
        if scope_venue is not None:
            sql += " AND venue_id = ?"
            params.append(scope_venue)
        return list(self.db.query(sql + " ORDER BY id", params))


if TYPE_CHECKING:  # mypy proves the SQLite store offers all the seam names

    def _offers_the_seam(store: HubStore) -> HubStorage:
        return store
