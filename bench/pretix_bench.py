"""The hub in front of a real pretix (tests/pretix_server.py: pretix under gunicorn, one
worker, SQLite, on loopback), one event on now of 10,000 paid positions (2 to an order, as
real orders go: 5,000 orders, 100 pages of the order list), 10 gates. In the same run:

(1) our path, from nothing at the hub: `gate-hub serve` over a fresh database, tenant, venue
    and an admin token (CLI), `gate-hub backend add --init-token` (a fresh pretix device), the
    serve process's own first pull (polled in its database), then 10 one-time enrolment codes
    (the admin API) and 10 `gate-scanner enroll` processes at once, each pulling, verifying
    and installing its manifest; the figure ends when the last of them exits holding 10,000
    tickets. Checked after the clock: every gate admits a pretix code offline (a dry run of
    its decision) and refuses one pretix never issued;
(2) pretixSCAN's path: 10 pretix devices initialised (POST /api/v1/device/initialize) and each
    reading the whole order list as libpretixsync's OrderSyncAdapter does on a first sync
    (its query parameters; no page_size, so pretix's default of 50 orders a page; Device
    auth), the 10 at once. Only the order list: libpretixsync also syncs items, questions,
    settings, layouts... and writes every position to the device's database, none of which is
    done here, so this is a lower bound for pretixSCAN;
(3) gate 1 scans the pretix codes of 1,000 positions offline (its own decisions, committed),
    uploads them as its sync worker does, and the serve process's pusher redeems them in
    pretix until its outbox is empty; pretix must then show exactly 1,000 successful
    check-ins of 1,000 positions and no failed one. CPU: pretix's gunicorn worker (/proc)
    per redeem, the hub process per pushed scan (its ingest of the upload included).

The pretix devices (1 for the hub, 10 for pretixSCAN) are made before the clocks start, as an
organizer makes them in pretix's control panel; our enrolment codes are inside our figure.
The serve process pulls once at start (GATE_HUB_BACKEND_PULL_INTERVAL_S=3600 here, so no
periodic pull lands in the push figures). Our path runs 3 times, each with a fresh hub
and pretix device (the first before pretixSCAN's, two after it, so the noise of the 2 shared
cores meets both), and the median is quoted; pretixSCAN's (~2 min) runs once, its 10 devices
giving a median of their own. The whole run takes ~8 min. Prints a table beside the targets;
the very last line is ONE JSON object with the figures.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    Download,
    Hub,
    cpu_s,
    enroll_gates,
    progress,
    push_offline,
    show_figures,
)
from protocol.reasons import Verdict  # noqa: E402
from scanner.hub_client import HubClient  # noqa: E402
from scanner.service import GateService  # noqa: E402
from scanner.settings import MANIFEST_SYNC  # noqa: E402
from scanner.store import GateStore  # noqa: E402
from scanner.sync import SyncWorker  # noqa: E402
from tests.pretix_server import Event, Position, PretixServer, missing_pretix  # noqa: E402

POSITIONS = 10_000
PER_ORDER = 2
GATES = 10
PUSHES = 1_000
ROUNDS = 3  # of our path; pretixSCAN's (2 min) once, after the first
BACKEND = "pretix"
# libpretixsync's OrderSyncAdapter.downloadPage, first sync of a plain event by pretixSCAN
# (not pretixPOS: payments and refunds excluded; pdf_data only for devices that print badges)
LIBPRETIXSYNC_ORDER_PARAMS = (
    "testmode=false&exclude=downloads&exclude=payment_date&exclude=payment_provider"
    "&exclude=fees&exclude=positions.downloads&exclude=payments&exclude=refunds"
)


def pretix_worker_pid(server: PretixServer) -> int:
    """The gunicorn worker (the one child of the master the harness started)."""
    assert server._proc is not None  # the harness keeps its process private; a bench may look
    master = server._proc.pid
    kids = [
        int(c)
        for t in Path(f"/proc/{master}/task").iterdir()
        for c in (t / "children").read_text().split()
    ]
    if len(kids) != 1:
        raise RuntimeError(f"pretix's gunicorn has {len(kids)} workers, expected 1")
    return kids[0]


def pretix_version() -> str:
    found = sorted(
        (ROOT / "build" / "pretix-venv" / "lib").glob("python*/site-packages/pretix-*.dist-info")
    )
    return found[0].name.removeprefix("pretix-").removesuffix(".dist-info") if found else "?"


# ---- (1) our path ---------------------------------------------------------------------------


@dataclass
class Ours:
    hub_setup_s: float
    hub_pull_s: float
    backend_add_s: float
    gates_s: float
    total_s: float
    pretix_cpu_pull_s: float
    hub_cpu_pull_s: float
    hub_cpu_gates_s: float
    event_id: str
    gate_dbs: list[Path]


def enrol_gates(hub: Hub, admin_token: str, venue_id: str, tmp: Path) -> list[Path]:
    """10 one-time codes from the admin API, then 10 `gate-scanner enroll` processes at once;
    each exits after its first sync (manifest verified and installed)."""
    auth = {"Authorization": f"Bearer {admin_token}"}
    uris = []
    with httpx.Client(base_url=hub.url, headers=auth, timeout=30) as client:
        for i in range(GATES):
            made = client.post(
                f"/api/admin/venues/{venue_id}/enrollments", json={"name": f"Gate {i + 1}"}
            )
            if made.status_code != 201:
                raise RuntimeError(f"enrolment code: HTTP {made.status_code} {made.text}")
            uris.append(str(made.json()["payload"]))
    dbs = [tmp / f"gate{i + 1}.db" for i in range(GATES)]
    enroll_gates(list(zip(dbs, uris, strict=True)), POSITIONS)
    return dbs


def our_path(hub: Hub, server: PretixServer, init_token: str, tmp: Path) -> Ours:
    worker = pretix_worker_pid(server)
    t0 = time.perf_counter()
    hub.start()
    tenant = hub.cli("tenant", "create", "bench").strip()
    venue = hub.cli("venue", "create", "Arena", "--tenant", tenant, "--timezone", "UTC").strip()
    token = hub.cli("token", "create", "--tenant", tenant, "--role", "admin").strip()
    t1 = time.perf_counter()
    cpu_before, hub_before = cpu_s(worker), hub.cpu()
    hub.cli(
        "backend", "add", BACKEND, "--tenant", tenant, "--venue", venue,
        "--url", server.url, "--init-token", init_token,
    )  # fmt: skip
    added = time.perf_counter()
    hub.first_pull("pretix")
    t2 = time.perf_counter()
    pretix_cpu, hub_pull_cpu = cpu_s(worker) - cpu_before, hub.cpu() - hub_before
    dbs = enrol_gates(hub, token, venue, tmp)
    t3 = time.perf_counter()
    hub_gates_cpu = hub.cpu() - hub_before - hub_pull_cpu
    (event_id,) = hub.query("SELECT event_id FROM backend_events")[0]
    tickets = hub.query("SELECT count(*) FROM tickets WHERE event_id = ?", (event_id,))[0][0]
    if tickets != POSITIONS:
        raise RuntimeError(f"the hub holds {tickets} tickets of the event, not {POSITIONS}")
    status = json.loads(hub.cli("backend", "status", BACKEND, "--tenant", tenant, "--json"))
    if status["last_pull_ok"] is None or status["last_pull_error"] is not None:
        raise RuntimeError(f"`gate-hub backend status` says: {status}")
    return Ours(
        hub_setup_s=t1 - t0,
        hub_pull_s=t2 - t1,
        backend_add_s=added - t1,
        gates_s=t3 - t2,
        total_s=t3 - t0,
        pretix_cpu_pull_s=pretix_cpu,
        hub_cpu_pull_s=hub_pull_cpu,
        hub_cpu_gates_s=hub_gates_cpu,
        event_id=event_id,
        gate_dbs=dbs,
    )


def gate_checks(hub: Hub, ours: Ours, positions: list[Position]) -> int:
    """Every gate holds the 10,000 tickets and, offline, would admit a pretix code (a dry
    run of its decision: nothing stored) and refuse one pretix never issued; the bytes of one
    full manifest pull (gate 1, in this process, after the figure)."""
    for i, db in enumerate(ours.gate_dbs):
        store = GateStore(db)
        try:
            if store.ticket_count() != POSITIONS:
                raise RuntimeError(f"{db.name} holds {store.ticket_count()} tickets")
            service = GateService(store)
            known = service.preview(positions[-1 - i].secret)
            unknown = service.preview("notapretixsecret0000000000000000")
            if known.verdict != Verdict.ADMIT or unknown.verdict != Verdict.DENY:
                raise RuntimeError(
                    f"{db.name}: a pretix code {known.verdict} ({known.reason}),"
                    f" an unknown code {unknown.verdict} ({unknown.reason})"
                )
        finally:
            store.close()
    store = GateStore(ours.gate_dbs[0])
    seen = Download()
    hub_client = HubClient(store, hub.url, timeout_s=120)
    worker = SyncWorker(hub_client, event_id=ours.event_id, on_progress=seen)
    try:
        installed = len(store.manifest_encoded() or b"")
        last = store.setting(MANIFEST_SYNC)
        store.set_setting(MANIFEST_SYNC, {})  # forget the last sync: the whole manifest again
        with contextlib.suppress(Exception):  # the same revision is refused: bytes counted
            worker.pull_manifest()
        store.set_setting(MANIFEST_SYNC, last)  # as the gate left it: deltas from here
    finally:
        worker.stop()
        store.close()
    if seen.received != installed:
        raise RuntimeError(f"a full pull brought {seen.received} B, the gate holds {installed} B")
    return seen.received


# ---- (2) pretixSCAN's path ------------------------------------------------------------------


@dataclass
class Device:
    init_s: float
    sync_s: float
    size: int
    pages: int
    positions: int
    bodies: list[bytes]


def pretixscan_device(server: PretixServer, event: Event, init_token: str, keep: bool) -> Device:
    started = time.perf_counter()
    body = {
        "token": init_token,
        "hardware_brand": "bench",
        "hardware_model": "pretixSCAN-like",
        "os_name": "Android",
        "os_version": "14",
        "software_brand": "pretixSCAN",
        "software_version": "bench",
        "info": {},
    }
    with httpx.Client(timeout=300) as client:
        init = client.post(f"{server.api_url}device/initialize", json=body)
        if init.status_code != 200:
            raise RuntimeError(f"device init: HTTP {init.status_code} {init.text}")
        token = init.json()["api_token"]
        initialised = time.perf_counter()
        client.headers["Authorization"] = f"Device {token}"
        url: str | None = f"{server.api_url}{event.path}/orders/?{LIBPRETIXSYNC_ORDER_PARAMS}"
        size = pages = positions = 0
        bodies = []
        while url:
            page = client.get(url)
            if page.status_code != 200:
                raise RuntimeError(f"orders page: HTTP {page.status_code} {page.text[:300]}")
            size += len(page.content)
            pages += 1
            data = json.loads(page.content)  # the device parses every page
            positions += sum(len(o["positions"]) for o in data["results"])
            if keep:
                bodies.append(page.content)
            url = data["next"]
    ended = time.perf_counter()
    return Device(initialised - started, ended - initialised, size, pages, positions, bodies)


def pretixscan_path(
    server: PretixServer, event: Event, tokens: list[str]
) -> tuple[float, list[Device], float]:
    worker = pretix_worker_pid(server)
    cpu_before = cpu_s(worker)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
        devices = list(
            pool.map(
                lambda it: pretixscan_device(server, event, it[1], keep=it[0] == 0),
                enumerate(tokens),
            )
        )
    elapsed = time.perf_counter() - started
    cpu = cpu_s(worker) - cpu_before
    for d in devices:
        if d.positions != POSITIONS:
            raise RuntimeError(f"a pretixSCAN device read {d.positions} positions")
    return elapsed, devices, cpu


# ---- (3) the push -----------------------------------------------------------------------------


def push_1000(
    hub: Hub, server: PretixServer, event: Event, ours: Ours, positions: list[Position]
) -> dict[str, Any]:
    """Gate 1 scans the pretix codes of 1,000 positions offline (its own decision from its
    manifest, each committed), then uploads them as its sync worker does."""
    (backend_id,) = hub.query("SELECT id FROM backends")[0]
    pretix = pretix_worker_pid(server)
    codes = [p.secret for p in positions[:PUSHES]]
    cpu = {"pretix": lambda: cpu_s(pretix), "hub": hub.cpu}
    push = push_offline(hub, ours.gate_dbs[0], ours.event_id, codes, "pretix", poll_s=0.1, cpu=cpu)
    not_ok = hub.query(
        "SELECT count(*) FROM backend_outbox WHERE backend_id = ?"
        " AND coalesce(json_extract(answer_json, '$.status'), 'ok') != 'ok'",
        (backend_id,),
    )[0][0]
    ok = server.checkins(event, successful=True)
    failed = server.checkins(event, successful=False)
    checked_in = {c["position"] for c in ok}
    if len(ok) != PUSHES or len(checked_in) != PUSHES or failed or not_ok:
        raise RuntimeError(
            f"pretix shows {len(ok)} successful check-ins of {len(checked_in)} positions and"
            f" {len(failed)} failed ones; {not_ok} pushes were answered other than ok"
        )
    return {
        "pretix_push_1000_s": push.push_s,
        "pretix_push_scans_per_s": PUSHES / push.push_s,
        "pretix_push_upload_s": push.upload_s,
        "pretix_cpu_ms_per_redeem": push.cpu_s["pretix"] / PUSHES * 1000,
        "hub_cpu_ms_per_pushed_scan": push.cpu_s["hub"] / PUSHES * 1000,
        "pretix_checkins_ok": len(ok),
    }


# ---- the run ----------------------------------------------------------------------------------


def main() -> None:
    problem = missing_pretix()
    if problem:
        sys.exit(f"pretix bench: {problem}")
    figures: dict[str, Any] = {
        "pretix_bench_positions": POSITIONS,
        "pretix_version": pretix_version(),
    }
    notes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pretix-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "pretix").mkdir()
        server = PretixServer(tmp / "pretix")
        hubs: list[Hub] = []
        try:
            started = time.perf_counter()
            server.start()
            now = datetime.now(UTC).replace(microsecond=0)  # on now: check-in is open
            event = server.create_event(
                "concert", "Bench concert", date_from=now - timedelta(hours=1),
                date_to=now + timedelta(hours=5),
            )  # fmt: skip
            positions = server.bulk_paid_positions(event, POSITIONS, per_order=PER_ORDER)
            hub_devices = [
                server.create_device(name=f"Venue Gate hub {r + 1}") for r in range(ROUNDS)
            ]
            scan_devices = [server.create_device(name=f"pretixSCAN {i + 1}") for i in range(GATES)]
            with server.client() as c:  # one request first: neither path meets a cold worker
                c.get(f"{event.path}/orders/", params={"testmode": "false"}).raise_for_status()
            notes["setup_s"] = time.perf_counter() - started
            progress("pretix", {"pretix_setup_s": notes["setup_s"]})

            rounds: list[Ours] = []
            theirs: tuple[float, list[Device], float] | None = None
            manifest_bytes = 0
            for r in range(ROUNDS):  # ours, pretixSCAN's, ours, ours: noise meets both
                (tmp / f"round{r + 1}").mkdir()
                if hubs:
                    hubs[-1].stop()  # the last round's hub stays for the push
                hubs.append(Hub(tmp / f"round{r + 1}"))
                ours = our_path(hubs[-1], server, hub_devices[r].initialization_token, hubs[-1].dir)
                manifest_bytes = gate_checks(hubs[-1], ours, positions)
                rounds.append(ours)
                round_figures = ours.__dict__ | {"gate_dbs": len(ours.gate_dbs)}
                progress("pretix", {f"ours_round{r + 1}": round_figures})
                if theirs is None:
                    theirs = pretixscan_path(
                        server, event, [d.initialization_token for d in scan_devices]
                    )
                    progress("pretix", {"pretixscan_s": theirs[0], "pretix_cpu_s": theirs[2]})
            assert theirs is not None
            theirs_s, devices, theirs_cpu = theirs

            def median(name: str) -> float:
                return statistics.median(getattr(o, name) for o in rounds)

            sizes = [d.size for d in devices]
            gzipped = sum(len(gzip.compress(b, 6)) for b in devices[0].bodies)
            figures.update(
                {
                    "pretix_gates_ready_10k_s": median("total_s"),
                    "pretix_gates_ready_10k_s_rounds": [round(o.total_s, 2) for o in rounds],
                    "pretix_hub_setup_s": median("hub_setup_s"),
                    "pretix_hub_backend_add_s": median("backend_add_s"),
                    "pretix_hub_pull_s": median("hub_pull_s"),
                    "pretix_gates_s": median("gates_s"),
                    "pretix_manifest_bytes_per_gate": manifest_bytes,
                    "pretix_cpu_s_hub_pull": median("pretix_cpu_pull_s"),
                    "hub_cpu_s_first_pull": median("hub_cpu_pull_s"),
                    "hub_cpu_s_10_gates": median("hub_cpu_gates_s"),
                    "pretixscan_gates_ready_10k_s": theirs_s,
                    "pretixscan_device_s_median": statistics.median(
                        d.init_s + d.sync_s for d in devices
                    ),
                    "pretixscan_bytes_per_device": int(statistics.median(sizes)),
                    "pretixscan_bytes_per_device_gzip": gzipped,
                    "pretixscan_pages_per_device": devices[0].pages,
                    "pretix_cpu_s_pretixscan_10": theirs_cpu,
                    "pretixscan_over_ours": theirs_s / median("total_s"),
                    "pretix_cpu_pretixscan_over_ours": theirs_cpu / median("pretix_cpu_pull_s"),
                }
            )
            progress("pretix", figures)
            figures.update(push_1000(hubs[-1], server, event, rounds[-1], positions))
        finally:
            for hub in hubs:
                hub.stop()
            server.stop()
    show(figures, notes)


TARGETS = {
    "pretixscan_over_ours": ">= 5 (our gates ready at least 5x sooner)",
    "pretix_cpu_pretixscan_over_ours": "(pretix's CPU: 10 devices / the hub's one pull)",
    "pretix_checkins_ok": f"== {PUSHES}",
    "pretix_bench_positions": f"== {POSITIONS}",
}


def show(figures: dict[str, Any], notes: dict[str, Any]) -> None:
    print(
        f"pretix bench: pretix {figures['pretix_version']} (gunicorn, 1 worker, SQLite) and a"
        f" `gate-hub serve` on loopback, {POSITIONS:,} paid positions ({PER_ORDER} an order),"
        f" {GATES} gates; our path median of {ROUNDS} (the 1st before pretixSCAN's, 2 after);"
        f" {os.cpu_count()} CPUs, {platform.python_version()};"
        f" pretix set-up {notes['setup_s']:.1f} s (not measured)"
    )
    print(
        "pretixSCAN here: device init + every page of the order list with libpretixsync's"
        " query parameters, parsed, stored nowhere (a lower bound: no other resource, no"
        " database writes)\n"
    )
    show_figures(figures, lambda name, _: TARGETS.get(name, ""))


if __name__ == "__main__":
    main()
