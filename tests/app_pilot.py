"""Driving the real gate app through Textual's pilot, the same way in every app test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual import events
from textual.pilot import Pilot

from scanner.app import GateApp
from scanner.service import GateService
from scanner.widgets import ScanCatcher, VerdictPanel

SIZE = (80, 24)


WEDGE_GAP_MS = 5_000  # the pilot types slower than a scanner; a line still ends with Enter


def make_app(service: GateService, clear_after_s: float = 60.0, **kw: object) -> GateApp:
    return GateApp(
        service,
        wedge_idle_gap_ms=WEDGE_GAP_MS,
        clear_after_s=clear_after_s,
        **kw,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def piloted(
    service: GateService, size: tuple[int, int] = SIZE, **kw: object
) -> AsyncIterator[tuple[GateApp, Pilot[None]]]:
    """The app made by make_app, running under the pilot: every app test starts this way."""
    app = make_app(service, **kw)
    async with app.run_test(size=size) as pilot:
        yield app, pilot


async def wedge(pilot: Pilot[None], payload: str) -> None:
    """The same key events as a burst, delivered to the focused scan catcher the way the
    terminal driver delivers them (pilot.press waits for idle after every key: 60 ms each)."""
    catcher = pilot.app.screen.query_one(ScanCatcher)
    assert catcher.has_focus
    for char in payload:
        catcher.post_message(events.Key(char, char))
    catcher.post_message(events.Key("enter", "\r"))
    await pilot.pause()


def panel(app: GateApp) -> VerdictPanel:
    return app.screen.query_one(VerdictPanel)
