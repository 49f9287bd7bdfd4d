"""Shared set-up for the hub tests: a real hub on 127.0.0.1 over a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from hub.app import create_app
from hub.keys import DB
from hub.storage import HubStore
from hub.store_api import (
    CatalogueImport,
    ConnectedBackend,
    DeviceEnrollment,
    HubStorage,
    NewEnrollment,
    NewGate,
)
from hub.thread_owned import ThreadOwned
from manifests.admission_types import Decision
from manifests.model import Manifest
from manifests.policy import HOUR_MS, TEMPLATES
from protocol.native import public_key
from protocol.signing import DeviceSigner, b64encode
from scanner.hub_keys import trust_hub_key
from scanner.install import install_manifest
from scanner.service import GateService
from scanner.store import GateStore
from tests import factories

HUB_SEED = bytes(range(32))


@dataclass
class Clock:
    """The hub's clock in tests: real time plus an offset the test can move."""

    offset_ms: int = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


@dataclass
class Tenant:
    id: str
    venue_id: str
    admin_token: str
    manager_token: str
    staff_token: str
    box_office_token: str


@dataclass
class Hub:
    app_store: HubStore  # the store the app was made around: reach it through `store`
    clock: Clock
    url: str
    client: httpx.AsyncClient
    db: ThreadOwned[HubStorage] | None = None  # the app's database thread (app[DB])
    a: Tenant = field(init=False)
    b: Tenant = field(init=False)
    _held: bool = field(default=False, init=False)

    @property
    def store(self) -> HubStore:
        """The app's store, for the test's own reads and writes. The app uses it on its
        database thread (hub/thread_owned.py); so that the two never use the one connection
        at once (sqlite-utils' savepoints would cross), that thread is held, once it has
        finished what it was doing, until the test next awaits."""
        self._hold_db_thread()
        return self.app_store

    def _hold_db_thread(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: no app running beside the test
            return
        if self._held or self.db is None:
            return
        parked, release = threading.Event(), threading.Event()

        def park(store: HubStorage) -> None:
            parked.set()
            release.wait(30)

        try:
            self.db.submit(park)
        except RuntimeError:  # the app is shut down: nobody else uses the store
            return
        assert parked.wait(30), "the hub's database thread did not come free"
        self._held = True

        def let_go() -> None:
            self._held = False
            release.set()

        loop.call_soon(let_go)

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def lock(self, ticket_ids: list[str], reason: str) -> None:
        """Lock tickets of tenant a through the admin API, as its venue manager."""
        resp = await self.client.post(
            "/api/admin/tickets/lock",
            json={"ticket_ids": ticket_ids, "reason": reason},
            headers=self.auth(self.a.manager_token),
        )
        assert resp.status_code == 200, resp.text


def make_tenant(store: HubStore, name: str, now: int) -> Tenant:
    tenant = store.create_tenant(name, now)
    venue = store.create_venue(tenant["id"], f"{name} Arena", "Europe/Berlin", "test", now)
    store.create_zone(tenant["id"], venue["id"], "GA", "test", now)
    store.create_zone(tenant["id"], venue["id"], "VIP", "test", now)
    tokens = {
        role: store.create_token(
            tenant["id"], None if role == "admin" else venue["id"], role, "", now
        )[1]
        for role in ("admin", "venue_manager", "venue_staff", "box_office")
    }
    return Tenant(
        tenant["id"],
        venue["id"],
        tokens["admin"],
        tokens["venue_manager"],
        tokens["venue_staff"],
        tokens["box_office"],
    )


async def start_hub(tmp_path: Any, *, port: int = 0, **options: Any) -> tuple[Hub, web.AppRunner]:
    """The hub on 127.0.0.1:`port` (0: a free one). Its enrolment QR codes name
    http://hub.test:8080 unless `hub_url` names where it listens (a real gate then enrols)."""
    store = HubStore(tmp_path / "hub.sqlite")
    clock = Clock()
    options.setdefault("hub_url", "http://hub.test:8080")
    app = create_app(store, HUB_SEED, clock=clock, **options)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    hub = Hub(store, clock, url, httpx.AsyncClient(base_url=url, timeout=10), app[DB])
    hub.a = make_tenant(store, "alpha", clock())
    hub.b = make_tenant(store, "bravo", clock())
    return hub, runner


async def stop_hub(hub: Hub, runner: web.AppRunner) -> None:
    await hub.client.aclose()
    await runner.cleanup()
    hub.app_store.close()


@dataclass
class Device:
    """A gate's side of the device API: its own key, signing every request."""

    hub: Hub
    seed: bytes
    device_id: str = ""

    @property
    def public_key(self) -> str:
        return b64encode(public_key(self.seed))

    def signed(
        self, method: str, path: str, body: bytes = b"", now_ms: int | None = None
    ) -> dict[str, str]:
        """Signed at the hub's clock unless `now_ms` says otherwise."""
        now = self.hub.clock() if now_ms is None else now_ms
        return DeviceSigner(self.device_id, self.seed).sign(method, path, body, now_ms=now)

    async def send(
        self, method: str, path: str, payload: Any = None, now_ms: int | None = None
    ) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = self.signed(method, path, body, now_ms)
        return await self.hub.client.request(method, path, content=body, headers=headers)


async def enroll(hub: Hub, token: str, venue_id: str, **fields: Any) -> Device:
    """Create a code as the venue manager and spend it as a fresh device."""
    made = await hub.client.post(
        f"/api/admin/venues/{venue_id}/enrollments",
        json={"name": "Gate 1 scanner", **fields},
        headers=hub.auth(token),
    )
    assert made.status_code == 201, made.text
    device = Device(hub, secrets.token_bytes(32))
    resp = await hub.client.post(
        "/api/device/enroll",
        json={
            "code": made.json()["code"],
            "hardware_id": f"hw-{secrets.token_hex(4)}",
            "public_key": device.public_key,
        },
    )
    assert resp.status_code == 201, resp.text
    device.device_id = resp.json()["device_id"]
    return device


@dataclass
class Show:
    event_id: str
    code: int
    north: str  # gate id: entry into GA
    south: str  # gate id: entry into VIP
    tickets: list[str]  # ticket ids; even ones carry a holder name
    holders: dict[str, str]


def add_show(hub: Hub, tenant: Tenant, n_tickets: int = 6, policy: str = "standard") -> Show:
    """An event on now, two gates and `n_tickets` ACTIVE tickets (GA, or VIP for every 3rd)."""
    store, now = hub.store, hub.clock()
    north = store.create_gate(
        tenant.id, NewGate(tenant.venue_id, "North", "entry", ["GA"]), "t", now
    )
    south = store.create_gate(
        tenant.id, NewGate(tenant.venue_id, "South", "entry", ["VIP"]), "t", now
    )
    event_id, code = str(uuid.uuid4()), secrets.randbits(31)
    ids = [str(uuid.uuid4()) for _ in range(n_tickets)]
    holders = {tid: f"Guest {i}" for i, tid in enumerate(ids) if i % 2 == 0}
    store.import_catalogue(
        tenant.id,
        CatalogueImport(
            events=[
                {
                    "id": event_id,
                    "venue_id": tenant.venue_id,
                    "code": code,
                    "name": "Show",
                    "timezone": "UTC",
                    "start_ms": now - HOUR_MS,
                    "end_ms": now + 3 * HOUR_MS,
                    "policy_json": json.dumps(TEMPLATES[policy].to_json()),
                }
            ],
            tickets=[
                {
                    "id": tid,
                    "event_id": event_id,
                    "status": "ACTIVE",
                    "zone": "VIP" if i % 3 == 2 else "GA",
                    "holder_name": holders.get(tid),
                }
                for i, tid in enumerate(ids)
            ],
        ),
        "test",
        now,
    )
    return Show(event_id, code, north["id"], south["id"], ids, holders)


async def credential_text(hub: Hub, ticket_id: str) -> str:
    resp = await hub.client.get(
        f"/api/admin/tickets/{ticket_id}/credential", headers=hub.auth(hub.a.box_office_token)
    )
    assert resp.status_code == 200, resp.text
    return resp.text


def store_backend(
    store: HubStore,
    tenant_name: str,
    now_ms: int,
    *,
    kind: str = "pretix",
    name: str = "shop",
    settings: Mapping[str, Any] | None = None,
    seal: Callable[[str], bytes] | None = None,
    timezone: str = "Europe/Berlin",
) -> dict[str, Any]:
    """A new tenant with one venue, Riverside Park, and a backend of `kind` at it, made
    through the store alone; the backend's row."""
    tenant = store.create_tenant(tenant_name, now_ms)
    venue = store.create_venue(tenant["id"], "Riverside Park", timezone, "t", now_ms)
    return store.create_backend(
        tenant["id"],
        ConnectedBackend(
            venue_id=venue["id"], kind=kind, name=name, settings=settings or {}, seal=seal
        ),
        "t",
        now_ms,
    )


def store_enrollment_code(
    store: HubStore, tenant_id: str, venue_id: str, now_ms: int, ttl_ms: int = 60_000
) -> str:
    """A one-time enrolment code for the venue (no gate, no zone), made through the store
    alone."""
    _, code = store.create_enrollment(
        tenant_id, NewEnrollment(venue_id=venue_id, name="North 1", ttl_ms=ttl_ms), "test", now_ms
    )
    return code


def store_device(store: HubStore, tenant_id: str, venue_id: str, now_ms: int) -> str:
    """A device enrolled through the store alone (a one-time code, then enrolment), for
    tests that store scans without a running hub; its id."""
    device = store.enroll_device(
        DeviceEnrollment(
            code=store_enrollment_code(store, tenant_id, venue_id, now_ms),
            hardware_id="hw",
            public_key=b"\x01" * 32,
        ),
        now_ms,
    )
    assert isinstance(device, dict), device
    return str(device["id"])


@dataclass
class OfflineGate:
    """A gate holding the hub's manifests as a real one does (installed from the envelopes the
    device API served), deciding scans on its own."""

    store: GateStore
    service: GateService
    clock: Callable[[], int]

    def install(self, envelope: bytes) -> Manifest:
        """A full manifest or a delta, verified against the hub keys the gate trusts."""
        return install_manifest(self.store, envelope, self.clock())

    def decide(self, code: str) -> Decision:
        outcome = self.service.scan(code)
        assert outcome is not None, code
        return outcome.decision


@contextlib.contextmanager
def offline_gate(
    path: Path,
    hub: Hub,
    venue_id: str,
    trusted: Mapping[int, bytes],
    zones: tuple[str, ...] = ("GA",),
) -> Iterator[OfflineGate]:
    """The North entry gate of `venue_id` on its own database at `path`, trusting `trusted`
    (tests.device_api.trusted_keys), on the hub's clock; nothing installed yet."""
    with GateStore(path) as store:
        store.set_config("device_id", "gate-offline")
        store.set_gate(factories.gate("North", venue_id=venue_id, zones=zones))
        for key_id, public in trusted.items():
            trust_hub_key(store, key_id, public)
        yield OfflineGate(store, GateService(store, clock=hub.clock, dedupe_window_ms=0), hub.clock)
