"""Prometheus metrics in the text exposition format (0.0.4), written by hand: a handful of
counters, two gauges read at scrape time and one latency histogram need no library. Error
answers are counted where they are made (hub/errors.py's middleware) and shown here."""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from hub.errors import ERROR_COUNTS, ErrorCounts
from hub.keys import DB, MEMORY

# Seconds; the online-check target is 20 ms at p99, so most buckets sit below 0.1 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[str, int | float]]
) -> list[str]:
    """One metric family: its HELP and TYPE lines, then a line for each (labels, value) of
    `samples`, the labels as written between the braces ('' for none)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [
        f"{name}{{{labels}}} {value}" if labels else f"{name} {value}" for labels, value in samples
    ]
    return lines


def label(value: str) -> str:
    """A label value as the exposition format writes it between its quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self.scans_stored = 0
        self._counting = threading.Lock()
        self.checks = defaultdict[str, int](int)  # verdict -> count
        self.manifest_bytes = defaultdict[str, int](int)  # kind -> bytes
        self.devices_online: Callable[[], int] = lambda: 0
        self.errors = ErrorCounts()  # error answers by code (app[ERROR_COUNTS])
        self.reconcile_backlog: Callable[[], int] = lambda: 0
        self.backend_lines: Callable[[], list[str]] = list  # hub/backends/runner.py
        # route -> [bucket counts..., +Inf count], sum
        self._latency: dict[str, list[int]] = {}
        self._latency_sum: defaultdict[str, float] = defaultdict(float)

    def on_scans(self, device_id: str, scans: list[Mapping[str, Any]]) -> None:
        """A store listener: told on the database thread (uploads) and the loop (checks)."""
        with self._counting:
            self.scans_stored += len(scans)

    def observe(self, route: str, seconds: float) -> None:
        counts = self._latency.setdefault(route, [0] * (len(LATENCY_BUCKETS) + 1))
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum[route] += seconds

    def render(self, conflicts: int) -> str:
        """The exposition text; `conflicts` is read from the store by the caller."""
        checks = sorted(self.checks.items())
        served = sorted(self.manifest_bytes.items())
        lines = [
            *family(
                "hub_scans_stored_total",
                "counter",
                "Scans committed (uploads and online checks).",
                [("", self.scans_stored)],
            ),
            *family(
                "hub_checks_total",
                "counter",
                "Online checks answered, by verdict.",
                [(f'verdict="{v}"', n) for v, n in checks],
            ),
            *family(
                "hub_conflicts",
                "gauge",
                "Open reconciliation conflicts (offline double entries).",
                [("", conflicts)],
            ),
            *family(
                "hub_reconcile_backlog",
                "gauge",
                "Tickets waiting to be re-reconciled after uploads.",
                [("", self.reconcile_backlog())],
            ),
            *family(
                "hub_devices_online",
                "gauge",
                "Devices holding the live WebSocket.",
                [("", self.devices_online())],
            ),
            *family(
                "hub_manifest_bytes_served_total",
                "counter",
                "Signed manifest bytes sent, by kind.",
                [(f'kind="{k}"', n) for k, n in served],
            ),
            *self.backend_lines(),
            *family(
                "hub_errors_total",
                "counter",
                "Error answers sent, by their machine-readable code.",
                [(f'code="{c}"', n) for c, n in self.errors.items()],
            ),
            *family(
                "hub_request_duration_seconds",
                "histogram",
                "Time to answer an HTTP request, by route.",
                [],  # its _bucket, _sum and _count lines follow
            ),
        ]
        for route, counts in sorted(self._latency.items()):
            route_label = label(route)
            running = 0
            for bound, n in zip((*LATENCY_BUCKETS, "+Inf"), counts, strict=True):
                running += n
                lines.append(
                    f'hub_request_duration_seconds_bucket{{route="{route_label}",le="{bound}"}}'
                    f" {running}"
                )
            lines.append(
                f'hub_request_duration_seconds_sum{{route="{route_label}"}} '
                f"{self._latency_sum[route]:.6f}"
            )
            lines.append(f'hub_request_duration_seconds_count{{route="{route_label}"}} {running}')
        return "\n".join(lines) + "\n"


METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Outermost: times every request, labelled by its route template (never the raw path,
    which would carry ids)."""
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        if not route.startswith("/api/device/live"):  # a WebSocket lives for hours
            request.app[METRICS].observe(route, time.perf_counter() - started)


routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    conflicts = await request.app[DB].run(lambda store: store.count_conflicts())
    body = request.app[METRICS].render(conflicts)
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})


def install(app: web.Application) -> Metrics:
    """Create the app's metrics; counts scans from the store once the app runs."""
    m = Metrics()
    app[METRICS] = m
    app[ERROR_COUNTS] = m.errors

    async def listen(app: web.Application) -> AsyncIterator[None]:
        listeners = app[MEMORY].scan_listeners
        listeners.append(m.on_scans)
        yield
        listeners.remove(m.on_scans)

    app.cleanup_ctx.append(listen)
    app.add_routes(routes)
    return m
