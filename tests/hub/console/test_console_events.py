"""The console's event pages against the real hub: the chosen venue's events, one event's
ticket types and counts with its comps against the limit, scoped by tenant and venue; and the
store reads behind them (hub/store_console_reports.py)."""

from __future__ import annotations

import re
import uuid

from hub.store_api import CatalogueImport, NewComp
from hub.store_search import TicketQuery
from manifests.model import TicketStatus
from manifests.policy import HOUR_MS
from tests.console_session import sign_in
from tests.hub_fixtures import Hub, add_show


def add_typed_event(hub: Hub, name: str = "Gala", comp_limit: int | None = 3) -> str:
    """An event of tenant a with two ticket types and tickets of each (one of no type); its
    id. Statuses: 3 VIP (one locked, one cancelled), 2 GA, 1 of no type."""
    store, now = hub.store, hub.clock()
    event_id = str(uuid.uuid4())
    vip, ga = str(uuid.uuid4()), str(uuid.uuid4())
    tickets = [
        {"id": str(uuid.uuid4()), "event_id": event_id, "ticket_type_id": vip, "status": s}
        for s in ("ACTIVE", "ACTIVE", "CANCELLED")
    ]
    tickets += [
        {"id": str(uuid.uuid4()), "event_id": event_id, "ticket_type_id": ga, "status": "ACTIVE"}
        for _ in range(2)
    ]
    tickets.append({"id": str(uuid.uuid4()), "event_id": event_id, "status": "SOLD"})
    store.import_catalogue(
        hub.a.id,
        CatalogueImport(
            events=[
                {
                    "id": event_id,
                    "venue_id": hub.a.venue_id,
                    "code": int(uuid.uuid4().int % 2**31),
                    "name": name,
                    "timezone": "Europe/Berlin",
                    "start_ms": now + HOUR_MS,
                    "end_ms": now + 4 * HOUR_MS,
                    "comp_limit": comp_limit,
                }
            ],
            ticket_types=[
                {"id": vip, "event_id": event_id, "code": 1, "name": "VIP", "zone": "VIP"},
                {"id": ga, "event_id": event_id, "code": 2, "name": "Standing", "zone": "GA"},
            ],
            tickets=tickets,
        ),
        "test",
        now,
    )
    locked = store.get_ticket(tickets[0]["id"], hub.a.id)
    assert locked is not None
    store.set_locks([locked], hub.a.id, "dispute", "test", now)
    return event_id


def table_rows(html: str) -> list[list[str]]:
    """Each body row of the page's tables as its cells' text."""
    rows = []
    for body in re.findall(r"<tbody>(.*?)</tbody>", html, re.S):
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            rows.append([" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells])
    return rows


async def test_events_lists_the_chosen_venues_events_only(hub: Hub) -> None:
    mine = add_show(hub, hub.a)
    theirs = add_show(hub, hub.b)
    gala = add_typed_event(hub)
    staff = await sign_in(hub, "a", "venue_staff")
    page = await staff.get("/events")
    assert page.status_code == 200
    assert f"/events/{mine.event_id}" in page.text and f"/events/{gala}" in page.text
    assert f"/events/{theirs.event_id}" not in page.text
    # a second venue of the tenant: an admin sees its events when choosing it, not before
    second = hub.store.create_venue(hub.a.id, "Second Hall", "UTC", "test", hub.clock())
    admin = await sign_in(hub, "a", "admin")
    assert f"/events/{gala}" in (await admin.get(f"/events?venue={hub.a.venue_id}")).text
    other = await admin.get(f"/events?venue={second['id']}")
    assert f"/events/{gala}" not in other.text and "No events at this venue yet" in other.text
    stranger = await sign_in(hub, "b", "venue_manager")
    assert f"/events/{gala}" not in (await stranger.get("/events")).text


async def test_an_event_shows_its_types_counts_comps_and_links(hub: Hub) -> None:
    gala = add_typed_event(hub, comp_limit=3)
    event = hub.store.get_event(gala, hub.a.id)
    assert event is not None
    hub.store.issue_comp(
        event, hub.a.id, NewComp("press_pass", "Nellie Bly"), "user:someone", hub.clock()
    )
    box = await sign_in(hub, "a", "box_office")
    page = await box.get(f"/events/{gala}")
    assert page.status_code == 200
    text = page.text
    assert "1 issued of 3 allowed" in text
    rows = table_rows(text)
    assert ["VIP", "1", "VIP"] in rows and ["Standing", "2", "GA"] in rows
    # by type and status: count, locked, comps (a word beside every status colour)
    assert ["No type", "✔ Active", "1", "0", "1"] in rows
    assert ["No type", "✔ Sold", "1", "0", "0"] in rows
    assert ["VIP", "✔ Active", "2", "1", "0"] in rows
    assert ["VIP", "✖ Cancelled", "1", "0", "0"] in rows
    assert ["Standing", "✔ Active", "2", "0", "0"] in rows
    for link in (
        f"/tickets?event={gala}",
        f"/events/{gala}/comps",
        f"/events/{gala}/will-call",
        f"/conflicts?event={gala}",
    ):
        assert f'href="{link}"' in text, link
    staff = await sign_in(hub, "a", "venue_staff")  # may read the list (ticket.read), so sees it
    assert f'href="/events/{gala}/will-call"' in (await staff.get(f"/events/{gala}")).text
    assert (await staff.get(f"/events/{gala}/will-call")).status_code == 200


async def test_another_tenants_event_is_not_found(hub: Hub) -> None:
    theirs = add_show(hub, hub.b)
    manager = await sign_in(hub, "a", "venue_manager")
    for path in (f"/events/{theirs.event_id}", "/events/no-such-event"):
        page = await manager.get(path)
        assert page.status_code == 404 and "There is no such event." in page.text
    # a stranger without a session is sent to sign in
    answer = await hub.client.get(f"/events/{theirs.event_id}", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in")


def test_store_counts_tickets_by_type_and_status_and_comps_by_reason_and_issuer(
    hub: Hub,
) -> None:
    gala = add_typed_event(hub, comp_limit=None)
    event = hub.store.get_event(gala, hub.a.id)
    assert event is not None
    for reason, actor in (("staff", "user:ann"), ("staff", "user:ann"), ("vip_guest", "user:bo")):
        hub.store.issue_comp(event, hub.a.id, NewComp(reason, "X"), actor, hub.clock())
    counts = {(r["ticket_type"], r["status"]): r for r in hub.store.event_ticket_counts(gala)}
    assert {k: (r["tickets"], r["locked"], r["comps"]) for k, r in counts.items()} == {
        (None, "ACTIVE"): (3, 0, 3),
        (None, "SOLD"): (1, 0, 0),
        ("Standing", "ACTIVE"): (2, 0, 0),
        ("VIP", "ACTIVE"): (2, 1, 0),
        ("VIP", "CANCELLED"): (1, 0, 0),
    }
    comps = hub.store.comp_counts(gala)
    assert [(r["reason"], r["issuer"], r["comps"], r["admitting"]) for r in comps] == [
        ("staff", "user:ann", 2, 2),
        ("vip_guest", "user:bo", 1, 1),
    ]
    tickets = hub.store.search_tickets(hub.a.id, None, TicketQuery(event_id=gala)).tickets
    bos = next(t for t in tickets if t["comp_issuer"] == "user:bo")
    hub.store.withdraw_tickets([bos], hub.a.id, TicketStatus.CANCELLED, "", "t", hub.clock())
    after = {r["reason"]: (r["comps"], r["admitting"]) for r in hub.store.comp_counts(gala)}
    assert after == {"staff": (2, 2), "vip_guest": (1, 0)}  # still counts against a limit
