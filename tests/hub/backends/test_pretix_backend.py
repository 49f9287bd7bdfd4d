"""The hub's pretix backend against the real pretix (tests/pretix_server.py): device
initialisation as pretixSCAN does it, a pull into a real hub database (products, orders, a
signed event's key), incremental pulls that bring cancellations, new secrets and blocks,
and pushes that pretix records exactly once at the scan's own time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub.backends.pretix import PretixBackend, initialize_device
from hub.backends.seam import BackendError
from hub.storage import HubStore
from hub.store_api import DeviceScans, PushedScans
from hub.store_backends import upstream_id
from tests.hub_fixtures import Hub, store_backend, store_device
from tests.pretix_server import PretixServer

pytestmark = pytest.mark.pretix

NOW = 1_790_000_000_000


def slug(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HubStore]:
    s = HubStore(tmp_path / "hub.sqlite")
    yield s
    s.close()


def _backend_row(store: HubStore, settings: dict[str, Any]) -> dict[str, Any]:
    return store_backend(store, slug("t"), NOW, settings=settings)


def device_backend(pretix: PretixServer, organizer: str, events: list[str]) -> PretixBackend:
    device = pretix.create_device(organizer)
    answer = asyncio.run(initialize_device(pretix.url, device.initialization_token))
    assert answer["organizer"] == organizer
    settings = {"url": pretix.url, "organizer": organizer, "events": events, "auth": "device"}
    return PretixBackend(settings, str(answer["api_token"]))


def pull(store: HubStore, row: dict[str, Any], backend: PretixBackend) -> Any:
    async def once() -> Any:
        return await backend.pull(store.backend_cursor(row["id"]))

    return store.apply_pull(row, asyncio.run(once()), NOW)


def ticket(store: HubStore, row: dict[str, Any], position_id: int) -> dict[str, Any]:
    return dict(store.db["tickets"].get(upstream_id(row["id"], "ticket", str(position_id))))


def test_a_device_pulls_an_event_and_incremental_pulls_bring_changes(
    pretix: PretixServer, store: HubStore
) -> None:
    org = pretix.create_organizer(slug("o")).slug
    event = pretix.create_event(slug("fest"), "River Fest", organizer=org)
    paid = pretix.create_order(event, ["Ada Lovelace", "Alan Turing"])
    pending = pretix.create_order(event, ["Grace Hopper"], status="n")
    backend = device_backend(pretix, org, [])  # every event the device sees
    row = _backend_row(store, {"url": pretix.url, "organizer": org})

    summary = pull(store, row, backend)
    assert summary.events == 1 and summary.tickets_added == 3
    ada = ticket(store, row, paid.positions[0].id)
    assert ada["status"] == "ACTIVE" and ada["holder_name"] == "Ada Lovelace"
    assert ada["backend_code"] == paid.positions[0].secret and ada["order_ref"] == paid.code
    # the "Entry" list does not admit pending orders: the ticket is there, not admitted
    assert ticket(store, row, pending.positions[0].id)["status"] == "RESERVED"
    types = {t["name"] for t in store.db["ticket_types"].rows}
    assert types == {"Standing", "Balcony"}
    event_id = upstream_id(row["id"], "event", event.slug)
    hub_event = store.db["events"].get(event_id)
    assert hub_event["name"] == "River Fest" and hub_event["timezone"] == "UTC"
    detail = store.db["backend_events"].get(event_id)["detail_json"]
    assert f'"checkin_list": {event.checkin_list}' in detail

    quiet = pull(store, row, backend)  # nothing changed in pretix: nothing changes here
    assert (quiet.tickets_added, quiet.tickets_changed, quiet.codes_retired) == (0, 0, 0)

    pretix.cancel_order(event, paid.code)
    fresh = pretix.regenerate_order_secrets(event, pending.code).positions[0]
    late = pretix.create_order(event, ["Katherine Johnson"])
    changed = pull(store, row, backend)
    assert changed.tickets_added == 1 and changed.tickets_changed == 3
    assert ticket(store, row, paid.positions[1].id)["status"] == "CANCELLED"
    grace = ticket(store, row, pending.positions[0].id)
    assert grace["backend_code"] == fresh.secret != pending.positions[0].secret
    retired = store.db.execute("SELECT code, state FROM ticket_retired_codes").fetchall()
    assert retired == [(pending.positions[0].secret, "superseded")]
    assert ticket(store, row, late.positions[0].id)["holder_name"] == "Katherine Johnson"

    blocked = pretix.create_order(event, ["Hedy Lamarr"]).positions[0]
    pull(store, row, backend)
    pretix.block_position(event, blocked.id)
    pull(store, row, backend)
    states = dict(store.db.execute("SELECT code, state FROM ticket_retired_codes").fetchall())
    assert states[blocked.secret] == "blocked"
    pretix.unblock_position(event, blocked.id)
    pull(store, row, backend)
    assert blocked.secret not in dict(
        store.db.execute("SELECT code, state FROM ticket_retired_codes").fetchall()
    )
    asyncio.run(backend.aclose())


def test_a_signed_event_brings_its_public_key_and_its_revoked_secrets(
    pretix: PretixServer, store: HubStore
) -> None:
    org = pretix.create_organizer(slug("o")).slug
    event = pretix.create_event(slug("sig"), organizer=org, secret_generator="pretix_sig1")
    order = pretix.create_order(event, ["Ada Lovelace"])
    backend = device_backend(pretix, org, [event.slug])
    row = _backend_row(store, {})
    pull(store, row, backend)
    event_id = upstream_id(row["id"], "event", event.slug)
    keys = store.db["event_code_keys"].get(event_id)["signing_keys_json"]
    assert len(keys) == 2 + 2 + 64  # one raw Ed25519 key, in hex, in a JSON list
    old = order.positions[0].secret
    pretix.regenerate_order_secrets(event, order.code)
    assert old in pretix.revoked_secrets(event)
    pull(store, row, backend)
    states = dict(store.db.execute("SELECT code, state FROM ticket_retired_codes").fetchall())
    assert states == {old: "superseded"}
    asyncio.run(backend.aclose())


def test_pushes_reach_pretix_once_at_the_scan_time(pretix: PretixServer, store: HubStore) -> None:
    org = pretix.create_organizer(slug("o")).slug
    event = pretix.create_event(slug("push"), organizer=org)
    order = pretix.create_order(event, ["Ada Lovelace", "Alan Turing"])
    ada, alan = order.positions
    backend = device_backend(pretix, org, [event.slug])
    row = _backend_row(store, {})
    pull(store, row, backend)
    device = store_device(store, row["tenant_id"], row["venue_id"], NOW)
    at = NOW - 3_600_000  # scanned an hour ago, offline
    scans = [
        _scan(1, upstream_id(row["id"], "ticket", str(ada.id)), at),
        _scan(2, upstream_id(row["id"], "ticket", str(alan.id)), at + 1000, verdict="deny",
              reason="locked"),
    ]  # fmt: skip
    store.record_scans(DeviceScans(device, scans, deactivated=False), NOW)
    owed = store.owed_scans(row["id"], NOW, 50)
    assert len(owed) == 2
    for _ in range(2):  # the second push is a retry of the same scans: nothing more
        outcomes = asyncio.run(backend.push(owed))
        assert all(o.done for o in outcomes), outcomes
    entries = pretix.checkins(event, successful=True)
    assert [(c["position"], c["type"]) for c in entries] == [(ada.id, "entry")]
    assert _ms(entries[0]["datetime"]) == at  # the gate's time, not the push's
    failed = pretix.checkins(event, successful=False)
    assert [(c["position"], c["error_reason"]) for c in failed] == [(alan.id, "blocked")]
    store.record_push(PushedScans(row["id"], outcomes, lambda a: NOW), NOW)
    assert store.outbox_state(row["id"]).owed == 0
    asyncio.run(backend.aclose())


def test_a_check_in_list_mapped_to_a_zone_zones_its_tickets_and_takes_their_scans(
    pretix: PretixServer, store: HubStore
) -> None:
    org = pretix.create_organizer(slug("o")).slug
    event = pretix.create_event(slug("zoned"), organizer=org)
    balcony = event.items["Balcony"]
    vip_list = pretix.create_checkin_list(event, "Balcony door", items=[balcony])
    standing = pretix.create_order(event, ["Ada Lovelace"]).positions[0]
    seated = pretix.create_order(event, ["Alan Turing"], item=balcony).positions[0]
    backend = device_backend(pretix, org, [event.slug])
    backend.list_zones = {str(vip_list): "Balcony"}
    row = _backend_row(store, {})
    pull(store, row, backend)
    assert ticket(store, row, seated.id)["zone"] == "Balcony"
    assert ticket(store, row, standing.id)["zone"] is None
    device = store_device(store, row["tenant_id"], row["venue_id"], NOW)
    scans = [
        _scan(1, upstream_id(row["id"], "ticket", str(seated.id)), NOW, zone="Balcony"),
        _scan(2, upstream_id(row["id"], "ticket", str(standing.id)), NOW),
    ]
    store.record_scans(DeviceScans(device, scans, deactivated=False), NOW)
    outcomes = asyncio.run(backend.push(store.owed_scans(row["id"], NOW, 50)))
    assert all(o.done and o.answer.get("status") == "ok" for o in outcomes), outcomes
    lists = {c["position"]: c["list"] for c in pretix.checkins(event, successful=True)}
    assert lists == {seated.id: vip_list, standing.id: event.checkin_list}
    asyncio.run(backend.aclose())


def test_wrong_organizer_token_and_unreachable_pretix_are_sentences(
    pretix: PretixServer,
) -> None:
    org = pretix.create_organizer(slug("o")).slug
    backend = device_backend(pretix, org, [])
    wrong = PretixBackend({**_settings(backend), "organizer": "nobody"}, _token(backend))
    with pytest.raises(BackendError, match="check the organizer"):
        asyncio.run(wrong.pull({}))
    bad = PretixBackend(_settings(backend), "not-a-token")
    with pytest.raises(BackendError, match="refused the hub's credentials"):
        asyncio.run(bad.pull({}))
    gone = PretixBackend({**_settings(backend), "url": "http://127.0.0.1:9"}, "x")
    with pytest.raises(BackendError, match="is not reachable"):
        asyncio.run(gone.pull({}))
    with pytest.raises(BackendError, match="refused the initialisation token"):
        asyncio.run(initialize_device(pretix.url, "no-such-token"))
    for b in (backend, wrong, bad, gone):
        asyncio.run(b.aclose())


def _settings(backend: PretixBackend) -> dict[str, Any]:
    return {"url": backend.url, "organizer": backend.organizer, "auth": "device"}


def _token(backend: PretixBackend) -> str:
    return str(backend._client.headers["Authorization"]).split(" ", 1)[1]


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _scan(seq: int, ticket_id: str, at_ms: int, **changes: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "ticket_id": ticket_id,
        "verdict": "admit",
        "reason": "admitted",
        "direction": "entry",
        "scanned_ms": at_ms,
        "counted": 1,
        **changes,
    }


async def test_the_admin_api_adds_lists_and_removes_a_pretix_backend(
    pretix: PretixServer, hub: Hub
) -> None:
    org = pretix.create_organizer(slug("o")).slug
    device = pretix.create_device(org)
    admin, manager = hub.auth(hub.a.admin_token), hub.auth(hub.a.manager_token)
    body = {"name": "shop", "venue_id": hub.a.venue_id, "url": pretix.url}
    made = await hub.client.post(
        "/api/admin/backends",
        json={**body, "init_token": device.initialization_token},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    shown = made.json()
    assert shown["organizer"] == org and shown["auth"] == "device" and shown["kind"] == "pretix"
    again = await hub.client.post(
        "/api/admin/backends", json={**body, "init_token": "used"}, headers=admin
    )
    assert again.status_code == 502 and again.json()["error"]["code"] == "backend_unreachable"
    assert "nothing was added" in again.json()["error"]["message"]
    refused = await hub.client.post(
        "/api/admin/backends", json={**body, "init_token": "x"}, headers=manager
    )
    assert refused.status_code == 403  # a venue manager reads backends, never adds one
    listed = await hub.client.get("/api/admin/backends", headers=manager)
    assert [b["name"] for b in listed.json()["backends"]] == ["shop"]
    other = await hub.client.get("/api/admin/backends", headers=hub.auth(hub.b.admin_token))
    assert other.json()["backends"] == []  # another tenant sees none
    status = await hub.client.get(f"/api/admin/backends/{shown['id']}", headers=manager)
    assert status.json()["outbox"] == {
        "owed": 0,
        "oldest_owed_at": None,
        "failing": 0,
        "pushed": 0,
    }
    for answer in (made, listed, status):
        assert "api_token" not in answer.text and "secret" not in answer.text
    pull = await hub.client.post(f"/api/admin/backends/{shown['id']}/pull", headers=admin)
    assert pull.status_code == 409  # this app runs no backends
    gone = await hub.client.delete(f"/api/admin/backends/{shown['id']}", headers=admin)
    assert gone.status_code == 200 and gone.json()["removed"] == shown["id"]
    missing = await hub.client.get(f"/api/admin/backends/{shown['id']}", headers=admin)
    assert missing.status_code == 404
