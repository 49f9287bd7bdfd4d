"""Reconciliation wired to the store: after an upload commits, the tickets it touched are
re-reconciled over every stored scan of each (all devices, corrected time = device time +
the device's measured offset, arrival order = row id), and the outcomes and double entries
are written beside the scans. The pure rules stay in hub/reconcile.py.

Re-judging a 500-scan batch costs more than storing it, so it is kept off the upload's
acknowledgement (which still comes only after the commit): touched tickets are queued and
a background task reconciles them in chunks once uploads pause for IDLE_S (or at once when
the backlog passes MAX_BACKLOG tickets). Anything that needs the result drains the queue
first (the admin report does); scans whose outcome was lost with the queue (a crash) have no
outcome row and are found by `catch_up`. The queue lives on the event loop; each chunk is
taken from it there and reconciled on the app's database thread (hub/thread_owned.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hub.engine_facts import ticket_row
from hub.manifest_build import ManifestBuilder
from hub.reconcile import HubScan, reconcile
from hub.store_api import HubStorage, ToReconcile
from hub.store_reconcile import StoredConflict, StoredOutcome
from hub.thread_owned import ThreadOwned
from manifests.admission_types import Direction
from manifests.model import Scope, TicketRow
from protocol.reasons import Reason, Verdict

log = logging.getLogger("hub.reconcile")
IDLE_S = 0.02  # uploads paused this long: reconcile the backlog
MAX_BACKLOG = 20_000  # tickets waiting: reconcile even while uploads keep coming
CHUNK_TICKETS = 25  # tickets per step (a few ms): requests never wait long behind one
# Between steps the database is left alone this long, so a writer in another process (an
# import, an admin command) gets its turn: SQLite's busy wait polls, it does not queue.
STEP_GAP_S = 0.002
DRAIN_CHUNK_TICKETS = 500  # when someone waits for the result anyway


def hub_scan(row: Mapping[str, Any]) -> HubScan:
    """A stored scan row (HubStore._reconcile_rows) as reconciliation sees it."""
    confirmed = row["confirmed"]  # SQLite's json_extract: 1 / 0 / NULL
    return HubScan(
        device_id=row["device_id"],
        seq=row["device_seq"],
        gate_name=row["gate_name"] or "",
        direction=Direction(row["direction"]),
        ticket_id=row["ticket_id"],
        device_time_ms=row["scanned_ms"],
        clock_offset_ms=row["clock_offset_ms"] or 0,
        hub_arrival=row["id"],
        verdict=Verdict(row["verdict"]),
        reason=Reason(row["reason"]),
        confirmed=None if confirmed is None else bool(confirmed),
        manual=bool(row["manual"]),
        gate_zones=tuple(json.loads(row["gate_zones_json"] or "[]")),
    )


def _ref(scan: HubScan) -> dict[str, Any]:
    return {
        "device_id": scan.device_id,
        "seq": scan.seq,
        "gate": scan.gate_name,
        "at_ms": scan.corrected_ms,
    }


class Reconciler:
    """Re-reconciles tickets of one hub's store, with headers from its manifest builder."""

    def __init__(
        self,
        store: HubStorage,
        manifests: ManifestBuilder,
        clock: Callable[[], int],
        db: ThreadOwned[HubStorage] | None = None,
    ) -> None:
        """`db` is the thread that owns `store` (and the builder's store): the background
        task and `catch_up` reconcile there; without it they run on the caller's thread."""
        self.store = store
        self.db = db
        self.manifests = manifests
        self.clock = clock
        self._tickets: dict[str, set[str]] = {}  # event id -> tickets waiting
        self._loose: dict[str, list[int]] = {}  # event id -> ticketless scan ids waiting
        self._last_upload = 0.0
        self._wake: asyncio.Event | None = None

    # the queue --------------------------------------------------------------------------
    def schedule(self, event_id: str, ticket_ids: Iterable[str], loose: Sequence[int]) -> None:
        """Queue tickets (and ticketless scans) of an event whose scans were just stored."""
        self._tickets.setdefault(event_id, set()).update(ticket_ids)
        if loose:
            self._loose.setdefault(event_id, []).extend(loose)
        self._last_upload = time.monotonic()
        if self._wake is not None:
            self._wake.set()

    def upload_arriving(self) -> None:
        """An upload is on its way to the database thread: reconciling waits until uploads
        pause. (Counting only finished uploads, a chunk slipped in between each stored batch
        and the next one already waiting; ingest measured 15 % slower for it.)"""
        self._last_upload = time.monotonic()

    def backlog(self) -> int:
        return sum(len(t) for t in self._tickets.values()) + sum(
            len(x) for x in self._loose.values()
        )

    def _take(self, limit: int) -> ToReconcile | None:
        """Up to `limit` queued tickets of one event, and its ticketless scans, off the queue
        (on the thread that queues, so nothing queued meanwhile is lost)."""
        if not self._tickets and not self._loose:
            return None
        event_id = next(iter(self._tickets or self._loose))
        waiting = self._tickets.get(event_id, set())
        chunk = [waiting.pop() for _ in range(min(limit, len(waiting)))]
        loose = self._loose.pop(event_id, [])
        if not waiting:
            self._tickets.pop(event_id, None)
        return ToReconcile(event_id, chunk, loose)

    def _take_all(self) -> list[ToReconcile]:
        taken = []
        while (chunk := self._take(DRAIN_CHUNK_TICKETS)) is not None:
            taken.append(chunk)
        return taken

    def _reconcile(self, chunks: Iterable[ToReconcile]) -> int:
        now_ms = self.clock()
        return sum(self.tickets(work, now_ms)[0] for work in chunks)

    async def _off_loop(self, work: Callable[[], int]) -> int:
        return work() if self.db is None else await self.db.run(lambda _: work())

    def drain(self) -> int:
        """Reconcile everything queued, here and now."""
        return self._reconcile(self._take_all())

    async def run(self) -> None:
        """The background task: reconcile the queue when uploads pause."""
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            while self._tickets or self._loose:
                quiet = time.monotonic() - self._last_upload
                if quiet < IDLE_S and self.backlog() < MAX_BACKLOG:
                    await asyncio.sleep(IDLE_S - quiet)
                    continue
                chunk = self._take(CHUNK_TICKETS)
                try:
                    if chunk is not None:
                        await self._off_loop(functools.partial(self._reconcile, [chunk]))
                except Exception:  # the scans stay stored; catch_up finds them later
                    log.exception("reconciliation step failed")
                await asyncio.sleep(STEP_GAP_S)
            await self._wake.wait()

    def tickets(self, work: ToReconcile, now_ms: int) -> tuple[int, int]:
        """Re-reconcile these tickets of the event (and judge the ticketless scans given):
        (outcomes written, open conflicts of these tickets). Unknown event: nothing."""
        event_id = work.event_id
        current = self.manifests.current_header(
            event_id, Scope(self._venue(event_id) or ""), now_ms
        )
        if current is None or (not work.ticket_ids and not work.scan_ids):
            return 0, 0
        source, header = current
        type_names = {t["id"]: t["name"] for t in source.ticket_types}

        def judge(rows: list[dict[str, Any]]) -> tuple[list[StoredOutcome], list[StoredConflict]]:
            ids = {(r["device_id"], r["device_seq"]): r["id"] for r in rows}
            scans = [hub_scan(r) for r in rows]
            tickets = self._ticket_rows(event_id, {s.ticket_id for s in scans}, type_names)
            report = reconcile(header, tickets, scans)
            by_key = {(s.device_id, s.seq): s for s in scans}
            outcomes = [
                StoredOutcome(
                    ids[(o.device_id, o.seq)],
                    o.ticket_id,
                    str(o.outcome),
                    str(o.reason),
                    o.message,
                    o.corrected_ms,
                )
                for o in report.outcomes
            ]
            conflicts = []
            for c in report.conflicts:
                winner = by_key[(c.winner.device_id, c.winner.seq)]
                duplicate = by_key[(c.duplicate.device_id, c.duplicate.seq)]
                detail = {
                    "winner": _ref(winner),
                    "duplicate": _ref(duplicate),
                    "reason": str(c.reason),
                }
                conflicts.append(
                    StoredConflict(
                        c.ticket_id,
                        ids[(winner.device_id, winner.seq)],
                        ids[(duplicate.device_id, duplicate.seq)],
                        detail,
                    )
                )
            return outcomes, conflicts

        return self.store.reconcile_event_tickets(work, judge, now_ms)

    async def catch_up(self, event_id: str, now_ms: int) -> int:
        """Drain the queue, then reconcile every ticket with a scan that has no outcome yet
        (online checks, or outcomes lost in a crash): the admin report is then complete."""
        queued = self._take_all()

        def work() -> int:
            written = self._reconcile(queued)
            return written + self.tickets(self.store.unreconciled_tickets(event_id), now_ms)[0]

        return await self._off_loop(work)

    def _venue(self, event_id: str) -> str | None:
        event = self.store.event_by_id(event_id)
        return event["venue_id"] if event else None

    def _ticket_rows(
        self, event_id: str, ids: Iterable[str | None], type_names: Mapping[str, str]
    ) -> dict[str, TicketRow]:
        wanted = sorted(i for i in ids if i is not None)
        return {
            tid: ticket_row(row, type_names)
            for tid, row in self.store.tickets_of_event(event_id, wanted).items()
        }
