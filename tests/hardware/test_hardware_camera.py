"""Real zxing-cpp + OpenCV decoding of generated frames, through a real MJPG video file."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from demo.frames import (
    CLEAN,
    HARSH,
    TYPICAL,
    Perturbation,
    frame_series,
    qr_image,
    render_frame,
    ticket_payload,
    write_video,
)
from hardware.camera import (
    CameraReader,
    FolderSource,
    QrDecoder,
    SourceState,
    open_source,
    zbar_qr,
)
from hardware.dedupe import Deduper


def test_payload_is_base45_and_renders_as_qr() -> None:
    payload = ticket_payload(1)
    assert len(payload) == 150
    assert set(payload) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    image = qr_image(payload)
    assert image.dtype == np.uint8 and image.shape[0] == image.shape[1]


def test_video_file_roundtrip_decodes_most_codes(tmp_path: Path) -> None:
    # 4 guests, each holding their phone up for 4 frames, with an empty frame between.
    guests = [ticket_payload(100 + g) for g in range(4)]
    payloads: list[str | None] = []
    for guest in guests:
        payloads += [guest] * 4 + [None]
    video = tmp_path / "gate.avi"
    assert write_video(video, frame_series(payloads, (1280, 720), seed=3, perturbation=TYPICAL))
    source = open_source(str(video))
    assert source.state is SourceState.OPEN
    seen: list[str] = []
    reader = CameraReader(source, QrDecoder(), on_payload=seen.append)
    assert reader.start()
    assert reader.wait(30)
    assert reader.frames_read == len(payloads)
    assert source.state is SourceState.ENDED
    with_code = sum(p is not None for p in payloads)
    # Honest bar for TYPICAL perturbation after MJPG compression: >= 80% of frames with a code.
    assert reader.frames_with_code >= 0.8 * with_code
    assert seen == guests  # each guest once (dedupe), in order, nothing invented
    assert [reader.payloads.get_nowait() for _ in guests] == guests


def test_callback_runs_off_the_calling_thread(tmp_path: Path) -> None:
    video = tmp_path / "one.avi"
    write_video(video, [render_frame(ticket_payload(7), (640, 480), 1, CLEAN)] * 3)
    threads: list[str] = []
    reader = CameraReader(
        open_source(video), on_payload=lambda _: threads.append(threading.current_thread().name)
    )
    reader.start()
    reader.wait(10)
    assert threads == ["camera-reader"]


def test_folder_source_reads_images_in_order(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), render_frame(ticket_payload(i), (640, 480), i))
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(tmp_path)
    assert isinstance(source, FolderSource)
    decoder = QrDecoder()
    decoded = []
    while (frame := source.read()) is not None:
        decoded.append(decoder.decode(frame).payloads)
    assert source.state is SourceState.ENDED
    assert decoded == [(ticket_payload(i),) for i in range(3)]


@pytest.mark.parametrize(
    "spec", [7, "7", "/dev/video7", "/no/such/clip.avi", "rtsp://127.0.0.1:9/x"]
)
def test_missing_camera_is_a_state_not_an_exception(spec: int | str) -> None:
    source = open_source(spec)
    assert source.state is SourceState.NO_CAMERA
    assert source.read() is None
    reader = CameraReader(source)
    assert reader.start() is False
    assert not reader.running


def test_empty_folder_is_no_camera(tmp_path: Path) -> None:
    assert open_source(tmp_path).state is SourceState.NO_CAMERA


def test_reader_reads_the_whole_frame_every_frame() -> None:
    payload = ticket_payload(5)
    big = render_frame(payload, (1280, 720), 2, CLEAN)
    decoder = QrDecoder(deep_every=4)
    result = decoder.decode(big)
    assert result.stage == "full" and result.payloads == (payload,)
    _, _, w, h = result.rect or (0, 0, 0, 0)
    assert w > 100 and h > 100  # rect in full-frame pixels

    # A code too small for a downscaled frame is read at once, and in every frame after:
    # no frame waits for a deep turn.
    small_code = Perturbation(tilt=0, blur_sigma=0, noise_sigma=0, glare=0, code_fraction=0.12)
    far = render_frame(payload, (1920, 1080), 1, small_code)
    for shift in range(0, 100, 25):
        assert decoder.decode(np.roll(far, shift, axis=1)).payloads == (payload,)


def test_opencv_is_rationed_when_nothing_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    empty = render_frame(None, (1280, 720), 4)
    decoder = QrDecoder(deep_every=3)
    calls: list[int] = []
    opencv_pass = decoder._opencv_pass

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(calls))
        return opencv_pass(*args, **kwargs)

    monkeypatch.setattr(decoder, "_opencv_pass", counting)
    for _ in range(7):
        assert decoder.decode(empty).stage is None
    assert len(calls) == 3  # misses 1, 4 and 7

    def broken(gray: np.ndarray) -> list:  # type: ignore[type-arg]
        raise RuntimeError("reader bug")

    decoder.reader = broken  # a failed reader pass tells nothing: OpenCV gets every frame
    for _ in range(3):
        decoder.decode(empty)
    assert len(calls) == 6


def test_opencv_fallback_rescues_frames_the_reader_misses() -> None:
    # Harsh 1080p frames (as bench/scanner_bench.py renders them): the reader misses a few,
    # OpenCV reads some of those.
    frames = [
        (ticket_payload(s), render_frame(ticket_payload(s), (1920, 1080), 1000 + s, HARSH))
        for s in range(12)
    ]
    with_cv = [QrDecoder(deep_every=1).decode(f) for _, f in frames]
    without = [QrDecoder(deep_every=1, use_opencv=False).decode(f) for _, f in frames]
    for (payload, _), result in zip(frames, with_cv, strict=True):
        assert result.payloads in ((), (payload,))  # never a wrong payload
    rescued = [r for r in with_cv if r.stage == "opencv"]
    assert rescued
    assert sum(bool(r.payloads) for r in with_cv) == sum(bool(r.payloads) for r in without) + len(
        rescued
    )


def test_reader_dedupes_a_code_held_in_view(tmp_path: Path) -> None:
    video = tmp_path / "held.avi"
    write_video(video, [render_frame(ticket_payload(9), (640, 480), i, CLEAN) for i in range(6)])
    clock = iter(range(0, 6000, 1000))  # 1 s per frame: the 2.5 s window slides while held
    reader = CameraReader(open_source(video), deduper=Deduper(2500), clock_ms=lambda: next(clock))
    reader.start()
    reader.wait(10)
    assert reader.frames_with_code == 6
    assert reader.payloads.qsize() == 1


def test_pipeline_finds_at_least_what_full_frame_zbar_finds() -> None:
    frames = [
        (ticket_payload(s), render_frame(ticket_payload(s), (1280, 720), 50 + s, TYPICAL))
        for s in range(8)
    ]
    raw = sum(
        payload in [t for t, _ in zbar_qr(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))]
        for payload, f in frames
    )
    decoder = QrDecoder(deep_every=1)
    ours = sum(decoder.decode(f).payloads == (payload,) for payload, f in frames)
    assert ours >= raw >= 5
