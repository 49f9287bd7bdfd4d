"""Every admin listing a page at a time (issue 13), through the real hub: venues, zones, gates,
devices, events and the audit log, each walked with limit=1 and 2 (every row once, in
order), with rows added between two pages, bad cursors and limits refused by code, and the
tenant and venue scope inside the query."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import Any

import pytest

from hub.paging import PageAsk
from hub.store_api import CatalogueImport, DeviceEnrollment, NewEnrollment, NewGate
from hub.store_search import MAX_PAGE, AuditQuery, DeviceQuery
from tests.hub.test_hub_listing import get, refused, second_venue
from tests.hub_fixtures import Hub, Tenant, add_show

LISTINGS = ("venues", "zones", "gates", "devices", "events", "entries")


def paths(hub: Hub) -> dict[str, str]:
    """Each listing's path (tenant a's first venue for zones and gates), by its answer key."""
    venue = f"/api/admin/venues/{hub.a.venue_id}"
    return {
        "venues": "/api/admin/venues",
        "zones": f"{venue}/zones",
        "gates": f"{venue}/gates",
        "devices": "/api/admin/devices",
        "events": "/api/admin/events",
        "entries": "/api/admin/audit",
        "tickets": "/api/admin/tickets",
    }


async def walk(hub: Hub, token: str, path: str, key: str, limit: int, **query: Any) -> list[Any]:
    """Every row of a listing, page by page along next_cursor: each page full but the last,
    which alone says null."""
    rows: list[Any] = []
    cursor = None
    for _ in range(200):
        asked = {**query, "limit": limit, **({"cursor": cursor} if cursor else {})}
        body = await get(hub, token, path, **asked)
        assert set(body) == {key, "next_cursor"}, body
        assert body[key] or not rows, "an empty page after a full one: it said null too early"
        rows += body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            assert len(body[key]) <= limit
            return rows
        assert len(body[key]) == limit, (path, asked)
    raise AssertionError(f"{path}: no last page")


async def walks(hub: Hub, token: str, path: str, key: str, **query: Any) -> list[Any]:
    """The listing walked with limit 1, 2 and MAX_PAGE: the same rows each time."""
    whole = await walk(hub, token, path, key, MAX_PAGE, **query)
    for limit in (1, 2):
        assert await walk(hub, token, path, key, limit, **query) == whole, (path, limit)
    return whole


def add_device(hub: Hub, tenant: Tenant, venue_id: str, name: str) -> str:
    store, now = hub.store, hub.clock()
    _, code = store.create_enrollment(
        tenant.id, NewEnrollment(venue_id=venue_id, name=name, ttl_ms=60_000), "t", now
    )
    device = store.enroll_device(
        DeviceEnrollment(code=code, hardware_id=name, public_key=secrets.token_bytes(32)), now
    )
    assert isinstance(device, dict)
    return str(device["id"])


def add_event(hub: Hub, tenant: Tenant, venue_id: str, name: str, start_ms: int) -> str:
    event_id = str(uuid.uuid4())
    hub.store.import_catalogue(
        tenant.id,
        CatalogueImport(
            events=[
                {
                    "id": event_id,
                    "venue_id": venue_id,
                    "code": secrets.randbits(31),
                    "name": name,
                    "timezone": "UTC",
                    "start_ms": start_ms,
                    "end_ms": start_ms + 1,
                }
            ]
        ),
        "t",
        hub.clock(),
    )
    return event_id


async def test_venues_page_by_name_each_once_scoped_to_tenant_and_venue(hub: Hub) -> None:
    store, now = hub.store, hub.clock()
    for name in ("Mitte", "Zeche", "Aula", "Öhringen Halle", "Bühne 2"):
        store.create_venue(hub.a.id, name, "UTC", "t", now)
    store.create_venue(hub.b.id, "Bravo Annex", "UTC", "t", now)
    token = hub.a.admin_token
    names = [v["name"] for v in await walks(hub, token, "/api/admin/venues", "venues")]
    expected = ["Aula", "Bühne 2", "Mitte", "Zeche", "alpha Arena", "Öhringen Halle"]
    assert names == expected  # by name as SQLite compares it: code point order
    b_names = [
        v["name"] for v in await walks(hub, hub.b.admin_token, "/api/admin/venues", "venues")
    ]
    assert b_names == ["Bravo Annex", "bravo Arena"]
    scoped = await walks(hub, hub.a.manager_token, "/api/admin/venues", "venues")
    assert [v["id"] for v in scoped] == [hub.a.venue_id]
    # venues added between two pages: one sorting before the cursor is not shown, one after
    # is; none is listed twice and none of the first ones skipped
    first = await get(hub, token, "/api/admin/venues", limit=2)
    assert [v["name"] for v in first["venues"]] == expected[:2]
    store.create_venue(hub.a.id, "Aaa early", "UTC", "t", hub.clock())
    store.create_venue(hub.a.id, "Zz late", "UTC", "t", hub.clock())
    rest = await walk(hub, token, "/api/admin/venues", "venues", 1, cursor=first["next_cursor"])
    listed = [v["name"] for v in first["venues"] + rest]
    assert listed == sorted([*expected, "Zz late"])


@pytest.mark.parametrize("key", ["zones", "gates"])
async def test_a_venues_zones_and_gates_page_by_name(hub: Hub, key: str) -> None:
    store, now = hub.store, hub.clock()
    annex, annex_token = second_venue(hub)
    names = ["Parkett", "Balkon", "Loge", "Rang"]
    for name in names:
        if key == "zones":
            store.create_zone(hub.a.id, hub.a.venue_id, name, "t", now)
            store.create_zone(hub.a.id, annex, f"Annex {name}", "t", now)
        else:
            store.create_gate(hub.a.id, NewGate(hub.a.venue_id, name, "entry", []), "t", now)
            store.create_gate(hub.a.id, NewGate(annex, f"Annex {name}", "entry", []), "t", now)
    path = paths(hub)[key]
    made = [*names, "GA", "VIP"] if key == "zones" else names
    for token in (hub.a.admin_token, hub.a.manager_token, hub.a.staff_token):
        rows = await walks(hub, token, path, key)
        assert [r["name"] for r in rows] == sorted(made)
    if key == "gates":
        assert set(rows[0]) == {"id", "venue_id", "name", "direction", "zones"}
    annexed = await walks(hub, annex_token, f"/api/admin/venues/{annex}/{key}", key)
    assert [r["name"] for r in annexed] == sorted(f"Annex {n}" for n in names)
    # one added between two pages, after the cursor: listed once, in its place
    first = await get(hub, hub.a.admin_token, path, limit=2)
    if key == "zones":
        store.create_zone(hub.a.id, hub.a.venue_id, "Zwischen", "t", now)
    else:
        store.create_gate(hub.a.id, NewGate(hub.a.venue_id, "Zwischen", "entry", []), "t", now)
    rest = await walk(hub, hub.a.admin_token, path, key, 2, cursor=first["next_cursor"])
    assert [r["name"] for r in first[key] + rest] == sorted([*made, "Zwischen"])
    # another tenant's venue, or another venue than the token's, is not found
    for token, venue in ((hub.b.admin_token, hub.a.venue_id), (annex_token, hub.a.venue_id)):
        resp = await hub.client.get(f"/api/admin/venues/{venue}/{key}", headers=hub.auth(token))
        assert resp.status_code == 404, resp.text


async def test_devices_page_by_name_filtered_and_scoped(hub: Hub) -> None:
    annex, annex_token = second_venue(hub)
    made = {
        name: add_device(hub, hub.a, hub.a.venue_id, name)
        for name in ("Nord 2", "Nord 1", "Süd", "Ost")
    }
    annexed = {name: add_device(hub, hub.a, annex, name) for name in ("Annex A", "Nord 1")}
    theirs = add_device(hub, hub.b, hub.b.venue_id, "Bravo 1")
    gone = made["Ost"]
    hub.store.deactivate_device(hub.store.get_device(gone) or {}, "t", hub.clock())
    path, token = "/api/admin/devices", hub.a.admin_token
    everything = await walks(hub, token, path, "devices")
    # by name, then id: the two "Nord 1" of two venues in id order
    expected = sorted([*made.items(), *annexed.items()])
    assert [(d["name"], d["id"]) for d in everything] == expected
    assert theirs not in {d["id"] for d in everything}
    assert [d["id"] for d in await walks(hub, hub.b.admin_token, path, "devices")] == [theirs]
    active = await walks(hub, token, path, "devices", active="true")
    assert [d["id"] for d in active] == [i for _, i in expected if i != gone]
    inactive = await walks(hub, token, path, "devices", active="false")
    assert [d["id"] for d in inactive] == [gone]
    at_annex = await walks(hub, token, path, "devices", venue_id=annex)
    assert [d["id"] for d in at_annex] == [i for n, i in sorted(annexed.items())]
    # a venue-scoped token sees its venue's devices only, narrowed or not
    scoped = await walks(hub, annex_token, path, "devices")
    assert [d["id"] for d in scoped] == [d["id"] for d in at_annex]
    assert await walks(hub, hub.a.manager_token, path, "devices", active="false") == inactive
    resp = await hub.client.get(
        path, params={"venue_id": annex}, headers=hub.auth(hub.a.manager_token)
    )
    assert resp.status_code == 404, resp.text
    resp = await hub.client.get(path, params={"active": "yes"}, headers=hub.auth(token))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_query"


async def test_events_page_by_start_then_name(hub: Hub) -> None:
    annex, annex_token = second_venue(hub)
    start = 1_790_000_000_000
    made = [
        (start + 30, "Late", add_event(hub, hub.a, hub.a.venue_id, "Late", start + 30)),
        (start, "B same start", add_event(hub, hub.a, annex, "B same start", start)),
        (start, "A same start", add_event(hub, hub.a, hub.a.venue_id, "A same start", start)),
        (start - 5, "Early", add_event(hub, hub.a, annex, "Early", start - 5)),
    ]
    theirs = add_event(hub, hub.b, hub.b.venue_id, "Bravo night", start)
    path, token = "/api/admin/events", hub.a.admin_token
    events = await walks(hub, token, path, "events")
    assert [(e["start_ms"], e["name"], e["id"]) for e in events] == sorted(made)
    assert events[0]["ticket_types"] == [] and "policy" in events[0]
    assert [e["id"] for e in await walks(hub, hub.b.admin_token, path, "events")] == [theirs]
    at_annex = [e["name"] for e in await walks(hub, token, path, "events", venue_id=annex)]
    assert at_annex == ["Early", "B same start"]
    assert [e["name"] for e in await walks(hub, annex_token, path, "events")] == at_annex
    # an event starting before the cursor's is not shown on later pages; one after, in place
    first = await get(hub, token, path, limit=2)
    add_event(hub, hub.a, hub.a.venue_id, "Earliest", start - 100)
    add_event(hub, hub.a, hub.a.venue_id, "Middle", start + 10)
    rest = await walk(hub, token, path, "events", 1, cursor=first["next_cursor"])
    names = [e["name"] for e in first["events"] + rest]
    assert names == ["Early", "A same start", "B same start", "Middle", "Late"]


async def test_audit_pages_newest_first_filtered_and_scoped(hub: Hub) -> None:
    store = hub.store
    annex, annex_token = second_venue(hub)
    zones = [store.create_zone(hub.a.id, hub.a.venue_id, f"Z{i}", "t", 1_000 + i) for i in range(5)]
    store.create_zone(hub.a.id, annex, "Annex zone", "t", 2_000)
    store.create_zone(hub.b.id, hub.b.venue_id, "Bravo zone", "t", 1_002)
    path, token = "/api/admin/audit", hub.a.admin_token
    entries = await walks(hub, token, path, "entries")
    held = store.audit_entries(hub.a.id)
    assert [e["id"] for e in entries] == [e["id"] for e in reversed(held)]  # newest first
    assert entries[0]["detail"] == json.loads(held[-1]["detail_json"])
    b_ids = {e["id"] for e in store.audit_entries(hub.b.id)}
    assert b_ids and not b_ids & {e["id"] for e in entries}
    # filters: action, target, since (at or after) and until (before)
    made = await walks(hub, token, path, "entries", action="zone.create")
    assert [e["id"] for e in made] == [e["id"] for e in entries if e["action"] == "zone.create"]
    assert len(made) == 2 + 5 + 1  # GA and VIP of the fixture, and the ones made here
    one = await walks(hub, token, path, "entries", target=zones[2]["id"])
    assert [(e["action"], e["at_ms"]) for e in one] == [("zone.create", 1_002)]
    window = await walks(hub, token, path, "entries", since=1_001, until=1_004)
    assert [e["target"] for e in window] == [z["id"] for z in reversed(zones[1:4])]
    assert (
        await walks(hub, token, path, "entries", action="zone.create", since=1_004, until=1_004)
        == []
    )
    # a venue-scoped token reads its venue's entries only
    scoped = await walks(hub, annex_token, path, "entries")
    assert scoped and {e["venue_id"] for e in scoped} == {annex}
    assert [e["id"] for e in scoped] == [e["id"] for e in entries if e["venue_id"] == annex]
    # entries written between two pages are newer: not on later pages, nothing twice
    first = await get(hub, token, path, limit=3)
    store.create_zone(hub.a.id, hub.a.venue_id, "Later", "t", hub.clock())
    rest = await walk(hub, token, path, "entries", 2, cursor=first["next_cursor"])
    assert [e["id"] for e in first["entries"] + rest] == [e["id"] for e in entries]
    newest = (await get(hub, token, path, limit=1))["entries"][0]
    assert newest["id"] > entries[0]["id"] and newest["action"] == "zone.create"


async def test_bad_limits_cursors_and_filters_are_refused_by_code(hub: Hub) -> None:
    second_venue(hub)
    add_show(hub, hub.a)  # gates North and South, an event and its tickets
    add_event(hub, hub.a, hub.a.venue_id, "Show 2", hub.clock())
    for name in ("Gate 1", "Gate 2"):
        add_device(hub, hub.a, hub.a.venue_id, name)
    listings = paths(hub)
    cursors = {}
    for key, path in listings.items():
        for limit in ("0", "501", "-1", "ten", "1.5", "007", "", "9" * 5000):
            error = await refused(hub, path, limit=limit)
            assert error["code"] == "invalid_limit" and "1 to 500" in error["message"], (
                path,
                limit,
            )
        for cursor in ("x", "", "v1", "t1.", "t1.abc", "e1.zz.00.00", "a1.1.2"):
            error = await refused(hub, path, cursor=cursor)
            assert error["code"] == "invalid_cursor", (path, cursor)
            assert "next_cursor" in error["message"]
        error = await refused(hub, path, page="2")
        assert error["code"] == "invalid_query" and "limit, cursor" in error["message"], path
        resp = await hub.client.get(f"{path}?limit=1&limit=2", headers=hub.auth(hub.a.admin_token))
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_query"
        cursors[key] = (await get(hub, hub.a.admin_token, path, limit=1))["next_cursor"]
        assert cursors[key] is not None, key  # each listing holds 2 or more rows
    # a cursor of one listing is no position in another
    for key, path in listings.items():
        for other, cursor in cursors.items():
            if other != key:
                assert (await refused(hub, path, cursor=cursor))["code"] == "invalid_cursor"
    audit = listings["entries"]
    for name, value in (("since", "-1"), ("until", "x"), ("since", "1e3"), ("until", "9" * 16)):
        error = await refused(hub, audit, **{name: value})
        assert error["code"] == "invalid_query" and name in error["message"], (name, value)
    for name in ("action", "target"):
        error = await refused(hub, audit, **{name: "x" * 201})
        assert error["code"] == "invalid_query" and "200" in error["message"]
    assert await walk(hub, hub.a.admin_token, audit, "entries", 5, target="x" * 200) == []


async def test_the_document_describes_each_listings_page(hub: Hub) -> None:
    """/openapi.json names limit and cursor for every listing; the cursors the listings
    answer are of its pattern, one listing's not of another's."""
    doc = (await hub.client.get("/openapi.json")).json()
    second_venue(hub)
    add_event(hub, hub.a, hub.a.venue_id, "Show", hub.clock())
    add_event(hub, hub.a, hub.a.venue_id, "Show 2", hub.clock())
    for n in range(2):
        add_device(hub, hub.a, hub.a.venue_id, f"Gate {n}")
        hub.store.create_gate(
            hub.a.id, NewGate(hub.a.venue_id, f"G{n}", "entry", []), "t", hub.clock()
        )
    template = {
        "zones": "/api/admin/venues/{venue_id}/zones",
        "gates": "/api/admin/venues/{venue_id}/gates",
    }
    patterns = {}
    for key, path in paths(hub).items():
        if key == "tickets":
            continue
        op = doc["paths"][template.get(key, path)]["get"]
        params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
        patterns[key] = params["cursor"]["schema"]["pattern"]
        answer = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["required"] == [key, "next_cursor"], key
        cursor = (await get(hub, hub.a.admin_token, path, limit=1))["next_cursor"]
        assert re.fullmatch(patterns[key], cursor), (key, cursor)
    assert len(set(patterns.values())) == len(LISTINGS)
    audit = doc["paths"]["/api/admin/audit"]["get"]["parameters"]
    assert {p["name"] for p in audit} == {"action", "target", "since", "until", "limit", "cursor"}


def test_the_scope_is_a_condition_of_each_listings_query(hub: Hub) -> None:
    """Asked for tenant a's venue as tenant b (or as another venue's scope), the store reads
    nothing, though the routes refuse such a venue before they ask."""
    store, a_venue = hub.store, hub.a.venue_id
    annex, _ = second_venue(hub)
    add_device(hub, hub.a, a_venue, "Gate")
    add_event(hub, hub.a, a_venue, "Show", hub.clock())
    store.create_gate(hub.a.id, NewGate(a_venue, "North", "entry", []), "t", hub.clock())
    ask = PageAsk(limit=MAX_PAGE)
    pages = {
        "venues": lambda tenant, scope: store.venue_page(tenant, scope, ask),
        "zones": lambda tenant, scope: store.zone_page(tenant, scope, a_venue, ask),
        "gates": lambda tenant, scope: store.gate_page(tenant, scope, a_venue, ask),
        "devices": lambda tenant, scope: store.device_page(
            tenant, scope, DeviceQuery(a_venue), ask
        ),
        "events": lambda tenant, scope: store.event_page(tenant, scope, a_venue, ask),
        "entries": lambda tenant, scope: store.audit_page(tenant, scope, AuditQuery(), ask),
    }
    for key, page in pages.items():
        assert page(hub.a.id, None).rows, key  # tenant a reads them
        assert page(hub.a.id, a_venue).rows, key  # and so does its venue's scope
        assert page(hub.b.id, None).rows == [] or key in ("venues", "entries"), key
        assert {r["id"] for r in page(hub.b.id, None).rows}.isdisjoint(
            {r["id"] for r in page(hub.a.id, None).rows}
        ), key
        assert all(r.get("venue_id", r["id"]) == annex for r in page(hub.a.id, annex).rows), key
