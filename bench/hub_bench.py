"""Hub throughput and latency against the real server (its own process, on loopback): scan
ingestion, manifest full/delta build at 100k tickets, WebSocket fan-out to 200 devices,
online checks from 8 concurrent gates, how far the hub's own reconciliation lags behind
ingestion (it runs behind the acknowledgements), and a whole-event reconciliation of the
ingested scans.
Prints a table beside the targets; the very last line is ONE JSON object with the figures."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.common import cpu_s, import_bench_show, show_figures
from demo.local_hub import free_port
from hub.app import create_app
from hub.manifest_build import HubKeys, ManifestBuilder
from hub.reconcile import HubScan, reconcile
from hub.server import serve
from hub.storage import HubStore
from hub.store_api import DeviceEnrollment, NewEnrollment, NewGate
from manifests.admission_types import Direction
from manifests.model import Scope
from protocol.native import public_key
from protocol.reasons import Reason, Verdict
from protocol.signing import DeviceSigner

SEED = bytes(range(32))
N_TICKETS = 100_000
NAMED_SHARE = 0.2
BATCH = 500
INGEST_DEVICES, INGEST_BATCHES = 4, 10  # 20k scans
LISTENERS, FANOUT_SCANS = 200, 30
GATES, CHECKS_PER_GATE = 8, 400
DELTA_CHANGES = 1000
ROUNDS = 3  # ingestion and checks: the median round is reported
TARGETS = {
    "ingest_scans_per_s": (">=", 10_000),
    "checks_per_s": (">=", 1_000),
    "check_p99_ms": ("<", 20),
    "check_errors": ("==", 0),
    "fanout_p99_ms": ("<", 250),
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---- the hub, in its own process ---------------------------------------------------------


def _serve(db: str, port: int) -> None:
    store = HubStore(db)
    app = create_app(store, SEED, expiry_interval_s=None, client_max_size=8 << 20)
    serve(app, "127.0.0.1", port)


# ---- set-up straight through the store ---------------------------------------------------


class Setup:
    def __init__(self, db: Path) -> None:
        self.store = HubStore(db)
        now = now_ms()
        self.tenant = self.store.create_tenant("bench", now)["id"]
        self.venue = self.store.create_venue(self.tenant, "Arena", "UTC", "bench", now)["id"]
        for zone in ("GA", "VIP"):
            self.store.create_zone(self.tenant, self.venue, zone, "bench", now)
        self.gates = [
            self.store.create_gate(
                self.tenant, NewGate(self.venue, f"G{i}", "entry", ["GA"]), "b", now
            )
            for i in range(1, GATES + 1)
        ]
        self.event_id = str(uuid.uuid4())
        rng = random.Random(7)
        self.tickets = [
            str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(N_TICKETS)
        ]
        import_bench_show(
            self.store,
            self.tenant,
            self.venue,
            self.event_id,
            [
                {
                    "id": tid,
                    "event_id": self.event_id,
                    "status": "ACTIVE",
                    "zone": "GA",
                    "holder_name": f"Guest {i}" if rng.random() < NAMED_SHARE else None,
                }
                for i, tid in enumerate(self.tickets)
            ],
            now,
        )

    def device(self, gate_id: str | None = None) -> DeviceSigner:
        _, code = self.store.create_enrollment(
            self.tenant,
            NewEnrollment(venue_id=self.venue, gate_id=gate_id, name="bench", ttl_ms=600_000),
            "bench",
            now_ms(),
        )
        seed = secrets.token_bytes(32)
        row = self.store.enroll_device(
            DeviceEnrollment(
                code=code, hardware_id=secrets.token_hex(6), public_key=public_key(seed)
            ),
            now_ms(),
        )
        assert isinstance(row, dict), row
        return DeviceSigner(row["id"], seed)


async def post(
    session: aiohttp.ClientSession, url: str, device: DeviceSigner, path: str, payload: Any
) -> tuple[int, Any]:
    body = json.dumps(payload).encode()
    headers = {
        **device.sign("POST", path, body, now_ms=now_ms()),
        "Content-Type": "application/json",
    }
    async with session.post(url + path, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


# ---- the measurements --------------------------------------------------------------------


def bench_manifests(setup: Setup) -> dict[str, float]:
    store, event_id = setup.store, setup.event_id

    def timed(fn: Any) -> tuple[float, Any]:
        t0 = time.perf_counter()
        result = fn()
        return (time.perf_counter() - t0) * 1000, result

    builder = ManifestBuilder(store, HubKeys.single(SEED))
    scope = Scope(setup.venue, setup.gates[0]["id"], ("GA",))
    other_scope = Scope(setup.venue, setup.gates[1]["id"], ("GA",))
    cold_ms, cold = timed(lambda: builder.serve(event_id, scope, None, now_ms()))
    rescope_ms, _ = timed(lambda: builder.serve(event_id, other_scope, None, now_ms()))
    restart_ms, _ = timed(
        lambda: ManifestBuilder(store, HubKeys.single(SEED)).serve(event_id, scope, None, now_ms())
    )
    # A change of DELTA_CHANGES tickets: the delta, then the full manifest moved forward.
    locked = [
        {"id": t, "venue_id": setup.venue, "lock_reason": None}
        for t in setup.tickets[:DELTA_CHANGES]
    ]
    store.set_locks(locked, setup.tenant, "fraud_investigation", "bench", now_ms())
    delta_ms, delta = timed(lambda: builder.serve(event_id, scope, cold.revision, now_ms()))
    assert delta.kind == "delta"
    full_ms, full = timed(lambda: builder.serve(event_id, scope, None, now_ms()))
    return {
        "manifest_full_first_build_ms": cold_ms,
        "manifest_full_after_restart_ms": restart_ms,
        "manifest_full_other_scope_ms": rescope_ms,
        "manifest_full_after_change_ms": full_ms,
        "manifest_full_bytes": len(full.envelope),
        "manifest_delta_build_ms": delta_ms,
        "manifest_delta_bytes": len(delta.envelope),
        "manifest_delta_changes": DELTA_CHANGES,
    }


async def bench_ingest(url: str, setup: Setup, devices: list[DeviceSigner]) -> dict[str, float]:
    rng = random.Random(3)
    at = now_ms()
    ingested = setup.tickets[DELTA_CHANGES : -ROUNDS * GATES * CHECKS_PER_GATE]  # not checked

    def batch(b: int) -> dict[str, Any]:
        scans = []
        for i in range(BATCH):
            scans.append(
                {
                    "seq": b * BATCH + i + 1,
                    "at_ms": at + b * BATCH + i,
                    "payload": "X" * 149,
                    "ticket_id": rng.choice(ingested),
                    "verdict": "admit",
                    "reason": "admitted",
                    "direction": "entry",
                    "gate": "G1",
                }
            )
        return {"event_id": setup.event_id, "scans": scans}

    bodies = [[batch(b) for b in range(INGEST_BATCHES)] for _ in devices]
    errors = 0

    async def run(session: aiohttp.ClientSession, device: DeviceSigner, mine: list[Any]) -> None:
        nonlocal errors
        for body in mine:
            status, answer = await post(session, url, device, "/api/device/scans", body)
            if status != 200 or len(answer["acked"]) != BATCH:
                errors += 1

    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(run(session, d, b) for d, b in zip(devices, bodies, strict=True)))
        wall = time.perf_counter() - t0
    total = len(devices) * INGEST_BATCHES * BATCH
    return {"ingest_scans": total, "ingest_scans_per_s": total / wall, "ingest_errors": errors}


async def bench_fanout(
    url: str, setup: Setup, sender: DeviceSigner, listeners: list[DeviceSigner]
) -> dict[str, float]:
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    ready = asyncio.Event()
    connected = 0

    async def listen(session: aiohttp.ClientSession, device: DeviceSigner) -> None:
        nonlocal connected
        path = "/api/device/live"
        async with session.ws_connect(
            url + path, headers=device.sign("GET", path, now_ms=now_ms())
        ) as ws:
            await ws.receive_json()  # hello
            connected += 1
            if connected == len(listeners):
                ready.set()
            got = 0
            while got < FANOUT_SCANS:
                msg = await ws.receive_json(timeout=30)
                latencies.append((time.perf_counter() - sent_at[msg["seq"]]) * 1000)
                got += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(listen(session, d)) for d in listeners]
        await asyncio.wait_for(ready.wait(), 60)
        base = 10_000_000
        for i in range(FANOUT_SCANS):
            seq = base + i
            scan = {
                "seq": seq,
                "at_ms": now_ms(),
                "payload": "code",
                "ticket_id": setup.tickets[i],
                "verdict": "admit",
                "reason": "admitted",
                "direction": "entry",
                "gate": "G1",
            }
            sent_at[seq] = time.perf_counter()
            status, _ = await post(
                session,
                url,
                sender,
                "/api/device/scans",
                {"event_id": setup.event_id, "scans": [scan]},
            )
            assert status == 200
            await asyncio.sleep(0.05)
        _done, pending = await asyncio.wait(tasks, timeout=30)
        for task in pending:
            task.cancel()
    expected = len(listeners) * FANOUT_SCANS
    return {
        "fanout_devices": len(listeners),
        "fanout_p50_ms": statistics.median(latencies),
        "fanout_p99_ms": pct(latencies, 0.99),
        "fanout_missing": expected - len(latencies),
    }


async def bench_checks(
    url: str, setup: Setup, gates: list[DeviceSigner], round_no: int, server_pid: int
) -> dict[str, float]:
    builder = ManifestBuilder(setup.store, HubKeys.single(SEED))
    source = setup.store.manifest_source(setup.event_id, with_tickets=False)
    assert source is not None
    per_round = GATES * CHECKS_PER_GATE
    end = len(setup.tickets) - round_no * per_round
    pool = setup.tickets[end - per_round : end]  # not locked, not ingested, fresh each round
    rows = setup.store.get_tickets(pool, setup.tenant)
    codes = [builder.credential_for(source, rows[t], now_ms()) for t in pool]
    latencies: list[float] = []
    errors = unexpected = 0

    # Every gate signs its own requests on its own device; here one process plays all eight
    # gates on the hub's two shared cores, so it does as little as it can while the clock
    # runs: requests are signed and written out as HTTP/1.1 before it starts (timestamps stay
    # well within ±5 min), then sent on one keep-alive connection per gate, and the answers
    # read by Content-Length. Its own CPU is reported beside the hub's.
    path = "/api/device/check"
    host = url.removeprefix("http://")
    requests: list[list[bytes]] = []
    for g, device in enumerate(gates):
        mine = codes[g * CHECKS_PER_GATE : (g + 1) * CHECKS_PER_GATE]
        wire = []
        for seq, code in enumerate(mine, start=round_no * CHECKS_PER_GATE + 1):
            body = json.dumps({"event_id": setup.event_id, "payload": code, "seq": seq}).encode()
            headers = {
                **device.sign("POST", path, body, now_ms=now_ms()),
                "Host": host,
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
            }
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            wire.append(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body)
        requests.append(wire)

    async def gate(g: int) -> None:
        nonlocal errors, unexpected
        reader, writer = await asyncio.open_connection(*host.split(":"))
        try:
            for request in requests[g]:
                t0 = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                latencies.append((time.perf_counter() - t0) * 1000)
                if status_line.split()[1:2] != [b"200"]:
                    errors += 1
                elif json.loads(answer)["verdict"] != "admit":
                    unexpected += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
        finally:
            writer.close()

    cpu0, own0, t0 = cpu_s(server_pid), cpu_s(os.getpid(), children=False), time.perf_counter()
    await asyncio.gather(*(gate(g) for g in range(len(gates))))
    wall = time.perf_counter() - t0
    server_cpu = cpu_s(server_pid) - cpu0
    client_cpu = cpu_s(os.getpid(), children=False) - own0
    total = GATES * CHECKS_PER_GATE
    return {
        "check_gates": GATES,
        "checks": total,
        "checks_per_s": total / wall,
        "check_p50_ms": statistics.median(latencies),
        "check_p99_ms": pct(latencies, 0.99),
        "check_errors": errors,
        "check_unexpected_verdicts": unexpected,
        # The hub's own CPU per check: what the hub costs, apart from the load generator
        # and anything else sharing the machine.
        "check_server_cpu_ms": server_cpu * 1000 / total,
        "check_client_cpu_ms": client_cpu * 1000 / total,
    }


async def bench_reconcile_catchup(url: str, setup: Setup) -> dict[str, float]:
    """Right after the ingest rounds: the admin report first finishes the reconciliation the
    hub queued behind the acknowledgements, so its time is how far reconciliation lagged."""
    _, token = setup.store.create_token(setup.tenant, None, "admin", "bench", now_ms())
    path = f"/api/admin/events/{setup.event_id}/reconciliation"
    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        async with session.get(url + path, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()
            report = await r.json()
        ms = (time.perf_counter() - t0) * 1000
    return {
        "reconcile_catchup_ms": ms,
        "reconciled_outcomes": sum(report["counts"].values()),
        "reconciled_double_entries": len(report["double_entries"]),
    }


def bench_reconcile(setup: Setup) -> dict[str, float]:
    store = setup.store
    manifest = ManifestBuilder(store, HubKeys.single(SEED)).rows(setup.event_id, now_ms())
    assert manifest is not None
    rows = list(
        store.db.query(
            "SELECT * FROM scans WHERE event_id = ? AND ticket_id IS NOT NULL", [setup.event_id]
        )
    )
    scans = [
        HubScan(
            device_id=r["device_id"],
            seq=r["device_seq"],
            gate_name="G1",
            direction=Direction(r["direction"]),
            ticket_id=r["ticket_id"],
            device_time_ms=r["scanned_ms"],
            clock_offset_ms=r["clock_offset_ms"],
            hub_arrival=r["id"],
            verdict=Verdict(r["verdict"]),
            reason=Reason(r["reason"]),
        )
        for r in rows
    ]
    t0 = time.perf_counter()
    report = reconcile(manifest.header, manifest.tickets, scans)
    ms = (time.perf_counter() - t0) * 1000
    return {
        "reconcile_scans": len(scans),
        "reconcile_ms": ms,
        "reconcile_scans_per_s": len(scans) / (ms / 1000),
        "reconcile_conflicts": len(report.conflicts),
    }


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("hub did not start")


def median_round(rounds: list[dict[str, float]], key: str) -> dict[str, float]:
    """The round with the median `key` (figures of one round stay together)."""
    return sorted(rounds, key=lambda r: r[key])[len(rounds) // 2]


def verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    op, target = TARGETS[name]
    ok = {">=": value >= target, "<": value < target, "==": value == target}[op]
    return f"{op} {target:<8} {'ok' if ok else 'MISSED'}"


def main() -> None:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "hub.sqlite"
        t0 = time.perf_counter()
        setup = Setup(db)
        figures["setup_import_100k_ms"] = (time.perf_counter() - t0) * 1000
        figures.update(bench_manifests(setup))
        ingest = [setup.device() for _ in range(INGEST_DEVICES)]
        gates = [setup.device(g["id"]) for g in setup.gates]
        sender = setup.device(setup.gates[0]["id"])
        listeners = [setup.device() for _ in range(LISTENERS)]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = multiprocessing.get_context("spawn").Process(target=_serve, args=(str(db), port))
        server.start()
        try:
            asyncio.run(wait_up(url))
            rounds = [
                asyncio.run(bench_ingest(url, setup, [setup.device() for _ in ingest]))
                for _ in range(ROUNDS)
            ]
            figures.update(median_round(rounds, "ingest_scans_per_s"))
            figures.update(asyncio.run(bench_reconcile_catchup(url, setup)))
            figures.update(asyncio.run(bench_fanout(url, setup, sender, listeners)))
            assert server.pid is not None
            rounds = [
                asyncio.run(bench_checks(url, setup, gates, r, server.pid)) for r in range(ROUNDS)
            ]
            figures.update(median_round(rounds, "checks_per_s"))
        finally:
            server.terminate()
            server.join(10)
        figures.update(bench_reconcile(setup))
        setup.store.close()
    show_figures(figures, verdict, digits=1, places=3)


if __name__ == "__main__":
    main()
