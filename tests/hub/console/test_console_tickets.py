"""The console's ticket pages against the real hub: search, a ticket's scans across gates,
every action its role allows (checked in the database and the audit log, exactly as the admin
API audits it), bulk lock from a pasted list; lower roles, other tenants' ids and posts
without the CSRF token refused with nothing changed."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from manifests.model import TicketStatus
from tests.browser import screenshot, sign_in_page, sized
from tests.console_session import PASSWORD, ConsoleClient, make_user, sign_in
from tests.device_api import upload
from tests.hub_fixtures import Hub, add_show, credential_text, enroll

LOCK = "fraud_investigation"


def ticket_row(hub: Hub, ticket_id: str) -> dict[str, Any]:
    row = hub.store.get_ticket(ticket_id, hub.a.id)
    assert row is not None
    return row


def audit_of(hub: Hub, ticket_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(actor, action, detail) of every audit entry about the ticket, oldest first."""
    return [
        (e["actor"], e["action"], json.loads(e["detail_json"]))
        for e in hub.store.audit_entries(hub.a.id)
        if e["target"] == ticket_id
    ]


def snapshot(hub: Hub) -> tuple[list[Any], list[Any]]:
    """Every ticket row and every ticket entry of the audit log (signing in is audited too):
    what "nothing changed" compares."""
    tickets = hub.store.db.execute("SELECT * FROM tickets ORDER BY id").fetchall()
    audit = hub.store.db.execute("SELECT * FROM audit_log WHERE action LIKE 'ticket%'").fetchall()
    return tickets, audit


def set_order(hub: Hub, ticket_ids: list[str], order_ref: str) -> None:
    for tid in ticket_ids:
        hub.store.update_ticket_fields(
            ticket_row(hub, tid), hub.a.id, {"order_ref": order_ref}, "test", hub.clock()
        )


async def followed(client: ConsoleClient, answer: Any) -> str:
    """The page a 303 leads to (where its flash message shows)."""
    assert answer.status_code == 303, answer.text
    page = await client.get(answer.headers["location"])
    assert page.status_code == 200
    return str(page.text)


# search --------------------------------------------------------------------------------------
async def test_search_finds_by_name_id_order_and_status_and_pages(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=56)
    other = add_show(hub, hub.b, n_tickets=2)
    set_order(hub, show.tickets[3:5], "ORD-77")
    staff = await sign_in(hub, "a", "venue_staff")  # reading is every role's
    by_name = await staff.get("/tickets", params={"q": "guest 1"})  # part of a name, any case
    assert by_name.status_code == 200
    named = {tid for tid, name in show.holders.items() if "guest 1" in name.lower()}
    assert set(re.findall(r'href="/tickets/([0-9a-f-]{36})"', by_name.text)) == named
    by_order = await staff.get("/tickets", params={"q": "ord-77"})
    assert set(re.findall(r'href="/tickets/([0-9a-f-]{36})"', by_order.text)) == set(
        show.tickets[3:5]
    )
    by_id = await staff.get("/tickets", params={"q": show.tickets[7]})
    assert re.findall(r'href="/tickets/([0-9a-f-]{36})"', by_id.text) == [show.tickets[7]]
    foreign = await staff.get("/tickets", params={"q": other.tickets[0]})
    assert f"/tickets/{other.tickets[0]}" not in foreign.text
    assert "No tickets found" in foreign.text
    hub.store.set_locks([ticket_row(hub, show.tickets[9])], hub.a.id, LOCK, "t", hub.clock())
    hub.store.withdraw_tickets(
        [ticket_row(hub, show.tickets[2])], hub.a.id, TicketStatus.CANCELLED, "", "t", hub.clock()
    )
    cancelled = await staff.get("/tickets", params={"status": "cancelled"})
    assert re.findall(r'href="/tickets/([0-9a-f-]{36})"', cancelled.text) == [show.tickets[2]]
    bad = await staff.get("/tickets", params={"status": "gone"})
    assert bad.status_code == 400 and "Status must be one of" in bad.text
    # 56 tickets: a page of 50, then the 6 after it; each ticket once
    first = await staff.get("/tickets", params={"event": show.event_id})
    listed = re.findall(r'href="/tickets/([0-9a-f-]{36})"', first.text)
    assert len(listed) == 50
    link = re.search(r'href="([^"]*cursor=[^"]*)" rel="next"', first.text)
    assert link is not None
    second = await staff.get(link.group(1).replace("&amp;", "&"))
    rest = re.findall(r'href="/tickets/([0-9a-f-]{36})"', second.text)
    assert sorted(listed + rest) == sorted(show.tickets)
    assert 'rel="next"' not in second.text and "First page" in second.text
    forged = await staff.get("/tickets", params={"cursor": "zz"})
    assert forged.status_code == 400 and "start again" in forged.text
    elsewhere = await staff.get("/tickets", params={"event": other.event_id})
    assert elsewhere.status_code == 404


# one ticket: its scans and what the role may do ----------------------------------------------
async def test_a_ticket_page_shows_its_scans_across_gates(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    north = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    south = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.south)
    tid, now = show.tickets[0], hub.clock()
    admitted = upload(show.event_id, tid, 1, now - 60_000)
    denied = upload(show.event_id, tid, 1, now)
    denied["scans"][0] |= {"verdict": "deny", "reason": "zone_denied", "gate": "South"}
    for device, batch in ((north, admitted), (south, denied)):
        answer = await device.send("POST", "/api/device/scans", batch)
        assert answer.status_code == 200, answer.text
    manager = await sign_in(hub, "a", "venue_manager")
    page = await manager.get(f"/tickets/{tid}")
    assert page.status_code == 200
    text = page.text
    assert "North" in text and "South" in text
    assert "Welcome in." in text  # the reason's sentence, not only its code
    assert "Ticket does not give access to this zone." in text
    assert "Admit" in text and "Deny" in text  # a word beside every colour
    # the scan of another ticket is not this one's
    assert text.count("<td>Entry</td>") == 2
    staff = await sign_in(hub, "a", "venue_staff")
    read_only = await staff.get(f"/tickets/{tid}")
    assert read_only.status_code == 200 and "Welcome in." in read_only.text
    assert f"/tickets/{tid}/lock" not in read_only.text  # no action its role may not take
    assert f"/tickets/{tid}/lock" in text
    stranger = await sign_in(hub, "b", "admin")
    assert (await stranger.get(f"/tickets/{tid}")).status_code == 404


async def test_lock_and_unlock_are_audited_as_the_api_audits_them(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    tid, api_tid = show.tickets[0], show.tickets[1]
    box = await sign_in(hub, "a", "box_office")
    page = await followed(box, await box.post(f"/tickets/{tid}/lock", {"reason": LOCK}))
    assert "Ticket locked (fraud investigation)." in page
    row = ticket_row(hub, tid)
    assert (row["lock_reason"], row["locked_by"]) == (LOCK, f"user:{box.username}")
    await hub.lock([api_tid], LOCK)  # the admin API, for comparison
    [(actor, action, detail)] = audit_of(hub, tid)
    [(_, api_action, api_detail)] = audit_of(hub, api_tid)
    assert (actor, action) == (f"user:{box.username}", "ticket.lock")
    assert (action, detail) == (api_action, api_detail)
    page = await followed(box, await box.post(f"/tickets/{tid}/unlock"))
    assert "Ticket unlocked." in page
    assert ticket_row(hub, tid)["lock_reason"] is None
    assert [a for _, a, _ in audit_of(hub, tid)] == ["ticket.lock", "ticket.unlock"]


async def test_bad_input_says_why_and_changes_nothing(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    tid = show.tickets[0]
    manager = await sign_in(hub, "a", "venue_manager")
    before = snapshot(hub)
    for path, form, sentence in (
        ("lock", {"reason": "because"}, "reason must be one of"),
        ("transfer", {"holder_name": "   "}, "holder_name is required"),
        ("status", {"status": "USED", "confirmed": "yes"}, "status must be one of"),
        ("comp", {"reason": "press_pass", "holder_name": "X", "max_entries": "0"}, None),
        (
            "comp",
            {"reason": "press_pass", "holder_name": "X", "ticket_type": "Nope"},
            "No ticket type Nope",
        ),
    ):
        answer = await manager.post(f"/tickets/{tid}/{path}", form)
        assert answer.status_code in (400, 404), (path, answer.status_code)
        assert 'class="problem"' in answer.text
        if sentence:
            assert sentence in answer.text, answer.text
    assert snapshot(hub) == before


async def test_lower_roles_other_tenants_and_csrf_less_posts_are_refused(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    tid = show.tickets[0]
    before = snapshot(hub)
    staff = await sign_in(hub, "a", "venue_staff")
    for path, form in (
        ("lock", {"reason": LOCK}),
        ("status", {"status": "REVOKED", "confirmed": "yes"}),
    ):
        refused = await staff.post(f"/tickets/{tid}/{path}", form)
        assert refused.status_code == 403 and "may not do this" in refused.text
    bulk = await staff.post(
        "/tickets/bulk-lock", {"lines": tid, "reason": LOCK, "confirmed": "yes", "ticket_id": tid}
    )
    assert bulk.status_code == 403
    assert (await staff.get("/tickets/bulk-lock")).status_code == 403
    stranger = await sign_in(hub, "b", "admin")
    foreign = await stranger.post(f"/tickets/{tid}/lock", {"reason": LOCK})
    assert foreign.status_code == 404 and "no such ticket" in foreign.text
    manager = await sign_in(hub, "a", "venue_manager")
    forged = await manager.post(f"/tickets/{tid}/lock", {"reason": LOCK}, csrf=False)
    assert forged.status_code == 403 and "This form has expired" in forged.text
    stolen = await manager.post(f"/tickets/{tid}/lock", {"reason": LOCK, "csrf": stranger.csrf})
    assert stolen.status_code == 403
    assert snapshot(hub) == before


@pytest.mark.parametrize(
    ("path", "form", "question", "flash"),
    [
        ("reissue", {}, "Reissue this ticket?", "Ticket reissued"),
        (
            "transfer",
            {"holder_name": "Ada Lovelace"},
            "Transfer this ticket to Ada Lovelace?",
            "Ticket transferred to Ada Lovelace.",
        ),
        (
            "status",
            {"status": "REFUNDED", "note": "asked by phone"},
            "Refund this ticket?",
            "Ticket refunded.",
        ),
    ],
)
async def test_destructive_actions_ask_first_then_act_once(
    hub: Hub, path: str, form: dict[str, str], question: str, flash: str
) -> None:
    show = add_show(hub, hub.a)
    tid = show.tickets[0]
    manager = await sign_in(hub, "a", "venue_manager")
    before = snapshot(hub)
    asked = await manager.post(f"/tickets/{tid}/{path}", form)
    assert asked.status_code == 200 and question in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert snapshot(hub) == before  # asking changed nothing
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', asked.text))
    fields.pop("csrf")
    assert fields == {**form, "confirmed": "yes"}
    done = await followed(manager, await manager.post(f"/tickets/{tid}/{path}", fields))
    assert flash in done
    row, actor = ticket_row(hub, tid), f"user:{manager.username}"
    [(who, action, detail)] = audit_of(hub, tid)
    assert who == actor
    if path == "reissue":
        assert row["generation"] == 1 and action == "ticket.reissue"
        assert detail == {"revoked_generation": 0, "reason": "duplicate_ticket"}
    elif path == "transfer":
        assert (row["status"], row["holder_name"], row["generation"]) == (
            "TRANSFERRED",
            "Ada Lovelace",
            1,
        )
        assert action == "ticket.transfer" and "Ada" not in json.dumps(detail)
    else:
        assert row["status"] == "REFUNDED" and action == "ticket.status"
        assert detail == {"status": "REFUNDED", "previous": "ACTIVE", "note": "asked by phone"}
    # a withdrawn ticket cannot be withdrawn again: said, and nothing changes
    if path == "status":
        again = await manager.post(
            f"/tickets/{tid}/status", {"status": "REVOKED", "confirmed": "yes"}
        )
        assert again.status_code == 409 and "it cannot be revoked" in again.text
        assert ticket_row(hub, tid)["status"] == "REFUNDED"


async def test_a_comp_shows_the_limit_and_stops_at_it(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    hub.store.db.execute("UPDATE events SET comp_limit = 1 WHERE id = ?", [show.event_id])
    hub.store.db.conn.commit()
    tid = show.tickets[0]
    box = await sign_in(hub, "a", "box_office")
    page = await box.get(f"/tickets/{tid}")
    assert "Comps of this event: 0 used of 1 allowed (1 left)." in page.text
    form = {"reason": "press_pass", "holder_name": "Nellie Bly", "order_ref": "PRESS-1"}
    answer = await box.post(f"/tickets/{tid}/comp", form)
    assert answer.status_code == 303
    comp_id = answer.headers["location"].rsplit("/", 1)[1]
    shown = await box.get(answer.headers["location"])
    assert "Comp issued for Nellie Bly." in shown.text
    assert "0 left" in shown.text
    comp = ticket_row(hub, comp_id)
    assert (comp["comp_reason"], comp["comp_issuer"], comp["order_ref"]) == (
        "press_pass",
        f"user:{box.username}",
        "PRESS-1",
    )
    assert audit_of(hub, comp_id) == [
        (f"user:{box.username}", "ticket.comp", {"reason": "press_pass", "event_id": show.event_id})
    ]
    before = snapshot(hub)
    full = await box.post(f"/tickets/{tid}/comp", form)
    assert full.status_code == 409 and "comp limit has been reached" in full.text
    assert snapshot(hub) == before


# bulk lock -----------------------------------------------------------------------------------
async def test_bulk_lock_previews_what_each_line_names_then_locks_exactly_that(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=8)
    other = add_show(hub, hub.b, n_tickets=1)
    set_order(hub, show.tickets[2:4], "ORD-9")
    code = await credential_text(hub, show.tickets[5])
    lines = "\n".join(
        [
            show.tickets[0],
            "  ord-9  ",  # an order reference, any case, trimmed: two tickets
            code.strip(),  # a code the hub issued
            "nothing-like-this",
            other.tickets[0],  # another tenant's ticket: names nothing here
            show.tickets[0],  # a repeat counts once
            "",
        ]
    )
    manager = await sign_in(hub, "a", "venue_manager")
    before = snapshot(hub)
    preview = await manager.post("/tickets/bulk-lock", {"lines": lines, "reason": LOCK})
    assert preview.status_code == 200
    assert snapshot(hub) == before  # a preview changes nothing
    chosen = re.findall(r'name="ticket_id" value="([^"]+)"', preview.text)
    assert sorted(chosen) == sorted([show.tickets[0], *show.tickets[2:4], show.tickets[5]])
    assert "2 lines match no ticket here" in preview.text
    assert "nothing-like-this" in preview.text and other.tickets[0] in preview.text
    form = {"lines": lines, "reason": LOCK, "confirmed": "yes", "ticket_id": chosen}
    done = await followed(manager, await manager.post("/tickets/bulk-lock", form))
    assert "Locked 4 tickets (fraud investigation)." in done
    for tid in show.tickets:
        assert (ticket_row(hub, tid)["lock_reason"] == LOCK) == (tid in chosen)
        locks = [a for _, a, _ in audit_of(hub, tid) if a == "ticket.lock"]
        assert locks == (["ticket.lock"] if tid in chosen else [])


async def test_bulk_lock_refuses_bad_lists_and_foreign_ids(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=2)
    other = add_show(hub, hub.b, n_tickets=1)
    manager = await sign_in(hub, "a", "venue_manager")
    before = snapshot(hub)
    for form, sentence in (
        ({"lines": " \n ", "reason": LOCK}, "Paste at least one"),
        ({"lines": show.tickets[0], "reason": ""}, "Choose the reason"),
        ({"lines": "x" * 513, "reason": LOCK}, "Line 1 is longer than 512"),
        ({"lines": "\n".join(f"l{i}" for i in range(1001)), "reason": LOCK}, "at most 1000 lines"),
    ):
        answer = await manager.post("/tickets/bulk-lock", form)
        assert answer.status_code == 400 and sentence in answer.text
    # a confirmation naming another tenant's ticket (a forged form): nothing is locked
    forged = {
        "lines": "",
        "reason": LOCK,
        "confirmed": "yes",
        "ticket_id": [show.tickets[0], other.tickets[0]],
    }
    answer = await manager.post("/tickets/bulk-lock", forged)
    assert answer.status_code == 404 and "is not found" in answer.text
    assert snapshot(hub) == before


# in a real browser ---------------------------------------------------------------------------
@pytest.mark.browser
async def test_in_a_browser_a_ticket_is_found_locked_and_revoked_at_both_sizes(
    hub: Hub, browser: Browser
) -> None:
    """Headless Chromium at phone and desktop sizes: search, the ticket's page, a lock, a
    revoke through its confirm page; every page of these tickets and reports saved as a
    screenshot, and none of them refused by the pages' Content-Security-Policy."""
    show = add_show(hub, hub.a)
    name = make_user(hub, "a", "venue_manager")
    refused: list[str] = []
    for size, tid in (("phone", show.tickets[0]), ("desktop", show.tickets[2])):
        async with sized(browser, size) as context:
            page = await context.new_page()
            page.on("console", lambda m: refused.append(m.text) if "Content" in m.text else None)
            await sign_in_page(page, hub.url, name, PASSWORD)
            await page.goto(f"{hub.url}/tickets")
            holder = show.holders[tid]
            await page.get_by_label("Ticket id, order reference or holder's name").fill(holder)
            await page.get_by_role("button", name="Search").click()
            await screenshot(page, "tickets", size)
            await page.get_by_role("link", name=tid).click()
            await page.get_by_label("Reason").first.select_option(LOCK)
            await page.get_by_role("button", name="Lock ticket").click()
            await expect(page.get_by_role("status")).to_contain_text("Ticket locked")
            await screenshot(page, "ticket", size)
            await page.get_by_label("Make it").select_option("REVOKED")
            await page.get_by_role("button", name="Continue…").click()
            await expect(page.get_by_role("heading", name="Revoke ticket?")).to_be_visible()
            await screenshot(page, "ticket-confirm", size)
            await page.get_by_role("button", name="Revoke").click()
            await expect(page.get_by_role("status")).to_contain_text("Ticket revoked.")
            row = ticket_row(hub, tid)
            assert (row["status"], row["lock_reason"]) == ("REVOKED", LOCK)
            for shot, path in (
                ("events", "/events"),
                ("event", f"/events/{show.event_id}"),
                ("comps", f"/events/{show.event_id}/comps"),
                ("conflicts", f"/conflicts?event={show.event_id}"),
                ("audit", "/audit"),
                ("bulk-lock", "/tickets/bulk-lock"),
            ):
                answer = await page.goto(hub.url + path)
                assert answer is not None and answer.status == 200, path
                await screenshot(page, shot, size)
    assert refused == []
