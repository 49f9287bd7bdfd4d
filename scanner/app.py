"""The gate appliance's Textual app: keyboard only, readable at 80x24.

The app owns no rules: every scan goes through `GateService.scan`, which commits before it
returns, so whatever the screen shows is already on disk.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from hardware.wedge import DEFAULT_IDLE_GAP_MS
from scanner.screens.settings import PinScreen
from scanner.screens.verdict import GateScreen
from scanner.service import GateService

DEFAULT_CLEAR_AFTER_S = 4.0


class GateApp(App[None]):
    TITLE = "Gate scanner"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "request_quit", "Exit", priority=True)
    ]
    CSS = ".title { text-style: bold; padding: 0 1; background: $boost; }"

    def __init__(
        self,
        service: GateService,
        *,
        kiosk: bool = False,
        clear_after_s: float | None = None,
        wedge_idle_gap_ms: int = DEFAULT_IDLE_GAP_MS,
    ) -> None:
        super().__init__()
        self.service = service
        self.kiosk = kiosk
        stored = service.store.config("verdict_clear_s", DEFAULT_CLEAR_AFTER_S)
        self.clear_after_s = float(clear_after_s if clear_after_s is not None else stored)
        self.wedge_idle_gap_ms = wedge_idle_gap_ms
        self.pin_failures = 0
        self.pin_locked_until = 0.0

    def on_mount(self) -> None:
        self.push_screen(GateScreen())

    def action_request_quit(self) -> None:
        """Kiosk: only with the venue PIN. Otherwise straight out."""
        if not self.kiosk:
            self.exit()
            return

        def done(ok: bool | None) -> None:
            if ok:
                self.exit()

        if not isinstance(self.screen, PinScreen):
            self.push_screen(PinScreen(self, "exit kiosk mode"), done)
