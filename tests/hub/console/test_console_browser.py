"""The venue console end to end in headless Chromium (issue #16, "Tested in a real browser"):
the real hub on 127.0.0.1, a person's clicks and keys in a real browser, real gate processes.
Every page visited is saved as a screenshot at phone and desktop sizes
(build/console-screenshots/)."""

from __future__ import annotations

import base64

import pytest
from playwright.async_api import Browser, Page

from tests.browser import SIZES, decode_qr_from_png, screenshot, sign_in_page, sized
from tests.console_session import PASSWORD, make_user
from tests.hub_fixtures import Hub

pytestmark = pytest.mark.browser


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
