"""A real hub a test can stop and restart, and gates enrolled with it (sync and live tests)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from hub.app import create_app
from hub.keys import DB
from scanner.connection import ConnectionMonitor, LinkPolicy
from scanner.enroll import enroll
from scanner.hub_client import HubClient
from scanner.service import GateService
from scanner.store import GateStore
from scanner.sync import (
    SyncWorker,
)
from tests.hub_fixtures import HUB_SEED, Hub, start_hub, stop_hub

POLICY = LinkPolicy(fail_after=3, recover_after=2, slow_after_s=2.0, poll_s=0.05)


@dataclass
class LiveHub:
    """The real hub, which a test can stop and start again on the same port (same DB)."""

    hub: Hub
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def restart(self) -> None:
        app = create_app(self.hub.app_store, HUB_SEED, clock=self.hub.clock, expiry_interval_s=None)
        self.hub.db = app[DB]
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveHub]:
    hub, runner = await start_hub(tmp_path, expiry_interval_s=None)
    port = int(hub.url.rsplit(":", 1)[1])
    served = LiveHub(hub, runner, port)
    yield served
    await stop_hub(hub, served.runner)


async def enrolment_code(live: LiveHub, **code_fields: Any) -> str:
    """A one-time enrolment code at tenant a's venue, as its venue manager asks for one."""
    hub = live.hub
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North 1 scanner", **code_fields},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    return str(made.json()["code"])


async def enrolled_gate(
    live: LiveHub, tmp_path: Path, db: str = "gate.db", **code_fields: Any
) -> GateStore:
    """A gate database enrolled with the hub by scanner.enroll, as `gate-scanner enroll`."""
    code = await enrolment_code(live, **code_fields)
    store = GateStore(tmp_path / db)
    service = GateService(store)
    await asyncio.to_thread(enroll, service, live.hub.url, code, hardware_id=f"hw-{db}")
    return store


def hub_seqs(live: LiveHub, store: GateStore) -> list[int]:
    return [r["device_seq"] for r in live.hub.store.scans_of_device(store.device_id)]


def worker_for(
    live: LiveHub, store: GateStore, http: httpx.Client | None = None, **kw: Any
) -> SyncWorker:
    """A sync worker of `store` with the live hub (over `http` when given)."""
    kw.setdefault("monitor", ConnectionMonitor(POLICY, random.Random(7)))
    return SyncWorker(HubClient(store, live.hub.url, http=http), **kw)


async def wait_for(predicate, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def deactivate(live: LiveHub, gate: GateStore) -> None:
    hub = live.hub
    resp = await hub.client.post(
        f"/api/admin/devices/{gate.device_id}/deactivate", headers=hub.auth(hub.a.manager_token)
    )
    assert resp.status_code == 200, resp.text
