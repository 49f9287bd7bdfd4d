"""Running the hub's app: one place for `gate-hub serve` and the benches, so what is measured
is what is deployed."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from typing import IO

from aiohttp import web

from hub.check_routes import CHECKS
from hub.config import ConfigError, HubConfig

new_event_loop: Callable[[], asyncio.AbstractEventLoop]
try:  # uvloop: the same asyncio API with a libuv loop; a third less loop time per request
    from uvloop import new_event_loop
except ImportError:  # pragma: no cover - a platform without uvloop (e.g. Windows)
    new_event_loop = asyncio.new_event_loop


class ServeRefused(ConfigError):
    """The hub cannot start as asked; the message says why and what to do."""


def hold_serve_lock(db: str) -> IO[bytes]:
    """One `gate-hub serve` per database: an exclusive flock on `<db>-serve.lock`, held by
    the open file this returns for as long as the hub runs. The kernel releases it when the
    process ends however it ends (stopped, killed, crashed), so it never goes stale the way
    a pid file does; the file itself stays and means nothing without the lock."""
    path = db + "-serve.lock"
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - held open for the life of the hub
    except OSError as exc:
        raise ServeRefused(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ServeRefused(
            f"another `gate-hub serve` is already running on {db}: use that hub, or stop it "
            "first (one hub per database)"
        ) from None
    return handle


def refuse_if_served(db: str) -> None:
    """Refuse at once when a hub already serves `db`, creating nothing (no lock file yet
    means no hub): checked before the port, so a second hub on the same database and port
    hears about the hub, not about the port."""
    if os.path.exists(db + "-serve.lock"):
        hold_serve_lock(db).close()


def listen(host: str, port: int) -> socket.socket:
    """The hub's listening socket, bound before anything else starts, so a port that is
    taken is a sentence and not a traceback after the database was opened."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise ServeRefused(f"--host {host} is not an address of this machine") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeRefused(
                f"port {port} on {host} is already in use by another program (perhaps a hub "
                "already running): stop it, or start this hub with another --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise ServeRefused(
                f"no permission to listen on port {port}: ports below 1024 need root; "
                "use --port 8080 or another port from 1024"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServeRefused(f"--host {host} is not an address of this machine") from None
        raise ServeRefused(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _outward_address() -> str | None:
    """The address this machine uses towards other networks (its default route), without
    sending anything: connecting a UDP socket only chooses the route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, never sent to
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if ipaddress.ip_address(address).is_loopback else address


def hub_url_for(config: HubConfig) -> str:
    """The URL enrolment QRs give gates. --hub-url when given; for a hub on all interfaces
    (0.0.0.0 or ::), which no gate can dial, this machine's outward address; refused when
    there is none to find."""
    if config.hub_url:
        return config.hub_url
    if config.host not in ("0.0.0.0", "::", ""):
        return config.resolved_hub_url
    address = _outward_address()
    if address is None:
        raise ServeRefused(
            f"--host {config.host or '(all)'} listens on every interface, but this machine "
            "has no outward address gates could use: give --hub-url with the address gates "
            f"reach this hub at, e.g. --hub-url http://192.168.1.10:{config.port}"
        )
    return f"http://{address}:{config.port}"


def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 10.0,
    access_log: bool = False,
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM: stop accepting, let requests in flight finish (up to
    `shutdown_timeout`), then run the app's cleanup. The check writer process starts with
    the hub, so the first check does not wait for it. `sock`: a socket `listen` bound
    already (host and port are then only its description)."""
    checks = app.get(CHECKS)
    if checks is not None:

        async def start_check_writer(app: web.Application) -> None:
            await checks.start()

        app.on_startup.append(start_check_writer)
    web.run_app(
        app,
        host=None if sock is not None else host,
        port=None if sock is not None else port,
        sock=sock,
        print=None,
        shutdown_timeout=shutdown_timeout,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        loop=new_event_loop(),
    )
