"""The gate appliance's Textual app: keyboard only, readable at 80x24.

The app owns no rules: every scan goes through `GateService.scan`, which commits before it
returns, so whatever the screen shows is already on disk.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from hardware.wedge import DEFAULT_IDLE_GAP_MS
from scanner.camera_feed import CAMERA_CONFIG_KEY, CameraFeed, camera_spec
from scanner.screens.settings import PinScreen
from scanner.screens.verdict import GateScreen
from scanner.service import GateService

DEFAULT_CLEAR_AFTER_S = 4.0


class GateApp(App[None]):
    TITLE = "Gate scanner"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "request_quit", "Exit", priority=True),
        Binding("ctrl+c", "request_quit", "Exit", show=False, priority=True),
    ]
    CSS = ".title { text-style: bold; padding: 0 1; background: $boost; }"

    def __init__(
        self,
        service: GateService,
        *,
        kiosk: bool = False,
        clear_after_s: float | None = None,
        wedge_idle_gap_ms: int = DEFAULT_IDLE_GAP_MS,
        camera: str | None = None,
        camera_max_fps: float | None = None,
    ) -> None:
        """`camera`: a source spec (device index, /dev/videoN, URL, video file, image folder);
        None uses the stored `camera` setting. `camera_max_fps` paces a video file to its own
        frame rate (a live camera paces itself)."""
        super().__init__()
        self.service = service
        self.kiosk = kiosk
        stored = service.store.config("verdict_clear_s", DEFAULT_CLEAR_AFTER_S)
        self.clear_after_s = float(clear_after_s if clear_after_s is not None else stored)
        self.wedge_idle_gap_ms = wedge_idle_gap_ms
        self.pin_failures = 0
        self.pin_locked_until = 0.0
        # None: the stored setting; "none"/"off"/"": no camera even if one is stored
        self.camera_spec = camera_spec(camera) if camera is not None else self.stored_camera()
        self.camera_max_fps = camera_max_fps
        self.camera: CameraFeed | None = None

    def stored_camera(self) -> str | None:
        return camera_spec(self.service.store.config(CAMERA_CONFIG_KEY))

    async def on_mount(self) -> None:
        await self.push_screen(GateScreen())
        # only once the verdict screen is up: a first read must not be painted over
        self.call_after_refresh(self.start_camera)

    async def on_unmount(self) -> None:
        # join off the loop: the camera thread may be waiting on this loop for a commit
        await asyncio.to_thread(self.stop_camera)

    # -- camera ------------------------------------------------------------------------

    async def restart_camera(self, spec: str | None) -> bool:
        """A new camera setting, live: the old thread is joined off the loop first."""
        await asyncio.to_thread(self.stop_camera)
        self.camera_spec = camera_spec(spec)
        return self.start_camera()

    def start_camera(self) -> bool:
        """Open `camera_spec`; False, with a 'no camera' note, when there is none."""
        if self.camera is not None:
            raise RuntimeError("the camera is already running: use restart_camera")
        self.camera = CameraFeed(
            self.camera_spec,
            self._camera_scan,
            self.call_from_thread,
            max_fps=self.camera_max_fps,
        )
        started = self.camera.start()
        self._refresh_status()
        return started

    def stop_camera(self) -> None:
        """Stops the decoding thread. Not from a handler on the UI loop while it may be
        waiting on that loop (use `on_unmount`'s way: in a thread)."""
        feed, self.camera = self.camera, None
        if feed is not None:
            feed.stop()

    def camera_note(self) -> str:
        return "No camera" if self.camera is None else self.camera.note

    def _camera_scan(self, payload: str) -> None:
        """UI thread: a camera read takes the wedge's path, but only on the verdict screen
        (a guest waiting at an attention check or open settings is not scanned past)."""
        if not self.is_running or self.camera is None:
            return
        if isinstance(self.screen, GateScreen):
            self.screen.scan_payload(payload)
        else:
            self.notify("Camera read ignored: finish this screen first.", timeout=2)

    def status(self) -> dict[str, Any]:
        """The service's status plus the camera's state, for the status bar."""
        return {**self.service.status(), "camera": self.camera_note()}

    def _refresh_status(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, GateScreen) and screen.is_mounted:
                screen.refresh_status()

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
