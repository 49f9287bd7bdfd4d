"""The hub's background work for its backends: pull on an interval (and on demand), drain
the outbox of scans owed upstream, retry with backoff and jitter while upstream is down.

One pull loop and one push loop per configured backend, started and stopped as backends are
added and removed. Everything upstream says goes to the database (`backends` row: last pull,
last error; the outbox: what was pushed and answered), so `gate-hub backend status` and the
admin API read it even when the hub is down; what /metrics shows is kept here too. Gates never
wait for any of this: an unreachable backend only means no news from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hub.backends.kinds import PRETIX, TICKETTOKEN
from hub.backends.pretix import PretixBackend
from hub.backends.seam import Backend, BackendError, OwedScan, PushOutcome
from hub.metrics import family, label
from hub.secret_box import SecretBox, SecretUnreadable
from hub.store_api import HubStorage, PushedScans
from hub.store_base import Row
from hub.thread_owned import ThreadOwned

log = logging.getLogger("hub.backends")

DEFAULT_PULL_INTERVAL_S = 5.0  # a cancellation upstream reaches the online check this soon
PUSH_BATCH = 50
PUSH_IDLE_S = 0.5
SUPERVISE_S = 0.5  # a backend `gate-hub backend add` made (another process) starts this soon
RESTART_AFTER_S = 30.0  # a backend whose tasks ended starts again after this
MAX_BACKOFF_S = 300.0

Adapter = Callable[[Mapping[str, Any], str], Backend]


def _tickettoken(settings: Mapping[str, Any], secret: str) -> Backend:
    """Its PostgreSQL and AMQP drivers load only when a TicketToken backend runs."""
    from hub.backends.tickettoken import TicketTokenBackend

    return TicketTokenBackend(settings, secret)


ADAPTERS: dict[str, Adapter] = {PRETIX: PretixBackend, TICKETTOKEN: _tickettoken}


def backoff_s(failures: int, rng: random.Random | None = None) -> float:
    """1 s, 2 s, 4 s ... up to 5 min after `failures` in a row, each spread by +-50 % so that
    many hubs (or many scans) do not come back at one instant."""
    base = min(MAX_BACKOFF_S, 2.0 ** max(0, failures - 1))
    return base * (rng or random).uniform(0.5, 1.5)


def open_backend(row: Row, sealed: bytes | None, box: SecretBox) -> Backend:
    """The adapter for a configured backend, its token opened only here."""
    token = "" if sealed is None else box.open(sealed, row["id"])
    return ADAPTERS[row["kind"]](json.loads(row["settings_json"]), token)


def _owed(backend_id: str, now_ms: int, store: HubStorage) -> list[OwedScan]:
    return store.owed_scans(backend_id, now_ms, PUSH_BATCH)


def _record(pushed: PushedScans, now_ms: int, store: HubStorage) -> None:
    store.record_push(pushed, now_ms)


@dataclass
class BackendHealth:
    """What /metrics shows of one backend, kept on the loop."""

    name: str
    owed: int = 0
    pulls_failed: int = 0
    pushes_failed: int = 0
    pushed: int = 0


class BackendRunner:
    """Started by the app (hub/app.py) when it runs backends."""

    def __init__(
        self,
        db: ThreadOwned[HubStorage],
        box: SecretBox,
        clock: Callable[[], int],
        *,
        pull_interval_s: float = DEFAULT_PULL_INTERVAL_S,
    ) -> None:
        self.db = db
        self.box = box
        self.clock = clock
        self.pull_interval_s = pull_interval_s
        self.health: dict[str, BackendHealth] = {}
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, list[asyncio.Future[str | None]]] = {}
        self._ended: dict[str, float] = {}  # backend id -> when its tasks were seen ended
        # told (event id -> venue id) after a pull changed tickets: the live hub wakes gates
        self.on_tickets_changed: Callable[[Mapping[str, str]], None] = lambda changed: None

    def request_pull(self, backend_id: str) -> asyncio.Future[str | None] | None:
        """Pull now instead of at the next interval. The future resolves once a pull begun
        after this call has committed (None) or failed (its sentence), so a queue consumer
        acknowledges a message only after its change is stored; None if the backend is not
        running here."""
        event = self._wake.get(backend_id)
        if event is None:
            return None
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(backend_id, []).append(done)
        event.set()
        return done

    async def run(self) -> None:
        try:
            while True:
                try:
                    rows = await self.db.run(lambda s: s.list_backends())
                except Exception:
                    log.exception("backend supervisor could not read the backends")
                    rows = []
                wanted = {r["id"]: r for r in rows if r["active"]}
                for backend_id in list(self._tasks):
                    if backend_id not in wanted:
                        await self._stop(backend_id)
                for backend_id, row in wanted.items():
                    tasks = self._tasks.get(backend_id)
                    if tasks and all(t.done() for t in tasks):  # ended (a crash, no key)
                        ended = self._ended.setdefault(backend_id, time.monotonic())
                        if time.monotonic() - ended < RESTART_AFTER_S:
                            continue
                        self._ended.pop(backend_id, None)
                        await self._stop(backend_id)
                    if backend_id not in self._tasks:
                        self._start(row)
                await asyncio.sleep(SUPERVISE_S)
        finally:
            for backend_id in list(self._tasks):
                await self._stop(backend_id)

    def _start(self, row: Row) -> None:
        backend_id = row["id"]
        self.health[backend_id] = BackendHealth(row["name"])
        self._wake[backend_id] = asyncio.Event()
        self._tasks[backend_id] = [asyncio.create_task(self._backend(row))]

    async def _stop(self, backend_id: str) -> None:
        for task in self._tasks.pop(backend_id, []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wake.pop(backend_id, None)
        self.health.pop(backend_id, None)
        for done in self._waiters.pop(backend_id, []):
            if not done.done():
                done.set_result("the backend was stopped")

    async def _backend(self, row: Row) -> None:
        backend_id = row["id"]
        sealed = await self.db.run(lambda s: s.backend_secret(backend_id))
        try:
            adapter = open_backend(row, sealed, self.box)
        except (SecretUnreadable, KeyError, ValueError) as exc:
            message = f"the backend cannot start: {exc}"
            log.error("backend not started", extra={"backend": row["name"], "error": message})
            now = self.clock()
            await self.db.run(lambda s: s.record_pull_failure(backend_id, message, now))
            return
        jobs = [self._pulls(row, adapter), self._pushes(row, adapter)]
        listen = getattr(adapter, "listen", None)  # a backend that can say when it changed
        if listen is not None:
            jobs.append(listen(lambda: self._pulled(backend_id)))
        try:
            await asyncio.gather(*jobs)
        finally:
            await adapter.aclose()

    async def _pulled(self, backend_id: str) -> str | None:
        """A pull now, awaited: None once its changes are committed, else why not."""
        done = self.request_pull(backend_id)
        return "the backend is not running" if done is None else await done

    async def _pulls(self, row: Row, adapter: Backend) -> None:
        backend_id, name = row["id"], row["name"]
        wake = self._wake[backend_id]
        failures = 0
        last_error: str | None = None
        while True:
            wait_s = self.pull_interval_s if failures == 0 else backoff_s(failures)
            waiting, self._waiters[backend_id] = self._waiters.get(backend_id, []), []
            wake.clear()
            error = await self.pull_once(row, adapter)
            for done in waiting:
                if not done.done():
                    done.set_result(error)
            if error is None:
                if last_error is not None:
                    log.info("backend pull works again", extra={"backend": name})
                failures, last_error = 0, None
            else:
                failures += 1
                self.health[backend_id].pulls_failed += 1
                if error != last_error:  # once per new problem, not every few seconds
                    log.warning("backend pull failed", extra={"backend": name, "error": error})
                last_error = error
                wait_s = backoff_s(failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait_s)

    async def pull_once(self, row: Row, adapter: Backend) -> str | None:
        """One pull applied; the error sentence when it failed (recorded for status)."""
        backend_id = row["id"]
        try:
            cursor = await self.db.run(lambda s: s.backend_cursor(backend_id))
            pulled = await adapter.pull(cursor)
            now = self.clock()
            summary = await self.db.run(lambda s: s.apply_pull(row, pulled, now))
        except BackendError as exc:
            error = str(exc)
            now = self.clock()
            await self.db.run(lambda s: s.record_pull_failure(backend_id, error, now))
            return error
        except Exception as exc:  # a bad record must not stop the loop: say so, go on
            log.exception("backend pull crashed", extra={"backend": row["name"]})
            error = f"the pull failed on an unexpected answer ({type(exc).__name__})"
            now = self.clock()
            await self.db.run(lambda s: s.record_pull_failure(backend_id, error, now))
            return error
        if summary.changed():
            log.info("backend pull", extra={"backend": row["name"], **summary.as_dict()})
            if summary.venues:
                self.on_tickets_changed(summary.venues)
        return None

    async def _pushes(self, row: Row, adapter: Backend) -> None:
        backend_id, name = row["id"], row["name"]
        health = self.health[backend_id]
        failures = 0
        while True:
            now = self.clock()
            owed = await self.db.run(functools.partial(_owed, backend_id, now))
            state = await self.db.run(lambda s: s.outbox_state(backend_id))
            health.owed = state.owed
            if not owed:
                await asyncio.sleep(PUSH_IDLE_S)
                continue
            try:
                outcomes = await adapter.push(owed)
            except Exception as exc:  # an adapter's bug must not end the pushing: say so, retry
                log.exception("backend push crashed", extra={"backend": name})
                error = f"the push failed unexpectedly ({type(exc).__name__})"
                outcomes = [PushOutcome(s.scan_id, False, error=error) for s in owed]
            done = sum(o.done for o in outcomes)
            health.pushed += done
            health.pushes_failed += len(outcomes) - done
            now = self.clock()

            def retry_at(attempts: int, now: int = now) -> int:
                return now + int(backoff_s(attempts) * 1000)

            pushed = PushedScans(backend_id, outcomes, retry_at)
            await self.db.run(functools.partial(_record, pushed, now))
            if done == 0:
                failures += 1
                error = next((o.error for o in outcomes if o.error), "no answer")
                log.warning(
                    "backend push failed",
                    extra={"backend": name, "error": error, "owed": state.owed},
                )
                await asyncio.sleep(backoff_s(failures))
            else:
                failures = 0

    def metric_lines(self) -> list[str]:
        rows = [
            (f'backend="{label(h.name)}"', h)
            for h in sorted(self.health.values(), key=lambda h: h.name)
        ]
        errors = [
            (f'{backend},kind="{kind}"', failed)
            for backend, h in rows
            for kind, failed in (("pull", h.pulls_failed), ("push", h.pushes_failed))
        ]
        return [
            *family(
                "hub_backend_outbox_owed",
                "gauge",
                "Scans stored but not yet pushed to the backend.",
                [(backend, h.owed) for backend, h in rows],
            ),
            *family(
                "hub_backend_pushed_total",
                "counter",
                "Scans the backend acknowledged.",
                [(backend, h.pushed) for backend, h in rows],
            ),
            *family(
                "hub_backend_errors_total",
                "counter",
                "Failed pulls and pushes, by backend and kind.",
                errors,
            ),
        ]


RUNNER = web.AppKey("backend_runner", BackendRunner)
