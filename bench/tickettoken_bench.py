"""The hub in front of TicketToken (issue 15), all real on loopback: TicketToken's PostgreSQL
under row-level security (tests/tickettoken_db.py: a throwaway cluster, Debian's server),
payment-service's signed webhooks (tests/tickettoken_webhooks.py), `gate-hub serve`, gates as
`gate-scanner` processes or a gate's own store and sync worker in this process. In one run:

(1) 100,000 sold tickets in TicketToken's database, a serving hub with its tenant, venue and
    the venue's TicketToken keys (`gate-hub venue-keys set`) set up before the clock; the clock
    starts at `gate-hub backend add --kind tickettoken` (its database checked through RLS),
    runs through the serve process's first pull (polled in its database) and one
    `gate-scanner enroll` process (enrolment code from the CLI, the manifest pulled, verified
    and installed) and stops when that process exits holding 100,000 tickets. Its phases:
    the pull's pick-up, TicketToken's read and the store (from the pull's own marks in the
    hub's database), the enrolment code and the gate process, with the hub's CPU in each
    (sampled from /proc while polling) and the gate's. Checked after the clock: the gate
    admits a format A, B and C code of a random ticket (a dry run of its own decision) and
    refuses an unknown one;
(2) that gate online (`gate-scanner stream --sync`), REFUNDS refunds done as payment-service
    does them (ticket-service's cancel-batch UPDATE, then the refund.completed webhook POSTed
    to the hub), one every REFUND_EVERY_S: each refund is timed from its webhook POST to the
    hub's row showing it CANCELLED and to the gate's installed tickets showing it refused
    (both databases polled every 5 ms from here). The serve process polls TicketToken only
    hourly (GATE_HUB_BACKEND_PULL_INTERVAL_S=3600, as bench/common.py's Hub starts it):
    the webhooks alone bring the refunds, and the hub's live channel tells the gate to
    fetch its delta. They start right after (1), within the 60 s of the bulk insert that
    every pull looks back over for late commits;
(3) PUSHES entries: the gate scans PUSHES format B codes offline (its own decisions, not
    timed), then uploads them as its sync worker does; the clock runs until the hub's outbox
    is empty. TicketToken must then show exactly PUSHES rows USED, scan_count 1, validated_at
    at the scan's time.

Prints a table beside the targets; the very last line is ONE JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Hub,
    enroll_gates,
    progress,
    push_offline,
    show_figures,
    until,
)
from protocol.reasons import Verdict
from scanner.service import GateService
from scanner.store import GateStore
from tests.legacy_codes import A_KEY, B_KEY, C_SECRET, code_a, code_b, code_c
from tests.processes import Gate
from tests.tickettoken_db import TicketTokenDb, TicketTokenEvent, missing_postgres
from tests.tickettoken_webhooks import WebhookSender

TICKETS = 100_000
REFUNDS = 200
REFUND_EVERY_S = 0.5
PUSHES = 10_000
BACKEND = "tickettoken"
TENANT, VENUE = "bench", "Arena"
WEBHOOK_SECRET = secrets.token_hex(16)
ROTATION_MS = 30_000
POLL_S = 0.005


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def codes(event: TicketTokenEvent, ticket: uuid.UUID) -> dict[str, str]:
    """The ticket's code in each format, as TicketToken's QR service makes them now."""
    ids = {"ticketId": str(ticket), "eventId": str(event.event_id)}
    return {
        "A": code_a({**ids, "timestamp": now_ms() // ROTATION_MS, "nonce": secrets.token_hex(8)}),
        "B": code_b(ids),
        "C": code_c(str(ticket), now_ms(), secrets.token_hex(8)),
    }


def read_only(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


# ---- (1) 100,000 tickets to a gate holding them ---------------------------------------------


def set_up_hub(hub: Hub, tmp: Path) -> None:
    """What an operator does before connecting TicketToken: tenant, venue, the venue's keys."""
    hub.start()
    hub.cli("tenant", "create", TENANT)
    hub.cli("venue", "create", VENUE, "--tenant", TENANT, "--timezone", "UTC")
    files = {"a": A_KEY, "b": B_KEY, "c": C_SECRET.hex()}
    for name, text in files.items():
        (tmp / f"key-{name}").write_text(text)
    hub.cli(
        "venue-keys", "set", "--tenant", TENANT, "--venue", VENUE,
        "--format-a-key", str(tmp / "key-a"), "--format-b-key", str(tmp / "key-b"),
        "--format-c-secret-hex", str(tmp / "key-c"),
    )  # fmt: skip


def first_manifest(hub: Hub, tt: TicketTokenDb, event: TicketTokenEvent, gate_db: Path) -> dict:
    parts = urlsplit(tt.connector_dsn)
    url = f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
    hub_cpu0 = hub.cpu()
    started = time.perf_counter()
    wall0 = time.time() - started  # perf_counter -> the hub's wall clock (ms in its rows)
    hub.cli(
        "backend", "add", BACKEND, "--tenant", TENANT, "--venue", VENUE,
        "--kind", "tickettoken", "--url", url, "--tt-tenant", str(event.tenant_id),
        "--tt-venue", str(event.venue_id), "--db-password", "-", "--webhook-secret", "-",
        stdin=f"{parts.password}\n{WEBHOOK_SECRET}\n",
    )  # fmt: skip
    added = time.perf_counter()
    samples = [(added, hub.cpu())]  # (when, the hub's CPU so far): its CPU per phase

    def pulled() -> bool:
        samples.append((time.perf_counter(), hub.cpu()))
        rows = hub.query("SELECT last_pull_ok_ms, last_pull_error FROM backends")
        if rows and rows[0][1]:
            raise RuntimeError(f"the hub's first pull failed: {rows[0][1]}")
        return bool(rows and rows[0][0])

    until(pulled, 300, "the hub's first pull from TicketToken", hub, poll_s=0.02)
    pull_done = time.perf_counter()
    hub_cpu_pull = hub.cpu() - hub_cpu0
    # The pull's own marks: its start (the cursor's full pass) and the end of TicketToken's
    # read (the store's clock when it applies); the rest to pull_done is storing it.
    cursor_json, read_ms = hub.query("SELECT cursor_json, last_pull_ok_ms FROM backends")[0]
    pull_began = json.loads(cursor_json)["full_ms"] / 1000 - wall0
    read_done = read_ms / 1000 - wall0

    def cpu_at(moment: float) -> float:
        return max((cpu for at, cpu in samples if at <= moment), default=samples[0][1])

    uri = hub.cli(
        "enrollment", "create", "--tenant", TENANT, "--venue", VENUE, "--name", "North 1",
        "--hub-url", hub.url,
    ).strip()  # fmt: skip
    coded = time.perf_counter()
    gate_cpu0 = children_cpu()
    enroll_gates([(gate_db, uri)], TICKETS)  # the gate process, as hw-1
    ended = time.perf_counter()
    gate_cpu = children_cpu() - gate_cpu0
    hub_cpu_enrol = hub.cpu() - hub_cpu0 - hub_cpu_pull
    store = GateStore(gate_db)
    try:
        size = len(store.manifest_encoded() or b"")
    finally:
        store.close()
    return {
        "tickettoken_first_manifest_100k_s": ended - started,
        "tickettoken_backend_add_s": added - started,
        "tickettoken_first_pull_s": pull_done - added,
        "tickettoken_pull_pickup_s": pull_began - added,
        "tickettoken_pull_read_s": read_done - pull_began,
        "tickettoken_pull_store_s": pull_done - read_done,
        "tickettoken_gate_enrol_s": ended - pull_done,
        "tickettoken_enrolment_code_s": coded - pull_done,
        "tickettoken_gate_process_s": ended - coded,
        "hub_cpu_s_first_pull": hub_cpu_pull,
        "hub_cpu_s_pull_read": cpu_at(read_done) - cpu_at(pull_began),
        "hub_cpu_s_pull_store": hub_cpu0 + hub_cpu_pull - cpu_at(read_done),
        "hub_cpu_s_enrol": hub_cpu_enrol,
        "gate_cpu_s_enrol": gate_cpu,
        "tickettoken_manifest_bytes": size,
    }


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (a gate process, once it exited)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def scannable(gate_db: Path, event: TicketTokenEvent, ticket_ids: list[uuid.UUID]) -> None:
    """The gate, on its own, would admit each format's code of a random ticket and refuse
    a genuine code of a ticket TicketToken never sold (dry runs: nothing stored)."""
    store = GateStore(gate_db)
    try:
        service = GateService(store)
        for fmt, code in codes(event, random.choice(ticket_ids)).items():
            decided = service.preview(code)
            if decided.verdict != Verdict.ADMIT:
                raise RuntimeError(f"format {fmt}: {decided.verdict} ({decided.reason})")
        unknown = service.preview(codes(event, uuid.uuid4())["C"])
        if unknown.verdict != Verdict.DENY:
            raise RuntimeError(f"an unknown ticket: {unknown.verdict} ({unknown.reason})")
    finally:
        store.close()


# ---- (2) refunds to an online gate ------------------------------------------------------------


class Watch:
    """Polls the hub's and the gate's databases from a thread; notes when each ticket of
    `pending` is CANCELLED at the hub and refused in the gate's installed tickets."""

    def __init__(self, hub_db: Path, gate_db: Path) -> None:
        self.hub, self.gate = read_only(hub_db), read_only(gate_db)
        self.pending: dict[str, float] = {}  # ticket -> webhook POST time
        self.at_hub: dict[str, float] = {}
        self.at_gate: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _statuses(self, conn: sqlite3.Connection, sql: str, ids: list[str]) -> dict[str, str]:
        marks = ",".join("?" * len(ids))
        return dict(conn.execute(sql.format(marks), ids).fetchall())

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                ids = [t for t in self.pending if t not in self.at_gate or t not in self.at_hub]
            if ids:
                seen = time.perf_counter()
                hub = self._statuses(
                    self.hub, "SELECT id, status FROM tickets WHERE id IN ({})", ids
                )
                gate = self._statuses(
                    self.gate, "SELECT ticket_id, status FROM tickets WHERE ticket_id IN ({})", ids
                )
                with self.lock:
                    for ticket in ids:
                        if hub.get(ticket) == "CANCELLED":
                            self.at_hub.setdefault(ticket, seen)
                        if gate.get(ticket) == "CANCELLED":
                            self.at_gate.setdefault(ticket, seen)
            time.sleep(POLL_S)

    def posted(self, ticket: str, at: float) -> None:
        with self.lock:
            self.pending[ticket] = at

    def done(self) -> bool:
        with self.lock:
            return len(self.at_gate) == len(self.at_hub) == len(self.pending)


def refunds_to_gate(
    hub: Hub, tt: TicketTokenDb, event: TicketTokenEvent, gate_db: Path, tickets: list[uuid.UUID]
) -> dict[str, Any]:
    backend_id = hub.query("SELECT id FROM backends")[0][0]
    url = f"{hub.url}/api/backends/{backend_id}/webhook/refund.completed"
    sender = WebhookSender(WEBHOOK_SECRET)
    gate = Gate(gate_db, str(event.event_id))
    watch = Watch(hub.db, gate_db)
    try:
        time.sleep(6)  # the gate's first sync cycle is behind it
        watch.thread.start()
        started = time.perf_counter()
        for i, ticket in enumerate(tickets):
            time.sleep(max(0.0, started + i * REFUND_EVERY_S - time.perf_counter()))
            refund = tt.refund(event.tenant_id, [ticket])  # cancel-batch: committed
            if refund.cancelled != [ticket]:
                raise RuntimeError(f"cancel-batch changed {refund.cancelled}")
            at = time.perf_counter()
            watch.posted(str(ticket), at)
            answer = sender.post(url, refund.webhook_body, idempotency_key=refund.idempotency_key)
            if answer.status != 202:
                raise RuntimeError(f"webhook answered {answer.status}: {answer.body[:200]!r}")
        until(watch.done, 60, "every refund at the gate", hub, poll_s=0.1)
    finally:
        watch.stop.set()
        gate.close()
    store = GateStore(gate_db)
    try:
        service = GateService(store)
        for ticket in tickets:
            decided = service.preview(
                code_b({"ticketId": str(ticket), "eventId": str(event.event_id)})
            )
            if (decided.verdict, decided.reason) != (Verdict.DENY, "cancelled"):
                raise RuntimeError(
                    f"a refunded ticket at the gate: {decided.verdict} {decided.reason}"
                )
    finally:
        store.close()
    in_order = [(watch.at_gate[t] - watch.pending[t]) * 1000 for t in watch.pending]
    shown = [round(ms) for ms in in_order]
    print(f"refunds to the gate in ms, as posted: {shown}", file=sys.stderr, flush=True)
    to_gate = sorted(in_order)
    to_hub = sorted((watch.at_hub[t] - watch.pending[t]) * 1000 for t in watch.pending)
    return {
        "tickettoken_refund_to_gate_p99_ms": percentile(to_gate, 99),
        "tickettoken_refund_to_gate_p50_ms": percentile(to_gate, 50),
        "tickettoken_refund_to_gate_max_ms": to_gate[-1],
        "tickettoken_refund_to_hub_p99_ms": percentile(to_hub, 99),
        "tickettoken_refund_to_hub_p50_ms": percentile(to_hub, 50),
        "tickettoken_refunds": len(to_gate),
    }


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest rank."""
    rank = max(1, round(p / 100 * len(sorted_ms) + 0.5 - 1e-9))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


# ---- (3) entries pushed back --------------------------------------------------------------------


def push_entries(
    hub: Hub, tt: TicketTokenDb, event: TicketTokenEvent, gate_db: Path, tickets: list[uuid.UUID]
) -> dict[str, Any]:
    b_codes = [codes(event, ticket)["B"] for ticket in tickets]
    push = push_offline(
        hub, gate_db, str(event.event_id), b_codes, "TicketToken", poll_s=0.05, cpu={"hub": hub.cpu}
    )
    rows = tt.tickets(event.tenant_id, tickets)
    scans = dict(hub.query("SELECT ticket_id, scanned_ms + clock_offset_ms FROM scans"))
    wrong = [
        r["id"]
        for r in rows
        if (r["status"], r["scan_count"]) != ("USED", 1)
        or round(r["validated_at"].timestamp() * 1000) != scans[str(r["id"])]
    ]
    if len(rows) != len(tickets) or wrong:
        raise RuntimeError(
            f"{len(wrong)} of {len(rows)} tickets not written back once: {wrong[:3]}"
        )
    used = tt.admin(
        "SELECT count(*) AS n FROM tickets WHERE tenant_id = %s AND validated_at IS NOT NULL",
        [event.tenant_id],
    )[0]["n"]
    if used != len(tickets):
        raise RuntimeError(f"TicketToken shows {used} validated tickets, not {len(tickets)}")
    return {
        "tickettoken_push_10k_s": push.push_s,
        "tickettoken_push_entries_per_s": len(tickets) / push.push_s,
        "tickettoken_push_upload_s": push.upload_s,
        "hub_cpu_ms_per_pushed_entry": push.cpu_s["hub"] / len(tickets) * 1000,
        "gate_offline_scans_10k_s": push.scan_s,
        "tickettoken_validated_rows": used,
    }


# ---- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--first-manifest-only",
        action="store_true",
        help="stop after (1): the first manifest's figures and its phases, in about a minute",
    )
    args = parser.parse_args()
    problem = missing_postgres()
    if problem:
        sys.exit(f"tickettoken bench: {problem}")
    figures: dict[str, Any] = {"tickettoken_bench_tickets": TICKETS}
    notes: dict[str, Any] = {}
    tt = TicketTokenDb()
    with tempfile.TemporaryDirectory(prefix="tickettoken-bench-") as tmp_name:
        tmp = Path(tmp_name)
        hub = Hub(tmp)
        try:
            started = time.perf_counter()
            tt.start()
            notes["postgres"] = tt.bin.parent.name
            event = tt.create_tenant(
                "Bench Arena", starts_at=datetime.now(UTC) + timedelta(minutes=30)
            )
            inserted = time.perf_counter()
            ticket_ids = tt.insert_tickets(event, TICKETS).ticket_ids
            notes["insert_s"] = time.perf_counter() - inserted
            set_up_hub(hub, tmp)
            notes["setup_s"] = time.perf_counter() - started
            progress("tickettoken", notes)

            gate_db = tmp / "gate.db"
            figures.update(first_manifest(hub, tt, event, gate_db))
            scannable(gate_db, event, ticket_ids)
            progress("tickettoken", figures)
            if not args.first_manifest_only:
                later(hub, tt, event, gate_db, ticket_ids, figures)
        finally:
            hub.stop()
            tt.close()
    show(figures, notes)


def later(
    hub: Hub,
    tt: TicketTokenDb,
    event: TicketTokenEvent,
    gate_db: Path,
    ticket_ids: list[uuid.UUID],
    figures: dict[str, Any],
) -> None:
    """(2) and (3), at the gate that holds the first manifest."""
    picked = random.sample(ticket_ids, REFUNDS + PUSHES)
    # The refunds start within the minute after the bulk insert that every pull reads again
    # for late commits: the pulls they bring read only what the last one could not see
    # (hub/backends/tickettoken.py), not the 100,000 again.
    figures.update(refunds_to_gate(hub, tt, event, gate_db, picked[:REFUNDS]))
    progress("tickettoken", figures)
    figures.update(push_entries(hub, tt, event, gate_db, picked[REFUNDS:]))


TARGETS = {
    "tickettoken_first_manifest_100k_s": "<= 10",
    "tickettoken_refund_to_gate_p99_ms": "<= 2,000 (webhooks)",
    "tickettoken_validated_rows": f"== {PUSHES}",
    "tickettoken_refunds": f"== {REFUNDS}",
}


def show(figures: dict[str, Any], notes: dict[str, Any]) -> None:
    print(
        f"tickettoken bench: PostgreSQL {notes['postgres']} (throwaway cluster, RLS) and a"
        f" `gate-hub serve` on loopback, {TICKETS:,} tickets; {REFUNDS} refunds one every"
        f" {REFUND_EVERY_S} s by webhook (the hub polls hourly); {PUSHES:,} entries pushed;"
        f" {os.cpu_count()} CPUs, {platform.python_version()}; set-up {notes['setup_s']:.1f} s"
        f" (the 100k insert {notes['insert_s']:.1f} s; not measured)\n"
    )
    show_figures(figures, lambda name, _: TARGETS.get(name, ""), width=40)


if __name__ == "__main__":
    main()
