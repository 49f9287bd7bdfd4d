"""Enrolling the gate from an enrollment QR read at the gate itself (camera or hand scanner).

An enrollment QR is never a ticket: it gets no scan row. A gate without a hub asks staff to
confirm (hub address and its key's fingerprint on screen), then the venue PIN if one is set,
then spends the code in a worker thread (the UI never waits on the network) exactly as
`gate-scanner enroll` does, the fingerprint from the QR pinned. A gate that already has a hub
only says so: re-enrolling is a deliberate act at the command line, not a stray read.

Y and N decide, but not inside a scanner burst: the QR text itself holds those letters, and a
second read of it must not answer for staff.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from hardware.wedge import DEFAULT_IDLE_GAP_MS
from manifests.admission_types import Direction
from protocol.signing import parse_enrollment_uri
from scanner.hub_link import hub_link
from scanner.screens.settings import with_pin

if TYPE_CHECKING:
    from scanner.app import GateApp
    from scanner.enroll import Enrollment, EnrollmentFailed

log = logging.getLogger(__name__)

ASK_HINT = "Y = enrol    N = cancel"
DONE_HINT = "Enter or Esc = back to scanning"
_BURST_GAP_S = DEFAULT_IDLE_GAP_MS / 1000  # keys closer than this are a scanner typing


def take_enrollment_qr(app: GateApp, payload: str) -> bool:
    """True when `payload` is an enrollment QR: then it is handled here and must not be
    scanned as a ticket. False for anything else."""
    found = parse_enrollment_uri(payload)
    if found is None:
        return False
    from scanner.enroll import enrolled_hub  # httpx only once an enrollment QR is read

    hub = enrolled_hub(app.service.store)
    if hub is not None:
        app.notify(f"Already enrolled with {hub}: enrollment QR ignored.", timeout=5)
    else:
        app.push_screen(EnrollScreen(*found))
    return True


class EnrollScreen(ModalScreen[bool]):
    """Dismisses True once this gate is enrolled, False when cancelled or refused."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Enrol"),
        Binding("n", "cancel", "Cancel"),
        Binding("escape", "leave", "Back", show=False),
        Binding("enter", "close", "Back", show=False),
    ]
    DEFAULT_CSS = """
    EnrollScreen { align: center middle; }
    EnrollScreen > #enroll-box { width: 72; height: auto; border: thick $accent; padding: 1 2;
        background: $surface; }
    EnrollScreen #enroll-title { text-style: bold; }
    EnrollScreen #enroll-result { height: auto; margin-top: 1; }
    EnrollScreen #enroll-result.-ok { color: $success; text-style: bold; }
    EnrollScreen #enroll-result.-failed { color: $error; text-style: bold; }
    EnrollScreen #enroll-hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, hub_url: str, code: str, fingerprint: str) -> None:
        super().__init__()
        self.hub_url = hub_url
        self.code = code
        self.fingerprint = fingerprint
        self.state = "ask"  # ask -> enrolling -> enrolled | failed
        self.result: Enrollment | None = None
        self.error: EnrollmentFailed | None = None
        self._last_key_s = 0.0

    @property
    def gate_app(self) -> GateApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="enroll-box"):
            yield Static("Enrollment QR", id="enroll-title")
            yield Static(
                f"Enrol this gate with hub {self.hub_url}?\nHub key fingerprint {self.fingerprint}",
                id="enroll-question",
                markup=False,
            )
            yield Static("", id="enroll-result", markup=False)
            yield Static(ASK_HINT, id="enroll-hint", markup=False)
        yield Footer()

    def on_key(self, event: events.Key) -> None:
        now = time.monotonic()
        in_burst = now - self._last_key_s < _BURST_GAP_S
        self._last_key_s = now
        if event.key == "ctrl+q":
            return
        if in_burst or self.state == "enrolling":
            event.stop()
            event.prevent_default()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("confirm", "cancel"):
            return self.state == "ask"
        if action == "leave":
            return self.state != "enrolling"
        if action == "close":  # Enter only once done: every scanner burst ends with Enter
            return self.state in ("enrolled", "failed")
        return True

    # -- actions -----------------------------------------------------------------------

    def action_confirm(self) -> None:
        with_pin(self.gate_app, "enrol this gate", self._start)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_leave(self) -> None:
        self.dismiss(self.state == "enrolled")

    def action_close(self) -> None:
        self.action_leave()

    def _start(self) -> None:
        if self.state != "ask":
            return
        self._set_state("enrolling", "Enrolling with the hub…", "")
        self.run_worker(self._enroll, thread=True, exit_on_error=False, group="enroll")

    def _enroll(self) -> None:
        """Worker thread: the network call and the store writes (the store is thread-safe)."""
        from scanner.enroll import EnrollmentFailed, enroll

        service = self.gate_app.service
        direction = service.gate.direction if service.gate else Direction.ENTRY
        try:
            result = enroll(
                service,
                self.hub_url,
                self.code,
                direction=direction,
                expected_fingerprint=self.fingerprint,
            )
        except EnrollmentFailed as err:
            self._hand_back(self._failed, err)
        except Exception as exc:  # a broken store must not kill the app: say so instead
            log.exception("enrolling failed")
            self._hand_back(self._failed, EnrollmentFailed("enroll_error", str(exc)))
        else:
            self._hand_back(self._enrolled, result)

    def _hand_back(self, handler: Callable[[Any], None], arg: object) -> None:
        with contextlib.suppress(RuntimeError):  # the app closed meanwhile
            self.app.call_from_thread(handler, arg)

    def _enrolled(self, result: Enrollment) -> None:
        self.result = result
        service = self.gate_app.service
        link = hub_link(service.store, service.clock)
        if link is not None:
            self.gate_app.attach_hub(*link)
        gate = result.gate
        self._set_state(
            "enrolled",
            f"Enrolled: {gate.gate_name} at venue {gate.venue_id} (device {result.device_id}). "
            "Syncing with the hub now.",
            "-ok",
        )

    def _failed(self, error: EnrollmentFailed) -> None:
        self.error = error
        self._set_state("failed", f"Not enrolled: {error.message} ({error.code})", "-failed")

    def _set_state(self, state: str, text: str, css: str) -> None:
        self.state = state
        result = self.query_one("#enroll-result", Static)
        result.set_classes(css)
        result.update(text)
        hint = {"ask": ASK_HINT, "enrolling": "Please wait…"}.get(state, DONE_HINT)
        self.query_one("#enroll-hint", Static).update(hint)
        self.refresh_bindings()
