"""The console by keyboard alone, and its words beside its colours (issue #16: "usable by
keyboard; nothing said by colour alone"), in headless Chromium against the real hub."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from tests.console_session import PASSWORD, make_user
from tests.hub_fixtures import Hub, add_show

pytestmark = pytest.mark.browser

# What a page offers the keyboard, what Tab reached, and the problems found on the way.
_AUDIT = """async (presses) => {
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden";
  };
  const controls = [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary"
  )].filter((el) => !el.disabled && visible(el) && !el.closest("[inert]"));
  const problems = [];
  for (const el of controls) {
    if (el.tabIndex < 0) problems.push("not in the tab order: " + el.outerHTML.slice(0, 80));
    if (["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName)
        && !(el.labels && el.labels.length) && !el.getAttribute("aria-label")) {
      problems.push("no label: " + el.outerHTML.slice(0, 80));
    }
  }
  for (const el of document.querySelectorAll(".status, .flash, .problem")) {
    if (!el.textContent.trim()) problems.push("colour without words: " + el.outerHTML.slice(0, 80));
  }
  return {count: controls.length, problems};
}"""

_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const ring = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return {tag: el.tagName, text: (el.textContent || el.name || "").trim().slice(0, 40),
          ring: ring || style.boxShadow !== "none"};
}"""


async def tab_through(page: Page) -> list[dict[str, Any]]:
    """From the page's first stop (its skip link), press Tab until focus leaves the page or
    comes back round (300 presses at most); what had focus, in order."""
    await page.focus("a.skip")  # a page may autofocus its search box; start at the top
    await page.evaluate("() => { window.__first = document.activeElement; }")
    seen = [await page.evaluate(_FOCUS)]
    for _ in range(300):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUS)
        back = await page.evaluate("() => document.activeElement === window.__first")
        if focused is None or back:
            break
        seen.append(focused)
    return seen


async def test_signing_in_and_every_page_by_keyboard(hub: Hub, desktop: Page) -> None:
    show = add_show(hub, hub.a)
    username = make_user(hub, "a", "admin")
    await desktop.goto(f"{hub.url}/sign-in")
    await desktop.keyboard.type(username)  # the username field has focus as the page opens
    await desktop.keyboard.press("Tab")
    await desktop.keyboard.type(PASSWORD)
    await desktop.keyboard.press("Enter")
    await desktop.wait_for_url(f"{hub.url}/doors")
    pages = [
        "/doors",
        "/devices",
        "/events",
        f"/events/{show.event_id}",
        "/tickets",
        f"/tickets/{show.tickets[0]}",
        "/box-office",
        "/conflicts",
        "/audit",
        "/account",
    ]
    for path in pages:
        await desktop.goto(hub.url + path)
        audit = await desktop.evaluate(_AUDIT, 0)
        assert audit["problems"] == [], (path, audit["problems"])
        reached = await tab_through(desktop)
        assert len(reached) >= audit["count"], (path, len(reached), audit["count"])
        assert reached[0]["text"] == "Skip to content", path
        unringed = [f for f in reached if not f["ring"]]
        assert unringed == [], (path, unringed)  # focus is always visible
    # Skip to content: the first Tab, then Enter, and the next Tab is inside the page
    await desktop.goto(f"{hub.url}/tickets")
    await desktop.keyboard.press("Tab")
    await desktop.keyboard.press("Enter")
    await desktop.keyboard.press("Tab")
    inside = await desktop.evaluate("() => !!document.activeElement.closest('main')")
    assert inside
