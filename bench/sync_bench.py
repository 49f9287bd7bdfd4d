"""Gate <-> hub sync as a gate sees it: the real hub in its own process (`python -m hub serve`
on loopback, demo data of 100k tickets) and one gate enrolled the real way, its SyncWorker
driven in this process.

(a) catch-up: 10,000 scans recorded while offline, then the time until the hub acknowledged
    them all (heartbeat + batches of 500, as a cycle does);
(b) first manifest: bytes and time of the full pull of 100k tickets, verify + install included;
(c) delta: 1,000 tickets locked (or unlocked) through the admin API, then the delta pull and
    install.
Each is repeated and the median quoted. Prints a table; the very last line is ONE JSON object
with the figures."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import Download, Hub, show_figures, upload_pending  # noqa: E402
from demo import local_hub  # noqa: E402
from scanner.enroll import enroll  # noqa: E402
from scanner.hub_client import HubClient  # noqa: E402
from scanner.service import GateService  # noqa: E402
from scanner.settings import MANIFEST_SYNC  # noqa: E402
from scanner.store import GateStore  # noqa: E402
from scanner.sync import SyncWorker  # noqa: E402
from tests.gate_scans import record_admits  # noqa: E402

TICKETS = 100_000
OFFLINE_SCANS = 10_000
CHANGES = 1_000
ROUNDS = 3


def enrolled_gate(url: str, demo: dict[str, Any], db: Path) -> GateStore:
    """A gate enrolled as `gate-scanner enroll` does it, at the demo venue's North gate."""
    store = GateStore(db)
    enroll(
        GateService(store),
        url,
        local_hub.demo_enrollment_code(url, demo, "Bench gate"),
        hardware_id="hw-bench",
    )
    return store


class Admin:
    """The hub's admin API, for changing tickets between pulls."""

    def __init__(self, url: str, token: str, ids: list[str]) -> None:
        self.url, self.ids = url, ids
        self.auth = {"Authorization": f"Bearer {token}"}

    def lock(self, ticket_ids: list[str], *, locked: bool) -> None:
        body: dict[str, Any] = {"ticket_ids": ticket_ids}
        if locked:
            body["reason"] = "chargeback_pending"
        path = "/api/admin/tickets/lock" if locked else "/api/admin/tickets/unlock"
        resp = httpx.post(self.url + path, json=body, headers=self.auth, timeout=60)
        resp.raise_for_status()


def pull(worker: SyncWorker, seen: Download) -> tuple[float, float, int, int | None]:
    """(whole pull s, of which verify + install s, body bytes, installed revision)."""
    seen.received = 0
    started = time.perf_counter()
    revision = worker.pull_manifest()
    ended = time.perf_counter()
    return ended - started, ended - max(seen.last_at, started), seen.received, revision


def bench_full(
    worker: SyncWorker, seen: Download, store: GateStore, admin: Admin
) -> dict[str, float]:
    """Full pulls: one ticket changes (a gate installs only a newer revision), and forgetting
    the last sync makes the worker ask for the whole manifest instead of a delta."""
    times, installs, sizes = [], [], []
    for r in range(ROUNDS):
        admin.lock([admin.ids[0]], locked=r % 2 == 0)
        store.set_setting(MANIFEST_SYNC, {})
        elapsed, install, size, revision = pull(worker, seen)
        if revision is None or store.ticket_count() != TICKETS:
            raise RuntimeError(f"full pull installed {store.ticket_count()} tickets")
        times.append(elapsed)
        installs.append(install)
        sizes.append(size)
    return {
        "manifest_full_100k_bytes": int(statistics.median(sizes)),
        "manifest_full_100k_bytes_per_ticket": statistics.median(sizes) / TICKETS,
        "manifest_full_100k_s": statistics.median(times),
        "manifest_full_100k_install_s": statistics.median(installs),
    }


def bench_delta(
    worker: SyncWorker, seen: Download, store: GateStore, admin: Admin
) -> dict[str, float]:
    """Lock 1,000 tickets, pull the delta; unlock them, pull again; and so on."""
    changed = admin.ids[-CHANGES:]
    times, installs, sizes = [], [], []
    for r in range(ROUNDS):
        admin.lock(changed, locked=r % 2 == 0)
        before = store.manifest_revision()
        elapsed, install, size, revision = pull(worker, seen)
        if revision is None or before is None or revision <= before:
            raise RuntimeError("the delta pull installed nothing")
        locked = store.ticket(changed[0])
        if locked is None or (locked.lock_reason is not None) != (r % 2 == 0):
            raise RuntimeError("the delta did not carry the lock change")
        times.append(elapsed)
        installs.append(install)
        sizes.append(size)
    return {
        "manifest_delta_1k_bytes": int(statistics.median(sizes)),
        "manifest_delta_1k_s": statistics.median(times),
        "manifest_delta_1k_install_s": statistics.median(installs),
    }


def bench_catchup(worker: SyncWorker, store: GateStore, ids: list[str]) -> dict[str, float]:
    """Each round a fresh slice of tickets, so every upload is new to the hub."""
    times = []
    now_ms = int(time.time() * 1000)
    for r in range(ROUNDS):
        chunk = ids[r * OFFLINE_SCANS : (r + 1) * OFFLINE_SCANS]
        # 10,000 committed admits, as the decision loop stores them while the hub is away
        scans = [(f"bench:{ticket_id}", ticket_id) for ticket_id in chunk]
        record_admits(store, scans, now_ms - 60_000 + r * OFFLINE_SCANS, gate="North")
        if worker.pending_count() != OFFLINE_SCANS:
            raise RuntimeError("the offline scans are not all pending")
        started = time.perf_counter()
        upload_pending(worker)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times)
    return {"catchup_10k_scans_s": seconds, "catchup_scans_per_s": OFFLINE_SCANS / seconds}


def main() -> None:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        hub = Hub(Path(tmp))
        started = time.perf_counter()
        demo = json.loads(hub.cli("demo-data", "--tickets", str(TICKETS)))
        setup_s = time.perf_counter() - started
        ids = local_hub.event_ticket_ids(hub.db, demo["event_id"])
        url = hub.url
        hub.start()
        try:
            store = enrolled_gate(url, demo, Path(tmp) / "gate.db")
            seen = Download()
            worker = SyncWorker(
                HubClient(store, url, timeout_s=120), event_id=demo["event_id"], on_progress=seen
            )
            admin = Admin(url, demo["admin_token"], ids)
            try:
                worker.pull_manifest()  # the hub's first build of this event is not the figure
                figures.update(bench_full(worker, seen, store, admin))
                figures.update(bench_delta(worker, seen, store, admin))
                figures.update(bench_catchup(worker, store, ids))
            finally:
                worker.stop()
                store.close()
        finally:
            hub.stop()
    print(f"sync bench: hub process on loopback, {TICKETS:,} tickets (demo data {setup_s:.1f} s),")
    print(f"one gate in-process, median of {ROUNDS} rounds\n")
    show_figures(figures, lambda name, _: TARGETS.get(name, "(none set)"))


# No target is set for these sync figures; the one nearby is the manifest size (README): the
# demo data names every holder, for which the manifest bench measures 46.3 B/ticket.
TARGETS = {
    "manifest_full_100k_bytes_per_ticket": "<= 25 at 20 % named; demo data: all named",
}


if __name__ == "__main__":
    main()
