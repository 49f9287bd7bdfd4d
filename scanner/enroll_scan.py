"""Enrolling from the gate's own camera: read frames until one holds an enrollment QR.

The frames go through the pipeline ticket scans take (hardware/camera.py: source, staged
decoder, de-duplication), so a QR the gate can scan at the door is one it can enrol from.
Only the reading lives here; checking the hub's key against the QR's fingerprint before the
code is sent (sealed), then pinning that key, is `scanner.enroll.enroll`, exactly as for typed
QR text. Reading stores nothing.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

from hardware.camera import CameraReader, FrameSource, QrDecoder, open_source
from protocol.signing import parse_enrollment_uri
from scanner.camera_feed import camera_spec, replay_fps
from scanner.enroll import EnrollmentFailed

DEFAULT_TIMEOUT_S = 120.0
_POLL_S = 0.1  # how often the wait notices that a video file has ended


def read_enrollment_qr(
    spec: str | None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_ignored: Callable[[str], object] | None = None,
    source: FrameSource | None = None,
    max_fps: float | None = None,
) -> tuple[str, str, str]:
    """(hub_url, code, hub fingerprint) from the first enrollment QR the camera sees.

    `spec` is what `run --camera` takes (device index, /dev/videoN, URL, video file, image
    folder); a recorded source is read at its own frame rate, like a camera. Any other code
    in view (a guest's ticket) is skipped; `on_ignored` hears about the first one only, so a
    person holding up the wrong code gets one hint, not one per frame. Raises EnrollmentFailed:
    `no_camera` when there is nothing to read, `no_enrollment_code` when the time runs out or
    a recording ends without one."""
    if timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")
    spec = camera_spec(spec)
    if source is None:
        if spec is None:
            raise EnrollmentFailed("no_camera", "give a camera to read the enrollment QR from")
        source = open_source(spec)
        max_fps = max_fps if max_fps is not None else replay_fps(spec)
    reader = CameraReader(source, QrDecoder(), max_fps=max_fps)
    if not reader.start():
        raise EnrollmentFailed("no_camera", f"no camera at {source.description}")
    deadline = time.monotonic() + timeout_s
    ignored = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EnrollmentFailed(
                    "no_enrollment_code", f"no enrollment QR seen within {timeout_s:g} s"
                )
            try:
                payload = reader.payloads.get(timeout=min(left, _POLL_S))
            except queue.Empty:
                # `running` false: the thread has put its last payload, so empty means done
                if not reader.running and reader.payloads.empty():
                    raise EnrollmentFailed(
                        "no_enrollment_code",
                        f"{source.description} ended without an enrollment QR",
                    ) from None
                continue
            found = parse_enrollment_uri(payload)
            if found is not None:
                return found
            if not ignored and on_ignored is not None:
                on_ignored(payload)
            ignored = True
    finally:
        reader.stop()
