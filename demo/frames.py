"""Realistic camera frames with a ticket QR in view, for tests and the bench.

A phone screen held up to a gate camera is never a clean square: it is tilted (perspective),
a little out of focus, noisy in low light and often carries a glare spot. Everything is seeded,
so a test or bench run sees the same frames every time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import segno

from protocol import base45

RESOLUTIONS: dict[str, tuple[int, int]] = {
    "640x480": (640, 480),
    "1280x720": (1280, 720),
    "1920x1080": (1920, 1080),
}


@dataclass(frozen=True, slots=True)
class Perturbation:
    """How far a frame departs from a clean, square-on code."""

    tilt: float = 0.12  # max corner shift, as a fraction of the code's side
    blur_sigma: float = 0.8
    noise_sigma: float = 6.0  # grey levels
    glare: float = 0.35  # peak brightness added by the glare spot, 0..1 of full white
    code_fraction: float = 0.35  # code side as a fraction of the frame height


CLEAN = Perturbation(tilt=0.0, blur_sigma=0.0, noise_sigma=0.0, glare=0.0)
TYPICAL = Perturbation()
HARSH = Perturbation(tilt=0.22, blur_sigma=1.3, noise_sigma=12.0, glare=0.55, code_fraction=0.28)


def ticket_payload(seed: int, n_bytes: int = 100) -> str:
    """A base45 string like a native credential (100 bytes -> 150 characters)."""
    rng = random.Random(seed)
    return base45.encode(bytes(rng.getrandbits(8) for _ in range(n_bytes)))


def qr_image(payload: str, module_px: int = 4, border: int = 4) -> np.ndarray:
    """The code as a uint8 greyscale image (0 black, 255 white) with its quiet zone."""
    return symbol_image(segno.make_qr(payload, error="m"), module_px, border)


def symbol_image(qr: segno.QRCode, module_px: int = 4, border: int = 4) -> np.ndarray:
    """Any segno symbol as a greyscale image, so odd codes render like tickets do."""
    modules = np.array([[bool(v) for v in row] for row in qr.matrix], dtype=np.uint8)
    modules = np.pad(modules, border, constant_values=0)
    img = np.where(modules == 1, 0, 255).astype(np.uint8)
    return np.kron(img, np.ones((module_px, module_px), dtype=np.uint8))


def structured_append_symbols(count: int = 2) -> list[segno.QRCode]:
    """A message split over `count` QR symbols (structured append), as some apps show a long
    text; zbar's Python wrapper raises on these (their orientation reads as 4294967295)."""
    text = "Structured append: the rest of this message is in the other symbols. " * 4
    return list(segno.make_sequence(text, symbol_count=count))


def kanji_symbol(text: str = "入場券テスト") -> segno.QRCode:
    """A Shift-JIS code in QR's Kanji mode (Japanese posters, transit passes): OpenCV's
    binding raises UnicodeDecodeError on its raw Shift-JIS bytes."""
    return segno.make_qr(text, mode="kanji")


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A dim, smooth, textured scene (a hand, a sleeve, the hall) rather than flat grey."""
    small = rng.integers(40, 150, size=(max(2, height // 40), max(2, width // 40)), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def render_frame(
    payload: str | None,
    size: tuple[int, int],
    seed: int,
    perturbation: Perturbation = TYPICAL,
) -> np.ndarray:
    """A BGR frame of `size` (width, height); `payload=None` gives a frame with no code."""
    width, height = size
    rng = np.random.default_rng(seed)
    frame = _background(rng, width, height).astype(np.float32)
    if payload is not None:
        side = perturbation.code_fraction * height
        cx = rng.uniform(side * 0.7, width - side * 0.7)
        cy = rng.uniform(side * 0.7, height - side * 0.7)
        frame = _place(frame, qr_image(payload), (cx, cy), side, rng, perturbation)
    return _finish(frame, rng, perturbation)


def render_scene(
    codes: Sequence[np.ndarray],
    size: tuple[int, int],
    seed: int,
    perturbation: Perturbation = TYPICAL,
) -> np.ndarray:
    """Several codes side by side in one BGR frame (`symbol_image`s): a guest's ticket beside
    whatever else is in view, so tests can check one odd code never hides the ticket."""
    width, height = size
    rng = np.random.default_rng(seed)
    frame = _background(rng, width, height).astype(np.float32)
    slot = width / max(1, len(codes))
    side = min(perturbation.code_fraction * height, slot * 0.7)
    for i, code in enumerate(codes):
        cx = rng.uniform(i * slot + side * 0.7, (i + 1) * slot - side * 0.7)
        cy = rng.uniform(side * 0.7, height - side * 0.7)
        frame = _place(frame, code, (cx, cy), side, rng, perturbation)
    return _finish(frame, rng, perturbation)


# Codes a gate cannot use that still end up in view, by name: frame i of a series shows
# this image.
ODD_CODES: dict[str, Callable[[int], np.ndarray]] = {
    "structured_append": lambda i: symbol_image(structured_append_symbols()[i % 2]),
    "kanji": lambda i: symbol_image(kanji_symbol()),
}


def ticket_beside_odd(
    odd: str,
    i: int,
    guest: int,
    seed: int,
    perturbation: Perturbation = TYPICAL,
    size: tuple[int, int] = (1280, 720),
) -> tuple[str, np.ndarray]:
    """Frame i of a series: guest `guest`'s ticket with the odd code left of it (odd i) or
    right of it (even i), and the ticket's text."""
    ticket = ticket_payload(guest)
    pair = [ODD_CODES[odd](i), qr_image(ticket)]
    return ticket, render_scene(pair if i % 2 else pair[::-1], size, seed, perturbation)


def _place(
    frame: np.ndarray,
    code: np.ndarray,
    centre: tuple[float, float],
    side: float,
    rng: np.random.Generator,
    perturbation: Perturbation,
) -> np.ndarray:
    """Warp one code into the frame as a tilted phone screen, with its glare spot."""
    height, width = frame.shape
    cx, cy = centre
    half = side / 2
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    square = np.array([[cx + sx * half, cy + sy * half] for sx, sy in corners], np.float32)
    jitter = rng.uniform(-1, 1, size=(4, 2)).astype(np.float32) * perturbation.tilt * side
    dest = square + jitter
    h, w = code.shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dest)
    warped = cv2.warpPerspective(code, matrix, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full_like(code, 255), matrix, (width, height))
    screen = warped.astype(np.float32) * 0.85 + 20  # a phone screen is never pure white
    alpha = mask.astype(np.float32) / 255.0
    frame = frame * (1 - alpha) + screen * alpha
    if perturbation.glare > 0:
        gx = cx + rng.uniform(-0.3, 0.3) * side
        gy = cy + rng.uniform(-0.3, 0.3) * side
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        radius = side * 0.25
        spot = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * radius**2))
        frame = frame + spot * perturbation.glare * 255
    return frame


def _finish(frame: np.ndarray, rng: np.random.Generator, perturbation: Perturbation) -> np.ndarray:
    """Blur and sensor noise over the whole frame, then the BGR frame a camera delivers."""
    if perturbation.blur_sigma > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), perturbation.blur_sigma)
    if perturbation.noise_sigma > 0:
        frame = frame + rng.normal(0, perturbation.noise_sigma, size=frame.shape).astype(np.float32)
    grey = np.clip(frame, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def frame_series(
    payloads: Sequence[str | None],
    size: tuple[int, int],
    seed: int = 0,
    perturbation: Perturbation = TYPICAL,
) -> Iterator[np.ndarray]:
    for i, payload in enumerate(payloads):
        yield render_frame(payload, size, seed * 100_003 + i, perturbation)


def write_video(
    path: Path, frames: Sequence[np.ndarray] | Iterator[np.ndarray], fps: float = 15.0
) -> int:
    """Write frames to an MJPG .avi (the codec every OpenCV build here can both write and read).
    Returns how many frames were written; raises if the writer cannot be opened."""
    writer: cv2.VideoWriter | None = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                fourcc = cv2.VideoWriter.fourcc(*"MJPG")
                writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"cannot open a video writer for {path}")
            writer.write(frame)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count
