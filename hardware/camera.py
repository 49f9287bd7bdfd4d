"""Camera input: frame sources, the QR decoding pipeline, and the worker thread that joins them.

Decoding a full 1080p frame with zbar takes ~100 ms; a gate camera delivers 15-30 frames a
second and the UI must never wait on it. So decoding runs in its own thread and does the cheap
thing first: zbar on a downscaled greyscale frame (a phone held up to the gate is large enough),
then zbar on the full-resolution region where the last code was seen, and only then the full
frame, with OpenCV's `QRCodeDetector` as the fallback for what zbar misses (it locates on the
small frame and decodes only the full-resolution crop). Those last, expensive passes run on
every `deep_every`-th frame that missed, so an empty scene costs little CPU.

No camera is a normal state for a gate (a keyboard-wedge scanner may be all it has): opening a
missing device gives `SourceState.NO_CAMERA`, never an exception.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode

from hardware.dedupe import Deduper

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_URL = re.compile(r"^(rtsp|rtsps|http|https|rtmp|udp|tcp)://", re.IGNORECASE)


class SourceState(StrEnum):
    OPEN = "open"
    NO_CAMERA = "no_camera"  # nothing at that device/path/URL: expected on a wedge-only gate
    ENDED = "ended"  # a file or folder ran out of frames
    CLOSED = "closed"


class FrameSource(Protocol):
    state: SourceState
    description: str

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
        if isinstance(target, str) and not _URL.match(target) and not Path(target).exists():
            return  # do not let OpenCV probe (and log about) a path that is not there
        capture = cv2.VideoCapture(target, api)
        if capture.isOpened():
            self._capture = capture
            self.state = SourceState.OPEN
        else:
            capture.release()

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        if not ok or frame is None:
            # A live camera that stops delivering has gone away; a file has simply ended.
            self.state = SourceState.NO_CAMERA if self.live else SourceState.ENDED
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
        self._files = (
            sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if folder.is_dir()
            else []
        )
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
        if not Path(f"/dev/video{index}").exists():
            return VideoSource(f"/dev/video{index}")  # NO_CAMERA without probing
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
    stage: str | None  # "small", "roi", "full", "opencv"; None when nothing was found
    rect: tuple[int, int, int, int] | None = None  # x, y, w, h in full-frame pixels


_NOTHING = DecodeResult((), None)


def zbar_qr(gray: np.ndarray) -> list[tuple[str, tuple[int, int, int, int]]]:
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
    """The staged pipeline; keeps the last code's region between frames. Not thread-safe:
    one decoder per reader thread."""

    def __init__(
        self,
        small_width: int = 640,
        roi_margin: float = 0.6,
        roi_ttl_frames: int = 30,
        deep_every: int = 4,
        use_opencv: bool = True,
    ) -> None:
        self.small_width = small_width
        self.roi_margin = roi_margin
        self.roi_ttl_frames = roi_ttl_frames
        self.deep_every = max(1, deep_every)
        self.use_opencv = use_opencv
        self._opencv = cv2.QRCodeDetector() if use_opencv else None
        self._last_rect: tuple[int, int, int, int] | None = None
        self._frames_since_hit = 0
        self._misses = 0

    def decode(self, frame: np.ndarray) -> DecodeResult:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        result = self._decode_gray(gray)
        if result.payloads:
            self._last_rect, self._frames_since_hit, self._misses = result.rect, 0, 0
        else:
            self._frames_since_hit += 1
            self._misses += 1
            if self._frames_since_hit > self.roi_ttl_frames:
                self._last_rect = None
        return result

    def _decode_gray(self, gray: np.ndarray) -> DecodeResult:
        height, width = gray.shape
        deep_turn = self._misses % self.deep_every == 0
        if width <= self.small_width:  # already small: the full frame is the cheap pass
            hit = self._from(zbar_qr(gray), "full", 1.0)
            if hit:
                return hit
            return self._opencv_pass(gray) if deep_turn else _NOTHING
        scale = self.small_width / width
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        hit = self._from(zbar_qr(small), "small", 1 / scale)
        if hit:
            return hit
        if self._last_rect is not None:
            x0, y0, x1, y1 = self._roi_bounds(self._last_rect, width, height)
            hit = self._from(zbar_qr(gray[y0:y1, x0:x1]), "roi", 1.0, (x0, y0))
            if hit:
                return hit
        if not deep_turn:
            return _NOTHING  # the expensive passes wait for every deep_every-th miss
        hit = self._from(zbar_qr(gray), "full", 1.0)
        if hit:
            return hit
        return self._opencv_pass(gray, small)

    def _opencv_pass(self, gray: np.ndarray, small: np.ndarray | None = None) -> DecodeResult:
        """OpenCV's detector finds codes zbar misses (glare, tilt), but is slow on a whole
        frame; so it locates on the small frame and decodes only the full-resolution crop."""
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
            return _NOTHING
        if not text or points is None:
            return _NOTHING
        pts = points.reshape(-1, 2) + offset
        x, y = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return DecodeResult((text,), "opencv", (int(x), int(y), int(x1 - x), int(y1 - y)))

    def _roi_bounds(
        self, rect: tuple[int, int, int, int], width: int, height: int
    ) -> tuple[int, int, int, int]:
        x, y, w, h = rect
        mx, my = int(w * self.roi_margin), int(h * self.roi_margin)
        return max(0, x - mx), max(0, y - my), min(width, x + w + mx), min(height, y + h + my)

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
