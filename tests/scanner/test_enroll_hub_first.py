"""Enrolment verifies the hub before it spends anything (issue #10, finding 5).

A fake hub at the QR's address (a small aiohttp app on 127.0.0.1) either shows a key of its own
or relays the real hub's public key, and tries what an attacker would with whatever the gate
sends it: spend the code at the real hub for a device key of its own. The gate is the real
`gate-scanner enroll` (typed QR text, the camera, the app); the real hub runs on 127.0.0.1.
Whatever the fake does, it learns no code, enrols no device, and the code stays unspent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from protocol.native import public_key
from protocol.signing import b64encode, enrollment_uri, key_fingerprint, parse_enrollment_uri
from scanner.enroll import enrolled_hub
from scanner.settings import DEVICE_SEED_KEY
from scanner.store import GateStore
from tests.enroll_support import (
    assert_nothing_stored,
    gate_cli,
    hub_knows,
    refused_by_the_app,
    video,
)
from tests.gate_cli import async_gate_cli
from tests.hub_fixtures import HUB_SEED, Hub
from tests.scanner_fixtures import GateUnderTest

FAKE_SEED = bytes(range(32, 64))  # the impostor's own hub key
ATTACKER_SEED = bytes(range(64, 96))  # the device key the impostor wants enrolled


class FakeHub:
    """An impostor at the QR's address. Modes: `own_key` shows its own hub key; `relay` shows
    the real hub's public identity and replays what the gate sends with the attacker's device
    key; `proxy` forwards everything unchanged (a passive eavesdropper); `swap_answer` forwards
    the enrolment unchanged but answers with its own key, hoping the gate pins it."""

    def __init__(self, real: Hub, mode: str) -> None:
        self.real, self.mode = real, mode
        self.requests: list[tuple[str, str, bytes]] = []
        self.attacks: list[httpx.Response] = []
        self.url = ""

    def enrol_posts(self) -> list[dict[str, Any]]:
        return [
            json.loads(raw)
            for method, path, raw in self.requests
            if method == "POST" and path == "/api/device/enroll"
        ]

    def saw(self, secret: str) -> bool:
        return any(secret.encode() in raw or secret in path for _, path, raw in self.requests)

    async def _forward(self, request: web.Request, raw: bytes) -> httpx.Response:
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        return await self.real.client.request(
            request.method, request.path_qs, content=raw or None, headers=headers
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append((request.method, request.path_qs, raw))
        enrol = request.method == "POST" and request.path == "/api/device/enroll"
        if self.mode == "own_key" and request.method == "GET":
            own = public_key(FAKE_SEED)
            return web.json_response(
                {
                    "public_key": b64encode(own),
                    "fingerprint": key_fingerprint(own),
                    "key_id": 1,
                    "trusted_keys": {"1": b64encode(own)},
                    "keys_version": 1,
                }
            )
        if enrol and self.mode in ("own_key", "relay"):
            stolen = {
                **json.loads(raw),
                "public_key": b64encode(public_key(ATTACKER_SEED)),
                "hardware_id": "attacker-box",
            }
            resp = await self.real.client.post("/api/device/enroll", json=stolen)
            self.attacks.append(resp)
            return web.json_response(resp.json(), status=resp.status_code)
        resp = await self._forward(request, raw)
        if enrol and self.mode == "swap_answer" and resp.status_code == 201:
            answer = {**resp.json(), "hub_public_key": b64encode(public_key(FAKE_SEED))}
            answer["hub_key_fingerprint"] = key_fingerprint(public_key(FAKE_SEED))
            return web.json_response(answer, status=201)
        return web.Response(
            body=resp.content,
            status=resp.status_code,
            content_type=resp.headers.get("Content-Type", "application/json").split(";")[0],
        )


async def start_fake(real: Hub, mode: str) -> tuple[FakeHub, web.AppRunner]:
    fake = FakeHub(real, mode)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    return fake, runner


@pytest.fixture
async def fakes(hub: Hub) -> AsyncIterator[Any]:
    """Start impostors on demand; all are stopped at the end."""
    runners: list[web.AppRunner] = []

    async def make(mode: str) -> FakeHub:
        fake, runner = await start_fake(hub, mode)
        runners.append(runner)
        return fake

    yield make
    for runner in runners:
        await runner.cleanup()


async def new_code(hub: Hub, name: str = "North 1 scanner") -> tuple[str, str]:
    """(code, fingerprint) of a fresh enrolment code, as the hub's QR carries them."""
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": name, "zone": "GA"},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    parsed = parse_enrollment_uri(made.json()["payload"])
    assert parsed is not None
    _, code, fingerprint = parsed
    assert fingerprint == key_fingerprint(public_key(HUB_SEED))
    return code, fingerprint


async def fake_and_code(hub: Hub, fakes: Any, mode: str) -> tuple[FakeHub, str, str]:
    """An impostor in `mode`, and a fresh code with the fingerprint the real hub's QR gives."""
    fake = await fakes(mode)
    code, fingerprint = await new_code(hub)
    return fake, code, fingerprint


async def enroll_from_qr(
    db: Path, url: str, code: str, fingerprint: str, exit_code: int = 0
) -> Any:
    """`gate-scanner enroll <QR text> --json`, the QR pointing at `url` (a subprocess, off
    the event loop the hubs serve on): its exit code checked, its JSON answer returned."""
    rc, out, err = await async_gate_cli(
        db, "enroll", enrollment_uri(url, code, fingerprint), "--json"
    )
    assert rc == exit_code, err + out
    return json.loads(out)


async def enrols_at_the_real_hub(hub: Hub, db: Path, code: str, fingerprint: str) -> None:
    """The code was never spent: the real gate enrols with it now, through the real CLI."""
    enrolled = await enroll_from_qr(db, hub.url, code, fingerprint)
    with GateStore(db) as store:
        seed = store.key(DEVICE_SEED_KEY)
    assert seed is not None and await hub_knows(hub, enrolled["device_id"], seed)


async def hardware_ids(hub: Hub) -> list[str]:
    resp = await hub.client.get("/api/admin/devices", headers=hub.auth(hub.a.admin_token))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    devices = body["devices"] if isinstance(body, dict) else body
    return sorted(d["hardware_id"] for d in devices)


# -- gate-scanner enroll with typed QR text ---------------------------------------------


async def test_a_fake_hub_with_another_key_receives_nothing_and_the_code_stays_unspent(
    hub: Hub, fakes: Any, tmp_path: Path
) -> None:
    fake, code, fingerprint = await fake_and_code(hub, fakes, "own_key")
    db = tmp_path / "gate.db"
    refused = (await enroll_from_qr(db, fake.url, code, fingerprint, exit_code=3))["error"]
    assert refused["code"] == "wrong_hub" and "does not match" in refused["message"]
    assert fake.enrol_posts() == [] and not fake.saw(code) and fake.attacks == []
    assert_nothing_stored(db)
    await enrols_at_the_real_hub(hub, tmp_path / "real.db", code, fingerprint)


async def test_a_fake_hub_relaying_the_real_key_gets_only_a_sealed_code_it_cannot_use(
    hub: Hub, fakes: Any, tmp_path: Path
) -> None:
    fake, code, fingerprint = await fake_and_code(hub, fakes, "relay")
    db = tmp_path / "gate.db"
    await enroll_from_qr(db, fake.url, code, fingerprint, exit_code=3)
    # The fake saw the enrolment, but never the code: only a blob sealed to the real hub's
    # key and bound to the gate's own device key, which the real hub refuses for another key.
    (sent,) = fake.enrol_posts()
    assert "code" not in sent and sent["sealed_code"] and not fake.saw(code)
    (attack,) = fake.attacks
    assert attack.status_code == 403 and attack.json()["error"]["code"] == "sealed_code_mismatch"
    assert_nothing_stored(db)
    assert await hardware_ids(hub) == []
    await enrols_at_the_real_hub(hub, tmp_path / "real.db", code, fingerprint)
    assert "attacker-box" not in await hardware_ids(hub)


async def test_enrolment_with_the_right_fingerprint_puts_no_plain_code_on_the_wire(
    hub: Hub, fakes: Any, tmp_path: Path
) -> None:
    # The proxy forwards everything unchanged, and remembers it.
    proxy, code, fingerprint = await fake_and_code(hub, fakes, "proxy")
    db = tmp_path / "gate.db"
    enrolled = await enroll_from_qr(db, proxy.url, code, fingerprint)
    assert enrolled["hub_key_fingerprint"] == fingerprint
    (sent,) = proxy.enrol_posts()
    assert "code" not in sent and sent["sealed_code"] and not proxy.saw(code)
    # The hub was asked for its key before anything else was sent; then the enrolled gate
    # pulls its first ticket list (issue #13), signed with its new key.
    asked = [(m, p) for m, p, _ in proxy.requests]
    assert asked[:3] == [
        ("GET", "/api/hub"),
        ("POST", "/api/device/enroll"),
        ("POST", "/api/device/heartbeat"),
    ]
    with GateStore(db) as store:
        seed = store.key(DEVICE_SEED_KEY)
    assert seed is not None and await hub_knows(hub, enrolled["device_id"], seed)

    # `enroll URL CODE` (no fingerprint to check) seals the code to the key the hub showed too.
    other, _ = await new_code(hub, "South scanner")
    rc, out, err = await async_gate_cli(tmp_path / "south.db", "enroll", proxy.url, other, "--json")
    assert rc == 0, err + out
    assert "code" not in proxy.enrol_posts()[-1] and not proxy.saw(other)


async def test_without_a_fingerprint_the_answer_must_carry_the_key_the_hub_showed(
    hub: Hub, fakes: Any, tmp_path: Path
) -> None:
    fake = await fakes("swap_answer")
    code, _ = await new_code(hub)
    db = tmp_path / "gate.db"
    rc, out, err = await async_gate_cli(db, "enroll", fake.url, code, "--json")
    assert rc == 3, err + out
    assert json.loads(out)["error"]["code"] == "wrong_hub"
    assert_nothing_stored(db)


# -- the hub's side: a sealed code is bound to the device that sealed it ---------------


async def test_a_sealed_code_replayed_with_another_device_key_is_refused(hub: Hub) -> None:
    from protocol.enroll_seal import seal_enrollment_code  # new with this fix

    code, _ = await new_code(hub)
    device = b64encode(public_key(bytes(32)))
    body = {
        "sealed_code": seal_enrollment_code(
            code, public_key=device, hardware_id="gate-1", hub_public_key=public_key(HUB_SEED)
        ),
        "hardware_id": "gate-1",
        "public_key": device,
    }

    async def post(sent: dict[str, Any]) -> tuple[int, str]:
        resp = await hub.client.post("/api/device/enroll", json=sent)
        return resp.status_code, resp.json().get("error", {}).get("code", "")

    attacker = b64encode(public_key(ATTACKER_SEED))
    assert await post({**body, "public_key": attacker}) == (403, "sealed_code_mismatch")
    assert await post({**body, "hardware_id": "gate-2"}) == (403, "sealed_code_mismatch")
    elsewhere = seal_enrollment_code(
        code, public_key=device, hardware_id="gate-1", hub_public_key=public_key(FAKE_SEED)
    )
    assert await post({**body, "sealed_code": elsewhere}) == (403, "invalid_sealed_code")
    assert await post({**body, "sealed_code": "sealed1:AAAA"}) == (403, "invalid_sealed_code")
    assert await post({**body, "code": code}) == (400, "invalid_field")  # one or the other
    # None of that spent the code: the device it was sealed for enrols with it.
    resp = await hub.client.post("/api/device/enroll", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["hub_key_fingerprint"] == key_fingerprint(public_key(HUB_SEED))
    # The plain field stays for API clients that have no fingerprint to check.
    plain, _ = await new_code(hub, "South scanner")
    resp = await hub.client.post(
        "/api/device/enroll",
        json={"code": plain, "hardware_id": "gate-3", "public_key": attacker},
    )
    assert resp.status_code == 201, resp.text


# -- the camera and the app go through the same order ----------------------------------


async def test_enrolling_from_the_camera_checks_the_hub_before_sending_the_code(
    hub: Hub, fakes: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, code, fingerprint = await fake_and_code(hub, fakes, "own_key")
    clip = video(
        tmp_path / "enroll.avi", [(None, 2), (enrollment_uri(fake.url, code, fingerprint), 6)]
    )
    db = tmp_path / "gate.db"
    rc, out, err = await gate_cli(capsys, db, "enroll", "--camera", str(clip), "--json")
    assert rc == 3, err + out
    assert json.loads(out)["error"]["code"] == "wrong_hub"
    assert fake.enrol_posts() == [] and not fake.saw(code) and fake.attacks == []
    assert_nothing_stored(db)
    await enrols_at_the_real_hub(hub, tmp_path / "real.db", code, fingerprint)


async def test_the_app_sends_a_relaying_hub_no_usable_code(
    hub: Hub, fakes: Any, gate: GateUnderTest, tmp_path: Path
) -> None:
    """`gate`: a gate set up by hand with a manifest but no hub."""
    fake, code, fingerprint = await fake_and_code(hub, fakes, "relay")
    uri = enrollment_uri(fake.url, code, fingerprint)
    assert "sealed_code_mismatch" in await refused_by_the_app(gate.service, uri)
    assert not fake.saw(code) and all("code" not in sent for sent in fake.enrol_posts())
    assert [a.status_code for a in fake.attacks] == [403]
    assert gate.store.key(DEVICE_SEED_KEY) is None and enrolled_hub(gate.store) is None
    await enrols_at_the_real_hub(hub, tmp_path / "real.db", code, fingerprint)
