"""HubStore over a real SQLite file: pragmas, scoping, one-time enrollment, nonces, audit."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hub.checkpoint import Checkpointer
from hub.migrations import STEP_NAMES, applied
from hub.storage import (
    ENROLLMENT_EXPIRED,
    ENROLLMENT_INVALID,
    ENROLLMENT_USED,
    HubStore,
    StoreUnavailable,
)
from hub.store_api import DeviceEnrollment, DeviceScans, NewEnrollment, NewStaffUser
from protocol.signing import NONCE_MEMORY_MS
from tests.hub_fixtures import store_enrollment_code

NOW = 1_790_000_000_000
KEY = b"\x01" * 32


@pytest.fixture
def store(tmp_path: Path) -> HubStore:
    s = HubStore(tmp_path / "hub.sqlite")
    yield s
    s.close()


def _venue(store: HubStore, name: str = "alpha") -> tuple[str, str]:
    tenant = store.create_tenant(name, NOW)
    venue = store.create_venue(tenant["id"], f"{name} hall", "Europe/Paris", "t", NOW)
    return tenant["id"], venue["id"]


def _enroll(
    store: HubStore,
    tenant_id: str,
    venue_id: str,
    *,
    public_key: bytes = KEY,
    app_version: str | None = None,
    now_ms: int = NOW,
) -> dict[str, Any]:
    """A device of hardware id hw1 enrolled with a fresh code at the venue."""
    device = store.enroll_device(
        DeviceEnrollment(
            code=store_enrollment_code(store, tenant_id, venue_id, NOW),
            hardware_id="hw1",
            public_key=public_key,
            app_version=app_version,
        ),
        now_ms,
    )
    assert isinstance(device, dict), device
    return device


def test_wal_foreign_keys_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite"
    store = HubStore(path)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        store.create_venue("no-such-tenant", "x", "UTC", "t", NOW)
    tenant_id, _ = _venue(store)
    store.close()
    again = HubStore(path)
    assert again.find_tenant("alpha")["id"] == tenant_id
    assert applied(again.db) == list(STEP_NAMES)  # recorded once, not again at reopen
    again.close()


def test_ping_fails_once_the_database_is_gone(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "hub.sqlite")
    store.ping()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.ping()


def test_reads_are_scoped_by_tenant_and_venue(store: HubStore) -> None:
    a_tenant, a_venue = _venue(store, "alpha")
    b_tenant, _ = _venue(store, "bravo")
    assert store.get_venue(a_venue, a_tenant) is not None
    assert store.get_venue(a_venue, b_tenant) is None
    other = store.create_venue(a_tenant, "second", "UTC", "t", NOW)
    assert store.get_venue(other["id"], a_tenant, scope_venue=a_venue) is None
    assert [v["id"] for v in store.list_venues(a_tenant, a_venue)] == [a_venue]
    device = _enroll(store, a_tenant, a_venue, app_version="1.0")
    assert isinstance(device, dict)
    assert store.get_device_scoped(device["id"], b_tenant) is None
    assert store.get_device_scoped(device["id"], a_tenant, other["id"]) is None
    assert store.get_device_scoped(device["id"], a_tenant, a_venue)["hardware_id"] == "hw1"
    assert store.list_devices(b_tenant) == []


def test_enrollment_code_is_single_use_and_short_lived(store: HubStore) -> None:
    tenant, venue = _venue(store)
    code = store_enrollment_code(store, tenant, venue, NOW, ttl_ms=60_000)

    def enroll(code: str, now_ms: int) -> dict[str, Any] | str:
        return store.enroll_device(DeviceEnrollment(code, "hw1", KEY), now_ms)

    assert enroll("nope", NOW) == ENROLLMENT_INVALID
    device = enroll(code, NOW + 1)
    assert isinstance(device, dict) and device["active"] == 1
    assert enroll(code, NOW + 2) == ENROLLMENT_USED
    late = store_enrollment_code(store, tenant, venue, NOW, ttl_ms=60_000)
    assert enroll(late, NOW + 60_000) == ENROLLMENT_EXPIRED
    assert len(store.list_devices(tenant)) == 1
    # the code itself is never stored, only its hash
    assert code not in str(list(store.db.query("SELECT * FROM enrollment_codes")))


def test_re_enrolling_a_hardware_id_makes_a_new_device_and_leaves_the_old_one(
    store: HubStore,
) -> None:
    tenant, venue = _venue(store)
    first = _enroll(store, tenant, venue, app_version="1.0")
    store.deactivate_device(first, "t", NOW + 5)
    second = _enroll(
        store, tenant, venue, public_key=b"\x02" * 32, app_version="1.1", now_ms=NOW + 10
    )
    assert second["id"] != first["id"]
    assert second["public_key"] == b"\x02" * 32 and second["active"] == 1
    assert (first["app_version"], second["app_version"]) == ("1.0", "1.1")
    old = store.get_device(first["id"])
    assert old is not None and old["active"] == 0 and old["public_key"] == KEY
    assert len(store.list_devices(tenant)) == 2


def _row(seq: int) -> dict[str, object]:
    return {
        "seq": seq,
        "ticket_id": f"t-{seq}",
        "verdict": "admit",
        "reason": "admitted",
        "direction": "entry",
        "scanned_ms": NOW,
        "counted": 1,
    }


def test_a_database_with_one_device_per_hardware_id_is_upgraded(tmp_path: Path) -> None:
    """Databases made before every enrolment was a device of its own held UNIQUE (venue,
    hardware id): opening one drops the constraint and keeps every device and scan."""
    path = tmp_path / "old.sqlite"
    old = HubStore(path)
    tenant, venue = _venue(old)
    device = _enroll(old, tenant, venue)
    old.record_scans(DeviceScans(device["id"], [_row(1)], deactivated=False), NOW + 1)
    table = re.sub(r"--[^\n]*", "", old.db["devices"].schema).rstrip().removesuffix(")").rstrip()
    old.db.execute("PRAGMA foreign_keys = OFF")
    with old._writing():  # the table as the previous release made it
        # that release had no backends: no trigger naming `devices` while it is rebuilt
        old.db.execute("DROP TRIGGER IF EXISTS scans_owed_upstream")
        made = table.replace("CREATE TABLE devices", "CREATE TABLE devices_before", 1)
        old.db.execute(made + ",\n    UNIQUE (venue_id, hardware_id)\n)")
        old.db.execute("INSERT INTO devices_before SELECT * FROM devices")
        old.db.execute("DROP TABLE devices")
        old.db.execute("ALTER TABLE devices_before RENAME TO devices")
        # that release recorded no steps, only an overwritten version number
        old.db.execute("DROP TABLE _sqlite_migrations")
        old.db.execute("CREATE TABLE schema_info (version INTEGER NOT NULL)")
        old.db.execute("INSERT INTO schema_info (version) VALUES (2)")
    assert "UNIQUE (venue_id, hardware_id)" in old.db["devices"].schema
    old.close()

    store = HubStore(path)
    assert "UNIQUE" not in store.db["devices"].schema
    assert store.get_device(device["id"])["hardware_id"] == "hw1"
    assert [r["device_seq"] for r in store.scans_of_device(device["id"])] == [1]
    again = _enroll(store, tenant, venue, now_ms=NOW + 2)
    assert again["id"] != device["id"]
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    store.close()


def test_nonces_are_remembered_per_device_then_pruned(store: HubStore) -> None:
    assert store.nonces.remember("d1", "n" * 20, NOW) is True
    assert store.nonces.remember("d1", "n" * 20, NOW + 1) is False
    assert store.nonces.remember("d2", "n" * 20, NOW) is True
    later = NOW + NONCE_MEMORY_MS + 1
    assert store.nonces.remember("d1", "m" * 20, later) is True
    assert store.nonces.count() == 1


def test_nonces_outlive_a_hub_restart(tmp_path: Path) -> None:
    """Checked in memory, written behind: a clean stop writes what is pending, and a fresh
    process refuses a replay of a request the old one took."""
    first = HubStore(tmp_path / "hub.sqlite")
    assert first.nonces.remember("d1", "a" * 20, NOW) is True
    assert first.nonces.remember("d1", "b" * 20, NOW + 1) is True  # pending, not yet written
    first.close()
    again = HubStore(tmp_path / "hub.sqlite")
    try:
        assert again.nonces.remember("d1", "a" * 20, NOW + 2) is False
        assert again.nonces.remember("d1", "b" * 20, NOW + 3) is False
        assert again.nonces.remember("d1", "c" * 20, NOW + 4) is True
    finally:
        again.close()


def test_audit_log_is_append_only_and_records_changes(store: HubStore) -> None:
    tenant, _ = _venue(store)
    actions = [e["action"] for e in store.audit_entries(tenant)]
    assert actions == ["venue.create"]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("UPDATE audit_log SET actor = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("DELETE FROM audit_log")
    assert len(store.audit_entries(tenant)) == 1


def test_scans_are_idempotent_and_deactivated_ones_marked(store: HubStore) -> None:
    tenant, venue = _venue(store)
    device = _enroll(store, tenant, venue)
    scan = {
        "seq": 1,
        "ticket_id": "t-1",
        "verdict": "admit",
        "reason": "admitted",
        "direction": "entry",
        "scanned_ms": NOW,
        "counted": 1,
        "operator": "kim",
    }
    assert store.record_scans(
        DeviceScans(device["id"], [scan], deactivated=False), NOW + 1
    ).acked == [1]
    store.record_scans(
        DeviceScans(device["id"], [scan, {**scan, "seq": 2}], deactivated=True), NOW + 2
    )
    rows = store.scans_of_device(device["id"])
    assert [(r["device_seq"], r["device_deactivated"]) for r in rows] == [(1, 0), (2, 1)]
    assert rows[0]["arrived_ms"] == NOW + 1 and '"operator": "kim"' in rows[0]["detail_json"]


def test_tokens_store_only_a_hash(store: HubStore) -> None:
    tenant, venue = _venue(store)
    row, token = store.create_token(tenant, venue, "venue_manager", "door", NOW)
    assert store.token_for(token)["id"] == row["id"]
    assert store.token_for(token + "x") is None
    assert token not in str(list(store.db.query("SELECT * FROM admin_tokens")))


def test_wal_checkpoints_leave_the_commits_for_a_thread_of_their_own(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "hub.sqlite")
    checkpointer = Checkpointer(store.path)
    try:
        store.leave_checkpoints_to_background()
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for i in range(50):  # commits that grow the WAL; none of them checkpoints now
            store.create_tenant(f"t{i}", NOW)
        busy, frames, copied = checkpointer.checkpoint()
        assert busy == 0 and frames > 0 and copied == frames
    finally:
        checkpointer.close()
        store.close()


def test_a_write_inside_a_write_is_a_savepoint_of_the_same_transaction(store: HubStore) -> None:
    with store._writing():
        store.create_tenant("outer", NOW)
        with pytest.raises(sqlite3.IntegrityError), store._writing():
            store.db.execute("INSERT INTO tenants (id, name, created_ms) VALUES ('x', NULL, 0)")
        store.create_tenant("after", NOW)
    names = {r["name"] for r in store.db.query("SELECT name FROM tenants")}
    assert {"outer", "after"} <= names


def test_a_tickets_history_is_read_by_the_tickets_index_not_the_events(store: HubStore) -> None:
    """The online check reads one ticket's scans per check; read by the event's index it
    scanned every scan of the event (the hub bench fell from 2,300 to 66 checks a second)."""
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    store.scans_of_ticket("t-1", "e-1")
    store.db.conn.set_trace_callback(None)
    (sql,) = [s for s in statements if "FROM scans" in s]
    plan = " ".join(str(r[-1]) for r in store.db.execute("EXPLAIN QUERY PLAN " + sql))
    assert "scans_device_ticket" in plan, plan


def test_no_secret_hash_reaches_the_audit_log(store: HubStore) -> None:
    """Creations are audited with their rows' facts, never a token's, password's or code's
    hash (a copy of the audit log must not help anyone guess them)."""
    tenant = store.create_tenant("t", NOW)
    venue = store.create_venue(tenant["id"], "V", "Europe/Berlin", "test", NOW)
    token_row, _ = store.create_token(tenant["id"], venue["id"], "venue_manager", "door", NOW)
    store.create_staff_user(
        tenant["id"], NewStaffUser(None, "ana", "admin", "$argon2id$secret"), "test", NOW
    )
    grant = NewEnrollment(venue["id"], "g", 60_000)
    code_row, _ = store.create_enrollment(tenant["id"], grant, "test", NOW)
    logged = " ".join(r["detail_json"] for r in store.audit_entries(tenant["id"]))
    assert {r["action"] for r in store.audit_entries(tenant["id"])} >= {
        "token.create", "user.create", "enrollment.create",
    }  # fmt: skip
    for secret in ("hash", token_row["token_hash"], code_row["code_hash"], "$argon2id$secret"):
        assert secret not in logged
