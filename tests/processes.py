"""Real hub and gate processes on this machine, for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from demo.local_hub import event_ticket_ids, serve_hub, streaming_gate, until_serving
from scanner.store import GateStore
from tests.paths import ROOT


def ctrl_c_as_at_a_terminal() -> None:
    """A child's preexec_fn: Ctrl-C (SIGINT) back to its default. A test run started in the
    background by a script has SIGINT ignored (POSIX shells do that for `cmd &` without job
    control) and children inherit it; Python then installs no KeyboardInterrupt at all, so a
    test of Ctrl-C would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class HubProcess:
    def __init__(self, db: Path, port: int) -> None:
        self.db, self.port = db, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(db.with_suffix(".log"), "ab")  # noqa: SIM115 (closed by the fixture)

    def start(self) -> None:
        self.proc = serve_hub(self.db, self.port, self.log)  # read the log when a step fails
        until_serving(self.proc, self.url, 15, self.log.name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.proc = None


class Gate:
    """A `gate-scanner stream --sync` process: one payload per line in, one verdict out."""

    def __init__(self, db: Path, event_id: str, clock_skew_ms: int = 0) -> None:
        self.db = db
        self.clock_skew_ms = clock_skew_ms
        self.proc = streaming_gate(
            db, "--clock-skew-ms", str(clock_skew_ms), "stream", "--sync", "--event", event_id
        )

    def scan(self, payload: str) -> list[str]:
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(payload + "\n")
        stdin.flush()
        return _readline(stdout).split()

    def store(self) -> GateStore:
        return GateStore(self.db)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _readline(stream: IO[str]) -> str:
    line = stream.readline()
    assert line, "the gate process ended"
    return line.strip()


def ticket_ids(hub: HubProcess, event_id: str) -> list[str]:
    return event_ticket_ids(hub.db, event_id)


def read_terminal(fd: int) -> str:
    """All a process drew on a pseudo-terminal (`fd` its master end), once it has ended."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()
