"""The hub's aiohttp application: health checks, admin API, device API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from aiohttp import web

from hub import (
    admin_routes,
    backend_routes,
    check_routes,
    device_routes,
    live,
    manifest_routes,
    metrics,
    openapi,
    reconcile_routes,
    ticket_routes,
    venue_keys_routes,
    will_call,
)
from hub.backends.runner import RUNNER, BackendRunner
from hub.checkpoint import Checkpointer
from hub.console import setup_console
from hub.console.render import console_middleware
from hub.errors import error_middleware, error_response
from hub.group_commit import UPLOADS, GroupCommit
from hub.keys import (
    CLOCK,
    DB,
    ENROLLMENT_TTL_MS,
    HUB_KEYS,
    HUB_URL,
    MEMORY,
    NONCES,
    SECRETS,
)
from hub.manifest_build import HubKeys, ManifestBuilder, ManifestWorker
from hub.reconcile_ingest import Reconciler
from hub.secret_box import SecretBox
from hub.storage import HubStore, StoreUnavailable
from hub.store_api import HubStorage
from hub.thread_owned import ThreadOwned
from protocol.signing import b64encode, key_fingerprint

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: manifests go down, not up; scan batches are small
DEFAULT_ENROLLMENT_TTL_S = 600
DEFAULT_EXPIRY_INTERVAL_S = 600.0

log = logging.getLogger("hub")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/health/db")
async def health_db(request: web.Request) -> web.Response:
    try:
        await request.app[DB].run(lambda store: store.ping())
    except StoreUnavailable:
        return error_response(503, "db_unavailable", "The hub database is not reachable.")
    return web.json_response({"status": "ok"})


@routes.get("/api/hub")
async def hub_identity(request: web.Request) -> web.Response:
    """The hub's public key, so a device can compare it with the enrollment QR fingerprint."""
    keys = request.app[HUB_KEYS]()
    return web.json_response(
        {
            "public_key": b64encode(keys.public),
            "fingerprint": key_fingerprint(keys.public),
            "key_id": keys.key_id,
            # Every key devices should trust for manifests and credentials (rotation).
            "trusted_keys": {str(k): b64encode(v) for k, v in sorted(keys.trusted.items())},
            "keys_version": keys.version,
        }
    )


def create_app(
    store: HubStore,
    hub_signing_seed: bytes | None,
    *,
    hub_url: str = "http://127.0.0.1:8080",
    clock: Callable[[], int] = wall_clock_ms,
    client_max_size: int = DEFAULT_MAX_BODY,
    enrollment_ttl_s: int = DEFAULT_ENROLLMENT_TTL_S,
    expiry_interval_s: float | None = DEFAULT_EXPIRY_INTERVAL_S,
    hub_key_id: int = 1,
    retired_hub_keys: Mapping[int, bytes] | None = None,
    hub_keys: Callable[[], HubKeys] | None = None,
    backend_pull_interval_s: float | None = None,
) -> web.Application:
    """Build the app around an open store, which from here on is used on the app's database
    thread (app[DB]) until the app is cleaned up; the caller still closes it. The signing
    seed stays here, only its public key is ever sent out. `hub_keys` (a keyring watch)
    replaces the seed and key ids: the hub then follows `gate-hub key` commands without a
    restart. `backend_pull_interval_s` None: backends (pretix...) are not run by this app."""
    if hub_keys is None:
        if hub_signing_seed is None or len(hub_signing_seed) != 32:
            raise ValueError("hub signing seed must be 32 bytes")
        fixed = HubKeys.single(hub_signing_seed, hub_key_id, retired_hub_keys)

        def fixed_keys() -> HubKeys:
            return fixed

        hub_keys = fixed_keys
    app = web.Application(
        middlewares=[metrics.metrics_middleware, error_middleware, console_middleware],
        client_max_size=client_max_size,
    )
    db: ThreadOwned[HubStorage] = ThreadOwned.adopt("hub-db", store)
    app[DB] = db
    app[UPLOADS] = GroupCommit(db)
    app[MEMORY] = store
    app[NONCES] = store.nonces
    app[CLOCK] = clock
    app[HUB_KEYS] = hub_keys
    app[HUB_URL] = hub_url
    app[ENROLLMENT_TTL_MS] = enrollment_ttl_s * 1000
    app[SECRETS] = SecretBox.for_database(store.path)
    app.add_routes(routes)
    app.add_routes(admin_routes.routes)
    app.add_routes(device_routes.routes)
    app.add_routes(ticket_routes.routes)
    app.add_routes(backend_routes.routes)
    app.add_routes(venue_keys_routes.routes)
    app.add_routes(will_call.routes)
    builder = ManifestBuilder(store, hub_keys)
    app[manifest_routes.MANIFESTS] = builder
    builds = ManifestWorker(store.path, hub_keys)
    app[manifest_routes.BUILDS] = builds
    reconciler = Reconciler(store, builder, clock, db)
    app[reconcile_routes.RECONCILER] = reconciler
    app.cleanup_ctx.append(_background(reconciler.run))
    app.add_routes(reconcile_routes.routes)
    checks = check_routes.CheckBatcher(store.scans_committed, store.path)
    app[check_routes.CHECKS] = checks
    store.leave_checkpoints_to_background()
    checkpointer = Checkpointer(store.path)
    app.cleanup_ctx.append(_background(checkpointer.run))

    async def load_nonces(app: web.Application) -> None:
        await db.run(lambda store: store.nonces.load())

    app.on_startup.append(load_nonces)

    async def close_workers(app: web.Application) -> None:
        await checks.close()
        builds.close()
        checkpointer.close()
        db.close()

    app.on_cleanup.append(close_workers)
    app.add_routes(manifest_routes.routes)
    app.add_routes(check_routes.routes)
    app.add_routes(openapi.routes)
    setup_console(app)
    hub_metrics = metrics.install(app)
    live_hub = live.install(app)
    hub_metrics.devices_online = live_hub.online
    hub_metrics.reconcile_backlog = reconciler.backlog
    if backend_pull_interval_s is not None:
        runner = BackendRunner(db, app[SECRETS], clock, pull_interval_s=backend_pull_interval_s)
        app[RUNNER] = runner
        app.cleanup_ctx.append(_background(runner.run))
        hub_metrics.backend_lines = runner.metric_lines

        def tickets_changed(changed: Mapping[str, str]) -> None:
            """Gates fetch their delta now; a new event's manifest is built before a gate asks."""
            live_hub.tickets_changed(changed)
            builds.warm(changed, clock())

        runner.on_tickets_changed = tickets_changed
    if expiry_interval_s is not None:
        app.cleanup_ctx.append(_expiry_job(expiry_interval_s))
    return app


def _background(
    job: Callable[[], Coroutine[Any, Any, None]],
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """Run a task while the hub is up; cancelled on shutdown."""

    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(job())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _expire_at(now_ms: int) -> Callable[[HubStorage], int]:
    return lambda store: store.expire_tickets(now_ms)


def _expiry_job(
    interval_s: float,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """Runs the post-event expiry while the hub is up; stopped on shutdown."""

    async def run(app: web.Application) -> None:
        while True:
            try:
                expired = await app[DB].run(_expire_at(app[CLOCK]()))
                if expired:
                    log.info("tickets expired", extra={"count": expired})
            except Exception:
                log.exception("expiry job failed")
            await asyncio.sleep(interval_s)

    @contextlib.asynccontextmanager
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
