"""The camera as a second scanner for the gate app.

A `CameraReader` decodes in its own thread; each new payload crosses to the UI thread with
`app.call_from_thread` and goes into exactly the path a keyboard-wedge scan takes
(`GateScreen.scan_payload` -> `GateService.scan`, committed before the verdict shows). The
worker waits for that call to return, so the camera never runs ahead of the gate's own commit.
No camera is a normal state (a wedge-only gate): the feed just reports it for the status bar.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import cv2

from hardware.camera import (
    CameraFault,
    CameraReader,
    FrameSource,
    QrDecoder,
    SourceState,
    open_source,
)

log = logging.getLogger(__name__)

FOLDER_FPS = 10.0  # an image folder has no frame rate of its own: replay it like a camera
NO_CAMERA_NOTE = "No camera"  # only when none is configured: a wedge-only gate
CAMERA_NOTES: dict[SourceState, str] = {
    SourceState.OPEN: "Camera on",
    SourceState.NO_CAMERA: NO_CAMERA_NOTE,
    SourceState.ENDED: "Camera: video ended",
    SourceState.CLOSED: "Camera off",
}
LABEL_CHARS = 16  # a camera's name in the status bar: which one, not its whole path


def camera_spec(text: str | int | Path | None) -> str | None:
    """A stored or typed camera setting, tidied: blank or "none"/"off" mean no camera."""
    if text is None:
        return None
    spec = str(text).strip()
    return None if spec.lower() in {"", "none", "off"} else spec


def camera_label(spec: str) -> str:
    """Which camera, in a few characters: a device path, the host of a stream (never a
    password from its URL), or a file's name."""
    if spec.isdigit():
        return f"/dev/video{int(spec)}"
    if "://" in spec:
        parts = urlsplit(spec)
        host = parts.hostname or "?"
        label = f"{parts.scheme}://{host}"
    else:
        label = spec if spec.startswith("/dev/") else (Path(spec).name or spec)
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def replay_fps(spec: str | None) -> float | None:
    """A recorded source is read at its own pace, not as fast as the CPU allows (which would
    squeeze a minute of guests into seconds); a live camera paces itself (None)."""
    if spec is None or spec.isdigit() or spec.startswith("/dev/") or "://" in spec:
        return None
    path = Path(spec)
    if path.is_dir():
        return FOLDER_FPS
    if not path.is_file():
        return None
    capture = cv2.VideoCapture(str(path))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS)) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return fps if 0 < fps <= 240 else None


class CameraFeed:
    """One camera source joined to a payload handler that must run on the UI thread.

    `deliver(handler, payload)` is how a payload reaches the UI thread: the app passes its
    `call_from_thread`. `stop()` must be called from outside the UI loop (or after it ended):
    it joins the worker, which may be waiting on the loop."""

    def __init__(
        self,
        spec: str | None,
        handler: Callable[[str], object],
        deliver: Callable[[Callable[[str], object], str], object],
        *,
        max_fps: float | None = None,
        source: FrameSource | None = None,
    ) -> None:
        """`max_fps` None: a video file or folder at its own pace, a live camera unpaced."""
        self.spec = spec
        self._handler = handler
        self._deliver = deliver
        self._stopping = threading.Event()
        self.delivered = 0
        self._failure: str | None = None  # the camera could not even be set up
        self.reader: CameraReader | None = None
        try:
            if source is None and spec is not None:
                source = open_source(spec)
                if max_fps is None:
                    max_fps = replay_fps(spec)
            if source is not None:
                self.reader = CameraReader(
                    source, QrDecoder(), on_payload=self._on_payload, max_fps=max_fps
                )
        except Exception as exc:  # a broken driver or decoder must not stop the gate
            log.warning("camera %s cannot be set up: %s", spec, exc)
            self._failure = CameraFault.CANNOT_OPEN.value

    @property
    def state(self) -> SourceState:
        if self.reader is None:
            return SourceState.NO_CAMERA
        return self.reader.state

    @property
    def running(self) -> bool:
        return self.reader is not None and self.reader.running

    @property
    def reason(self) -> str | None:
        """Why a configured camera gives no frames (device missing, permission denied, ...)."""
        if self.reader is None:
            return self._failure
        reason = getattr(self.reader.source, "reason", None)
        return str(reason) if reason else None

    @property
    def note(self) -> str:
        """Short words for the status bar. A configured camera that gives no frames is named
        with the reason ("Camera /dev/video0: permission denied"): staff can fix a loose cable
        or a missing permission, not a bare "No camera", which means none is configured."""
        if self.state is SourceState.NO_CAMERA and self.spec is not None:
            return f"Camera {camera_label(self.spec)}: {self.reason or 'not available'}"
        return CAMERA_NOTES[self.state]

    def start(self) -> bool:
        """Start decoding; False when there is no camera (not an error)."""
        if self.reader is None:
            return False
        self._stopping.clear()
        started = self.reader.start()
        if not started:
            log.info("camera %s: %s", self.spec, self.reader.state)
        return started

    def request_stop(self) -> None:
        """Safe from the UI thread: no more payloads are handed over from now on."""
        self._stopping.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        if self.reader is not None:
            self.reader.stop(timeout)

    def _on_payload(self, payload: str) -> None:
        """Worker thread: hand over and wait until the scan is committed and shown."""
        if self._stopping.is_set():
            return
        try:
            self._deliver(self._handler, payload)
        except RuntimeError:  # the app has stopped running: nothing left to show it on
            self._stopping.set()
            return
        self.delivered += 1
