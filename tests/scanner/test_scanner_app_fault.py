"""The gate app on a disk that fills up: a full-screen STORAGE FAULT in its own colour instead
of a crash or a verdict, retried by itself, and gone once the disk has room again. Driven
through Textual's pilot with the gate database on a 1 MB tmpfs filled to the last byte."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from textual.pilot import Pilot

from scanner.app import GateApp
from scanner.service import GateService
from scanner.store import GateStore
from tests.app_pilot import SIZE, make_app, panel, wedge
from tests.gate_cli import fill, tiny_tmpfs
from tests.scanner_fixtures import ADA, CAL, build, install


async def until(pilot: Pilot[None], ok: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_full_disk_shows_storage_fault_and_recovers(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000
    fx = build(now)
    with tiny_tmpfs(tmp_path) as disk, GateStore(disk / "gate.db") as store:
        install(store, fx, now)
        service = GateService(store, clock=lambda: now)
        app: GateApp = make_app(service)
        app.fault_retry_s = 0.1
        async with app.run_test(size=SIZE) as pilot:
            with sqlite3.connect(disk / "gate.db") as other:  # the next commit grows the WAL
                other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler = fill(disk)
            await wedge(pilot, fx.codes[ADA])
            shown = panel(app)
            assert shown.word == "STORAGEFAULT" and shown.has_class("-fault")
            assert "do not admit" in shown.message.lower() and "full" in shown.message
            assert app.is_running
            await wedge(pilot, fx.codes[CAL])  # still faulty: no verdict over the fault
            await pilot.pause(0.3)  # retries keep failing while the disk is full
            assert panel(app).word == "STORAGEFAULT"

            filler.unlink()
            await until(pilot, lambda: panel(app).word == "READY")
            assert "recovered" in panel(app).message.lower()
            assert store.counters().admitted == 0  # nothing was admitted during the fault
            await wedge(pilot, fx.codes[ADA])
            assert panel(app).word == "ADMIT" and store.counters().admitted == 1
