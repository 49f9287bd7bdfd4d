"""Venue settings behind the venue PIN: gate name, direction, zones, verdict time, camera,
sound, relay pin, new PIN (typed twice: a slip would lock staff out of their own gate).

The PIN is checked against its scrypt hash in the store (scanner/pin.py); after a few
wrong tries the PIN prompt locks for a while, so it cannot be guessed at the gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Static

from manifests.admission_types import Direction, GateContext
from scanner.camera_feed import camera_spec
from scanner.pin import check_pin, has_pin, set_pin
from scanner.settings import CAMERA, RELAY_PIN, SOUND, VERDICT_CLEAR_S

if TYPE_CHECKING:
    from scanner.app import GateApp

MAX_TRIES = 5
LOCKOUT_S = 60.0
ON_WORDS = frozenset({"on", "yes", "1", "true"})
OFF_WORDS = frozenset({"off", "no", "0", "false"})


class PinScreen(ModalScreen[bool]):
    """Dismisses True once the right PIN is entered, False on Escape."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    PinScreen { align: center middle; }
    PinScreen > #pin-box { width: 50; height: auto; border: thick $accent; padding: 1 2;
        background: $surface; }
    PinScreen #pin-error { color: $error; height: auto; }
    """

    def __init__(self, app: GateApp, purpose: str) -> None:
        super().__init__()
        self.gate_app = app
        self.purpose = purpose

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="pin-box"):
            yield Static(f"Venue PIN to {self.purpose}", markup=False)
            yield Input(password=True, id="pin-input", placeholder="PIN, then Enter")
            yield Static("", id="pin-error", markup=False)

    def on_mount(self) -> None:
        self.query_one("#pin-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        app, error = self.gate_app, self.query_one("#pin-error", Static)
        event.input.value = ""
        wait = app.pin_locked_until - time.monotonic()
        if wait > 0:
            error.update(f"Too many wrong PINs: try again in {int(wait) + 1} s.")
            return
        if check_pin(app.service.store, event.value):
            app.pin_failures = 0
            self.dismiss(True)
            return
        app.pin_failures += 1
        if app.pin_failures >= MAX_TRIES:
            app.pin_failures = 0
            app.pin_locked_until = time.monotonic() + LOCKOUT_S
            error.update(f"Wrong PIN. Locked for {int(LOCKOUT_S)} s.")
        else:
            error.update(f"Wrong PIN ({MAX_TRIES - app.pin_failures} tries left).")

    def action_cancel(self) -> None:
        self.dismiss(False)


def with_pin(app: GateApp, purpose: str, then: Callable[[], object]) -> None:
    """Run `then` after the venue PIN; with no PIN set yet, straight away."""
    if not has_pin(app.service.store):
        then()
        return

    def done(ok: bool | None) -> None:
        if ok:
            then()

    app.push_screen(PinScreen(app, purpose), done)


def open_settings(app: GateApp) -> None:
    with_pin(app, "open settings", lambda: app.push_screen(SettingsScreen()))


# The same rule as set_pin (scanner/pin.py), which the CLI's set-pin applies too.
PIN_MIN_DIGITS = 4
PIN_RULE = (
    f"New PIN: at least {PIN_MIN_DIGITS} digits, digits only, typed twice. "
    "Leave both blank to keep the current PIN."
)
PIN_MISMATCH = "The two new PINs are not the same: type the new PIN twice. Nothing was saved."


class SettingsScreen(Screen[None]):
    """Every field at once, one row each, in a scroll that follows focus (Textual scrolls a
    focused widget into view). Enter in any field or Save saves, Tab moves, Escape or Cancel
    leaves unsaved. The error line and the buttons sit below the scroll, above the footer: an
    error is seen at 80x24 wherever focus is, and focus goes to the field at fault."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    SettingsScreen #settings-form { height: 1fr; }
    SettingsScreen .settings-row { height: 1; }
    SettingsScreen Label { width: 24; padding: 0 1; }
    SettingsScreen Input { width: 1fr; }
    SettingsScreen .settings-note { color: $text-muted; height: auto; padding: 0 1; }
    SettingsScreen #settings-bottom { height: auto; }
    SettingsScreen #settings-error { color: $error; text-style: bold; height: auto;
        padding: 0 1; }
    SettingsScreen #settings-error.-empty { display: none; }
    SettingsScreen #settings-warning { color: $warning; height: auto; padding: 0 1; }
    SettingsScreen #settings-buttons { height: 1; align-horizontal: center; }
    SettingsScreen Button { margin: 0 2; }
    """

    FIELDS = (
        ("set-gate", "Gate name"),
        ("set-direction", "Direction entry/exit"),
        ("set-zones", "Zones (GA,VIP)"),
        ("set-venue", "Venue id"),
        ("set-clear", "Verdict shown (s)"),
        ("set-camera", "Camera (0, path, URL)"),
        ("set-sound", "Sound on/off"),
        ("set-relay", "Relay GPIO pin"),
        ("set-pin", "New PIN (optional)"),
        ("set-pin-again", "New PIN again"),
    )
    SECRET = frozenset({"set-pin", "set-pin-again"})

    @property
    def gate_app(self) -> GateApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        app = self.gate_app
        gate = app.service.gate
        values = {
            "set-gate": gate.gate_name if gate else "",
            "set-direction": str(gate.direction) if gate else "entry",
            "set-zones": ",".join(gate.zones) if gate else "",
            "set-venue": gate.venue_id if gate else "",
            "set-clear": f"{app.clear_after_s:g}",
            "set-camera": app.camera_spec or "",
            "set-sound": "on" if app.service.store.setting(SOUND) else "off",
            "set-relay": str(app.service.store.setting(RELAY_PIN) or ""),
        }
        yield Static("Settings · Tab: next · Enter: save · Esc: leave unsaved", classes="title")
        with VerticalScroll(id="settings-form"):
            if not has_pin(app.service.store):
                yield Static(
                    "No venue PIN set: anyone can change these settings. Set one below.",
                    id="settings-warning",
                )
            for field_id, label in self.FIELDS:
                with Horizontal(classes="settings-row"):
                    yield Label(label)
                    yield Input(
                        values.get(field_id, ""),
                        id=field_id,
                        password=field_id in self.SECRET,
                        compact=True,
                    )
            yield Static(PIN_RULE, id="settings-pin-rule", classes="settings-note", markup=False)
            yield Static(
                "Camera: blank = none (hand scanner only). Sound and relay apply at next start.",
                classes="settings-note",
                markup=False,
            )
        with Vertical(id="settings-bottom"):
            yield Static("", id="settings-error", classes="-empty", markup=False)
            with Horizontal(id="settings-buttons"):
                yield Button("Save", id="settings-save", variant="primary", compact=True)
                yield Button("Cancel", id="settings-cancel", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#set-gate", Input).focus()

    def _value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "settings-save":
            self.save()
        else:
            self.app.pop_screen()

    def save(self) -> None:
        """Validate every field first: one refusal and nothing at all is written."""
        problem = self._validate()
        error = self.query_one("#settings-error", Static)
        if problem is not None:
            field_id, message = problem
            error.update(message)
            error.remove_class("-empty")
            self.query_one(f"#{field_id}", Input).focus()  # the field at fault, in view
            return
        self._save()
        self.notify("Settings saved.")
        self.app.pop_screen()

    def _validate(self) -> tuple[str, str] | None:
        """(field to fix, what is wrong in words), or None when all is well."""
        if not self._value("set-gate"):
            return "set-gate", "Gate name and venue id must not be empty."
        if not self._value("set-venue"):
            return "set-venue", "Gate name and venue id must not be empty."
        if self._value("set-direction").lower() not in {d.value for d in Direction}:
            return "set-direction", "Direction must be entry or exit."
        try:
            seconds = float(self._value("set-clear"))
        except ValueError:
            return "set-clear", "Verdict time must be a number of seconds."
        if not 0.5 <= seconds <= 120:
            return "set-clear", "Verdict time must be between 0.5 and 120 seconds."
        if self._value("set-sound").lower() not in ON_WORDS | OFF_WORDS:
            return "set-sound", "Sound must be on or off."
        relay = self._value("set-relay")
        if relay and not (relay.isdigit() or relay.upper().startswith(("GPIO", "BOARD"))):
            return (
                "set-relay",
                "Relay pin must be a GPIO number (e.g. 17), GPIO17 or BOARD11, or blank.",
            )
        return self._pin_problem()

    def _pin_problem(self) -> tuple[str, str] | None:
        pin, again = self._value("set-pin"), self._value("set-pin-again")
        if not pin and not again:
            return None
        if not (pin.isdigit() and len(pin) >= PIN_MIN_DIGITS):
            return (
                "set-pin",
                f"The venue PIN must be at least {PIN_MIN_DIGITS} digits, digits only.",
            )
        if pin != again:
            return "set-pin-again", PIN_MISMATCH
        return None

    def _save(self) -> None:
        app = self.gate_app
        old = app.service.gate
        name = self._value("set-gate")
        zones = tuple(z.strip() for z in self._value("set-zones").split(",") if z.strip())
        gate_id = old.gate_id if old and old.gate_name == name else name.lower().replace(" ", "-")
        app.service.set_gate(
            GateContext(
                venue_id=self._value("set-venue"),
                gate_id=gate_id,
                gate_name=name,
                direction=Direction(self._value("set-direction").lower()),
                zones=zones,
                authorized=old.authorized if old else True,
            )
        )
        app.clear_after_s = float(self._value("set-clear"))
        store = app.service.store
        store.set_setting(VERDICT_CLEAR_S, app.clear_after_s)
        store.set_setting(SOUND, self._value("set-sound").lower() in ON_WORDS)
        relay = self._value("set-relay")
        store.set_setting(RELAY_PIN, (int(relay) if relay.isdigit() else relay) or None)
        camera = camera_spec(self._value("set-camera"))
        store.set_setting(CAMERA, camera)
        if camera != app.camera_spec:
            app.run_worker(app.restart_camera(camera), exclusive=True, group="camera")
        if self._value("set-pin"):
            set_pin(app.service.store, self._value("set-pin"))
