"""Will-call (hub/will_call.py, hub/store_will_call.py, the importer's will_call column): an
order held under a name, its ID check and release through the admin API against the real
hub, the codes a release hands over working at a gate, and every change audited without the
name; scoping, roles and refusals that change nothing."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from hub.importer import CatalogueError, import_files
from hub.storage import HubStore
from hub.store_api import WillCallStep
from manifests.model import TicketStatus
from tests.device_api import online_check
from tests.hub_fixtures import Hub, Show, Tenant, add_show, credential_text, enroll
from tests.will_call_support import make_order, verified

NAME = "Zoë Ångström"
ORDER = "ORD/7 b"  # a space and a slash: the path carries it percent-encoded


def path(show: Show, order_ref: str | None = None, tail: str = "") -> str:
    base = f"/api/admin/events/{show.event_id}/will-call"
    if order_ref is None:
        return base
    return f"{base}/{quote(order_ref, safe='')}{tail}"


async def call(
    hub: Hub, method: str, url: str, token: str, body: dict[str, Any] | None = None
) -> Any:
    return await hub.client.request(method, url, json=body, headers=hub.auth(token))


def audit(hub: Hub, tenant: Tenant) -> list[dict[str, Any]]:
    return [e for e in hub.store.audit_entries(tenant.id) if e["action"].startswith("will_call.")]


async def held_order(hub: Hub, n_tickets: int = 4) -> Show:
    """A show whose first three tickets are order ORDER, the third refunded, held under NAME."""
    show = add_show(hub, hub.a, n_tickets=n_tickets)
    make_order(hub, hub.a, show.tickets[:3], ORDER)
    (refunded,) = hub.store.get_tickets([show.tickets[2]], hub.a.id).values()
    hub.store.withdraw_tickets([refunded], hub.a.id, TicketStatus.REFUNDED, "", "t", hub.clock())
    resp = await call(
        hub, "POST", path(show), hub.a.box_office_token, {"order_ref": ORDER, "name": NAME}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["ticket_count"] == 2  # the refunded one is not handed over
    return show


async def test_release_after_the_id_check_hands_over_working_codes(hub: Hub) -> None:
    show = await held_order(hub)
    token = hub.a.box_office_token
    early = await call(hub, "POST", path(show, ORDER, "/release"), token, {})
    assert early.status_code == 409 and early.json()["error"]["code"] == "id_not_checked"
    listed = (await call(hub, "GET", path(show), token)).json()["will_call"]
    assert [h["picked_up"] for h in listed] == [False]  # the refusal changed nothing

    checked = await call(hub, "POST", path(show, ORDER, "/id-check"), token)
    assert checked.status_code == 200 and checked.json()["id_checked"] is True
    released = await call(hub, "POST", path(show, ORDER, "/release"), token, {})
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["will_call"]["picked_up"] and body["will_call"]["releases"] == 1
    assert body["will_call"]["released_by"] == body["will_call"]["id_checked_by"]
    handed = {t["id"]: t["credential"] for t in body["tickets"]}
    assert set(handed) == set(show.tickets[:2])  # not the refunded third, not the fourth
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    for ticket_id, code in handed.items():
        assert code == await credential_text(hub, ticket_id)  # the hub's one code for it
        credential = await verified(hub, show, code)
        assert credential.ticket_id == ticket_id
    first = next(t for t in body["tickets"] if t["zone"] == "GA")
    answer = await online_check(device, show.event_id, first["credential"])
    assert answer["verdict"] == "admit", answer


async def test_a_second_release_says_who_picked_it_up_and_needs_a_reprint(hub: Hub) -> None:
    show = await held_order(hub)
    token = hub.a.box_office_token
    await call(hub, "POST", path(show, ORDER, "/id-check"), token)
    first = (await call(hub, "POST", path(show, ORDER, "/release"), token, {})).json()
    again = await call(hub, "POST", path(show, ORDER, "/release"), hub.a.manager_token, {})
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "already_picked_up"
    assert first["will_call"]["released_by"] in error["message"] and "Z by" in error["message"]
    # A reprint needs its own ID check, made after the first hand-over.
    no_check = await call(
        hub, "POST", path(show, ORDER, "/release"), hub.a.manager_token, {"reprint": True}
    )
    assert no_check.json()["error"]["code"] == "id_not_checked"
    bad = await call(hub, "POST", path(show, ORDER, "/release"), token, {"reprint": "yes"})
    assert bad.status_code == 400
    await call(hub, "POST", path(show, ORDER, "/id-check"), hub.a.manager_token)
    reprint = await call(
        hub, "POST", path(show, ORDER, "/release"), hub.a.manager_token, {"reprint": True}
    )
    assert reprint.status_code == 200 and reprint.json()["will_call"]["releases"] == 2
    # Picked up: the hold can be neither renamed nor dropped.
    renamed = await call(hub, "POST", path(show), token, {"order_ref": ORDER, "name": "Someone"})
    dropped = await call(hub, "DELETE", path(show, ORDER), token)
    assert [renamed.json()["error"]["code"], dropped.json()["error"]["code"]] == [
        "already_picked_up"
    ] * 2
    entries = audit(hub, hub.a)
    assert [e["action"] for e in entries] == [
        "will_call.hold",
        "will_call.id_check",
        "will_call.release",
        "will_call.id_check",
        "will_call.reprint",
    ]
    assert all(e["target"] == ORDER for e in entries)
    assert {json.loads(e["detail_json"])["event_id"] for e in entries} == {show.event_id}
    assert {e["actor"] for e in entries[3:]} != {entries[0]["actor"]}  # the manager's turn
    reprinted = json.loads(entries[-1]["detail_json"])
    assert reprinted["previous"]["at_ms"] == first["will_call"]["released_ms"]
    assert not any(NAME in e["detail_json"] for e in entries)  # names stay out of the log


async def test_hold_rename_drop_and_the_list_by_name(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=4)
    token = hub.a.manager_token
    for ticket_id, (ref, name) in zip(
        show.tickets,
        [("A-1", "zed"), ("A-2", "Ágnes"), ("A-3", "bob"), ("A-4", "Bea")],
        strict=True,
    ):
        make_order(hub, hub.a, [ticket_id], ref)
        resp = await call(hub, "POST", path(show), token, {"order_ref": ref, "name": name})
        assert resp.status_code == 200, resp.text
    listed = (await call(hub, "GET", path(show), hub.a.staff_token)).json()["will_call"]
    assert [h["name"] for h in listed] == ["Ágnes", "Bea", "bob", "zed"]
    # A rename voids an ID check made against the old name.
    await call(hub, "POST", path(show, "A-1", "/id-check"), token)
    renamed = await call(hub, "POST", path(show), token, {"order_ref": "A-1", "name": "Zed Z"})
    assert renamed.json()["name"] == "Zed Z" and renamed.json()["id_checked"] is False
    one = (await call(hub, "GET", path(show, "A-1"), token)).json()
    assert [t["id"] for t in one["tickets"]] == [show.tickets[0]]
    dropped = await call(hub, "DELETE", path(show, "A-2"), token)
    assert dropped.json() == {"removed": "A-2"}
    assert (await call(hub, "GET", path(show, "A-2"), token)).status_code == 404
    unknown = await call(hub, "POST", path(show), token, {"order_ref": "NOPE", "name": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "order_not_found"
    actions = [e["action"] for e in audit(hub, hub.a)]
    assert actions.count("will_call.hold") == 5 and actions[-1] == "will_call.drop"


async def test_other_tenants_and_lower_roles_are_refused(hub: Hub) -> None:
    show = await held_order(hub)
    other = hub.b.manager_token
    for method, url in [
        ("GET", path(show)),
        ("GET", path(show, ORDER)),
        ("POST", path(show, ORDER, "/id-check")),
        ("DELETE", path(show, ORDER)),
    ]:
        resp = await call(hub, method, url, other)
        assert resp.status_code == 404, (method, url)
    staff = hub.a.staff_token  # venue staff read the list but change nothing
    assert (await call(hub, "GET", path(show), staff)).status_code == 200
    for method, url, body in [
        ("POST", path(show), {"order_ref": ORDER, "name": "x"}),
        ("POST", path(show, ORDER, "/id-check"), None),
        ("POST", path(show, ORDER, "/release"), {}),
        ("DELETE", path(show, ORDER), None),
    ]:
        resp = await call(hub, method, url, staff, body)
        assert resp.status_code == 403, (method, url)
    assert [e["action"] for e in audit(hub, hub.a)] == ["will_call.hold"]


async def test_box_office_search_by_reference_or_name(hub: Hub) -> None:
    show = await held_order(hub)
    other_show = await held_order_of(hub, hub.b)
    store = hub.store
    found = store.find_will_calls(hub.a.id, hub.a.venue_id, hub.a.venue_id, ORDER.lower())
    assert [h["order_ref"] for h in found] == [ORDER]
    by_name = store.find_will_calls(hub.a.id, None, hub.a.venue_id, "ÅNGSTR")
    assert [(h["name"], h["event_name"]) for h in by_name] == [(NAME, "Show")]
    assert store.find_will_calls(hub.a.id, None, hub.a.venue_id, "zoë") == by_name
    assert store.find_will_calls(hub.a.id, None, hub.a.venue_id, "%") == []
    # Tenant b's order of the same reference and name is not found from tenant a.
    assert other_show.event_id != show.event_id
    assert store.find_will_calls(hub.a.id, None, hub.b.venue_id, ORDER) == []


async def held_order_of(hub: Hub, tenant: Tenant) -> Show:
    show = add_show(hub, tenant, n_tickets=1)
    make_order(hub, tenant, show.tickets, ORDER)
    event = hub.store.get_event(show.event_id, tenant.id)
    assert event is not None
    held = hub.store.hold_will_call(WillCallStep(event, tenant.id, ORDER, "t", hub.clock()), NAME)
    assert isinstance(held, dict)
    return show


# the import's will_call column ---------------------------------------------------------------
def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    return path


@pytest.fixture
def imported(tmp_path: Path) -> tuple[HubStore, str, Path]:
    store = HubStore(tmp_path / "hub.sqlite")
    tenant = store.create_tenant("alpha", 0)
    venue = store.create_venue(tenant["id"], "Park", "UTC", "t", 0)
    write_csv(
        tmp_path / "events.csv",
        [
            ["event_id", "venue_id", "name", "timezone", "start", "end"],
            ["ev-1", venue["id"], "Fest", "UTC", "2027-07-01T16:00", "2027-07-01T23:00"],
        ],
    )
    return store, tenant["id"], tmp_path


TIDS = [str(uuid.UUID(int=0xB0 + n)) for n in range(4)]
HEADER = ["ticket_id", "event_id", "order_ref", "will_call"]


def import_tickets(store: HubStore, tenant_id: str, d: Path, rows: list[list[str]]) -> str:
    tickets = write_csv(d / "tickets.csv", [HEADER, *rows])
    catalogue = import_files(store, tenant_id, [d / "events.csv", tickets], "test", 1000)
    return catalogue.summary()


def test_the_import_holds_orders_under_their_will_call_name(
    imported: tuple[HubStore, str, Path],
) -> None:
    store, tenant_id, d = imported
    rows = [
        [TIDS[0], "ev-1", "O-1", "Ada Okafor"],
        [TIDS[1], "ev-1", "O-1", "Ada Okafor"],
        [TIDS[2], "ev-1", "O-2", ""],
        [TIDS[3], "ev-1", "O-3", "Ben Rossi"],
    ]
    summary = import_tickets(store, tenant_id, d, rows)
    assert "2 will-call orders (2 held or renamed, 0 unchanged)" in summary
    holds = store.will_call_list("ev-1")
    assert [(h["order_ref"], h["name"], h["tickets"]) for h in holds] == [
        ("O-1", "Ada Okafor", 2),
        ("O-3", "Ben Rossi", 1),
    ]
    again = import_tickets(store, tenant_id, d, rows)
    assert "2 will-call orders (0 held or renamed, 2 unchanged)" in again
    audited = [e for e in store.audit_entries(tenant_id) if e["action"] == "will_call.hold"]
    assert len(audited) == 2 and all('"source": "import"' in e["detail_json"] for e in audited)
    assert not any("Okafor" in e["detail_json"] for e in audited)


def test_the_import_refuses_a_will_call_it_cannot_keep_and_lands_nothing(
    imported: tuple[HubStore, str, Path],
) -> None:
    store, tenant_id, d = imported
    import_tickets(store, tenant_id, d, [[TIDS[0], "ev-1", "O-1", "Ada"]])
    event = store.get_event("ev-1", tenant_id)
    assert event is not None
    step = WillCallStep(event, tenant_id, "O-1", "t", 2000)
    store.check_will_call_id(step)
    store.release_will_call(step)
    bad = [
        [TIDS[0], "ev-1", "O-1", "Someone Else"],  # O-1 was picked up under Ada
        [TIDS[1], "ev-1", "O-2", "Ben"],
        [TIDS[2], "ev-1", "O-2", "Benjamin"],  # one order, two names
        [TIDS[3], "ev-1", "", "Cy"],  # no order to hold
    ]
    with pytest.raises(CatalogueError) as refused:
        import_tickets(store, tenant_id, d, bad)
    problems = str(refused.value)
    assert "already picked up from will-call under 'Ada'" in problems
    assert "order O-2 is held under 'Ben' on line 3" in problems
    assert "this row has no order_ref" in problems
    assert [h["order_ref"] for h in store.will_call_list("ev-1")] == ["O-1"]
    assert store.get_tickets(TIDS[1:], tenant_id) == {}  # nothing of the file landed
