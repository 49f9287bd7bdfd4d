"""The screen a gate worker looks at all shift: status bar, verdict block, scanner line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Footer

from protocol.reasons import Verdict
from scanner.faults import EXIT_INTERNAL, StorageFault, storage_fault
from scanner.screens.enroll import take_enrollment_qr
from scanner.service import ScanOutcome, after_check
from scanner.settings import STORAGE_CHECKED_MS
from scanner.widgets import ScanCatcher, StatusBar, VerdictPanel

if TYPE_CHECKING:
    from scanner.app import GateApp

ATTENTION_HINT = "Y = admit after check    N = turn away"
FAULT_HINT = "Retrying by itself; this screen goes once the gate can store scans again."
KIOSK_HIDDEN = frozenset({"lookup", "history", "settings"})


class GateScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "lookup", "Lookup"),
        Binding("f3", "history", "History"),
        Binding("f4", "settings", "Settings"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._clear_timer: Timer | None = None
        self._retry_timer: Timer | None = None
        self.fault: StorageFault | None = None

    @property
    def gate_app(self) -> GateApp:
        return cast("GateApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield VerdictPanel(id="verdict")
        yield ScanCatcher(idle_gap_ms=self.gate_app.wedge_idle_gap_ms, id="catcher")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_status()
        self.set_interval(5.0, self.refresh_status)

    def on_screen_resume(self) -> None:
        self.query_one(ScanCatcher).focus()
        self.refresh_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # kiosk: no way off the verdict screen but the PIN-protected exit
        return not (action in KIOSK_HIDDEN and self.gate_app.kiosk)

    @property
    def panel(self) -> VerdictPanel:
        return self.query_one(VerdictPanel)

    def refresh_status(self, ready_message: str | None = None) -> None:
        """Status bar, and the resting panel with it: a gate that loses (or gets) its ticket
        list between verdicts shows so at once, not at the next scan."""
        try:
            status = self.gate_app.status()
        except Exception as exc:  # a damaged database: a fault state, not a crash
            self.show_fault(exc)
            return
        bars, panels = self.query(StatusBar), self.query(VerdictPanel)
        if not bars or not panels:  # composing or closing: nothing to paint on
            return
        bars.first().show_status(status)
        panel = panels.first()
        if panel.resting and self.fault is None:
            panel.show_idle(status, ready_message)

    def show_ready(self, message: str | None = None) -> None:
        """Back to rest after a verdict: READY, or why the gate is not ready."""
        self.panel.resting = True
        self.refresh_status(message)

    # -- scans -------------------------------------------------------------------------

    def on_scan_catcher_scanned(self, message: ScanCatcher.Scanned) -> None:
        self.scan_payload(message.payload)

    def scan_payload(self, payload: str) -> None:
        """The one path for a read, from the wedge or the camera (scanner/camera_feed.py)."""
        if take_enrollment_qr(self.gate_app, payload):  # a hub's enrollment QR is no ticket
            return
        try:
            outcome = self.gate_app.service.scan(payload)  # committed on return
        except Exception as exc:  # not stored, so no verdict: the fault instead
            self.show_fault(exc)
            return
        self._recovered()
        if outcome is None:
            self.query_one(ScanCatcher).note("Same code read again: ignored")
            return
        self.show_outcome(outcome)

    def show_outcome(self, outcome: ScanOutcome) -> None:
        d = outcome.decision
        if d.verdict is Verdict.ATTENTION:
            self._stop_clear()
            self.panel.show(d.verdict, d.message, d.display, hint=ATTENTION_HINT)
            self.app.push_screen(AttentionScreen(outcome), self._attention_done(outcome))
        else:
            self.panel.show(d.verdict, d.message, d.display)
            self._clear_later()
        self.refresh_status()

    def _attention_done(self, outcome: ScanOutcome) -> Callable[[bool | None], None]:
        def done(admitted: bool | None) -> None:
            try:
                self.gate_app.service.confirm(outcome.seq, bool(admitted))
            except Exception as exc:
                self.show_fault(exc)
                return
            d = after_check(outcome.decision, bool(admitted))  # turned away: no entry today
            self.panel.show(d.verdict, d.message, d.display)
            self._clear_later()
            self.refresh_status()

        return done

    def _stop_clear(self) -> None:
        if self._clear_timer is not None:
            self._clear_timer.stop()
            self._clear_timer = None

    def _clear_later(self) -> None:
        self._stop_clear()
        self._clear_timer = self.set_timer(self.gate_app.clear_after_s, self.show_ready)

    # -- other screens -----------------------------------------------------------------

    def action_lookup(self) -> None:
        from scanner.screens.lookup import LookupScreen

        self.app.push_screen(LookupScreen(), self._manual_admit)

    def _manual_admit(self, ticket_id: str | None) -> None:
        if ticket_id:
            try:
                outcome = self.gate_app.service.manual_admit(ticket_id)
            except Exception as exc:
                self.show_fault(exc)
                return
            self._recovered()
            self.show_outcome(outcome)

    # -- storage faults ----------------------------------------------------------------

    def show_fault(self, exc: Exception) -> None:
        """The gate cannot store what it decides: say so over the whole screen, keep running
        and try the disk again every `fault_retry_s` until it takes a write."""
        store = self.gate_app.service.store
        self.fault = storage_fault(exc, store.path) or StorageFault(
            "internal_error", f"{type(exc).__name__}: {exc}", EXIT_INTERNAL
        )
        self._stop_clear()
        self.panel.show_fault(self.fault.message, FAULT_HINT)
        if self._retry_timer is None:
            self._retry_timer = self.set_interval(self.gate_app.fault_retry_s, self._retry)

    def _retry(self) -> None:
        """A small durable write: if the disk takes it, it takes scans again."""
        service = self.gate_app.service
        try:
            service.store.set_setting(STORAGE_CHECKED_MS, service.clock())
        except Exception as exc:
            self.show_fault(exc)  # perhaps another fault now (the words follow it)
            return
        if self._recovered():
            self.show_ready("Storage recovered: scan a ticket")

    def _recovered(self) -> bool:
        """Leave the fault state (a write went through); True if there was one."""
        if self._retry_timer is not None:
            self._retry_timer.stop()
            self._retry_timer = None
        was, self.fault = self.fault, None
        return was is not None

    def action_history(self) -> None:
        from scanner.screens.history import HistoryScreen

        self.app.push_screen(HistoryScreen())

    def action_settings(self) -> None:
        from scanner.screens.settings import open_settings

        open_settings(self.gate_app)


class AttentionScreen(ModalScreen[bool]):
    """Staff must decide before the next guest: Y admits (counted as an entry), N turns the
    guest away. Enter is deliberately NOT a key here: every scanner burst ends with Enter."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "decide(True)", "Admit"),
        Binding("n", "decide(False)", "Turn away"),
        Binding("escape", "decide(False)", "Turn away", show=False),
    ]
    DEFAULT_CSS = "AttentionScreen { background: $background 0%; }"

    def __init__(self, outcome: ScanOutcome) -> None:
        super().__init__()
        self.outcome = outcome

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield VerdictPanel(id="attention")
        yield Footer()

    def on_mount(self) -> None:
        d = self.outcome.decision
        self.query_one(VerdictPanel).show(d.verdict, d.message, d.display, hint=ATTENTION_HINT)
        self.query_one(StatusBar).show_status(cast("GateApp", self.app).status())

    def on_key(self, event: events.Key) -> None:
        if event.key not in ("y", "n", "escape", "ctrl+q"):
            event.stop()
            self.notify("Decide first: Y admit, N turn away.", severity="warning", timeout=2)

    def action_decide(self, admitted: bool) -> None:
        self.dismiss(admitted)
