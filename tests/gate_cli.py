"""The real gate-scanner and gate-hub processes, and a disk that fills up, for the CLI tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.paths import ROOT


def cli_env() -> dict[str, str]:
    """This checkout importable; from the caller no GATE_DB (--db names the database) and no
    systemd journal (JOURNAL_STREAM, INVOCATION_ID): the gate logs to its file and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("GATE_DB", "JOURNAL_STREAM", "INVOCATION_ID"):
        env.pop(var, None)
    return env


def _cli(argv: list[str], stdin: str | None, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """One of this checkout's commands as a process, run from the repository's root."""
    return subprocess.run(
        [sys.executable, "-m", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        env=cli_env(),
    )


def gate_cli(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return _cli(["scanner", "--db", str(db), *args], stdin, 60)


def gate_hub(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`gate-hub ARGS --db DB` (a pull from a real backend may take a while: 120 s)."""
    return _cli(["hub", *args, "--db", str(db)], stdin, 120)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """The command's stdout, stripped, once it exited 0 (else the test fails showing both
    streams)."""
    assert proc.returncode == 0, (proc.args, proc.stdout, proc.stderr)
    return proc.stdout.strip()


async def async_gate_cli(db: Path, *args: str) -> tuple[int, str, str]:
    """`gate-scanner` as a subprocess that does not block the event loop a real hub serves
    on in the same test: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scanner", "--db", str(db), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=cli_env(),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@contextmanager
def mounted(target: Path, *options: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount here: {proc.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def tiny_tmpfs(root: Path) -> Any:
    return mounted(root / "disk", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs")


def fill(disk: Path) -> Path:
    """Write until the file system refuses another byte."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC
    finally:
        os.close(fd)
    fd = os.open(filler, os.O_WRONLY | os.O_APPEND)
    try:  # the last partial block too
        while True:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
