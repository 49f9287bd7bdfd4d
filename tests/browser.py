"""The venue console in a real browser: Debian's headless Chromium driven by Playwright's
Python package (its own browser download cannot work here, so it always launches
/usr/bin/chromium), screenshots of the pages at phone and desktop sizes, and the gate's own
QR decoder reading codes back from those screenshots.

The tests marked `browser` get a browser from the `browser` fixture (tests/conftest.py) and a
page of a size from `phone` or `desktop`; without Chromium or Playwright the fixture fails
saying what to run: a skip would hide that nothing was tested.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from hardware.camera import QrDecoder
from tests.paths import ROOT

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
# What works on this machine as root: no sandbox (root), no GPU, nothing fetched in the
# background (component updates, sync, QUIC probes) so a test's only traffic is the hub's.
# Playwright gives each launch a fresh user-data dir of its own and removes it afterwards.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
SCREENSHOTS = ROOT / "build" / "console-screenshots"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (and what to run), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed: run `make venv` (pyproject's test extra has it)."
    if not CHROMIUM.exists():
        return f"No {CHROMIUM}: run `make chromium` (installs Debian's chromium)."
    return None


@asynccontextmanager
async def launched() -> AsyncIterator[Browser]:
    """Headless Chromium from Debian under Playwright's driver, closed on the way out."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(FLAGS), headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def sized(browser: Browser, size: str) -> AsyncIterator[BrowserContext]:
    """A fresh context (its own cookies) whose pages are `size` ("phone" or "desktop")."""
    width, height = SIZES[size]
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        is_mobile=size == "phone",
        has_touch=size == "phone",
        device_scale_factor=1,
    )
    try:
        yield context
    finally:
        await context.close()


async def screenshot(page: Page, name: str, size: str, *, full_page: bool = True) -> Path:
    """The page as it looks now, saved to build/console-screenshots/<name>-<size>.png."""
    assert _NAME.fullmatch(name) and size in SIZES, (name, size)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{size}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


def decode_qr_from_png(path: Path) -> tuple[str, ...]:
    """Every QR code in a PNG as the gate's camera would read it (hardware/camera.py's
    decoder: zxing-cpp on the whole image, OpenCV on a miss)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"not an image: {path}"
    return QrDecoder().decode(image).payloads


async def sign_in_page(page: Page, hub_url: str, username: str, password: str) -> None:
    """Sign in through the console's form, as a person types it; waits for the next page."""
    await page.goto(f"{hub_url}/sign-in")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()
