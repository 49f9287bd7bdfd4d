"""A code the gate cannot use must never hide the ticket beside it (issue #11).

pyzbar raises on structured-append QR codes and OpenCV's binding raises on Shift-JIS (Kanji)
codes; either used to escape `QrDecoder.decode`, so the frame was lost with the ticket in it.
Every frame here holds a guest's ticket next to such a code, decoded through the real path:
`QrDecoder` as the camera thread runs it, and `CameraReader` reading a real MJPG video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demo.frames import (
    CLEAN,
    ODD_CODES,
    TYPICAL,
    Perturbation,
    kanji_symbol,
    render_frame,
    render_scene,
    symbol_image,
    ticket_beside_odd,
    ticket_payload,
    write_video,
)
from hardware.camera import CameraReader, QrDecoder, SourceState, open_source

SIZE = (1280, 720)
MILD = Perturbation(tilt=0.05, blur_sigma=0.6, noise_sigma=3.0, glare=0.0)


def scenes(
    odd: str, n: int, perturbation: Perturbation, first_guest: int = 0
) -> list[tuple[str, np.ndarray]]:
    """n frames, each with another guest's ticket and the odd code left or right of it."""
    return [
        ticket_beside_odd(odd, i, 200 + first_guest + i, 300 + i, perturbation) for i in range(n)
    ]


@pytest.mark.parametrize("odd", sorted(ODD_CODES))
@pytest.mark.parametrize(
    ("label", "perturbation", "n"), [("mild", MILD, 8), ("typical", TYPICAL, 12)]
)
def test_odd_code_beside_a_ticket_never_hides_it(
    odd: str, label: str, perturbation: Perturbation, n: int
) -> None:
    decoder = QrDecoder()  # one decoder across frames, as the camera thread holds it
    lost = []
    for i, (ticket, frame) in enumerate(scenes(odd, n, perturbation)):
        result = decoder.decode(frame)  # must not raise
        if ticket not in result.payloads:
            lost.append(i)
    assert lost == [], f"{odd}/{label}: ticket not read in frames {lost}"


def test_camera_thread_reads_every_ticket_beside_odd_codes(tmp_path: Path) -> None:
    """The app's path: a video through CameraReader; each guest holds up a ticket for three
    frames while a structured-append or Kanji code is in view too."""
    guests, frames = [], []
    for k, odd in enumerate(sorted(ODD_CODES)):
        for ticket, frame in scenes(odd, 4, MILD, first_guest=100 * k):
            guests.append(ticket)
            frames += [frame] * 3
    video = tmp_path / "odd.avi"
    write_video(video, frames)
    seen: list[str] = []
    reader = CameraReader(open_source(video), QrDecoder(), on_payload=seen.append)
    assert reader.start()
    assert reader.wait(60)
    assert reader.source.state is SourceState.ENDED
    assert reader.frames_read == len(frames)
    assert reader.frames_with_code == len(frames)
    assert [p for p in seen if p in guests] == guests  # each guest once, in order


def test_a_pass_that_raises_does_not_stop_the_others() -> None:
    """Whatever the reader library does wrong next, the OpenCV pass still gets the frame."""

    def broken(gray: np.ndarray) -> list[tuple[str, tuple[int, int, int, int]]]:
        raise ValueError("4294967295 is not a valid ZBarOrientation")

    ticket = ticket_payload(7)
    decoder = QrDecoder(reader=broken)
    for size in ((640, 480), SIZE):
        result = decoder.decode(render_frame(ticket, size, 1, CLEAN))
        assert result.payloads == (ticket,) and result.stage == "opencv"
    assert decoder.pass_errors == {"full": 2}


def test_opencv_pass_survives_a_kanji_code() -> None:
    """OpenCV returns Kanji as raw Shift-JIS bytes and its binding raises on them."""
    frame = render_scene([symbol_image(kanji_symbol())], SIZE, 5, CLEAN)
    decoder = QrDecoder(reader=lambda gray: [], deep_every=1)  # only OpenCV sees the code
    assert decoder.decode(frame).payloads == ()
    assert decoder.pass_errors == {"opencv": 1}
