"""The camera wired into the real gate app: generated frames in a real MJPG video (or an image
folder) decoded by OpenCV/zbar in the camera thread, each read committed by `GateService` on
the UI thread, the verdict on screen; no camera is a status note; settings change the camera."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from demo.frames import CLEAN, render_frame, write_video
from protocol.reasons import Reason
from scanner.app import GateApp
from scanner.camera_feed import CameraFeed, camera_spec, replay_fps
from scanner.cli import _parser
from scanner.screens.settings import SettingsScreen
from scanner.screens.verdict import AttentionScreen, GateScreen
from scanner.service import GateService
from scanner.settings import CAMERA
from scanner.store import GateStore
from scanner.widgets import StatusBar, VerdictPanel, rendered_text
from tests.scanner_fixtures import ADA, BEN, CAL, opened_gate

NOW = 1_790_000_000_000
SIZE = (80, 24)
FRAME = (640, 480)
FPS = 20.0


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[GateService, dict[str, str]]]:
    with opened_gate(tmp_path / "gate.db", NOW) as (service, fx, _):
        yield service, fx.codes


def frames(payloads: Sequence[str | None], hold: int = 4) -> list:
    """Each payload held up for `hold` frames, a blank frame between guests."""
    out = []
    for i, payload in enumerate(payloads):
        out += [
            render_frame(payload, FRAME, seed=i * 10 + k, perturbation=CLEAN) for k in range(hold)
        ]
        out.append(render_frame(None, FRAME, seed=999 + i, perturbation=CLEAN))
    return out


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "camera-reader" and t.is_alive()]


async def until(pilot: Pilot[None], done, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the camera"
        await pilot.pause(0.05)


def status_text(app: GateApp) -> str:
    return app.screen.query_one(StatusBar).text


async def test_video_camera_scans_commit_and_show(
    gate: tuple[GateService, dict[str, str]], tmp_path: Path
) -> None:
    service, codes = gate
    video = tmp_path / "cam.avi"
    write_video(video, frames([codes[ADA], codes[CAL]]), fps=FPS)
    assert replay_fps(str(video)) == pytest.approx(FPS)
    handled_on: list[int] = []
    app = GateApp(service, camera=str(video), clear_after_s=60.0)
    scan = app._camera_scan

    def spy(payload: str) -> None:
        handled_on.append(threading.get_ident())
        scan(payload)

    app._camera_scan = spy  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.camera is not None)  # started once the screen is up
        assert app.camera is not None and app.camera.running
        assert "Camera on" in status_text(app)
        await until(pilot, lambda: len(service.recent_scans()) == 2)
        scans = service.recent_scans()
        assert [s.reason for s in reversed(scans)] == [Reason.ADMITTED, Reason.REFUNDED]
        panel = app.screen.query_one(VerdictPanel)
        assert panel.word == "DENY" and "refunded" in panel.message.lower()
        await until(pilot, lambda: app.camera is not None and not app.camera.running)
        app.screen.refresh_status()  # type: ignore[attr-defined]
        assert "video ended" in status_text(app)
        assert "In 1  Denied 1" in status_text(app)
    # every read was handled on the app's own thread, none on the decoding thread
    assert handled_on and set(handled_on) == {threading.get_ident()}
    assert app.camera is None and not reader_threads()


async def test_no_camera_is_a_note_not_an_error(
    gate: tuple[GateService, dict[str, str]],
) -> None:
    service, _ = gate
    app = GateApp(service, camera="/dev/video97")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.camera is not None)
        assert isinstance(app.screen, GateScreen)
        first_line = status_text(app).splitlines()[0]
        assert "GA · Camera /dev/video97: device missing · Riverside" in first_line
        assert app.camera is not None and not app.camera.running
        assert app.screen.query_one(VerdictPanel).word == "READY"
    assert not reader_threads()


async def test_stored_camera_setting_and_none_override(
    gate: tuple[GateService, dict[str, str]], tmp_path: Path
) -> None:
    service, codes = gate
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames([codes[ADA]])):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    service.store.set_setting(CAMERA, str(folder))
    app = GateApp(service, camera="none")  # an explicit "none" beats the stored setting
    assert app.camera_spec is None
    app = GateApp(service, clear_after_s=60.0)
    assert app.camera_spec == str(folder)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(service.recent_scans()) == 1)
        assert app.screen.query_one(VerdictPanel).word == "ADMIT"


async def test_camera_reads_wait_for_an_open_attention_check(
    gate: tuple[GateService, dict[str, str]], tmp_path: Path
) -> None:
    service, codes = gate
    video = tmp_path / "cam.avi"
    write_video(video, frames([codes[BEN], codes[ADA]], hold=8), fps=FPS)
    app = GateApp(service, camera=str(video), clear_after_s=60.0)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.camera is not None and not app.camera.running)
        await pilot.pause()
        assert isinstance(app.screen, AttentionScreen)
        # Ada's read came while staff were checking Ben: not scanned past the check
        assert [s.reason for s in service.recent_scans()] == [Reason.ATTENTION_REQUIRED]
        assert app.camera is not None and app.camera.delivered == 2
        await pilot.press("y")
        assert isinstance(app.screen, GateScreen)


async def test_settings_set_camera_sound_and_relay(
    gate: tuple[GateService, dict[str, str]], tmp_path: Path
) -> None:
    service, codes = gate
    video = tmp_path / "cam.avi"
    write_video(video, frames([codes[ADA]]), fps=FPS)
    app = GateApp(service, camera="none", clear_after_s=60.0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")  # no PIN set yet: straight in
        assert isinstance(app.screen, SettingsScreen)
        screen = app.screen
        screen.query_one("#set-camera", Input).value = str(video)
        screen.query_one("#set-sound", Input).value = "loud"
        relay = screen.query_one("#set-relay", Input)
        relay.value = "pin seventeen"
        relay.focus()
        await pilot.press("enter")
        error = rendered_text(screen.query_one("#settings-error", Static))
        assert "Sound must be on or off" in error
        assert service.store.setting(CAMERA) is None  # nothing saved
        screen.query_one("#set-sound", Input).value = "off"
        await pilot.press("enter")
        assert "Relay pin" in rendered_text(screen.query_one("#settings-error", Static))
        relay.value = "17"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, GateScreen)
        await until(pilot, lambda: len(service.recent_scans()) == 1)
        assert app.screen.query_one(VerdictPanel).word == "ADMIT"
    store = GateStore(service.store.path)
    assert store.setting(CAMERA) == str(video)
    assert store.config("sound") is False and store.config("relay_pin") == 17
    store.close()


def test_feed_without_source_and_spec_words() -> None:
    feed = CameraFeed(None, lambda p: None, lambda h, p: h(p))
    assert not feed.start() and feed.note == "No camera"
    assert [camera_spec(x) for x in (None, " ", "off", "None", " 0 ", 2)] == [
        None,
        None,
        None,
        None,
        "0",
        "2",
    ]
    assert replay_fps("0") is None and replay_fps("/dev/video0") is None
    assert replay_fps("rtsp://cam.local/stream") is None


def test_run_takes_a_camera_spec() -> None:
    args = _parser().parse_args(["run", "--camera", "/dev/video2"])
    assert args.camera == "/dev/video2"
    assert _parser().parse_args(["run"]).camera is None
