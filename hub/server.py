"""Running the hub's app: one place for `gate-hub serve` and the benches, so what is measured
is what is deployed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from hub.check_routes import CHECKS

new_event_loop: Callable[[], asyncio.AbstractEventLoop]
try:  # uvloop: the same asyncio API with a libuv loop; a third less loop time per request
    from uvloop import new_event_loop
except ImportError:  # pragma: no cover - a platform without uvloop (e.g. Windows)
    new_event_loop = asyncio.new_event_loop


def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 10.0,
    access_log: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM: stop accepting, let requests in flight finish (up to
    `shutdown_timeout`), then run the app's cleanup. The check writer process starts with
    the hub, so the first check does not wait for it."""
    checks = app.get(CHECKS)
    if checks is not None:

        async def start_check_writer(app: web.Application) -> None:
            await checks.start()

        app.on_startup.append(start_check_writer)
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        shutdown_timeout=shutdown_timeout,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        loop=new_event_loop(),
    )
