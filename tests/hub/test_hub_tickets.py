"""Venue operations over the real server: comps, locks (bulk), reissue, post-event expiry."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.store_api import CatalogueImport
from manifests.model import COMP_REASONS, LOCK_REASONS
from manifests.policy import HOUR_MS, TEMPLATES
from tests.hub_fixtures import Hub, Tenant, start_hub, stop_hub

_codes = itertools.count(101)  # event codes, unique across the hub


def load_event(hub: Hub, tenant: Tenant, event_id: str, end_ms: int) -> None:
    """An event with a VIP type and five tickets `{event_id}-t0` to `-t4`, given to the store
    as hub rows (the importer would map ids that are not UUIDs to UUIDs)."""
    type_id = f"{event_id}-vip"
    statuses = ["ACTIVE", "TRANSFERRED", "USED", "ACTIVE", "REFUNDED"]
    hub.store.import_catalogue(
        tenant.id,
        CatalogueImport(
            events=[
                {
                    "id": event_id,
                    "venue_id": tenant.venue_id,
                    "code": next(_codes),
                    "name": "Show",
                    "timezone": "UTC",
                    "start_ms": end_ms - 3 * HOUR_MS,
                    "end_ms": end_ms,
                    "policy_json": json.dumps(TEMPLATES["standard"].to_json()),
                    "comp_limit": 2,
                }
            ],
            ticket_types=[
                {"id": type_id, "event_id": event_id, "code": 1, "name": "VIP", "zone": "VIP"}
            ],
            tickets=[
                {
                    "id": f"{event_id}-t{i}",
                    "event_id": event_id,
                    "ticket_type_id": type_id,
                    "status": status,
                    "zone": "VIP",
                }
                for i, status in enumerate(statuses)
            ],
        ),
        "test",
        hub.clock(),
    )


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    started, runner = await start_hub(tmp_path, expiry_interval_s=None)
    soon = started.clock() + 5 * HOUR_MS
    load_event(started, started.a, "a-show", soon)
    load_event(started, started.b, "b-show", soon)
    yield started
    await stop_hub(started, runner)


def error_code(resp) -> str:  # type: ignore[no-untyped-def]
    return resp.json()["error"]["code"]


async def test_comps_need_a_known_reason_and_respect_the_event_limit(hub: Hub) -> None:
    box = hub.auth(hub.a.box_office_token)
    url = "/api/admin/events/a-show/comps"
    bad = await hub.client.post(url, json={"reason": "friend", "holder_name": "Al"}, headers=box)
    assert bad.status_code == 400 and error_code(bad) == "invalid_comp_reason"
    bad = await hub.client.post(
        url, json={"reason": "press_pass", "holder_name": "Al", "ticket_type": "Pit"}, headers=box
    )
    assert bad.status_code == 404 and error_code(bad) == "unknown_ticket_type"
    first = await hub.client.post(
        url,
        json={
            "reason": COMP_REASONS[0],
            "holder_name": "Al Press",
            "ticket_type": "VIP",
            "seat": "R1",
        },
        headers=box,
    )
    assert first.status_code == 201
    body = first.json()
    assert (body["comp_reason"], body["zone"], body["status"]) == ("press_pass", "VIP", "ACTIVE")
    assert (body["holder_name"], body["ticket_type"], body["seat"]) == ("Al Press", "VIP", "R1")
    assert body["comp_issuer"].startswith("token:")
    second = await hub.client.post(url, json={"reason": "staff", "holder_name": "Bo"}, headers=box)
    assert second.status_code == 201
    third = await hub.client.post(url, json={"reason": "staff", "holder_name": "Cy"}, headers=box)
    assert third.status_code == 409 and error_code(third) == "comp_limit_reached"
    other = await hub.client.post(
        "/api/admin/events/b-show/comps", json={"reason": "staff", "holder_name": "Cy"}, headers=box
    )
    assert other.status_code == 404
    staff = await hub.client.post(
        url, json={"reason": "staff", "holder_name": "Dee"}, headers=hub.auth(hub.a.staff_token)
    )
    assert staff.status_code == 403


async def test_bulk_lock_is_all_or_nothing_and_unlock_restores(hub: Hub) -> None:
    manager = hub.auth(hub.a.manager_token)
    ids = ["a-show-t0", "a-show-t1"]
    bad = await hub.client.post(
        "/api/admin/tickets/lock", json={"ticket_ids": ids, "reason": "bored"}, headers=manager
    )
    assert bad.status_code == 400 and error_code(bad) == "invalid_lock_reason"
    mixed = await hub.client.post(
        "/api/admin/tickets/lock",
        json={"ticket_ids": [*ids, "b-show-t0"], "reason": LOCK_REASONS[0]},
        headers=manager,
    )
    assert mixed.status_code == 404 and "b-show-t0" in mixed.json()["error"]["message"]
    assert hub.store.get_ticket("a-show-t0", hub.a.id)["lock_reason"] is None
    assert hub.store.get_ticket("b-show-t0", hub.b.id)["lock_reason"] is None
    ok = await hub.client.post(
        "/api/admin/tickets/lock",
        json={"ticket_ids": ids, "reason": "fraud_investigation"},
        headers=manager,
    )
    assert ok.status_code == 200
    got = await hub.client.get("/api/admin/tickets/a-show-t1", headers=manager)
    assert got.json()["lock_reason"] == "fraud_investigation" and got.json()["locked_by"]
    done = await hub.client.post(
        "/api/admin/tickets/unlock", json={"ticket_ids": ids[:1]}, headers=manager
    )
    assert done.status_code == 200
    assert hub.store.get_ticket("a-show-t0", hub.a.id)["lock_reason"] is None
    assert hub.store.get_ticket("a-show-t1", hub.a.id)["lock_reason"] == "fraud_investigation"
    empty = await hub.client.post(
        "/api/admin/tickets/unlock", json={"ticket_ids": []}, headers=manager
    )
    assert empty.status_code == 400 and error_code(empty) == "missing_field"
    actions = [e["action"] for e in hub.store.audit_entries(hub.a.id)]
    assert actions.count("ticket.lock") == 2 and actions.count("ticket.unlock") == 1


async def test_reissue_bumps_generation_only_for_admitting_tickets(hub: Hub) -> None:
    box = hub.auth(hub.a.box_office_token)
    resp = await hub.client.post("/api/admin/tickets/a-show-t0/reissue", headers=box)
    assert resp.status_code == 200 and resp.json()["generation"] == 1
    entry = hub.store.audit_entries(hub.a.id)[-1]
    assert entry["action"] == "ticket.reissue"
    assert json.loads(entry["detail_json"]) == {
        "revoked_generation": 0,
        "reason": "duplicate_ticket",
    }
    refunded = await hub.client.post("/api/admin/tickets/a-show-t4/reissue", headers=box)
    assert refunded.status_code == 409 and error_code(refunded) == "ticket_not_reissuable"
    foreign = await hub.client.post("/api/admin/tickets/b-show-t0/reissue", headers=box)
    assert foreign.status_code == 404
    assert hub.store.get_ticket("b-show-t0", hub.b.id)["generation"] == 0


async def test_expiry_job_expires_active_and_transferred_a_day_after_the_end(
    tmp_path: Path,
) -> None:
    hub, runner = await start_hub(tmp_path, expiry_interval_s=0.05)
    try:
        now = hub.clock()
        load_event(hub, hub.a, "old", now - 24 * HOUR_MS - 60_000)
        load_event(hub, hub.a, "recent", now - 23 * HOUR_MS)
        for _ in range(100):
            if hub.store.get_ticket("old-t0", hub.a.id)["status"] == "EXPIRED":
                break
            await asyncio.sleep(0.05)
        old = [hub.store.get_ticket(f"old-t{i}", hub.a.id)["status"] for i in range(5)]
        assert old == ["EXPIRED", "EXPIRED", "USED", "EXPIRED", "REFUNDED"]
        recent = [hub.store.get_ticket(f"recent-t{i}", hub.a.id)["status"] for i in range(5)]
        assert recent == ["ACTIVE", "TRANSFERRED", "USED", "ACTIVE", "REFUNDED"]
        entries = [e for e in hub.store.audit_entries(hub.a.id) if e["action"] == "tickets.expire"]
        assert len(entries) == 1 and json.loads(entries[0]["detail_json"]) == {"expired": 3}
        assert hub.store.expire_tickets(hub.clock()) == 0
    finally:
        await stop_hub(hub, runner)


async def test_event_and_ticket_reads_are_scoped(hub: Hub) -> None:
    staff = hub.auth(hub.a.staff_token)
    event = await hub.client.get("/api/admin/events/a-show", headers=staff)
    assert event.status_code == 200
    body = event.json()
    assert body["comp_limit"] == 2 and body["ticket_types"] == [
        {"code": 1, "name": "VIP", "zone": "VIP"}
    ]
    ticket = await hub.client.get("/api/admin/tickets/a-show-t1", headers=staff)
    assert ticket.json()["status"] == "TRANSFERRED" and ticket.json()["ticket_type"] == "VIP"
    for path in ("/api/admin/events/b-show", "/api/admin/tickets/b-show-t1"):
        resp = await hub.client.get(path, headers=hub.auth(hub.a.admin_token))
        assert resp.status_code == 404 and error_code(resp) == "not_found", path


async def test_cancel_refund_revoke_is_all_or_nothing_scoped_and_audited(hub: Hub) -> None:
    manager = hub.auth(hub.a.manager_token)
    url = "/api/admin/tickets/status"
    bad = await hub.client.post(
        url, json={"ticket_ids": ["a-show-t0"], "status": "ACTIVE"}, headers=manager
    )
    assert bad.status_code == 400 and error_code(bad) == "invalid_status"
    # t2 is USED: the whole batch is refused, t0 stays ACTIVE.
    used = await hub.client.post(
        url, json={"ticket_ids": ["a-show-t0", "a-show-t2"], "status": "REVOKED"}, headers=manager
    )
    assert used.status_code == 409 and error_code(used) == "invalid_transition"
    assert "a-show-t2" in used.json()["error"]["message"]
    assert hub.store.get_ticket("a-show-t0", hub.a.id)["status"] == "ACTIVE"
    foreign = await hub.client.post(
        url, json={"ticket_ids": ["b-show-t0"], "status": "REVOKED"}, headers=manager
    )
    assert foreign.status_code == 404
    assert hub.store.get_ticket("b-show-t0", hub.b.id)["status"] == "ACTIVE"
    staff = await hub.client.post(
        url,
        json={"ticket_ids": ["a-show-t0"], "status": "REVOKED"},
        headers=hub.auth(hub.a.staff_token),
    )
    assert staff.status_code == 403
    ok = await hub.client.post(
        url,
        json={"ticket_ids": ["a-show-t0", "a-show-t1"], "status": "REVOKED", "note": "stolen"},
        headers=manager,
    )
    assert ok.status_code == 200, ok.text
    assert hub.store.get_ticket("a-show-t0", hub.a.id)["status"] == "REVOKED"
    assert hub.store.get_ticket("a-show-t1", hub.a.id)["status"] == "REVOKED"
    entry = hub.store.audit_entries(hub.a.id)[-1]
    assert entry["action"] == "ticket.status"
    assert json.loads(entry["detail_json"]) == {
        "status": "REVOKED",
        "previous": "TRANSFERRED",
        "note": "stolen",
    }
    again = await hub.client.post(
        url, json={"ticket_ids": ["a-show-t0"], "status": "REFUNDED"}, headers=manager
    )
    assert again.status_code == 409  # terminal: never back, never sideways


async def test_transfer_moves_the_ticket_to_a_new_holder_and_a_new_generation(hub: Hub) -> None:
    box = hub.auth(hub.a.box_office_token)
    url = "/api/admin/tickets/{}/transfer"
    missing = await hub.client.post(url.format("a-show-t0"), json={}, headers=box)
    assert missing.status_code == 400 and error_code(missing) == "missing_field"
    blank = await hub.client.post(url.format("a-show-t0"), json={"holder_name": " "}, headers=box)
    assert blank.status_code == 400
    assert hub.store.get_ticket("a-show-t0", hub.a.id)["generation"] == 0
    ok = await hub.client.post(url.format("a-show-t0"), json={"holder_name": "Ada B"}, headers=box)
    assert ok.status_code == 200, ok.text
    moved = ok.json()
    assert (moved["status"], moved["generation"], moved["holder_name"]) == (
        "TRANSFERRED",
        1,
        "Ada B",
    )
    entry = hub.store.audit_entries(hub.a.id)[-1]
    assert entry["action"] == "ticket.transfer"
    assert "Ada" not in entry["detail_json"]  # names stay out of the audit log
    refunded = await hub.client.post(
        url.format("a-show-t4"), json={"holder_name": "Eve"}, headers=box
    )
    assert refunded.status_code == 409 and error_code(refunded) == "ticket_not_reissuable"
    foreign = await hub.client.post(
        url.format("b-show-t0"), json={"holder_name": "Eve"}, headers=box
    )
    assert foreign.status_code == 404
