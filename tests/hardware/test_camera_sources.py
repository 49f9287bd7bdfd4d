"""A camera that gives no frames says why (issue #11: "a missing camera silently becomes
'No camera'"): staff fix a missing device, a permission or a busy camera differently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from demo.frames import CLEAN, render_frame, ticket_payload, write_video
from hardware import camera
from hardware.camera import CameraFault, FolderSource, SourceState, VideoSource, open_source
from scanner.camera_feed import CameraFeed


@pytest.mark.parametrize("spec", [7, "7", "/dev/video97", "/no/such/clip.avi"])
def test_missing_device_or_file(spec: int | str) -> None:
    source = open_source(spec)
    assert source.state is SourceState.NO_CAMERA
    assert source.reason is CameraFault.MISSING


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera node the gate's user may not open (not in the `video` group). The tests run as
    root, who may open anything, so the file system's answer is played here."""
    node = tmp_path / "video0"
    node.write_bytes(b"")
    monkeypatch.setattr(camera.os, "access", lambda path, mode: False)
    source = VideoSource(str(node))
    assert source.state is SourceState.NO_CAMERA
    assert source.reason is CameraFault.PERMISSION


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any file")
def test_permission_denied_for_real(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"")
    clip.chmod(0)
    assert VideoSource(str(clip), live=False).reason is CameraFault.PERMISSION


def test_there_but_cannot_open(tmp_path: Path) -> None:
    junk = tmp_path / "clip.avi"
    junk.write_bytes(b"not a video at all" * 100)
    assert open_source(junk).reason is CameraFault.CANNOT_OPEN
    assert open_source("rtsp://127.0.0.1:9/x").reason is CameraFault.CANNOT_OPEN


def test_folders(tmp_path: Path) -> None:
    assert open_source(tmp_path).reason is CameraFault.NO_IMAGES
    assert FolderSource(tmp_path / "gone").reason is CameraFault.MISSING
    (tmp_path / "a.png").write_bytes(b"")
    assert open_source(tmp_path).reason is None


def test_live_camera_that_stops_is_lost(tmp_path: Path) -> None:
    video = tmp_path / "cam.avi"
    write_video(video, [render_frame(ticket_payload(1), (640, 480), 1, CLEAN)])
    source = VideoSource(str(video), live=True)  # plays a camera unplugged after one frame
    assert source.state is SourceState.OPEN and source.reason is None
    assert source.read() is not None
    assert source.read() is None
    assert source.state is SourceState.NO_CAMERA and source.reason is CameraFault.LOST


def test_feed_note_carries_the_reason() -> None:
    feed = CameraFeed("/dev/video97", lambda p: None, lambda h, p: h(p))
    assert feed.reason == "device missing"
    assert feed.note == "Camera /dev/video97: device missing"  # which, and why
    assert CameraFeed(None, lambda p: None, lambda h, p: h(p)).note == "No camera"  # none set
