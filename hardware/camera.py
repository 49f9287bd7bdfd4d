"""Camera input: frame sources, the QR decoding pipeline, and the worker thread that joins them.

A gate camera delivers 15-30 frames a second and the UI must never wait on it. So decoding
runs in its own thread: zxing-cpp reads every QR code in the full greyscale frame (3 ms at
720p), with OpenCV's `QRCodeDetector` as the fallback for what it misses (it locates on a
downscaled frame and decodes only the full-resolution crop). That slow pass runs on every
`deep_every`-th frame that missed, so an empty scene costs little CPU. zxing-cpp replaced
pyzbar after an A/B (`bench/decoder_bench.py`): it read more codes in a tenth of the time,
and it reads structured-append codes, on which pyzbar raises.

Any code can be in view, so no pass may take the frame down with it: a pass that raises
counts as a miss (and is counted in `QrDecoder.pass_errors`) and the passes after it still run.

No camera is a normal state for a gate (a keyboard-wedge scanner may be all it has): opening a
missing device gives `SourceState.NO_CAMERA`, never an exception, with the reason in words
(`source.reason`: device missing, permission denied, cannot open) for staff to act on.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import zxingcpp

from hardware.dedupe import Deduper

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_URL = re.compile(r"^(rtsp|rtsps|http|https|rtmp|udp|tcp)://", re.IGNORECASE)


class SourceState(StrEnum):
    OPEN = "open"
    NO_CAMERA = "no_camera"  # nothing at that device/path/URL: expected on a wedge-only gate
    ENDED = "ended"  # a file or folder ran out of frames
    CLOSED = "closed"


class CameraFault(StrEnum):
    """Why a source gives no frames, in words staff can act on: "No camera" alone does not
    tell a loose cable from a gate user outside the `video` group."""

    MISSING = "device missing"  # no such device, file or folder
    PERMISSION = "permission denied"  # it is there, but this user may not open it
    CANNOT_OPEN = "cannot open"  # there and allowed, but OpenCV cannot open it (busy, not a
    # camera, stream unreachable, unknown file format)
    NO_IMAGES = "no images"  # a folder without one image in it
    LOST = "stopped delivering"  # a live camera that was open stopped giving frames


def _path_fault(path: Path, device: bool) -> CameraFault | None:
    """Ask the file system first: it knows missing and forbidden apart, OpenCV does not."""
    if not path.exists():
        return CameraFault.MISSING
    mode = os.R_OK | (os.W_OK if device else 0)  # V4L2 opens a camera read-write
    if not os.access(path, mode):
        return CameraFault.PERMISSION
    return None


class FrameSource(Protocol):
    state: SourceState
    description: str
    reason: CameraFault | None  # why state is NO_CAMERA; None while open

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None (then `state` says why)."""

    def close(self) -> None: ...


class VideoSource:
    """Anything `cv2.VideoCapture` opens: device index, V4L2 path, RTSP/HTTP URL, video file."""

    def __init__(self, target: int | str, api: int = cv2.CAP_ANY, live: bool = True) -> None:
        self.description = str(target)
        self.live = live
        self._capture: cv2.VideoCapture | None = None
        self.state = SourceState.NO_CAMERA
        self.reason: CameraFault | None = None
        if isinstance(target, str) and not _URL.match(target):
            # do not let OpenCV probe (and log about) a path that is not there or not ours
            self.reason = _path_fault(Path(target), device=target.startswith("/dev/"))
            if self.reason is not None:
                log.warning("camera %s: %s", target, self.reason)
                return
        capture = cv2.VideoCapture(target, api)
        if capture.isOpened():
            self._capture = capture
            self.state = SourceState.OPEN
        else:
            capture.release()
            self.reason = CameraFault.CANNOT_OPEN
            log.warning("camera %s: %s", target, self.reason)

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        if not ok or frame is None:
            # A live camera that stops delivering has gone away; a file has simply ended.
            self.state = SourceState.NO_CAMERA if self.live else SourceState.ENDED
            if self.live:
                self.reason = CameraFault.LOST
            self.close(keep_state=True)
            return None
        return frame

    def close(self, keep_state: bool = False) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        if not keep_state:
            self.state = SourceState.CLOSED


class FolderSource:
    """Images in a folder, in name order: for tests, demos and replaying captured frames."""

    def __init__(self, folder: Path, loop: bool = False) -> None:
        self.description = str(folder)
        self.loop = loop
        self.reason: CameraFault | None = None
        self._files: list[Path] = []
        try:
            self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except FileNotFoundError:
            self.reason = CameraFault.MISSING
        except PermissionError:
            self.reason = CameraFault.PERMISSION
        except OSError:  # not a folder, or it cannot be listed
            self.reason = CameraFault.CANNOT_OPEN
        if self.reason is None and not self._files:
            self.reason = CameraFault.NO_IMAGES
        self._next = 0
        self.state = SourceState.OPEN if self._files else SourceState.NO_CAMERA

    def read(self) -> np.ndarray | None:
        while self.state is SourceState.OPEN:
            if self._next >= len(self._files):
                if not self.loop:
                    self.state = SourceState.ENDED
                    return None
                self._next = 0
            path = self._files[self._next]
            self._next += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            log.warning("skipping unreadable image %s", path.name)
        return None

    def close(self) -> None:
        self.state = SourceState.CLOSED


def open_source(spec: int | str | Path) -> FrameSource:
    """Open what the gate's settings name: `0` or "0" (device index), "/dev/video2", a URL,
    a video file, or a folder of images. Never raises for a missing device."""
    if isinstance(spec, Path):
        spec = str(spec)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        device = f"/dev/video{index}"
        if _path_fault(Path(device), device=True) is not None:
            return VideoSource(device)  # NO_CAMERA with its reason, without probing
        return VideoSource(index, cv2.CAP_V4L2)
    if _URL.match(spec):
        return VideoSource(spec, cv2.CAP_FFMPEG)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path)
    if spec.startswith("/dev/"):
        return VideoSource(spec, cv2.CAP_V4L2)
    return VideoSource(spec, live=False)


@dataclass(frozen=True, slots=True)
class DecodeResult:
    payloads: tuple[str, ...]
    stage: str | None  # "full" (the reader), "opencv"; None when nothing was found
    rect: tuple[int, int, int, int] | None = None  # x, y, w, h in full-frame pixels


_NOTHING = DecodeResult((), None)

Found = list[tuple[str, tuple[int, int, int, int]]]  # (text, (x, y, w, h)) per code
Reader = Callable[[np.ndarray], Found]


_QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


def zxing_qr(gray: np.ndarray) -> Found:
    """Every QR code zxing-cpp reads in a greyscale image (numpy views are read in place)."""
    found = []
    for code in zxingcpp.read_barcodes(gray, formats=_QR_ONLY):
        p = code.position
        xs = (p.top_left.x, p.top_right.x, p.bottom_right.x, p.bottom_left.x)
        ys = (p.top_left.y, p.top_right.y, p.bottom_right.y, p.bottom_left.y)
        x, y = min(xs), min(ys)
        found.append((code.text, (x, y, max(xs) - x, max(ys) - y)))
    return found


def zbar_qr(gray: np.ndarray) -> Found:
    """The decoder the gate used before zxing-cpp, kept as the benches' baseline. pyzbar is
    imported here, not at the top, so the gate itself no longer needs it or libzbar0."""
    from pyzbar.pyzbar import ZBarSymbol
    from pyzbar.pyzbar import decode as zbar_decode

    found = []
    for symbol in zbar_decode(gray, symbols=[ZBarSymbol.QRCODE]):
        try:
            text = symbol.data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not one of our codes (they are base45 / ASCII)
        r = symbol.rect
        found.append((text, (r.left, r.top, r.width, r.height)))
    return found


class QrDecoder:
    """The reader on the whole frame, then OpenCV on misses. Not thread-safe: one decoder per
    reader thread. `reader` is the library pass (zxing-cpp; the bench swaps in pyzbar);
    `pass_errors` counts, per pass, the exceptions it swallowed.

    Every frame gets the full-resolution pass: with pyzbar the gate read a downscaled frame
    first and stopped at its first hit, so a poster or a second phone read there hid a ticket
    only the full frame showed. zxing-cpp reads a full 720p frame faster than that staged
    pyzbar pipeline did (see README, "Camera decoder")."""

    def __init__(
        self,
        small_width: int = 640,
        deep_every: int = 4,
        use_opencv: bool = True,
        reader: Reader = zxing_qr,
    ) -> None:
        self.reader = reader
        self.pass_errors: Counter[str] = Counter()
        self.small_width = small_width  # OpenCV locates on a frame this wide
        self.deep_every = max(1, deep_every)
        self.use_opencv = use_opencv
        self._opencv = cv2.QRCodeDetector() if use_opencv else None
        self._misses = 0
        self._failed: str | None = None  # the last pass that raised on the current frame
        self._logged: set[str] = set()

    def decode(self, frame: np.ndarray) -> DecodeResult:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        self._failed = None
        result = self._decode_gray(gray)
        self._misses = 0 if result.payloads else self._misses + 1
        return result

    def _decode_gray(self, gray: np.ndarray) -> DecodeResult:
        hit = self._read(gray, "full", 1.0)
        if hit:
            return hit
        # OpenCV is slow: it waits for every deep_every-th miss, unless the reader failed
        # (then this frame told us nothing yet).
        if self._misses % self.deep_every and self._failed is None:
            return _NOTHING
        width = gray.shape[1]
        if width <= self.small_width:
            return self._guarded_opencv(gray)
        scale = self.small_width / width
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return self._guarded_opencv(gray, small)

    def _read(
        self, image: np.ndarray, stage: str, factor: float, offset: tuple[int, int] = (0, 0)
    ) -> DecodeResult | None:
        """One reader pass. Whatever the library raises (pyzbar on structured-append codes,
        the next library's next bug) is a miss for this pass, never for the frame."""
        try:
            found = self.reader(image)
        except Exception as exc:
            self._note_error(stage, exc)
            return None
        return self._from(found, stage, factor, offset)

    def _guarded_opencv(self, gray: np.ndarray, small: np.ndarray | None = None) -> DecodeResult:
        try:
            return self._opencv_pass(gray, small)
        except Exception as exc:  # UnicodeDecodeError on Shift-JIS, cv2.error, ...
            self._note_error("opencv", exc)
            return _NOTHING

    def _note_error(self, stage: str, exc: Exception) -> None:
        """Count every swallowed error; log the first of each kind only, since a code held
        in view fails the same way 30 times a second."""
        self._failed = stage
        key = f"{stage}: {type(exc).__name__}"
        self.pass_errors[stage] += 1
        if key not in self._logged:
            self._logged.add(key)
            log.warning("decoder pass %s failed (%s: %s)", stage, type(exc).__name__, exc)

    def _opencv_pass(self, gray: np.ndarray, small: np.ndarray | None = None) -> DecodeResult:
        """OpenCV's detector finds codes the reader misses (glare, tilt), but is slow on a
        whole frame; so it locates on the small frame and decodes only the full-resolution
        crop. Raises what OpenCV raises: `_guarded_opencv` catches it."""
        if self._opencv is None:
            return _NOTHING
        height, width = gray.shape
        try:
            if small is not None:
                found, points = self._opencv.detect(small)
                if not found or points is None:
                    return _NOTHING
                pts = points.reshape(-1, 2) * (width / small.shape[1])
                x0, y0 = np.maximum(pts.min(axis=0) - 0.15 * np.ptp(pts, axis=0), 0).astype(int)
                x1, y1 = (pts.max(axis=0) + 0.15 * np.ptp(pts, axis=0)).astype(int)
                x1, y1 = min(int(x1), width), min(int(y1), height)
                text, points, _ = self._opencv.detectAndDecode(gray[y0:y1, x0:x1])
                offset = np.array([x0, y0], dtype=np.float32)
            else:
                text, points, _ = self._opencv.detectAndDecode(gray)
                offset = np.zeros(2, dtype=np.float32)
        except cv2.error:
            return _NOTHING  # OpenCV's own "no code here" on odd crops: not worth a count
        if not text or points is None:
            return _NOTHING
        pts = points.reshape(-1, 2) + offset
        x, y = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return DecodeResult((text,), "opencv", (int(x), int(y), int(x1 - x), int(y1 - y)))

    @staticmethod
    def _from(
        found: list[tuple[str, tuple[int, int, int, int]]],
        stage: str,
        factor: float,
        offset: tuple[int, int] = (0, 0),
    ) -> DecodeResult | None:
        if not found:
            return None
        texts = tuple(dict.fromkeys(text for text, _ in found))
        x, y, w, h = found[0][1]
        rect = (
            int(x * factor) + offset[0],
            int(y * factor) + offset[1],
            int(w * factor),
            int(h * factor),
        )
        return DecodeResult(texts, stage, rect)


PayloadCallback = Callable[[str], None]


class CameraReader:
    """Pulls frames from a source in a daemon thread, decodes them, and hands each new scan
    (after de-duplication) to `on_payload` (called in the worker thread: a Textual app passes
    a function that uses `app.call_from_thread`) and to the `payloads` queue."""

    def __init__(
        self,
        source: FrameSource,
        decoder: QrDecoder | None = None,
        on_payload: PayloadCallback | None = None,
        deduper: Deduper | None = None,
        clock_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
        max_fps: float | None = None,
    ) -> None:
        self.source = source
        self.decoder = decoder or QrDecoder()
        self.on_payload = on_payload
        self.deduper = deduper or Deduper()
        self.payloads: queue.Queue[str] = queue.Queue()
        self.frames_read = 0
        self.frames_with_code = 0
        self._clock_ms = clock_ms
        self._min_interval = 1.0 / max_fps if max_fps else 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SourceState:
        return self.source.state

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start reading; False (and no thread) when there is no camera to read."""
        if self.source.state is not SourceState.OPEN:
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="camera-reader", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.source.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a finite source (file, folder) to run out; True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _notify(self, payload: str) -> None:
        if self.on_payload is None:
            return
        try:
            self.on_payload(payload)
        except Exception:  # the UI's problem must not stop the camera; the queue has it too
            log.exception("payload callback failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            frame = self.source.read()
            if frame is None:
                if self.source.state is not SourceState.OPEN:
                    log.info("camera %s: %s", self.source.description, self.source.state)
                    return
                continue
            self.frames_read += 1
            try:
                result = self.decoder.decode(frame)
            except Exception:  # a bad frame must not kill the gate's only camera thread
                log.exception("decoding a frame failed")
                continue
            if result.payloads:
                self.frames_with_code += 1
            now_ms = self._clock_ms()
            for payload in result.payloads:
                if self.deduper.accept(payload, now_ms):
                    self.payloads.put(payload)
                    self._notify(payload)
            if self._min_interval:
                rest = self._min_interval - (time.monotonic() - started)
                if rest > 0:
                    self._stop.wait(rest)
