"""Enrolling a gate from an enrollment QR it reads itself: a real hub on 127.0.0.1 makes the
code, the QR is rendered into a generated MJPG video and decoded by the real camera pipeline
(`gate-scanner enroll --camera`), or typed by a keyboard-wedge scanner into the real app. The
hub key's fingerprint from the QR is pinned: a hub with another key is refused, nothing stored.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from textual.widgets import Static

from demo.frames import ticket_payload
from hardware.camera import QrDecoder
from protocol.native import public_key
from protocol.signing import enrollment_uri, key_fingerprint, parse_enrollment_uri
from scanner.enroll import enrolled_hub
from scanner.hub_keys import trusted_hub_keys
from scanner.pin import set_pin
from scanner.screens.enroll import EnrollScreen
from scanner.screens.settings import PinScreen
from scanner.screens.verdict import GateScreen
from scanner.settings import DEVICE_SEED_KEY
from scanner.store import GateStore
from scanner.widgets import rendered_text
from tests.app_pilot import piloted, wedge
from tests.enroll_support import (
    assert_nothing_stored,
    gate_cli,
    hub_knows,
    refused_by_the_app,
    result_text,
    settled,
    video,
)
from tests.hub_fixtures import HUB_SEED, Hub
from tests.scanner_fixtures import ADA, GateUnderTest

WRONG_FP = "0000:" * 7 + "0000"


async def enrollment_qr(hub: Hub, name: str = "North 1 scanner") -> str:
    """What the hub's enrollment QR holds, pointed at this test hub's real address (the hub
    here is configured as http://hub.test:8080, which nothing listens on)."""
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": name, "zone": "GA"},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    body = made.json()
    # The PNG the admin prints is read by the gate's own decoder, to the payload it reports.
    png = np.frombuffer(base64.b64decode(body["qr_png_base64"]), dtype=np.uint8)
    assert QrDecoder().decode(cv2.imdecode(png, cv2.IMREAD_COLOR)).payloads == (body["payload"],)
    parsed = parse_enrollment_uri(body["payload"])
    assert parsed is not None
    _, code, fingerprint = parsed
    assert code == body["code"]
    assert fingerprint == body["hub_key_fingerprint"] == key_fingerprint(public_key(HUB_SEED))
    return enrollment_uri(hub.url, code, fingerprint)


# -- gate-scanner enroll --camera ------------------------------------------------------


async def test_enroll_from_the_camera_pins_the_hub_key(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = await enrollment_qr(hub)
    # A guest's ticket in view first: skipped (one hint), then the hub's QR.
    clip = video(tmp_path / "enroll.avi", [(None, 3), (ticket_payload(1), 4), (None, 2), (uri, 6)])
    db = tmp_path / "gate.db"
    rc, out, err = await gate_cli(capsys, db, "enroll", "--camera", str(clip), "--json")
    assert rc == 0, err + out
    assert err.count("not an enrollment code") == 1
    enrolled = json.loads(out)
    assert enrolled["venue_id"] == hub.a.venue_id and enrolled["zones"] == ["GA"]
    assert enrolled["hub_key_fingerprint"] == key_fingerprint(public_key(HUB_SEED))
    with GateStore(db) as store:
        seed = store.key(DEVICE_SEED_KEY)
        assert trusted_hub_keys(store) == {1: public_key(HUB_SEED)}
        assert enrolled_hub(store) == hub.url and store.device_id == enrolled["device_id"]
        gate = store.gate()
        assert gate is not None and gate.gate_name == "North 1 scanner"
        assert store.scans() == []  # the ticket seen while enrolling was not scanned
    assert seed is not None and await hub_knows(hub, enrolled["device_id"], seed)


async def test_a_qr_for_another_hub_key_is_refused(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = await enrollment_qr(hub)
    hub_url, code, _ = parse_enrollment_uri(uri) or ("", "", "")
    forged = enrollment_uri(hub_url, code, WRONG_FP)
    clip = video(tmp_path / "forged.avi", [(None, 2), (forged, 6)])
    db = tmp_path / "gate.db"
    rc, out, _ = await gate_cli(capsys, db, "enroll", "--camera", str(clip), "--json")
    assert rc == 3
    refused = json.loads(out)["error"]
    assert refused["code"] == "wrong_hub" and "does not match" in refused["message"]
    assert_nothing_stored(db)


async def test_no_enrollment_qr_in_view_times_out_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "gate.db"
    # Two different tickets, 4 s of recording read at its own pace: the timeout comes first.
    tickets = [(ticket_payload(2), 40), (None, 5), (ticket_payload(3), 35)]
    clip = video(tmp_path / "tickets.avi", tickets, size=(640, 480))
    started = time.monotonic()
    rc, out, err = await gate_cli(
        capsys, db, "enroll", "--camera", str(clip), "--timeout", "1", "--json"
    )
    assert rc == 3 and time.monotonic() - started < 3.5
    timed_out = json.loads(out)["error"]
    assert timed_out["code"] == "no_enrollment_code" and "within 1 s" in timed_out["message"]
    assert err.count("not an enrollment code") == 1  # one hint, not one per code or frame
    assert_nothing_stored(db)

    # A recording that ends without one says so at once; no camera is its own error.
    short = video(tmp_path / "short.avi", [(ticket_payload(4), 3)], size=(640, 480))
    rc, out, _ = await gate_cli(capsys, db, "enroll", "--camera", str(short), "--json")
    assert rc == 3 and json.loads(out)["error"]["code"] == "no_enrollment_code"
    assert "ended without" in json.loads(out)["error"]["message"]
    missing = str(tmp_path / "nothing.avi")
    rc, out, _ = await gate_cli(capsys, db, "enroll", "--camera", missing, "--json")
    assert rc == 3 and json.loads(out)["error"]["code"] == "no_camera"
    rc, out, _ = await gate_cli(
        capsys, db, "enroll", "http://127.0.0.1:9", "--camera", str(short), "--json"
    )
    assert rc == 3 and json.loads(out)["error"]["code"] == "bad_arguments"
    rc, out, _ = await gate_cli(capsys, db, "enroll", "--json")
    assert rc == 3 and json.loads(out)["error"]["code"] == "missing_url"
    assert_nothing_stored(db)


# -- the gate app: `gate` is set up by hand with a manifest (it scans tickets) but no hub --


async def test_app_enrols_from_a_wedge_read_after_the_pin(hub: Hub, gate: GateUnderTest) -> None:
    store = gate.store
    set_pin(store, "4711")
    uri = await enrollment_qr(hub)
    async with piloted(gate.service) as (app, pilot):
        await wedge(pilot, uri)
        screen = app.screen
        assert isinstance(screen, EnrollScreen)
        question = rendered_text(screen.query_one("#enroll-question", Static))
        assert hub.url in question and key_fingerprint(public_key(HUB_SEED)) in question
        assert store.scans() == [] and enrolled_hub(store) is None  # nothing yet

        await pilot.press("y")
        assert isinstance(app.screen, PinScreen)
        await pilot.press(*"1234", "enter")  # a wrong PIN enrols nothing
        assert "Wrong PIN" in rendered_text(app.screen.query_one("#pin-error", Static))
        await pilot.press(*"4711", "enter")
        assert app.screen is screen
        await settled(pilot, screen)
        assert screen.state == "enrolled", result_text(app)
        assert "Enrolled: North 1 scanner" in result_text(app)
        assert hub.a.venue_id in result_text(app)

        await pilot.press("enter")
        assert isinstance(app.screen, GateScreen)
        assert "North 1 scanner" in rendered_text(app.screen.query_one("#status", Static))

        # Read again by an enrolled gate: a notice, no second enrollment, still no scan.
        device_id, seed = store.device_id, store.key(DEVICE_SEED_KEY)
        await wedge(pilot, uri)
        assert isinstance(app.screen, GateScreen)
        assert any(f"Already enrolled with {hub.url}" in n.message for n in app._notifications)
        assert store.device_id == device_id and store.key(DEVICE_SEED_KEY) == seed

        await wedge(pilot, gate.codes[ADA])  # tickets still scan as before
        assert len(store.scans()) == 1 and store.scans()[0].ticket_id == ADA

        # Enrolled from the app, it links to the hub now, not at the next start: the sync
        # worker runs (its heartbeat measures the clock) and the scan goes up.
        assert app.sync is not None and app.live is not None
        for _ in range(200):
            if app.link and app.link.get("clock_offset_ms") is not None:
                break
            await pilot.pause(0.05)
        assert app.link and app.link["clock_offset_ms"] is not None, app.link

    assert trusted_hub_keys(store) == {1: public_key(HUB_SEED)}
    assert enrolled_hub(store) == hub.url
    assert device_id is not None and seed is not None and await hub_knows(hub, device_id, seed)


async def test_app_shows_the_refusal_of_a_hub_with_another_key(
    hub: Hub, gate: GateUnderTest
) -> None:
    store = gate.store
    hub_url, code, _ = parse_enrollment_uri(await enrollment_qr(hub)) or ("", "", "")
    refusal = await refused_by_the_app(gate.service, enrollment_uri(hub_url, code, WRONG_FP))
    assert "does not match the enrollment QR (wrong_hub)" in refusal
    assert store.key(DEVICE_SEED_KEY) is None and enrolled_hub(store) is None
    assert store.device_id == "gate-test-device" and store.scans() == []


async def test_app_enrollment_qr_from_the_camera_opens_the_same_screen(
    hub: Hub, gate: GateUnderTest, tmp_path: Path
) -> None:
    uri = await enrollment_qr(hub)
    clip = video(tmp_path / "cam.avi", [(None, 2), (uri, 4), (None, 2)])
    async with piloted(gate.service, camera=str(clip)) as (app, pilot):
        deadline = time.monotonic() + 15
        while not isinstance(app.screen, EnrollScreen):
            assert time.monotonic() < deadline, "the camera never read the enrollment QR"
            await pilot.pause(0.05)
        await pilot.press("n")
        assert isinstance(app.screen, GateScreen)
    assert gate.store.scans() == [] and enrolled_hub(gate.store) is None
