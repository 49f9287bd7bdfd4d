"""What the end-to-end benches share: a real `gate-hub serve` in its own process and what they
ask of it, CPU seconds from /proc, gates enrolled by real `gate-scanner enroll` processes,
offline scans uploaded the way a gate's sync worker does, and the figure table whose very last
line is ONE JSON object. A bench puts the repository on sys.path before importing this."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo import local_hub
from hub.storage import HubStore
from hub.store_api import CatalogueImport
from manifests.policy import HOUR_MS, TEMPLATES
from protocol.reasons import Verdict
from scanner.hub_client import HubClient
from scanner.service import GateService
from scanner.store import GateStore
from scanner.sync import SyncWorker

ROOT = Path(__file__).resolve().parent.parent
GATE_CLI = (sys.executable, "-m", "scanner")


def import_bench_show(
    store: HubStore,
    tenant: str,
    venue: str,
    event_id: str,
    tickets: Sequence[Mapping[str, Any]],
    now: int,
) -> None:
    """The benches' one event, "Bench Show" (standard policy, on from an hour ago for six
    hours), and its tickets, imported as an upload would be."""
    store.import_catalogue(
        tenant,
        CatalogueImport(
            events=[
                {
                    "id": event_id,
                    "venue_id": venue,
                    "code": 4242,
                    "name": "Bench Show",
                    "timezone": "UTC",
                    "start_ms": now - HOUR_MS,
                    "end_ms": now + 5 * HOUR_MS,
                    "policy_json": json.dumps(TEMPLATES["standard"].to_json()),
                }
            ],
            tickets=tickets,
        ),
        "bench",
        now,
    )


def cpu_s(pid: int, *, children: bool = True) -> float:
    """CPU seconds (user + system) a process, and with `children` its running children (the
    hub's check writer, say), have used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir() if children else ():
        for child in (task / "children").read_text().split():
            total += cpu_s(int(child))
    return total


class Hub:
    """`gate-hub serve` over a fresh database in `tmp`, on a free loopback port. Its backends
    pull every `pull_interval_s` (an hour by default: no periodic pull lands in a figure)."""

    def __init__(self, tmp: Path, pull_interval_s: int = 3600) -> None:
        self.dir = tmp
        self.db = tmp / "hub.sqlite"
        self.log = tmp / "hub.log"
        self.port = local_hub.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pull_interval_s = pull_interval_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "GATE_HUB_BACKEND_PULL_INTERVAL_S": str(self.pull_interval_s)}
        with open(self.log, "ab") as err:
            self.proc = local_hub.serve_hub(self.db, self.port, err, env=env)
        try:
            local_hub.until_serving(self.proc, self.url, 60, self.log, RuntimeError)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its log ends:\n{self.log_tail()}") from None

    def stop(self) -> None:
        if self.proc is not None:
            local_hub.stop_process(self.proc, 15)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`gate-hub ARGS --db` this hub's database, beside the serve process; its stdout."""
        try:
            return local_hub.hub_cli(*args, "--db", str(self.db), stdin=stdin)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nhub log tail:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the serve process's database beside it (read-only, WAL)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            conn.execute("PRAGMA busy_timeout = 5000")
            return conn.execute(sql, params).fetchall()

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_s(self.proc.pid)

    def first_pull(self, upstream: str, poll_s: float = 0.05) -> None:
        """Wait (up to 5 min) for the serve process's first pull of its backend to succeed;
        a failed pull raises at once, with the hub's error."""

        def pulled() -> bool:
            rows = self.query("SELECT last_pull_ok_ms, last_pull_error FROM backends")
            if rows and rows[0][1]:
                raise RuntimeError(f"the hub's first pull failed: {rows[0][1]}")
            return bool(rows and rows[0][0])

        until(pulled, 300, f"the hub's first pull from {upstream}", self, poll_s=poll_s)

    def drain(self, pushes: int, upstream: str, poll_s: float) -> None:
        """Wait (up to 10 min) until the backend outbox holds exactly `pushes` scans, every
        one pushed to `upstream`."""

        def drained() -> bool:
            owed, pushed = self.query(
                "SELECT coalesce(sum(pushed_ms IS NULL), 0),"
                " coalesce(sum(pushed_ms IS NOT NULL), 0) FROM backend_outbox"
            )[0]
            return owed == 0 and pushed == pushes

        until(drained, 600, f"the hub's outbox to drain into {upstream}", self, poll_s=poll_s)


class Download:
    """Bytes of the last manifest body a SyncWorker received (its progress callback)."""

    def __init__(self) -> None:
        self.received = 0
        self.last_at = 0.0  # perf_counter of the last chunk: the rest of a pull is install

    def __call__(self, received: int, total: int | None) -> None:
        self.received = received
        self.last_at = time.perf_counter()


def until(predicate: Any, timeout_s: float, what: str, hub: Hub, poll_s: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; a hub that exits meanwhile, or
    the time running out, raises with the end of the hub's log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if hub.proc is not None and hub.proc.poll() is not None:
            raise RuntimeError(f"the hub exited while waiting for {what}:\n{hub.log_tail()}")
        time.sleep(poll_s)
    raise RuntimeError(f"timed out waiting for {what}; hub log tail:\n{hub.log_tail()}")


def enroll_gates(gates: Sequence[tuple[Path, str]], tickets: int) -> None:
    """`gate-scanner enroll` with each (database, enrolment URI), all at once, as gate N
    (hardware id hw-N); each exits after its first sync. Raises unless every one exited 0
    holding a manifest of `tickets` tickets."""
    procs = [
        subprocess.Popen(
            [*GATE_CLI, "--db", str(db), "enroll", uri, "--json", "--hardware-id", f"hw-{n}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, (db, uri) in enumerate(gates, start=1)
    ]
    for n, proc in enumerate(procs, start=1):
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"gate {n}: enroll exited {proc.returncode}: {err.strip()}")
        answer = json.loads(out.strip().splitlines()[-1])
        held = ((answer.get("sync") or {}).get("manifest") or {}).get("tickets")
        if held != tickets:
            raise RuntimeError(f"gate {n} holds {held} tickets after enrolling, not {tickets}")


def admit_offline(service: GateService, codes: Iterable[str], upstream: str) -> None:
    """Scan each code at the gate, offline (its own decision, committed); each must admit."""
    for code in codes:
        outcome = service.scan(code)
        if outcome is None or outcome.decision.verdict != Verdict.ADMIT:
            raise RuntimeError(f"the gate did not admit a {upstream} code offline: {outcome}")


def upload_pending(worker: SyncWorker) -> None:
    """Sync cycles, as the gate's worker runs them, until no scan is pending."""
    while worker.pending_count():
        if not worker.sync_once():
            raise RuntimeError(f"a gate sync cycle failed: {worker.snapshot().last_error}")


@dataclass(frozen=True)
class Push:
    """Offline scans pushed into a backend: `scan_s` for the gate to decide them, then from
    the start of its upload `upload_s` to its last batch and `push_s` to the hub's drained
    outbox, and the CPU seconds each watched process used over `push_s`."""

    scan_s: float
    upload_s: float
    push_s: float
    cpu_s: dict[str, float]


def push_offline(
    hub: Hub,
    gate_db: Path,
    event_id: str,
    codes: Sequence[str],
    upstream: str,
    *,
    poll_s: float,
    cpu: Mapping[str, Callable[[], float]],
) -> Push:
    """The gate at `gate_db` scans `codes` offline (each must admit), uploads them as its
    sync worker does, and the hub pushes them until its outbox to `upstream` is drained;
    `cpu` names the processes whose CPU seconds to count (name -> seconds used so far)."""
    store = GateStore(gate_db)
    worker = SyncWorker(HubClient(store, hub.url, timeout_s=120), event_id=event_id)
    try:
        scanned_at = time.perf_counter()
        admit_offline(GateService(store), codes, upstream)
        scan_s = time.perf_counter() - scanned_at
        if worker.pending_count() != len(codes):
            raise RuntimeError(f"{worker.pending_count()} scans pending on the gate")
        cpu0 = {name: used() for name, used in cpu.items()}
        started = time.perf_counter()
        upload_pending(worker)
        uploaded = time.perf_counter()
    finally:
        worker.stop()
        store.close()
    hub.drain(len(codes), upstream, poll_s=poll_s)
    ended = time.perf_counter()
    used = {name: spent() - cpu0[name] for name, spent in cpu.items()}
    return Push(scan_s, uploaded - started, ended - started, used)


def progress(bench: str, figures: Mapping[str, Any]) -> None:
    """What is measured so far, on stderr: a run that fails later still shows it."""
    print(f"{bench} bench so far: {json.dumps(figures, default=str)}", file=sys.stderr, flush=True)


def show_figures(
    figures: Mapping[str, Any],
    target: Callable[[str, Any], str],
    *,
    width: int = 36,
    digits: int = 3,
    places: int = 4,
) -> None:
    """A table of the figures (float values with `digits` decimals) beside `target`'s word on
    each, then the very last line: ONE JSON object of them (floats rounded to `places`)."""
    print(f"{'figure':<{width}} {'value':>14}  target")
    for name, value in figures.items():
        if isinstance(value, float):
            shown = f"{value:,.{digits}f}"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = str(value)
        print(f"{name:<{width}} {shown:>14}  {target(name, value)}")
    rounded = {k: round(v, places) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps(rounded))
