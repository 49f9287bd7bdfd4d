"""The venue console end to end in headless Chromium (issue #16, "Tested in a real browser"):
the real hub on 127.0.0.1, a person's clicks and keys in a real browser, real gate processes.
Every page visited is saved as a screenshot at phone and desktop sizes
(build/console-screenshots/)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Response, Route, expect

from hub.store_api import WillCallStep
from protocol.signing import parse_enrollment_uri
from tests.browser import SIZES, decode_qr_from_png, screenshot, sign_in_page, sized
from tests.console_session import PASSWORD, make_user
from tests.gate_cli import async_gate_cli
from tests.hub_fixtures import Hub, add_show, credential_text, enroll, start_hub, stop_hub
from tests.processes import Gate
from tests.will_call_support import OFFICE_DPI, make_order, read_pdf

pytestmark = pytest.mark.browser


@pytest.fixture
async def hub_here(tmp_path: Path) -> AsyncIterator[Hub]:
    """The real hub naming itself by the address it listens on, so the enrolment QR codes its
    console shows lead a real gate to it."""
    from demo.local_hub import free_port

    port = free_port()
    served, runner = await start_hub(
        tmp_path, port=port, hub_url=f"http://127.0.0.1:{port}", expiry_interval_s=None
    )
    yield served
    await stop_hub(served, runner)


async def signed_in(browser: Browser, hub: Hub, username: str, size: str) -> Page:
    """The page of a new browser context of `size` in which `username` has signed in through
    the form (closing `page.context` ends the session)."""
    width, height = SIZES[size]
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    await sign_in_page(page, hub.url, username, PASSWORD)
    return page


async def enrol_from_the_screen(page: Page, hub: Hub, gate_db: Path, name: str, gate: str) -> str:
    """Add a gate on /devices/new as a manager does, read the QR the console then shows from a
    screenshot, and enrol a real `gate-scanner` with what it says; the device's id."""
    await page.goto(f"{hub.url}/devices/new")
    await page.get_by_label("Device name").fill(name)
    await page.get_by_label("Gate").select_option(label=f"{gate} (entry)")
    await page.get_by_role("button", name="Make the code").click()
    await expect(page.get_by_role("img", name=re.compile("Enrolment QR code"))).to_be_visible()
    shot = await screenshot(page, "devices-enrolment", "desktop")
    payloads = decode_qr_from_png(shot)
    assert len(payloads) == 1, payloads
    rc, out, err = await async_gate_cli(
        gate_db, "enroll", payloads[0], "--json", "--hardware-id", f"hw-{name}"
    )
    assert rc == 0, (out, err)
    return str(json.loads(out)["device_id"])


@contextlib.asynccontextmanager
async def streaming(gate_db: Path, event_id: str) -> AsyncIterator[Gate]:
    """A `gate-scanner stream --sync` process for the test's scans, closed off the event loop
    (it may wait for the gate's last sync) whatever the test did."""
    gate = Gate(gate_db, event_id)
    try:
        yield gate
    finally:
        await asyncio.to_thread(gate.close)


async def scan(gate: Gate, code: str) -> list[str]:
    """One payload through the gate process (off the event loop the hub serves on)."""
    return await asyncio.to_thread(gate.scan, code)


async def enrolled_by_code(hub: Hub, gate_db: Path, gate_id: str) -> str:
    """A real `gate-scanner` enrolled at the gate with a code from the admin API (for tests
    about something other than adding a gate); the device's id."""
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North 1", "gate_id": gate_id},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    rc, out, err = await async_gate_cli(gate_db, "enroll", made.json()["payload"], "--json")
    assert rc == 0, (out, err)
    return str(json.loads(out)["device_id"])


async def dry_run(gate_db: Path, code: str) -> dict[str, Any]:
    """What the gate would answer to `code` now (`check --dry-run`: nothing stored)."""
    rc, out, err = await async_gate_cli(gate_db, "check", code, "--json", "--dry-run")
    assert rc in (0, 1), (out, err)
    return dict(json.loads(out))


async def refused_within(gate_db: Path, code: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (answer := await dry_run(gate_db, code))["verdict"] != "deny":
        assert time.monotonic() < deadline, f"still {answer} after {timeout_s} s"
        await asyncio.sleep(0.2)
    return answer


def lock_reason(hub: Hub, tenant_id: str, ticket_id: str) -> str | None:
    return hub.store.get_tickets([ticket_id], tenant_id)[ticket_id]["lock_reason"]


def active(hub: Hub, device_id: str) -> bool:
    device = hub.store.get_device(device_id)
    return device is not None and bool(device["active"])


async def submit_form(page: Page, action: str, fields: dict[str, str]) -> Response:
    """A form the page never offered, built in it and submitted as a click would (the
    browser adds the session cookie and the page's Origin): what a forger or a curious person
    with the developer tools can send. The hub's answer."""
    async with page.expect_navigation() as navigation:
        await page.evaluate(
            """([action, fields]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement("input");
                    input.type = "hidden";
                    input.name = name;
                    input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [action, fields],
        )
    answer = await navigation.value
    assert answer is not None
    return answer


async def csrf_token(page: Page) -> str:
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token


async def test_a_person_signs_in_through_the_form_at_both_sizes(hub: Hub, browser: Browser) -> None:
    """The harness itself: the form typed into, the Secure session cookie kept by Chromium
    over http://127.0.0.1 and sent back, the account page drawn at both sizes."""
    name = make_user(hub, "a", "venue_manager")
    for size in SIZES:
        async with sized(browser, size) as context:
            page = await context.new_page()
            await page.goto(f"{hub.url}/account")
            assert page.url.startswith(f"{hub.url}/sign-in")  # not signed in: sent to the form
            await screenshot(page, "sign-in", size)
            await sign_in_page(page, hub.url, name, PASSWORD)
            await page.goto(f"{hub.url}/account")
            assert page.url == f"{hub.url}/account"
            assert await page.get_by_role("heading", name="Your account").is_visible()
            assert name in await page.locator("main").inner_text()
            await screenshot(page, "account", size)


async def test_a_wrong_password_keeps_the_person_on_the_form(hub: Hub, phone: Page) -> None:
    name = make_user(hub, "a", "box_office")
    await sign_in_page(phone, hub.url, name, "not the password at all")
    assert phone.url.startswith(f"{hub.url}/sign-in")
    assert "The username or the password is wrong." in await phone.get_by_role("alert").inner_text()
    await phone.goto(f"{hub.url}/account")
    assert phone.url.startswith(f"{hub.url}/sign-in")


async def test_a_qr_code_on_screen_reads_back_from_its_screenshot(hub: Hub, desktop: Page) -> None:
    """The enrolment QR the hub makes, drawn by the browser and read from the screenshot by
    the gate's own decoder: the path every QR test of the console takes."""
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North 1 scanner"},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    body = made.json()
    png = base64.b64decode(body["qr_png_base64"])
    src = "data:image/png;base64," + base64.b64encode(png).decode()
    await desktop.set_content(f'<img src="{src}" alt="enrolment code" width="360" height="360">')
    shot = await screenshot(desktop, "harness-qr", "desktop")
    assert decode_qr_from_png(shot) == (body["payload"],)


async def test_a_gate_added_from_its_qr_on_screen_shows_its_scan_on_the_doors_page_within_2_s(
    hub_here: Hub, browser: Browser, tmp_path: Path
) -> None:
    hub = hub_here
    show = add_show(hub, hub.a)
    manager = make_user(hub, "a", "venue_manager")
    console = await signed_in(browser, hub, manager, "desktop")
    gate_db = tmp_path / "north-1.db"
    device_id = await enrol_from_the_screen(console, hub, gate_db, "North 1", "North")
    doors = await console.context.new_page()
    await doors.goto(f"{hub.url}/doors")
    await expect(doors.locator("#doors-live")).to_have_attribute("data-state", "live")
    row = doors.locator(f'#doors-gates tr[data-device="{device_id}"]')
    await expect(row).to_contain_text("North 1")
    admitted = doors.locator('#doors-summary [data-total="admitted"]')
    await expect(admitted).to_have_text("0")
    async with streaming(gate_db, show.event_id) as gate:
        code = await credential_text(hub, show.tickets[0])
        verdict = await scan(gate, code)
        committed = time.monotonic()  # the gate printed its verdict: the scan is on its disk
        assert verdict[1:] == ["admit", "admitted"], verdict
        await expect(admitted).to_have_text("1", timeout=2_000)
        seen_s = time.monotonic() - committed
        await expect(doors.locator("#doors-recent")).to_contain_text("Admitted")
    assert seen_s < 2.0, seen_s
    for size in SIZES:
        async with sized(browser, size) as other:
            page = await other.new_page()
            await sign_in_page(page, hub.url, manager, PASSWORD)
            await page.goto(f"{hub.url}/doors")
            await expect(page.locator('#doors-summary [data-total="admitted"]')).to_have_text("1")
            await screenshot(page, "doors", size)
    await console.context.close()


async def test_a_ticket_locked_in_the_console_is_denied_by_the_gate_after_its_next_sync(
    hub_here: Hub, browser: Browser, tmp_path: Path
) -> None:
    hub = hub_here
    show = add_show(hub, hub.a)
    gate_db = tmp_path / "north-1.db"
    await enrolled_by_code(hub, gate_db, show.north)
    ticket = show.tickets[0]
    code = await credential_text(hub, ticket)
    assert (await dry_run(gate_db, code))["verdict"] == "admit"
    manager = make_user(hub, "a", "venue_manager")
    page = await signed_in(browser, hub, manager, "phone")
    try:
        async with streaming(gate_db, show.event_id) as gate:  # online: syncing while it scans
            await page.goto(f"{hub.url}/tickets/{ticket}")
            await page.locator("#lock-reason").select_option("fraud_investigation")
            await page.get_by_role("button", name="Lock ticket").click()
            await expect(page.get_by_role("status")).to_contain_text("Ticket locked")
            await screenshot(page, "ticket-locked", "phone")
            assert lock_reason(hub, hub.a.id, ticket) == "fraud_investigation"
            denied = await refused_within(gate_db, code, 20)
            assert denied["reason"] == "locked", denied
            assert (await scan(gate, code))[1:] == ["deny", "locked"]
    finally:
        await page.context.close()


async def test_a_state_change_without_the_sessions_token_or_from_another_origin_is_refused(
    hub: Hub, browser: Browser
) -> None:
    show = add_show(hub, hub.a)
    ticket = show.tickets[0]
    manager = make_user(hub, "a", "venue_manager")
    page = await signed_in(browser, hub, manager, "desktop")
    await page.goto(f"{hub.url}/tickets/{ticket}")
    lock = f"/tickets/{ticket}/lock"
    no_token = await submit_form(page, lock, {"reason": "fraud_investigation"})
    assert no_token.status == 403
    await expect(page.get_by_role("alert")).to_contain_text("did not come from this console")
    await screenshot(page, "refused", "desktop")
    await page.goto(f"{hub.url}/tickets/{ticket}")
    wrong = await submit_form(page, lock, {"reason": "dispute", "csrf": "x" * 43})
    assert wrong.status == 403
    assert lock_reason(hub, hub.a.id, ticket) is None

    # Another site's page (same host, another port: the same "site" to the browser, so the
    # SameSite=Strict cookie still goes along) posting a form at the hub when opened.
    attack = web.Application()
    form = (
        f'<form id="f" method="post" action="{hub.url}{lock}">'
        '<input type="hidden" name="reason" value="fraud_investigation"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )

    async def lure(request: web.Request) -> web.Response:
        return web.Response(text=form, content_type="text/html")

    attack.router.add_get("/", lure)
    runner = web.AppRunner(attack)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with page.expect_navigation(url=f"{hub.url}{lock}") as navigation:
            await page.goto(f"http://127.0.0.1:{port}/")
        answer = await navigation.value
        assert answer is not None and answer.status == 403
        await expect(page.get_by_role("alert")).to_contain_text("did not come from a page of this")
    finally:
        await runner.cleanup()
    assert lock_reason(hub, hub.a.id, ticket) is None
    await page.context.close()


async def test_another_tenants_ids_are_not_found(hub: Hub, browser: Browser) -> None:
    ours, theirs = add_show(hub, hub.a), add_show(hub, hub.b)
    manager = make_user(hub, "a", "venue_manager")
    page = await signed_in(browser, hub, manager, "desktop")
    for path in (f"/tickets/{theirs.tickets[0]}", f"/events/{theirs.event_id}"):
        answer = await page.goto(hub.url + path)
        assert answer is not None and answer.status == 404, path
        await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await page.goto(f"{hub.url}/tickets/{ours.tickets[0]}")  # a page of ours, its token
    token = await csrf_token(page)
    forged = await submit_form(
        page, f"/tickets/{theirs.tickets[0]}/lock", {"reason": "dispute", "csrf": token}
    )
    assert forged.status == 404
    assert lock_reason(hub, hub.b.id, theirs.tickets[0]) is None
    device = await enroll(hub, hub.b.manager_token, hub.b.venue_id)
    answer = await page.goto(f"{hub.url}/devices/{device.device_id}")
    assert answer is not None and answer.status == 404
    await page.goto(f"{hub.url}/devices")
    forged = await submit_form(
        page, f"/devices/{device.device_id}/deactivate", {"csrf": await csrf_token(page)}
    )
    assert forged.status == 404
    assert active(hub, device.device_id)
    await page.context.close()


async def test_a_lower_role_is_refused_what_it_may_not_do(hub: Hub, browser: Browser) -> None:
    show = add_show(hub, hub.a)
    ticket = show.tickets[0]
    staff = make_user(hub, "a", "venue_staff")
    page = await signed_in(browser, hub, staff, "phone")
    await page.goto(f"{hub.url}/tickets/{ticket}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(ticket)
    assert await page.get_by_role("button", name="Lock ticket").count() == 0  # not offered
    token = await csrf_token(page)
    forged = await submit_form(
        page, f"/tickets/{ticket}/lock", {"reason": "fraud_investigation", "csrf": token}
    )
    assert forged.status == 403
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert lock_reason(hub, hub.a.id, ticket) is None
    answer = await page.goto(f"{hub.url}/audit")
    assert answer is not None and answer.status == 403
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    await page.goto(f"{hub.url}/devices/{device.device_id}")  # staff may look at a gate
    assert await page.get_by_role("button", name="Rename").count() == 0
    answer = await page.goto(f"{hub.url}/devices/new")
    assert answer is not None and answer.status == 403
    forged = await submit_form(
        page, f"/devices/{device.device_id}/deactivate", {"csrf": token, "confirmed": "yes"}
    )
    assert forged.status == 403
    assert active(hub, device.device_id)
    await page.context.close()


async def test_a_will_call_order_released_in_the_console_prints_codes_a_real_gate_admits(
    hub_here: Hub, browser: Browser, tmp_path: Path
) -> None:
    """The box office finds the order, records the ID check, releases it and downloads the
    PDF as a person clicks its link; every code on its pages, read by the gate's decoder, is
    admitted by a real gate-scanner, and refused after that as already inside."""
    hub = hub_here
    show = add_show(hub, hub.a)
    order = show.tickets[:2]
    make_order(hub, hub.a, order, "WC-1")
    event = hub.store.get_event(show.event_id, hub.a.id)
    assert event is not None
    step = WillCallStep(event, hub.a.id, "WC-1", "test", hub.clock())
    hub.store.hold_will_call(step, "Amara Okafor")
    gate_db = tmp_path / "north-1.db"
    await enrolled_by_code(hub, gate_db, show.north)
    box_office = make_user(hub, "a", "box_office")
    page = await signed_in(browser, hub, box_office, "desktop")
    await page.goto(f"{hub.url}/box-office")
    await page.get_by_label("Order reference or name").fill("okafor")
    await page.get_by_role("button", name="Find").click()
    await page.get_by_role("link", name="Amara Okafor").click()
    await page.get_by_label("I have seen photo ID with this name").check()
    await page.get_by_role("button", name="Record the ID check").click()
    await page.get_by_role("button", name="Release 2 tickets").click()
    await expect(page.get_by_role("status")).to_contain_text("Released: 2 tickets")
    printed: list[bytes] = []

    async def keep(route: Route) -> None:  # the bytes the click brought, then on to the viewer
        answer = await route.fetch()
        assert answer.ok and answer.headers["content-type"] == "application/pdf"
        printed.append(await answer.body())
        await route.fulfill(response=answer)

    pdf_url = re.compile(r"/tickets\.pdf\?format=a4$")
    await page.route(pdf_url, keep)
    async with page.expect_response(pdf_url):
        await page.get_by_role("link", name="Print on A4 (PDF)").click()
    assert len(printed) == 1
    codes = [code for pdf_page in read_pdf(printed[0], OFFICE_DPI) for code in pdf_page.codes]
    assert sorted(codes) == sorted([await credential_text(hub, t) for t in order])
    try:
        async with streaming(gate_db, show.event_id) as gate:
            for code in codes:
                assert (await scan(gate, code))[1:] == ["admit", "admitted"]
            for code in codes:  # asked again (not a camera's repeat read): already inside
                answer = await dry_run(gate_db, code)
                assert (answer["verdict"], answer["reason"]) == ("deny", "already_admitted")
    finally:
        await page.context.close()


async def test_every_doors_and_devices_page_draws_at_both_sizes_without_a_refusal(
    hub: Hub, browser: Browser
) -> None:
    """A manager's tour of the pages the other tests do not draw at both sizes, each saved as a
    screenshot (the doors page with a scan on it comes from the gate test above); none may log
    an error (a script or style the Content-Security-Policy refused, a script that threw). The
    enrolment QR reads back from the phone's screen too."""
    add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    manager = make_user(hub, "a", "venue_manager")
    errors: list[str] = []
    for size in SIZES:
        page = await signed_in(browser, hub, manager, size)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for name, path in (
            ("doors-no-scans", "/doors"),
            ("devices", "/devices"),
            ("device", f"/devices/{device.device_id}"),
            ("device-deactivate", f"/devices/{device.device_id}/deactivate"),
            ("devices-new", "/devices/new"),
        ):
            answer = await page.goto(hub.url + path)
            assert answer is not None and answer.status == 200, path
            await screenshot(page, name, size)
        await page.get_by_label("Device name").fill("South 2")
        await page.get_by_role("button", name="Make the code").click()
        shot = await screenshot(page, "devices-enrolment", size)
        (payload,) = decode_qr_from_png(shot)
        read = parse_enrollment_uri(payload)  # the code the page also prints to type
        assert read is not None and read[1] == await page.locator("code.code").text_content()
        assert errors == [], size
        answer = await page.goto(f"{hub.url}/no-such-page")  # (Chromium logs the 404 itself)
        assert answer is not None and answer.status == 404
        await screenshot(page, "not-found", size)
        await page.context.close()
        errors.clear()
