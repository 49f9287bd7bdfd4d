"""The gate appliance's Textual app: keyboard only, readable at 80x24.

The app owns no rules: every scan goes through `GateService.scan`, which commits before it
returns, so whatever the screen shows is already on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from hardware.wedge import DEFAULT_IDLE_GAP_MS
from scanner.camera_feed import NO_CAMERA_NOTE, CameraFeed, camera_label, camera_spec
from scanner.screens.settings import PinScreen
from scanner.screens.verdict import GateScreen
from scanner.service import GateService
from scanner.settings import CAMERA, VERDICT_CLEAR_S

if TYPE_CHECKING:
    from scanner.live import LiveChannel
    from scanner.sync import SyncSnapshot, SyncWorker

DEFAULT_CLEAR_AFTER_S = VERDICT_CLEAR_S.default
DEFAULT_FAULT_RETRY_S = 2.0  # how often a STORAGE FAULT screen tries the disk again
CAMERA_WATCH_S = 1.0  # a camera that drops out shows in the status bar within this time


class GateApp(App[None]):
    TITLE = "Gate scanner"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "request_quit", "Exit", priority=True),
        Binding("ctrl+c", "request_quit", "Exit", show=False, priority=True),
    ]
    CSS = ".title { text-style: bold; padding: 0 1; background: $boost; }"
    fault_retry_s = DEFAULT_FAULT_RETRY_S

    def __init__(
        self,
        service: GateService,
        *,
        kiosk: bool = False,
        clear_after_s: float | None = None,
        wedge_idle_gap_ms: int = DEFAULT_IDLE_GAP_MS,
        camera: str | None = None,
        camera_max_fps: float | None = None,
        sync: SyncWorker | None = None,
        live: LiveChannel | None = None,
    ) -> None:
        """`camera`: a source spec (device index, /dev/videoN, URL, video file, image folder);
        None uses the stored `camera` setting. `camera_max_fps` paces a video file to its own
        frame rate (a live camera paces itself). `sync` / `live`: started on mount, stopped on
        unmount (an enrolled gate; None runs offline)."""
        super().__init__()
        self.service = service
        self.kiosk = kiosk
        stored = service.store.setting(VERDICT_CLEAR_S)
        self.clear_after_s = float(clear_after_s if clear_after_s is not None else stored)
        self.wedge_idle_gap_ms = wedge_idle_gap_ms
        self.pin_failures = 0
        self.pin_locked_until = 0.0
        # None: the stored setting; "none"/"off"/"": no camera even if one is stored
        self.camera_spec = camera_spec(camera) if camera is not None else self.stored_camera()
        self.camera_max_fps = camera_max_fps
        self.camera: CameraFeed | None = None
        self.sync: SyncWorker | None = None
        self.live: LiveChannel | None = None
        self.link: dict[str, Any] | None = None  # the last sync snapshot, on the UI thread
        self._download_pct: int | None = None
        self._camera_shown = ""
        if sync is not None:
            self._wire_links(sync, live)

    def _wire_links(self, sync: SyncWorker, live: LiveChannel | None) -> None:
        self.sync, self.live = sync, live
        self.service.link = self._link_status
        self.service.on_commit = sync.wake  # sets an event: never waits on the network

    def attach_hub(self, sync: SyncWorker, live: LiveChannel | None) -> None:
        """A gate enrolled from the app itself: sync and go live now, not at the next start."""
        if self.sync is not None:
            return
        self._wire_links(sync, live)
        self.start_sync()
        self._refresh_status()

    def stored_camera(self) -> str | None:
        return camera_spec(self.service.store.setting(CAMERA))

    async def on_mount(self) -> None:
        await self.push_screen(GateScreen())
        # only once the verdict screen is up: a first read must not be painted over
        self.call_after_refresh(self.start_camera)
        self.start_sync()
        self.set_interval(CAMERA_WATCH_S, self._watch_camera)

    async def on_unmount(self) -> None:
        # join off the loop: the camera thread may be waiting on this loop for a commit, and
        # the sync and live threads may be handing a state change to it
        await asyncio.to_thread(self.stop_camera)
        await asyncio.to_thread(self.stop_sync)

    # -- hub sync ----------------------------------------------------------------------

    def start_sync(self) -> None:
        """Background threads only: a scan never waits for them."""
        if self.sync is not None:
            self.sync.on_change = self._from_thread(self._sync_changed)
            self.sync.on_progress = self._sync_progress
            self.link = self.sync.snapshot().to_json()
            self.sync.start()
        if self.live is not None:
            self.live.on_merge = self._from_thread(lambda facts: self._refresh_status())
            self.live.start()

    def stop_sync(self) -> None:
        if self.live is not None:
            self.live.stop()
        if self.sync is not None:
            self.sync.stop()

    def _from_thread(self, handler: Any) -> Any:
        """A worker-thread callback that runs `handler` on the UI loop (dropped once the app
        is closing: the worker is about to be stopped anyway)."""

        def call(arg: Any) -> None:
            if self.is_running:
                with contextlib.suppress(RuntimeError):
                    self.call_from_thread(handler, arg)

        return call

    def _sync_changed(self, snapshot: SyncSnapshot) -> None:
        self.link = snapshot.to_json()
        self._download_pct = None
        self._refresh_status()

    def _sync_progress(self, received: int, total: int | None) -> None:
        """Worker thread: hand on only whole-percent steps (a chunk is a few kB)."""
        pct = None if not total else min(100, received * 100 // total)
        if pct == self._download_pct and received:
            return
        self._download_pct = pct
        self._from_thread(self._show_download)((received, total))

    def _show_download(self, download: tuple[int, int | None]) -> None:
        if self.link is not None:
            self.link = {**self.link, "state": "syncing", "download": list(download)}
            self._refresh_status()

    def _link_status(self) -> dict[str, Any] | None:
        if self.link is None:
            return None
        return {**self.link, "live": self.live is not None and self.live.connected.is_set()}

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
        """Says "No camera" only when none is configured; a configured one is named, and how."""
        if self.camera is not None:
            return self.camera.note
        if self.camera_spec is None:
            return NO_CAMERA_NOTE
        return f"Camera {camera_label(self.camera_spec)}: starting"

    def _watch_camera(self) -> None:
        """The camera thread ends quietly when a live camera stops delivering: say so now."""
        note = self.camera_note()
        if note != self._camera_shown:
            self._camera_shown = note
            self._refresh_status()

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
