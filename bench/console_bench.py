"""The venue console's live doors page under load: how long a gate's scan takes to show on the
page a venue manager has open (issue #16: `console_scan_to_screen_p99_ms`, 50 gates scanning
at once, target <= 500).

Everything real: `gate-hub serve` in its own process, 50 `gate-scanner stream --sync`
processes enrolled with it through the admin API's codes, and Debian's headless Chromium
(Playwright, tests/browser.py) signed in as a venue manager with /doors open. In each round
every gate scans a fresh ticket at the same moment; a scan counts as shown at the first
animation frame after the page's row for its gate counts it (a MutationObserver on the page,
Date.now()). Its start is the gate's committed record (scanned_ms, the gate's wall clock: the
same machine's). The baseline in the same run: one gate scanning alone. Beside each, the gate
to hub part (the hub's arrived_ms) so the console's own share shows.

Prints a table beside the targets; the very last line is ONE JSON object with the figures."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from playwright.async_api import Page

from bench.common import Hub, enroll_gates, import_bench_show, progress, show_figures
from hub.staff_accounts import hash_password
from hub.storage import HubStore
from hub.store_api import NewGate, NewStaffUser
from scanner.store import GateStore
from tests.browser import SIZES, launched, missing_browser, sign_in_page
from tests.processes import Gate

GATES = 50
ROUNDS = 10  # of all 50 gates at once, per set
SETS = 3  # the set with the median p99 is reported
ALONE_ROUNDS = 20  # the baseline: one gate scanning alone
TICKETS = GATES * ROUNDS * SETS + ALONE_ROUNDS + 50
PASSWORD = "bench password, long enough"
SETTLE_S = 0.5  # between rounds: the page shows the last round before the next one starts
TARGETS = {"console_scan_to_screen_p99_ms": ("<=", 500)}

# Injected into the doors page: for each gate's row, the count of scans it showed and when
# (the next animation frame after the row changed), kept in window.__shown.
WATCH = """() => {
    window.__shown = {};
    const part = document.getElementById("doors-gates");
    const note = () => requestAnimationFrame(() => {
        const at = Date.now();
        for (const row of part.querySelectorAll("tr[data-device]")) {
            const count = parseInt(row.lastElementChild.textContent, 10);
            const seen = (window.__shown[row.dataset.device] ||= []);
            if (!seen.length || seen[seen.length - 1][0] !== count) seen.push([count, at]);
        }
    });
    new MutationObserver(note).observe(part, {childList: true, subtree: true});
    note();
}"""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Venue:
    """What the bench made in the hub's database before it started serving."""

    tenant: str
    venue: str
    event: str
    gates: list[str]
    tickets: list[str]
    token: str  # the venue manager's API token: enrolment codes
    manager: str  # the venue manager's console username


def make_venue(db: Path) -> Venue:
    store = HubStore(db)
    try:
        now = now_ms()
        tenant = store.create_tenant("bench", now)["id"]
        venue = store.create_venue(tenant, "Arena", "UTC", "bench", now)["id"]
        store.create_zone(tenant, venue, "GA", "bench", now)
        gates = [
            store.create_gate(
                tenant, NewGate(venue, f"Gate {i:02}", "entry", ["GA"]), "bench", now
            )["id"]
            for i in range(1, GATES + 1)
        ]
        event = str(uuid.uuid4())
        tickets = [str(uuid.uuid4()) for _ in range(TICKETS)]
        import_bench_show(
            store,
            tenant,
            venue,
            event,
            [{"id": t, "event_id": event, "status": "ACTIVE", "zone": "GA"} for t in tickets],
            now,
        )
        _, token = store.create_token(tenant, venue, "venue_manager", "bench", now)
        store.create_staff_user(
            tenant,
            NewStaffUser(venue, "manager", "venue_manager", hash_password(PASSWORD)),
            "bench",
            now,
        )
        return Venue(tenant, venue, event, gates, tickets, token, "manager")
    finally:
        store.close()


def enrol(hub: Hub, venue: Venue, dbs: Sequence[Path]) -> list[str]:
    """A real `gate-scanner enroll` per gate with the admin API's code, all at once; the
    devices' ids, in gate order."""
    auth = {"Authorization": f"Bearer {venue.token}"}
    payloads = []
    for n, gate in enumerate(venue.gates, start=1):
        made = httpx.post(
            f"{hub.url}/api/admin/venues/{venue.venue}/enrollments",
            json={"name": f"Gate {n:02} scanner", "gate_id": gate, "ttl_s": 600},
            headers=auth,
            timeout=30,
        )
        made.raise_for_status()
        payloads.append(made.json()["payload"])
    enroll_gates(list(zip(dbs, payloads, strict=True)), len(venue.tickets))
    devices = []
    for db in dbs:
        with GateStore(db) as store:
            devices.append(store.device_id)
    return devices


def credentials(url: str, venue: Venue) -> list[str]:
    """Every ticket's code, as the box office gets it (the credential route issues it)."""
    auth = {"Authorization": f"Bearer {venue.token}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        answers = [client.get(f"/api/admin/tickets/{t}/credential") for t in venue.tickets]
    for answer in answers:
        answer.raise_for_status()
    return [a.text for a in answers]


def scan_at_once(gates: Sequence[Gate], codes: Sequence[str]) -> None:
    """Each gate gets its code at the same moment; then every verdict is read (each must
    admit: a deny would measure something else)."""
    for gate, code in zip(gates, codes, strict=True):
        assert gate.proc.stdin is not None
        gate.proc.stdin.write(code + "\n")
        gate.proc.stdin.flush()
    for gate in gates:
        assert gate.proc.stdout is not None
        verdict = gate.proc.stdout.readline().split()
        if verdict[1:2] != ["admit"]:
            raise RuntimeError(f"a gate did not admit: {verdict}")


async def shown(page: Page, counts: Mapping[str, int], timeout_s: float = 30) -> None:
    """Wait until the page's row of each device shows at least its count of scans."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = await page.evaluate("() => window.__shown")
        if all(seen.get(d) and seen[d][-1][0] >= n for d, n in counts.items()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the doors page did not show the scans within {timeout_s} s")
        await asyncio.sleep(0.05)


async def rounds(
    page: Page, gates: Sequence[Gate], devices: Sequence[str], codes: list[str], n: int
) -> None:
    """`n` rounds of every gate in `gates` scanning at once, each shown before the next."""
    for _ in range(n):
        seen = await page.evaluate("() => window.__shown")
        batch = [codes.pop() for _ in gates]
        await asyncio.to_thread(scan_at_once, gates, batch)
        await shown(page, {d: seen[d][-1][0] + 1 for d in devices})
        await asyncio.sleep(SETTLE_S)


@dataclass
class Lags:
    """Per scan, in ms from the gate's committed record: to the page, and to the hub."""

    screen: list[float]
    hub: list[float]

    def console(self) -> list[float]:
        """The console's own share: from the hub storing the scan to the page showing it."""
        return [s - h for s, h in zip(self.screen, self.hub, strict=True)]


def lags(
    hub: Hub, seen: Mapping[str, list[list[int]]], devices: Sequence[str], after: Mapping[str, int]
) -> Lags:
    """Each scan of `devices` after their `after` sequence numbers: the gate's k-th counted
    scan is on screen when its row first shows k or more."""
    measured = Lags([], [])
    for device in devices:
        rows = hub.query(
            "SELECT device_seq, scanned_ms, arrived_ms FROM scans"
            " WHERE device_id = ? AND counted = 1 ORDER BY device_seq",
            (device,),
        )
        for k, (seq, scanned, arrived) in enumerate(rows, start=1):
            if seq <= after.get(device, 0):
                continue
            at = next(ms for count, ms in seen[device] if count >= k)
            measured.screen.append(float(at - scanned))
            measured.hub.append(float(arrived - scanned))
    return measured


def last_seqs(hub: Hub) -> dict[str, int]:
    return dict(hub.query("SELECT device_id, max(device_seq) FROM scans GROUP BY 1"))


async def measured_rounds(
    page: Page, hub: Hub, gates: Sequence[Gate], devices: Sequence[str], codes: list[str], n: int
) -> Lags:
    before = last_seqs(hub)
    await rounds(page, gates, devices, codes, n)
    return lags(hub, await page.evaluate("() => window.__shown"), devices, before)


async def measure(
    hub: Hub, venue: Venue, gates: list[Gate], devices: list[str], codes: list[str]
) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with launched() as browser:
        width, height = SIZES["desktop"]
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        await sign_in_page(page, hub.url, venue.manager, PASSWORD)
        await page.goto(f"{hub.url}/doors")
        await page.wait_for_selector('#doors-live[data-state="live"]')
        await page.evaluate(WATCH)
        await shown(page, dict.fromkeys(devices, 0))

        alone = await measured_rounds(page, hub, gates[:1], devices[:1], codes, ALONE_ROUNDS)
        figures["one_gate_scan_to_screen_p50_ms"] = statistics.median(alone.screen)
        figures["one_gate_scan_to_screen_p99_ms"] = pct(alone.screen, 0.99)
        figures["one_gate_scan_to_hub_p50_ms"] = statistics.median(alone.hub)
        figures["one_gate_hub_to_screen_p50_ms"] = statistics.median(alone.console())
        progress("console", figures)

        sets = []
        for _ in range(SETS):
            at_once = await measured_rounds(page, hub, gates, devices, codes, ROUNDS)
            sets.append(
                {
                    "console_scan_to_screen_p50_ms": statistics.median(at_once.screen),
                    "console_scan_to_screen_p99_ms": pct(at_once.screen, 0.99),
                    "console_scan_to_hub_p50_ms": statistics.median(at_once.hub),
                    "console_scan_to_hub_p99_ms": pct(at_once.hub, 0.99),
                    "console_hub_to_screen_p50_ms": statistics.median(at_once.console()),
                    "console_hub_to_screen_p99_ms": pct(at_once.console(), 0.99),
                    "console_scans_measured": len(at_once.screen),
                }
            )
            progress("console", sets[-1])
        figures.update(sorted(sets, key=lambda s: s["console_scan_to_screen_p99_ms"])[SETS // 2])
        await context.close()
    return figures


def verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    op, target = TARGETS[name]
    return f"{op} {target:<8} {'ok' if value <= target else 'MISSED'}"


def main() -> None:
    problem = missing_browser()
    if problem:
        raise SystemExit(problem)
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Path(tmp))
        venue = make_venue(hub.db)
        gates: list[Gate] = []
        hub.start()
        try:
            codes = credentials(hub.url, venue)
            dbs = [Path(tmp) / f"gate-{n:02}.db" for n in range(1, GATES + 1)]
            devices = enrol(hub, venue, dbs)
            gates = [Gate(db, venue.event) for db in dbs]
            figures = asyncio.run(measure(hub, venue, gates, devices, codes))
        finally:
            for gate in gates:
                gate.close()
            hub.stop()
    show_figures(figures, verdict, digits=1, places=1)


if __name__ == "__main__":
    main()
