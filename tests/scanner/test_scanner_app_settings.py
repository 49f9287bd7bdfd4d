"""F4 settings through the real app at 80x24 and 80x30: every field reached by Tab and
scrolled into view, the buttons and any error on screen, the new PIN typed twice."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Static

from manifests.admission_types import Direction
from scanner.app import GateApp
from scanner.pin import check_pin, set_pin
from scanner.screens.settings import PIN_MISMATCH, SettingsScreen
from scanner.screens.verdict import GateScreen
from scanner.store import GateStore
from scanner.widgets import rendered_text
from tests.app_pilot import piloted
from tests.scanner_fixtures import GateUnderTest

SIZES = [(80, 24), (80, 30)]


def seen(app: GateApp, widget: Widget) -> bool:
    """Wholly on screen, not under the footer, and (in the form) inside the scroll's view."""
    region = widget.region
    screen = app.screen
    footer = screen.query_one(Footer).region
    if region.area == 0 or not screen.region.contains_region(region):
        return False
    if region.overlaps(footer):
        return False
    form = screen.query_one("#settings-form")
    return form not in widget.ancestors or form.region.contains_region(region)


async def open_settings(pilot: Pilot[None], pin: str | None = None) -> SettingsScreen:
    await pilot.press("f4")
    if pin is not None:
        await pilot.press(*pin, "enter")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, SettingsScreen)
    return screen


async def type_into(pilot: Pilot[None], field_id: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#{field_id}", Input)
    field.focus()
    field.value = ""
    await pilot.pause()
    if text:
        await pilot.press(*text)


def error_text(app: GateApp) -> str:
    return rendered_text(app.screen.query_one("#settings-error", Static))


@pytest.mark.parametrize("size", [*SIZES, (80, 12)])  # 12 rows: the form must scroll
async def test_every_field_and_button_is_reached_by_tab_and_in_view(
    gate: GateUnderTest, size: tuple[int, int]
) -> None:
    async with piloted(gate.service, size=size) as (app, pilot):
        screen = await open_settings(pilot)
        ids = [field_id for field_id, _ in SettingsScreen.FIELDS]
        assert "set-pin-again" in ids
        if size[1] < 20:  # the scroll does the work, not a tall screen
            assert screen.query_one("#settings-form").max_scroll_y > 0  # taller than its view
        for field_id in ids:
            field = screen.query_one(f"#{field_id}", Input)
            assert field.has_focus, f"Tab did not reach {field_id}"
            assert seen(app, field), f"{field_id} is not scrolled into view at {size}"
            await pilot.press("tab")
        for button_id in ("#settings-save", "#settings-cancel"):
            button = screen.query_one(button_id, Button)
            assert button.has_focus and seen(app, button)
            await pilot.press("tab")
        await pilot.press("shift+tab", "shift+tab", "shift+tab")  # back into the form
        assert screen.query_one("#set-pin-again", Input).has_focus


@pytest.mark.parametrize("size", SIZES)
async def test_a_refused_value_shows_its_error_on_screen(
    gate: GateUnderTest, size: tuple[int, int]
) -> None:
    async with piloted(gate.service, size=size) as (app, pilot):
        screen = await open_settings(pilot)
        await type_into(pilot, "set-relay", "banana")  # a field low in the form
        await type_into(pilot, "set-gate", "North 1")  # back at the top, Enter there
        await pilot.press("enter")
        assert isinstance(app.screen, SettingsScreen)
        error = screen.query_one("#settings-error", Static)
        assert "Relay pin must be a GPIO number" in error_text(app)
        assert seen(app, error), f"error at {error.region} is off screen {app.screen.region}"
        relay = screen.query_one("#set-relay", Input)
        assert relay.has_focus and seen(app, relay)  # the field at fault, in view

        await type_into(pilot, "set-relay", "17")
        await pilot.click("#settings-save")
        await pilot.pause()
        assert isinstance(app.screen, GateScreen)
    assert gate.store.config("relay_pin") == 17


async def test_pin_rules_are_on_screen_and_a_mismatch_changes_nothing(
    gate: GateUnderTest,
) -> None:
    set_pin(gate.store, "4711")
    async with piloted(gate.service) as (app, pilot):
        screen = await open_settings(pilot, pin="4711")
        rule = screen.query_one("#settings-pin-rule", Static)
        assert "at least 4 digits" in rendered_text(rule)
        assert "digits only" in rendered_text(rule) and "twice" in rendered_text(rule)
        await type_into(pilot, "set-pin", "4711")
        await pilot.pause()
        assert seen(app, rule)  # read beside the PIN fields

        await type_into(pilot, "set-direction", "exit")
        await type_into(pilot, "set-pin", "2580")
        await type_into(pilot, "set-pin-again", "2508")
        await pilot.press("enter")
        assert isinstance(app.screen, SettingsScreen)
        assert error_text(app) == PIN_MISMATCH
        assert "not the same" in PIN_MISMATCH and "Nothing was saved" in PIN_MISMATCH
        assert seen(app, screen.query_one("#settings-error"))

        await type_into(pilot, "set-pin-again", "")  # typed once only: still refused
        await pilot.click("#settings-save")
        assert isinstance(app.screen, SettingsScreen) and error_text(app) == PIN_MISMATCH

        await type_into(pilot, "set-pin", "12")
        await type_into(pilot, "set-pin-again", "12")
        await pilot.press("enter")
        assert "at least 4 digits" in error_text(app)

        await pilot.press("escape")
        assert isinstance(app.screen, GateScreen)
    assert check_pin(gate.store, "4711") and not check_pin(gate.store, "2580")
    saved = GateStore(gate.store.path).gate()
    assert saved is not None and saved.direction is Direction.ENTRY  # nothing else saved either


async def test_a_new_pin_typed_twice_is_set(gate: GateUnderTest) -> None:
    set_pin(gate.store, "4711")
    async with piloted(gate.service) as (app, pilot):
        await open_settings(pilot, pin="4711")
        await type_into(pilot, "set-pin", "2580")
        await type_into(pilot, "set-pin-again", "2580")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, GateScreen)
        await pilot.press("f4", *"4711", "enter")
        assert "Wrong PIN" in rendered_text(app.screen.query_one("#pin-error", Static))
        await pilot.press(*"2580", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
    assert check_pin(gate.store, "2580") and not check_pin(gate.store, "4711")
