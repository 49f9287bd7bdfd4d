"""The console's box office against the real hub: find a will-call order by reference or name,
the ID-check step, release, the tickets PDF in both layouts and the codes on screen (each
code read back with the gate's decoder and parser), a second release that needs a confirmed
reprint, the printable will-call list; other tenants, lower roles and posts without the CSRF
token refused with nothing changed."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from playwright.async_api import Browser, expect

from hardware.camera import QrDecoder
from hub.store_api import WillCallStep
from hub.will_call import RELEASE_WINDOW_MS
from manifests.model import TicketStatus
from tests.browser import decode_qr_from_png, screenshot, sign_in_page, sized
from tests.console_session import PASSWORD, ConsoleClient, make_user, sign_in
from tests.hub_fixtures import Hub, Show, Tenant, add_show, credential_text
from tests.will_call_support import OFFICE_DPI, THERMAL_DPI, make_order, read_pdf, verified

ORDER = "ORD 7/b"  # a space and a slash: the page's links carry it encoded


def order_url(show: Show, order_ref: str = ORDER) -> str:
    return f"/box-office/{show.event_id}/{quote(order_ref, safe='')}"


def hold(hub: Hub, tenant: Tenant, show: Show, tickets: list[str], ref: str, name: str) -> None:
    make_order(hub, tenant, tickets, ref)
    event = hub.store.get_event(show.event_id, tenant.id)
    assert event is not None
    held = hub.store.hold_will_call(WillCallStep(event, tenant.id, ref, "test", hub.clock()), name)
    assert isinstance(held, dict), held


def held_show(hub: Hub) -> Show:
    """Order ORDER of three tickets held under "Amara Okafor", the third refunded."""
    show = add_show(hub, hub.a, n_tickets=4)
    hold(hub, hub.a, show, show.tickets[:3], ORDER, "Amara Okafor")
    (refunded,) = hub.store.get_tickets([show.tickets[2]], hub.a.id).values()
    hub.store.withdraw_tickets([refunded], hub.a.id, TicketStatus.REFUNDED, "", "t", hub.clock())
    return show


def state(hub: Hub, show: Show, ref: str = ORDER) -> dict[str, Any] | None:
    return hub.store.will_call(show.event_id, ref)


def will_call_audit(hub: Hub) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (e["actor"], e["action"], json.loads(e["detail_json"]))
        for e in hub.store.audit_entries(hub.a.id)
        if e["action"].startswith("will_call.") and e["actor"].startswith("user:")
    ]


async def check_and_release(client: ConsoleClient, show: Show) -> str:
    checked = await client.post(order_url(show) + "/id-check", {"id_matches": "yes"})
    assert checked.status_code == 303, checked.text
    released = await client.post(order_url(show) + "/release")
    assert released.status_code == 303, released.text
    page = await client.get(released.headers["location"])
    return str(page.text)


def screen_codes(html: str) -> list[str]:
    """Every code drawn on the show-large page, read from its PNG by the gate's decoder."""
    codes = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        codes.extend(QrDecoder().decode(image).payloads)
    return codes


async def test_find_check_id_release_then_print_and_show_working_codes(hub: Hub) -> None:
    show = held_show(hub)
    other = add_show(hub, hub.b, n_tickets=1)
    hold(hub, hub.b, other, other.tickets, ORDER, "Amara Okafor")  # same ref and name, tenant b
    box = await sign_in(hub, "a", "box_office")
    url = order_url(show)
    for q in ("okafor", ORDER.lower()):
        found = await box.get("/box-office", params={"q": q})
        assert found.status_code == 200
        assert re.findall(r'href="(/box-office/[^"]+)"', found.text) == [url]
    assert "No will-call order" in (await box.get("/box-office", params={"q": "nobody"})).text

    page = (await box.get(url)).text
    assert "Step 1: check the photo ID" in page and "tickets.pdf" not in page
    assert (await box.get(url + "/tickets.pdf")).status_code == 403  # not released yet
    early = await box.post(url + "/release")
    assert early.status_code == 409 and "Check the photo ID first" in early.text
    unticked = await box.post(url + "/id-check", {})
    assert unticked.status_code == 400 and "Tick the box" in unticked.text
    assert state(hub, show)["id_checked_ms"] is None  # type: ignore[index]

    released = await check_and_release(box, show)
    assert "Released: 2 tickets" in released and "Picked up" in released
    assert f"by user:{box.username}" in released
    codes = {t: await credential_text(hub, t) for t in show.tickets[:2]}  # not the refunded one
    for layout, dpi in (("a4", OFFICE_DPI), ("80mm", THERMAL_DPI)):
        pdf = await box.get(url + "/tickets.pdf", params={"format": layout})
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        pages = read_pdf(pdf.content, dpi)
        assert [p.codes for p in pages] == [(codes[t],) for t in sorted(codes)], layout
        for page_ in pages:
            assert (await verified(hub, show, page_.codes[0])).ticket_id in codes
    shown = await box.get(url + "/show")
    assert shown.status_code == 200 and sorted(screen_codes(shown.text)) == sorted(codes.values())
    assert (await box.get(url + "/tickets.pdf", params={"format": "letter"})).status_code == 400
    actor = f"user:{box.username}"
    assert [(a, act, d.get("format")) for a, act, d in will_call_audit(hub)] == [
        (actor, "will_call.id_check", None),
        (actor, "will_call.release", None),
        (actor, "will_call.print", "a4"),
        (actor, "will_call.print", "80mm"),
        (actor, "will_call.print", "screen"),
    ]


async def test_a_second_release_needs_a_confirmed_reprint_after_a_new_id_check(hub: Hub) -> None:
    show = held_show(hub)
    url = order_url(show)
    box = await sign_in(hub, "a", "box_office")
    await check_and_release(box, show)
    manager = await sign_in(hub, "a", "venue_manager")
    refused = await manager.get(url + "/tickets.pdf")
    assert refused.status_code == 403 and f"by user:{box.username}" in refused.text
    again = await manager.post(url + "/release")
    assert again.status_code == 409
    assert "Already picked up" in again.text and f"user:{box.username}" in again.text
    assert 'name="reprint" value="yes"' in again.text
    unchecked = await manager.post(url + "/release", {"reprint": "yes"})
    assert unchecked.status_code == 409 and "Check the photo ID first" in unchecked.text
    assert state(hub, show)["releases"] == 1  # type: ignore[index]
    checked = await manager.post(url + "/id-check", {"id_matches": "yes"})
    assert checked.status_code == 303
    ask = await manager.post(url + "/release")  # checked, but picked up: the confirm page
    assert ask.status_code == 409 and "Reprint the tickets" in ask.text
    confirmed = await manager.post(url + "/release", {"reprint": "yes"})
    assert confirmed.status_code == 303
    after = state(hub, show)
    assert after is not None and after["releases"] == 2
    assert after["released_by"] == f"user:{manager.username}"
    assert (await manager.get(url + "/tickets.pdf")).status_code == 200
    hub.clock.offset_ms += RELEASE_WINDOW_MS + 1000  # later, only a new reprint shows them
    assert (await manager.get(url + "/show")).status_code == 403
    actions = [act for _, act, _ in will_call_audit(hub)]
    assert actions.count("will_call.reprint") == 1 and actions.count("will_call.release") == 1


async def test_the_will_call_list_prints_alphabetically_with_pick_up(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=4)
    names = {"W-1": "zed", "W-2": "Ágnes", "W-3": "bob", "W-4": "Bea"}
    for ticket_id, (ref, name) in zip(show.tickets, names.items(), strict=True):
        hold(hub, hub.a, show, [ticket_id], ref, name)
    box = await sign_in(hub, "a", "box_office")
    url = order_url(show, "W-3")
    await box.post(url + "/id-check", {"id_matches": "yes"})
    await box.post(url + "/release")
    staff = await sign_in(hub, "a", "venue_staff")  # reading the list is every role's
    listed = await staff.get(f"/events/{show.event_id}/will-call")
    assert listed.status_code == 200
    rows = re.findall(
        r"<tr>\s*<td>(?:<a [^>]*>)?([^<]+)(?:</a>)?</td>\s*<td>([^<]+)</td>", listed.text
    )
    assert rows == [("Ágnes", "W-2"), ("Bea", "W-4"), ("bob", "W-3"), ("zed", "W-1")]
    assert listed.text.count("Picked up</span>") == 1 and f"by user:{box.username}" in listed.text
    assert "4 orders, 4 tickets, 1 picked up" in listed.text
    assert 'id="print-list"' in listed.text and "box_office.js" in listed.text
    assert "<script>" not in listed.text and "style=" not in listed.text  # the CSP allows none
    css = await staff.get("/static/console/box_office.css")
    assert "@media print" in css.text


async def test_other_tenants_lower_roles_and_forged_posts_change_nothing(hub: Hub) -> None:
    show = held_show(hub)
    url = order_url(show)
    other = await sign_in(hub, "b", "box_office")
    for path in (url, url + "/tickets.pdf", f"/events/{show.event_id}/will-call"):
        assert (await other.get(path)).status_code == 404, path
    assert (await other.post(url + "/id-check", {"id_matches": "yes"})).status_code == 404
    assert "No will-call order" in (await other.get("/box-office", params={"q": "okafor"})).text
    staff = await sign_in(hub, "a", "venue_staff")
    assert (await staff.get("/box-office")).status_code == 403
    assert (await staff.post(url + "/id-check", {"id_matches": "yes"})).status_code == 403
    box = await sign_in(hub, "a", "box_office")
    forged = await box.post(url + "/id-check", {"id_matches": "yes"}, csrf=False)
    assert forged.status_code == 403
    assert (await box.post(url + "/release", csrf=False)).status_code == 403
    after = state(hub, show)
    assert after is not None and after["id_checked_ms"] is None and after["releases"] == 0
    assert will_call_audit(hub) == []


# in a real browser ---------------------------------------------------------------------------
@pytest.mark.browser
async def test_in_a_browser_an_order_is_found_checked_released_and_its_pdf_scans(
    hub: Hub, browser: Browser
) -> None:
    """Headless Chromium at phone and desktop sizes: find the order by name, tick the ID
    check, release, then the PDF the page links to (both layouts) and the codes shown large,
    read back by the gate's decoder: the hub's working codes. Every page saved as a
    screenshot (the will-call list also as printed); none refused by the CSP."""
    show = add_show(hub, hub.a, n_tickets=4)
    orders = {"phone": ("W-P", "Amara Okafor"), "desktop": ("W-D", "Sophie Martin")}
    hold(hub, hub.a, show, show.tickets[:2], *orders["phone"])
    hold(hub, hub.a, show, show.tickets[2:], *orders["desktop"])
    name = make_user(hub, "a", "box_office")
    refused: list[str] = []
    for size, (_, holder) in orders.items():
        mine = show.tickets[:2] if size == "phone" else show.tickets[2:]
        codes = sorted([await credential_text(hub, t) for t in mine])
        async with sized(browser, size) as context:
            page = await context.new_page()
            page.on("console", lambda m: refused.append(m.text) if "Content" in m.text else None)
            await sign_in_page(page, hub.url, name, PASSWORD)
            await page.goto(f"{hub.url}/box-office")
            await page.get_by_label("Order reference or name").fill(holder.split()[1].lower())
            await page.get_by_role("button", name="Find").click()
            await screenshot(page, "box-office", size)
            await page.get_by_role("link", name=holder).click()
            await expect(
                page.get_by_role("heading", name="Step 1: check the photo ID")
            ).to_be_visible()
            await screenshot(page, "box-office-order", size)
            await page.get_by_label("I have seen photo ID with this name").check()
            await page.get_by_role("button", name="Record the ID check").click()
            await expect(page.get_by_role("status")).to_contain_text("ID check recorded")
            await page.get_by_role("button", name="Release 2 tickets").click()
            await expect(page.get_by_role("status")).to_contain_text("Released: 2 tickets")
            await screenshot(page, "box-office-released", size)
            for label, layout, dpi in (
                ("Print on A4 (PDF)", "a4", OFFICE_DPI),
                ("Print on the 80 mm printer (PDF)", "80mm", THERMAL_DPI),
            ):
                href = await page.get_by_role("link", name=label).get_attribute("href")
                assert href is not None and href.endswith(f"format={layout}")
                pdf = await context.request.get(hub.url + href)
                assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
                found = sorted(c for p in read_pdf(await pdf.body(), dpi) for c in p.codes)
                assert found == codes, layout
            await page.get_by_role("link", name="Show the codes on screen").click()
            shot = await screenshot(page, "box-office-show", size)
            assert sorted(decode_qr_from_png(shot)) == codes
            for code in codes:
                assert (await verified(hub, show, code)).ticket_id in mine
            await page.goto(f"{hub.url}/events/{show.event_id}/will-call")
            await screenshot(page, "will-call", size)
            await page.emulate_media(media="print")
            await screenshot(page, "will-call-print", size)
    assert refused == []
    for ref, _ in orders.values():
        held = state(hub, show, ref)
        assert held is not None and held["released_by"] == f"user:{name}"
