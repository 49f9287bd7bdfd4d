"""Listing and search in the admin API (issue 13): GET /api/admin/events and
GET /api/admin/tickets through the real hub, scoped by the token's tenant and venue."""

from __future__ import annotations

import uuid
from typing import Any

from hub.store_api import CatalogueImport
from hub.store_search import MAX_PAGE, STATUSES
from tests.hub_fixtures import Hub, Show, add_show


async def get(hub: Hub, token: str, path: str, **query: Any) -> Any:
    resp = await hub.client.get(path, params=query, headers=hub.auth(token))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def ticket_ids(hub: Hub, token: str, **query: Any) -> list[str]:
    body = await get(hub, token, "/api/admin/tickets", **query)
    return [t["id"] for t in body["tickets"]]


async def refused(hub: Hub, path: str, **query: Any) -> dict[str, str]:
    resp = await hub.client.get(path, params=query, headers=hub.auth(hub.a.admin_token))
    assert resp.status_code == 400, resp.text
    error: dict[str, str] = resp.json()["error"]
    return error


def second_venue(hub: Hub) -> tuple[str, str]:
    """Tenant a's second venue and a token scoped to it."""
    store, now = hub.store, hub.clock()
    venue = store.create_venue(hub.a.id, "Annex", "UTC", "t", now)
    _, token = store.create_token(hub.a.id, venue["id"], "venue_manager", "", now)
    return venue["id"], token


def annex_show(hub: Hub, venue_id: str) -> str:
    """An event at the second venue, starting after add_show's, with one ticket: its id."""
    event_id, ticket_id, now = str(uuid.uuid4()), str(uuid.uuid4()), hub.clock()
    event = {"id": event_id, "venue_id": venue_id, "code": 4242, "name": "Annex night"}
    hub.store.import_catalogue(
        hub.a.id,
        CatalogueImport(
            events=[{**event, "timezone": "UTC", "start_ms": now, "end_ms": now + 1}],
            tickets=[{"id": ticket_id, "event_id": event_id, "status": "ACTIVE"}],
        ),
        "t",
        now,
    )
    return ticket_id


def set_fields(hub: Hub, ticket_id: str, **columns: Any) -> None:
    hub.store.db["tickets"].update(ticket_id, columns)


async def test_events_are_listed_per_tenant_and_venue(hub: Hub) -> None:
    show_a, show_b = add_show(hub, hub.a), add_show(hub, hub.b)
    annex, annex_token = second_venue(hub)
    annex_show(hub, annex)
    listed = (await get(hub, hub.a.admin_token, "/api/admin/events"))["events"]
    assert [e["name"] for e in listed] == ["Show", "Annex night"]  # by start time
    assert listed[0]["id"] == show_a.event_id and listed[0]["ticket_types"] == []
    assert show_b.event_id not in {e["id"] for e in listed}
    b_listed = (await get(hub, hub.b.staff_token, "/api/admin/events"))["events"]
    assert [e["id"] for e in b_listed] == [show_b.event_id]
    # a venue-scoped token sees its venue's events only; ?venue_id= narrows an admin's
    scoped = (await get(hub, annex_token, "/api/admin/events"))["events"]
    assert [e["name"] for e in scoped] == ["Annex night"]
    narrowed = await get(hub, hub.a.admin_token, "/api/admin/events", venue_id=annex)
    assert [e["name"] for e in narrowed["events"]] == ["Annex night"]
    # another tenant's venue, or a venue outside the token's scope, is not found
    for token, venue in ((hub.b.admin_token, annex), (annex_token, hub.a.venue_id)):
        resp = await hub.client.get(
            "/api/admin/events", params={"venue_id": venue}, headers=hub.auth(token)
        )
        assert resp.status_code == 404, resp.text


async def test_tickets_are_scoped_by_tenant_and_venue_inside_the_query(hub: Hub) -> None:
    show_a, show_b = add_show(hub, hub.a), add_show(hub, hub.b)
    annex, annex_token = second_venue(hub)
    annex_ticket = annex_show(hub, annex)
    everything = {"limit": MAX_PAGE}
    assert set(await ticket_ids(hub, hub.a.admin_token, **everything)) == {
        *show_a.tickets,
        annex_ticket,
    }
    assert set(await ticket_ids(hub, hub.b.admin_token, **everything)) == set(show_b.tickets)
    # tenant b cannot find a's ticket even by its exact id, nor page into a's event
    assert await ticket_ids(hub, hub.b.admin_token, search=show_a.tickets[0]) == []
    resp = await hub.client.get(
        "/api/admin/tickets",
        params={"event_id": show_a.event_id},
        headers=hub.auth(hub.b.admin_token),
    )
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    # a venue-scoped token sees its venue only, whatever it searches for
    assert await ticket_ids(hub, hub.a.manager_token, **everything) == sorted(show_a.tickets)
    assert await ticket_ids(hub, annex_token, **everything) == [annex_ticket]
    assert await ticket_ids(hub, annex_token, search=show_a.tickets[0]) == []
    # an admin narrows to a venue
    assert await ticket_ids(hub, hub.a.admin_token, venue_id=annex) == [annex_ticket]


async def test_search_by_id_order_ref_holder_name_and_status(hub: Hub) -> None:
    show: Show = add_show(hub, hub.a)
    first, second, third = show.tickets[:3]
    set_fields(hub, first, holder_name="Zoë Müller", order_ref="ORD-77")
    set_fields(hub, second, holder_name="Ann O'Brien_x", order_ref="ORD-770")
    set_fields(hub, third, holder_name="Percy 100%", status="USED")
    token = hub.a.box_office_token
    assert await ticket_ids(hub, token, search=second) == [second]  # by id
    assert await ticket_ids(hub, token, search="ord-77") == [first]  # whole order ref, any case
    assert await ticket_ids(hub, token, search="MÜLLER") == [first]  # name part, beyond ASCII
    assert await ticket_ids(hub, token, search="  o'brien ") == [second]  # trimmed, any case
    assert await ticket_ids(hub, token, search="n_X") == [second]  # _ is a character, not any
    assert await ticket_ids(hub, token, search="y 1") == [third]
    assert await ticket_ids(hub, token, search="%") == [third]  # % too
    assert await ticket_ids(hub, token, search="nobody") == []
    for spelled in ("used", "Used", "USED"):
        assert await ticket_ids(hub, token, status=spelled) == [third]
    active = await ticket_ids(hub, token, status="active")
    assert sorted(active) == sorted(set(show.tickets) - {third})
    assert await ticket_ids(hub, token, search="percy", status="active") == []
    assert await ticket_ids(hub, token, event_id=show.event_id, search="ORD-770") == [second]
    body = await get(hub, token, "/api/admin/tickets", search="ORD-77")
    assert body["next_cursor"] is None
    assert body["tickets"][0]["holder_name"] == "Zoë Müller"
    assert body["tickets"][0]["order_ref"] == "ORD-77"


async def test_pages_cover_every_ticket_once_in_order(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=23)
    add_show(hub, hub.b, n_tickets=5)
    for query in ({}, {"search": "guest"}, {"status": "ACTIVE"}):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page_query = {**query, "limit": 5, **({"cursor": cursor} if cursor else {})}
            body = await get(hub, hub.a.admin_token, "/api/admin/tickets", **page_query)
            assert len(body["tickets"]) <= 5
            seen += [t["id"] for t in body["tickets"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        expected = sorted(t for t in show.tickets if "search" not in query or t in show.holders)
        assert seen == expected, query  # no duplicate, no gap, in id order
        assert pages == -(-len(expected) // 5), query
    # tickets added between two pages: none listed twice, none of the first ones skipped
    first = await get(hub, hub.a.admin_token, "/api/admin/tickets", limit=10)
    early, late = "0" * 8 + show.tickets[0][8:], "f" * 8 + show.tickets[0][8:]
    hub.store.import_catalogue(
        hub.a.id,
        CatalogueImport(
            tickets=[
                {"id": i, "event_id": show.event_id, "status": "ACTIVE"} for i in (early, late)
            ]
        ),
        "t",
        hub.clock(),
    )
    rest = await ticket_ids(hub, hub.a.admin_token, cursor=first["next_cursor"])
    listed = [t["id"] for t in first["tickets"]] + rest
    assert listed == sorted({*show.tickets, late})  # `early` sorts before the cursor


async def test_bad_query_parameters_get_a_400_with_a_code_and_the_allowed_values(
    hub: Hub,
) -> None:
    add_show(hub, hub.a)
    path = "/api/admin/tickets"
    error = await refused(hub, path, status="gone")
    assert error["code"] == "invalid_status"
    assert all(s in error["message"] for s in STATUSES)
    for limit in ("0", "501", "-1", "ten", "1.5", "007", "9" * 5000):
        error = await refused(hub, path, limit=limit)
        assert error["code"] == "invalid_limit", limit
        assert "1 to 500" in error["message"]
    for cursor in ("x", "t1.", "t1.abc", "t1.ZZ"):
        assert (await refused(hub, path, cursor=cursor))["code"] == "invalid_cursor", cursor
    assert (await refused(hub, path, search="x" * 201))["code"] == "invalid_query"
    error = await refused(hub, path, q="guest")
    assert error["code"] == "invalid_query" and "search" in error["message"]
    resp = await hub.client.get(
        f"{path}?status=used&status=active", headers=hub.auth(hub.a.admin_token)
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_query"
    assert (await refused(hub, "/api/admin/events", event="x"))["code"] == "invalid_query"
    # every role may read; no token, no listing
    resp = await hub.client.get(path)
    assert resp.status_code == 401


async def test_search_finds_a_ticket_by_its_external_id_whole_in_any_case(hub: Hub) -> None:
    show, other = add_show(hub, hub.a), add_show(hub, hub.b)
    set_fields(hub, show.tickets[1], external_id="A-1001")
    set_fields(hub, other.tickets[1], external_id="A-1001")
    body = await get(hub, hub.a.staff_token, "/api/admin/tickets", search="a-1001")
    assert [(t["id"], t["external_id"]) for t in body["tickets"]] == [(show.tickets[1], "A-1001")]
    assert await ticket_ids(hub, hub.a.staff_token, search="A-100") == []  # whole, not a part
    assert await ticket_ids(hub, hub.b.staff_token, search="A-1001") == [other.tickets[1]]
    # /openapi.json documents the field, as every other one a ticket has
    doc = (await hub.client.get("/openapi.json")).json()
    answer = doc["paths"]["/api/admin/tickets/{ticket_id}"]["get"]["responses"]["200"]
    assert set(answer["content"]["application/json"]["schema"]["properties"]) == set(
        body["tickets"][0]
    )
