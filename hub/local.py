"""Running a hub on this machine from another process: the demo, the benches and the
end-to-end tests all start one the same way."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    error: type[Exception] = TimeoutError,
) -> Any:
    """Poll `predicate` until it returns something truthy; `error` names what never came."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise error(f"timed out waiting for {what}")


def hub_cli(*args: str, timeout_s: float = 600, error: type[Exception] = RuntimeError) -> str:
    """`gate-hub ARGS` in a child process; its stdout, or `error` with its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise error(f"gate-hub {args[0]} failed: {done.stderr.strip()}")
    return done.stdout
