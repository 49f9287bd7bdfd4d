"""Enrolling a gate through its camera against the real hub: shared by the enrolment tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from demo.frames import TYPICAL, render_frame, write_video
from protocol.signing import DeviceSigner
from scanner.app import GateApp
from scanner.cli import main
from scanner.enroll import enrolled_hub
from scanner.hub_keys import trusted_hub_keys
from scanner.screens.enroll import EnrollScreen
from scanner.screens.verdict import GateScreen
from scanner.service import GateService
from scanner.settings import DEVICE_SEED_KEY
from scanner.store import GateStore
from scanner.widgets import rendered_text
from tests.app_pilot import piloted, wedge
from tests.hub_fixtures import Hub

FRAME = (1280, 720)


FPS = 20.0


def video(
    path: Path, shown: Sequence[tuple[str | None, int]], size: tuple[int, int] = FRAME
) -> Path:
    """A camera recording: each (payload, frames) held up in turn; None is an empty scene.
    A few distinct frames per item, repeated: a held-up phone barely moves."""
    frames = []
    for i, (payload, count) in enumerate(shown):
        distinct = [
            render_frame(payload, size, seed=i * 10 + k, perturbation=TYPICAL)
            for k in range(min(count, 3))
        ]
        frames += [distinct[k % len(distinct)] for k in range(count)]
    assert write_video(path, frames, fps=FPS) == len(frames)
    return path


async def gate_cli(
    capsys: pytest.CaptureFixture[str], db: Path, *args: str
) -> tuple[int, str, str]:
    """`gate-scanner` in-process, off the event loop the hub serves on."""
    capsys.readouterr()
    rc = await asyncio.to_thread(main, ["--db", str(db), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_nothing_stored(db: Path) -> None:
    with GateStore(db) as store:
        assert store.key(DEVICE_SEED_KEY) is None and trusted_hub_keys(store) == {}
        assert enrolled_hub(store) is None and store.gate() is None and not store.device_id
        assert store.scans() == []


async def hub_knows(hub: Hub, device_id: str, seed: bytes) -> bool:
    """The hub answers a request signed with the key the gate made and stored."""
    headers = DeviceSigner(device_id, seed).sign("GET", "/api/device/me", now_ms=hub.clock())
    me = await hub.client.get("/api/device/me", headers=headers)
    return me.status_code == 200 and me.json()["device_id"] == device_id


def result_text(app: GateApp) -> str:
    return rendered_text(app.screen.query_one("#enroll-result", Static))


async def settled(pilot: Pilot[None], screen: EnrollScreen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while screen.state == "enrolling":
        assert time.monotonic() < deadline, "timed out waiting for the hub"
        await pilot.pause(0.05)


async def refused_by_the_app(service: GateService, uri: str) -> str:
    """The gate app reads the enrollment QR `uri` from a keyboard wedge, staff confirm (no
    PIN set: straight on) and the enrolment fails: the refusal the screen shows, read before
    Escape takes the app back to the gate screen."""
    async with piloted(service) as (app, pilot):
        await wedge(pilot, uri)
        screen = app.screen
        assert isinstance(screen, EnrollScreen)
        await pilot.press("y")
        await settled(pilot, screen)
        refusal = result_text(app)
        assert screen.state == "failed", refusal
        await pilot.press("escape")
        assert isinstance(app.screen, GateScreen)
    return refusal
