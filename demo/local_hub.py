"""Running a hub on this machine from another process, and a gate streaming beside it: the
demo, the benches and the end-to-end tests all start them the same way."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

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


def checked_output(
    command: list[str],
    what: str,
    *,
    timeout_s: float,
    error: type[Exception] = RuntimeError,
    **run: Any,
) -> str:
    """`command`'s stdout once it exits 0; else `error` saying `what` failed, with its
    stderr. `run`: more of subprocess.run's arguments (cwd, env, input)."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, **run)
    if done.returncode != 0:
        raise error(f"{what} failed: {done.stderr.strip()}")
    return done.stdout


def hub_cli(
    *args: str,
    timeout_s: float = 600,
    error: type[Exception] = RuntimeError,
    stdin: str | None = None,
) -> str:
    """`gate-hub ARGS` in a child process (`stdin` its input); its stdout, or `error` with
    its stderr."""
    command = [sys.executable, "-m", "hub", *args]
    return checked_output(
        command, f"gate-hub {args[0]}", timeout_s=timeout_s, error=error, input=stdin, cwd=ROOT
    )


def serve_hub(
    db: Path, port: int, log: IO[bytes], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`gate-hub serve` over `db` on 127.0.0.1:`port`, naming itself by that address (its
    enrolment QR codes carry it); its stderr goes to `log`, to read when it fails. `env`:
    its whole environment (default: this process's)."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "hub", "serve", "--db", str(db), "--host", "127.0.0.1"]
    return subprocess.Popen(
        [*command, "--port", str(port), "--hub-url", url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def until_serving(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout_s: float,
    log_name: Path | str,
    error: type[Exception] = TimeoutError,
) -> None:
    """Wait for the hub at `url` to answer; `error` at once if its process ends first, as it
    does when the port is taken or the database refused (its log, `log_name`, says why)."""
    import httpx  # only callers that talk to a hub pay for the import

    def answers() -> bool:
        if proc.poll() is not None:
            raise error(f"the hub exited; see {log_name}")
        try:
            return httpx.get(url + "/api/hub", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    until(answers, timeout_s, "the hub to listen", error)


def streaming_gate(db: Path, *args: str) -> subprocess.Popen[str]:
    """`gate-scanner --db DB ARGS` (a `stream` command) with line-buffered text pipes: one
    payload a line in, one verdict a line out."""
    return subprocess.Popen(
        [sys.executable, "-m", "scanner", "--db", str(db), *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )


def stop_process(proc: subprocess.Popen[Any], wait_s: float) -> None:
    """SIGTERM (a stream gate's input closed first: it ends at end of input), and SIGKILL when
    it has not ended within `wait_s`, so nothing this machine started outlives its starter."""
    if proc.poll() is None:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def demo_enrollment_code(
    url: str, demo: dict[str, Any], name: str, error: type[Exception] = RuntimeError
) -> str:
    """A one-time enrollment code for `gate-hub demo-data`'s venue: at the entry gate called
    `name` if there is one, else at its first entry gate."""
    import httpx  # only callers that talk to a hub pay for the import

    auth = {"Authorization": f"Bearer {demo['admin_token']}"}
    venue = demo["venue_id"]
    gates = httpx.get(f"{url}/api/admin/venues/{venue}/gates", headers=auth, timeout=30).json()
    gates = gates.get("gates", gates) if isinstance(gates, dict) else gates
    entries = [g for g in gates if g["direction"] == "entry"]
    north = next((g for g in entries if g["name"] == name), entries[0])
    made = httpx.post(
        f"{url}/api/admin/venues/{venue}/enrollments",
        json={"name": name, "gate_id": north["id"]},
        headers=auth,
        timeout=30,
    )
    if made.status_code != 201:
        raise error(f"enrollment code: HTTP {made.status_code} {made.text}")
    return str(made.json()["code"])


def event_ticket_ids(hub_db: Path, event_id: str) -> list[str]:
    """The admin API lists no tickets; demo-data's ticket ids are read from the hub's file."""
    with contextlib.closing(sqlite3.connect(hub_db)) as conn:
        rows = conn.execute(
            "SELECT id FROM tickets WHERE event_id = ? ORDER BY id", [event_id]
        ).fetchall()
    return [r[0] for r in rows]
