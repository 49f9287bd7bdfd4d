"""Screens that tell the truth (issue #11), through the real gate app at 80x24 (and wider):
no READY without a ticket list, a configured camera that fails is named with its reason, a
guest turned away after a check is a denial, one clock (the venue's) everywhere, a status bar
that fits 80 columns, and no codec wording in front of staff."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from textual.pilot import Pilot

from hardware.camera import CameraFault, SourceState
from manifests.policy import HOUR_MS
from protocol.reasons import Reason, Verdict, default_message
from scanner import camera_feed
from scanner.app import GateApp
from scanner.hub_keys import trust_hub_key
from scanner.install import install_manifest
from scanner.screens.history import HistoryScreen
from scanner.screens.verdict import AttentionScreen, GateScreen
from scanner.service import GateService
from scanner.store import GateStore
from scanner.widgets import (
    StatusBar,
    link_text,
    rendered_text,
    status_lines,
)
from tests import factories
from tests.app_pilot import SIZE, make_app, panel, piloted, wedge
from tests.scanner_fixtures import (
    ADA,
    BEN,
    HUB_KEY_ID,
    HUB_PUBLIC,
    NOW,
    Clock,
    GateUnderTest,
    build,
    opened_gate,
)

# NOW: 2026-09-21 14:13:20 UTC; 02:13:20 on the 22nd in Auckland (NZST)
WIDE = (120, 30)
MALFORMED_BASE45 = ":" * 149  # the length and alphabet of a native code; ':::' > 0xFFFF


def bar_lines(app: GateApp) -> list[str]:
    return app.screen.query_one(StatusBar).text.splitlines()


async def until(pilot: Pilot[None], done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


# -- 1. no ticket list, expired ticket list -------------------------------------------


@pytest.mark.parametrize("size", [SIZE, WIDE])
async def test_no_ticket_list_is_not_ready(tmp_path: Path, size: tuple[int, int]) -> None:
    store = GateStore(tmp_path / "gate.db")
    store.set_config("device_id", "gate-test-device")
    store.set_gate(factories.gate("North 1"))
    trust_hub_key(store, HUB_KEY_ID, HUB_PUBLIC)
    service = GateService(store, clock=Clock(NOW))
    app = make_app(service, clear_after_s=1.0)
    async with app.run_test(size=size) as pilot:
        shown = panel(app)
        assert shown.word == "NOTICKETLIST" and shown.word != "READY"
        assert shown.has_class("-unready") and not shown.has_class("-idle")
        assert "Sync with the hub" in shown.hint and "load" in shown.hint
        assert "Manifest: NONE" in bar_lines(app)[1]
        await wedge(pilot, "anything")  # refused, then back to the same state, not READY
        assert shown.word == "DENY"
        await until(pilot, lambda: shown.word != "DENY")
        assert shown.word == "NOTICKETLIST"
        install_manifest(store, build(NOW).envelope, NOW)  # the sync thread's install
        app.screen.refresh_status()  # type: ignore[attr-defined]
        assert shown.word == "READY" and shown.has_class("-idle") and shown.hint == ""
    store.close()


async def test_gate_not_set_up_is_not_ready(tmp_path: Path) -> None:
    store = GateStore(tmp_path / "gate.db")
    app = make_app(GateService(store, clock=Clock(NOW)))
    async with app.run_test(size=SIZE):
        shown = panel(app)
        assert shown.word == "NOTSETUP" and shown.has_class("-unready")
        assert "supervisor" in shown.hint
        assert bar_lines(app)[0].startswith("Gate not set up")
    store.close()


async def test_expired_ticket_list_says_so_on_the_idle_screen(gate: GateUnderTest) -> None:
    async with piloted(gate.service) as (app, _):
        assert panel(app).word == "READY"
        gate.clock.advance(49 * HOUR_MS)  # the manifest expires 48 h after "now"
        app.screen.refresh_status()  # type: ignore[attr-defined]
        shown = panel(app)
        assert shown.word == "LISTEXPIRED" and shown.has_class("-unready")
        assert "expired" in shown.message and "Rev 1" in shown.message
        assert "Sync with the hub" in shown.hint
        assert "EXPIRED" in bar_lines(app)[1]  # whole, at 80 columns


# -- 2. a configured camera that cannot open ------------------------------------------


@pytest.mark.parametrize("size", [SIZE, WIDE])
async def test_missing_camera_is_named_with_its_reason(
    gate: GateUnderTest, size: tuple[int, int]
) -> None:
    async with piloted(gate.service, size=size, camera="/dev/video97") as (app, pilot):
        await until(pilot, lambda: app.camera is not None)
        app.screen.refresh_status()  # type: ignore[attr-defined]
        line = bar_lines(app)[0]
        assert "Camera /dev/video97: device missing" in line and "No camera" not in line


def test_configured_camera_is_named_before_it_starts(gate: GateUnderTest) -> None:
    assert make_app(gate.service, camera="2").camera_note() == "Camera /dev/video2: starting"
    url = "rtsp://admin:secret@10.0.0.5:554/stream1"  # the password never reaches the screen
    assert make_app(gate.service, camera=url).camera_note() == "Camera rtsp://10.0.0.5: starting"
    assert make_app(gate.service, camera="none").camera_note() == "No camera"


async def test_no_camera_only_when_none_is_configured(gate: GateUnderTest) -> None:
    async with piloted(gate.service, camera="none") as (app, pilot):
        await until(pilot, lambda: app.camera is not None)
        app.screen.refresh_status()  # type: ignore[attr-defined]
        assert "No camera" in bar_lines(app)[0]


async def test_camera_that_cannot_be_set_up_keeps_the_gate_running(
    gate: GateUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(spec: str) -> Any:
        raise OSError("VIDIOC_QUERYCAP: Inappropriate ioctl for device")

    monkeypatch.setattr(camera_feed, "open_source", broken)
    async with piloted(gate.service, camera="0") as (app, pilot):
        await until(pilot, lambda: app.camera is not None)
        app.screen.refresh_status()  # type: ignore[attr-defined]
        assert "Camera /dev/video0: cannot open" in bar_lines(app)[0]
        await wedge(pilot, gate.codes[ADA])  # the hand scanner still works
        assert panel(app).word == "ADMIT"


class _UnpluggedCamera:
    """A live camera that gives one blank frame and then is gone (cable pulled)."""

    description = "/dev/video0"

    def __init__(self) -> None:
        self.state = SourceState.OPEN
        self.reason: CameraFault | None = None
        self.frames = 1

    def read(self) -> np.ndarray | None:
        if self.frames:
            self.frames -= 1
            time.sleep(0.05)
            return np.zeros((48, 64, 3), np.uint8)
        self.state, self.reason = SourceState.NO_CAMERA, CameraFault.LOST
        return None

    def close(self) -> None:
        if self.state is SourceState.OPEN:
            self.state = SourceState.CLOSED


async def test_camera_that_stops_shows_within_a_second(
    gate: GateUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(camera_feed, "open_source", lambda spec: _UnpluggedCamera())
    async with piloted(gate.service, camera="/dev/video0") as (app, pilot):
        await until(pilot, lambda: "stopped delivering" in bar_lines(app)[0], timeout=3.0)
        assert "Camera /dev/video0: stopped delivering" in bar_lines(app)[0]


# -- 3. turned away after a check ------------------------------------------------------


@pytest.mark.parametrize("size", [SIZE, WIDE])
async def test_turned_away_after_check_is_a_denial_and_no_entry(
    gate: GateUnderTest, size: tuple[int, int]
) -> None:
    async with piloted(gate.service, size=size) as (app, pilot):
        await wedge(pilot, gate.codes[BEN])
        assert isinstance(app.screen, AttentionScreen)
        assert "Entries today" not in panel(app).facts  # nobody has entered yet
        assert "Entry 1 today if admitted" in panel(app).facts
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, GateScreen)
        shown = panel(app)
        assert shown.word == "DENY" and "Turned away after check" in shown.message
        assert "Entries today" not in shown.facts and "Entry" not in shown.facts
        assert "In 0  Denied 1" in bar_lines(app)[1]
    c = gate.store.counters()
    assert (c.admitted, c.denied, c.attention_pending, c.inside_now) == (0, 1, 0, 0)


async def test_admitted_after_check_is_an_entry(gate: GateUnderTest) -> None:
    async with piloted(gate.service) as (app, pilot):
        await wedge(pilot, gate.codes[BEN])
        await pilot.press("y")
        await pilot.pause()
        shown = panel(app)
        assert shown.word == "ADMIT" and "Entries today 1" in shown.facts
        assert "In 1  Denied 0" in bar_lines(app)[1]


# -- 4. one clock: the venue's -----------------------------------------------------------


@pytest.fixture
def far_venue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GateUnderTest]:
    """The machine on UTC, the venue in Auckland (12 hours ahead)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    event = dataclasses.replace(factories.EVENT, timezone="Pacific/Auckland")
    monkeypatch.setattr(factories, "EVENT", event)
    with opened_gate(tmp_path / "gate.db", NOW) as (service, fx, clock):
        yield GateUnderTest(service, fx, clock)
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize("size", [SIZE, WIDE])
async def test_history_and_status_bar_read_the_venue_clock(
    far_venue: GateUnderTest, size: tuple[int, int]
) -> None:
    gate = far_venue
    assert time.strftime("%H:%M:%S", time.localtime(NOW / 1000)) == "14:13:20"  # the machine
    gate.service.link = lambda: {"state": "online", "last_sync_ms": NOW}
    async with piloted(gate.service, size=size) as (app, pilot):
        assert "synced 02:13:20" in bar_lines(app)[1]
        await wedge(pilot, gate.codes[ADA])
        gate.clock.advance(10 * 60_000)
        await wedge(pilot, gate.codes[ADA])
        assert "Already admitted at North 1, 02:13:20 (10 min ago)" in panel(app).message
        await pilot.press("f3")
        assert isinstance(app.screen, HistoryScreen)
        rows = rendered_text(app.screen.query_one("#history-list")).splitlines()  # type: ignore[arg-type]
        assert rows[0].startswith("#2     02:23:20 DENY")
        assert "Already admitted at North 1, 02:13:20" in rows[0]
        assert rows[1].startswith("#1     02:13:20 ADMIT")
        assert not any("14:1" in row or "14:2" in row for row in rows)


def test_link_text_uses_the_venue_clock_and_says_how_old_a_kept_sync_is() -> None:
    synced = {"state": "offline", "last_sync_ms": NOW}
    base = {"connection": "offline", "sync": synced}
    assert link_text({**base, "timezone": "Pacific/Auckland"}) == "OFFLINE · synced 02:13:20"
    assert link_text({**base, "timezone": None}) == "OFFLINE · synced 14:13:20 UTC"
    days_later = {**base, "timezone": "Pacific/Auckland", "now_ms": NOW + 3 * 24 * HOUR_MS}
    assert link_text(days_later) == "OFFLINE · synced 3 d ago"  # not a time read as today


# -- 5. the status bar at 80 columns --------------------------------------------------


def _status(**over: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "gate": {"name": "North 1", "direction": "entry", "zones": ["GA"]},
        "manifest": {
            "revision": 15,
            "event": "Riverside Festival 2026 — Main Stage Weekend",
            "age_ms": 0,
            "stale": False,
            "expired": False,
        },
        "counters": {"admitted": 0, "denied": 0, "inside_now": 0},
        "pending_upload": 0,
        "connection": "offline",
        "sync": {"state": "offline", "last_sync_ms": NOW},
        "timezone": "Europe/Berlin",
        "camera": "Camera on",
    }
    return {**status, **over}


def test_offline_with_a_reason_says_the_reason() -> None:
    for sync in (
        {"state": "offline", "reason": "gate deactivated", "last_sync_ms": NOW},
        {"state": "offline", "reason": "gate deactivated"},  # never synced
    ):
        status = _status(sync=sync)
        assert link_text(status) == "OFFLINE · gate deactivated"
        _, second = status_lines(status, 78)
        assert "OFFLINE · gate deactivated" in second and "synced" not in second
    online = _status(connection="online", sync={"state": "online", "reason": "x"})
    assert link_text(online) == "ONLINE"  # a reason is for being offline only


BIG = {"admitted": 12345, "denied": 9876, "inside_now": 12000}


@pytest.mark.parametrize(
    "status",
    [
        _status(),
        _status(counters=BIG, pending_upload=4321),
        _status(
            counters=BIG,
            pending_upload=4321,
            sync={"state": "offline", "reason": "hub key mismatch here!!"},
            manifest={"revision": 123456, "event": "E", "age_ms": 99 * 24 * HOUR_MS}
            | {"stale": True, "expired": True},
        ),
        _status(
            gate={"name": "South Entrance 12", "direction": "exit", "zones": ["GA", "VIP"]},
            camera="Camera rtsp://10.20.30.40: cannot open",
            connection="syncing",
            sync={"state": "syncing", "download": [10_000, 40_000]},
        ),
        _status(gate=None, manifest=None, connection="online", sync=None, camera="No camera"),
    ],
)
def test_status_lines_fit_80_columns_with_every_vital_fact(status: dict[str, Any]) -> None:
    first, second = status_lines(status, 78)
    assert len(first) <= 78 and len(second) <= 78
    words = f"{first} {second}".split()
    c = status["counters"]
    assert f"In {c['admitted']}" in second and f"Denied {c['denied']}" in second
    assert str(status["pending_upload"]) in second.split()  # whole: a number is never cut
    assert str(status["connection"]).upper() in second
    manifest = status["manifest"]
    if manifest is None:
        assert "Manifest: NONE" in second
    else:  # on the second line, or moved up to the first when the second is full
        assert str(manifest["revision"]) in words
        assert any(w.rstrip(")") in {"min", "h", "d"} or w[-1] in "mhd" for w in words)
        if manifest["expired"]:
            assert "EXPIRED" in words
    if status["gate"] is not None:
        assert first.startswith(f"{status['gate']['name']} · {status['gate']['direction'].upper()}")
    if status.get("camera") and "cannot open" in status["camera"]:
        assert "cannot open" in first
    reason = (status.get("sync") or {}).get("reason")
    if reason:
        assert reason in second


async def test_status_bar_fits_80_columns_in_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = GateStore(tmp_path / "gate.db")
    store.set_config("device_id", "gate-test-device")
    store.set_gate(factories.gate("North 1"))
    trust_hub_key(store, HUB_KEY_ID, HUB_PUBLIC)
    install_manifest(store, build(NOW, revision=15).envelope, NOW)
    service = GateService(store, clock=Clock(NOW))
    service.link = lambda: {"state": "offline", "last_sync_ms": NOW - 60_000}
    app = make_app(service, camera="/dev/video97")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.camera is not None)
        app.screen.refresh_status()  # type: ignore[attr-defined]
        first, second = bar_lines(app)
        assert len(first) <= 78 and len(second) <= 78
        assert first.startswith("North 1 · ENTRY · GA · Camera /dev/video97: device missing")
        assert second.startswith("In 0  Denied 0")
        assert "OFFLINE · synced 16:12" in second  # Berlin, 14:12 UTC
        assert second.endswith("Upload 0 · Rev 15 (5 min old)")  # "Inside 0" made room
    async with make_app(service).run_test(size=WIDE) as pilot:  # room: every word in full
        second = bar_lines(pilot.app)[1]
        assert "In 0  Denied 0  Inside 0 · OFFLINE · synced 16:12:20" in second
        assert "Upload 0 · Rev 15 (5 min old)" in second
    store.close()


# -- 6. no codec words in front of staff ---------------------------------------------------


async def test_unreadable_code_shows_the_workers_sentence(gate: GateUnderTest) -> None:
    sentence = default_message(Reason.MALFORMED)
    assert sentence.startswith("This code cannot be read as a ticket")
    decision = gate.service.preview(MALFORMED_BASE45)
    assert decision.detail == "base45 triple out of range"  # kept for support, off screen
    async with piloted(gate.service) as (app, pilot):
        await wedge(pilot, MALFORMED_BASE45)
        shown = panel(app)
        assert shown.word == "DENY" and shown.message == sentence
        assert "base45" not in shown.message + shown.facts + shown.hint
    record = gate.store.scan(1)
    assert record is not None and record.verdict is Verdict.DENY
    assert record.reason == "malformed" and record.message == sentence
