"""The hub as its own process, SIGKILLed in the middle of a burst of uploads and online
checks, and its check writer SIGKILLed likewise: every scan the hub acknowledged is stored
exactly once afterwards, every retry is answered from what was stored, and of eight gates
checking one ticket at once exactly one admits."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.storage import HubStore
from tests.hub_fixtures import (
    HUB_SEED,
    Clock,
    Device,
    Hub,
    add_show,
    credential_text,
    enroll,
    make_tenant,
)

pytestmark = pytest.mark.slow

SERVE = (
    "import sys; from hub.app import create_app; from hub.server import serve;"
    " from hub.storage import HubStore;"
    " serve(create_app(HubStore(sys.argv[1]), bytes(range(32)), expiry_interval_s=None),"
    " '127.0.0.1', int(sys.argv[2]))"
)
assert bytes(range(32)) == HUB_SEED


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """`hub.server.serve` in a process of its own over one database file and port."""

    db: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(self.db), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{self.port}/health")
                    ).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the hub process did not come up")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def writer_pid(self) -> int:
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        pids = [int(p) for p in out.split()]
        assert pids, "no check writer child"
        return pids[0]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Hub, Served]]:
    db = tmp_path / "hub.sqlite"
    store = HubStore(db)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    hub = Hub(store, Clock(), url, httpx.AsyncClient(base_url=url, timeout=10))
    hub.a = make_tenant(store, "alpha", hub.clock())
    hub.b = make_tenant(store, "bravo", hub.clock())
    process = Served(db, port)
    await process.start()
    try:
        yield hub, process
    finally:
        if process.proc is not None and process.proc.poll() is None:
            process.proc.send_signal(signal.SIGKILL)
            process.proc.wait(10)
        await hub.client.aclose()
        store.close()


def _scan(seq: int, ticket_id: str, at_ms: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "at_ms": at_ms,
        "payload": f"sealed-{seq}",
        "ticket_id": ticket_id,
        "verdict": "admit",
        "reason": "admitted",
        "message": "Welcome in.",
        "direction": "entry",
        "gate": "North 1",
    }


class Burst:
    """Gates sending what a venue's gates send: upload batches and online checks, each
    retried with the same seqs until the hub answers (as gates do)."""

    def __init__(self, hub: Hub, event_id: str) -> None:
        self.hub, self.event_id = hub, event_id
        self.acked: dict[str, set[int]] = {}
        self.checked: dict[tuple[str, int], dict[str, Any]] = {}
        self.failures = 0

    async def answered(self, device: Device, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The same request again until the hub answers 200; every miss counts as a failure."""
        while True:
            try:
                resp = await device.send("POST", path, body)
            except httpx.HTTPError:
                resp = None
            if resp is not None and resp.status_code == 200:
                answer: dict[str, Any] = resp.json()
                return answer
            self.failures += 1
            await asyncio.sleep(0.05)

    async def uploads(self, device: Device, seqs: Iterator[int], batches: int) -> None:
        now = self.hub.clock()
        for _ in range(batches):
            batch = [next(seqs) for _ in range(50)]
            body = {
                "event_id": self.event_id,
                "scans": [_scan(s, f"t-{s}", now + s) for s in batch],
            }
            answer = await self.answered(device, "/api/device/scans", body)
            assert "refused" not in answer, answer
            self.acked.setdefault(device.device_id, set()).update(answer["acked"])

    async def checks(self, device: Device, codes: list[str], seqs: Iterator[int]) -> None:
        for code in codes:
            seq = next(seqs)
            body = {"event_id": self.event_id, "payload": code, "seq": seq}
            self.checked[(device.device_id, seq)] = await self.answered(
                device, "/api/device/check", body
            )


async def test_sigkill_of_hub_and_check_writer_mid_burst_loses_and_doubles_nothing(
    served: tuple[Hub, Served],
) -> None:
    hub, process = served
    show = add_show(hub, hub.a, n_tickets=24)
    uploaders = [await enroll(hub, hub.a.manager_token, hub.a.venue_id) for _ in range(2)]
    checkers = [
        await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north) for _ in range(2)
    ]
    ga = [t for i, t in enumerate(show.tickets) if i % 3 != 2]
    codes = [await credential_text(hub, t) for t in ga]
    burst = Burst(hub, show.event_id)
    seqs = [itertools.count(1) for _ in range(4)]

    async def killer() -> None:
        await asyncio.sleep(0.3)
        process.kill()  # the hub, mid-burst
        await process.start()
        await asyncio.sleep(0.3)
        os.kill(process.writer_pid(), signal.SIGKILL)  # its check writer, mid-burst

    await asyncio.gather(
        killer(),
        burst.uploads(uploaders[0], seqs[0], 30),
        burst.uploads(uploaders[1], seqs[1], 30),
        # each ticket checked at both gates, so every admit has a rival
        burst.checks(checkers[0], codes * 3, seqs[2]),
        burst.checks(checkers[1], codes[::-1] * 3, seqs[3]),
    )
    assert burst.failures > 0, "the kills hit no request: the test proved nothing"
    store = HubStore(process.db)
    try:
        for device in uploaders:
            rows = store.scans_of_device(device.device_id)
            stored = [r["device_seq"] for r in rows]
            assert len(stored) == len(set(stored)) == 1500
            assert burst.acked[device.device_id] <= set(stored)
        for tid in ga:
            counted = store.db.execute(
                "SELECT count(*) FROM scans WHERE ticket_id = ? AND counted = 1", [tid]
            ).fetchone()[0]
            assert counted == 1, tid  # admitted once, however often retried or killed
        for (device_id, seq), answer in burst.checked.items():
            (row,) = store.db.execute(
                "SELECT ticket_id, verdict FROM scans WHERE device_id = ? AND device_seq = ?",
                [device_id, seq],
            ).fetchall()
            assert tuple(row) == (answer["ticket_id"], answer["verdict"])
    finally:
        store.close()


async def test_eight_gates_checking_one_ticket_at_once_admit_exactly_once(
    served: tuple[Hub, Served],
) -> None:
    hub, _ = served
    show = add_show(hub, hub.a)
    gates = [
        await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north) for _ in range(8)
    ]
    for round_no in range(3):  # a fresh ticket each round
        tid = show.tickets[round_no * 2]
        code = await credential_text(hub, tid)
        answers = await asyncio.gather(
            *(
                g.send(
                    "POST",
                    "/api/device/check",
                    {"event_id": show.event_id, "payload": code, "seq": 10 + round_no},
                )
                for g in gates
            )
        )
        verdicts = [a.json()["verdict"] for a in answers]
        assert verdicts.count("admit") == 1, verdicts
        assert verdicts.count("deny") == 7, verdicts
