"""Regenerate the upgrade fixtures: real hub and gate databases made by an OLDER release's code,
dumped as SQL, which tests/hub/test_migrations_hub.py and tests/scanner/test_migrations_gate.py
load and open with today's code.

Run it with the old release checked out as the working directory, so that its packages (and
its tests/ helpers) are the ones imported:

    git worktree add --detach /tmp/prev REV
    cd /tmp/prev && /work/main/.venv/bin/python /work/main/tests/vectors/make_upgrade_fixtures.py \\
        hub|gate OUT.sql
    git worktree remove /tmp/prev

What goes in: `hub`: two tenants with venues, zones and tokens (tests/hub_fixtures.start_hub),
an event with six tickets and two gates (add_show), a device enrolled through the API with the
fixed seed DEVICE_SEED, one batch of three scans uploaded through the signed device API, a
ticket locked (audit rows throughout). `gate`: setup, hub key and a signed manifest
(tests/scanner_fixtures.install), settings, five scans through GateService (an admit, a
duplicate, a refunded ticket, an attention confirmed by staff, an exit), the first two marked
uploaded, two peer movements. The header of the dump names the commit and this recipe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the old release's packages, not this checkout's

DEVICE_SEED = bytes(range(100, 132))  # the hub fixture's device key; the test signs with it
GATE_NOW_MS = 1_790_000_000_000  # the gate fixture's clock; the test scans at this time too


def _header(kind: str) -> str:
    rev = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subject = subprocess.run(
        ["git", "log", "-1", "--format=%s"], capture_output=True, text=True, check=True
    ).stdout.strip()[:70]
    return (
        f"-- A {kind} database made by the release at git {rev}\n"
        f"-- ({subject}).\n"
        f"-- Made by tests/vectors/make_upgrade_fixtures.py {kind} (see its docstring for the\n"
        "-- recipe and what is in it), dumped with sqlite3's iterdump.\n"
    )


def _dump(db: Path, out: Path, kind: str) -> None:
    conn = sqlite3.connect(db)
    try:
        lines = list(conn.iterdump())
    finally:
        conn.close()
    out.write_text(_header(kind) + "\n".join(lines) + "\n")


async def _hub(db_dir: Path) -> Path:
    from tests.hub_fixtures import Device, add_show, start_hub, stop_hub

    hub, runner = await start_hub(db_dir)
    try:
        show = add_show(hub, hub.a, n_tickets=6)
        made = await hub.client.post(
            f"/api/admin/venues/{hub.a.venue_id}/enrollments",
            json={"name": "North 1 scanner", "gate_id": show.north},
            headers=hub.auth(hub.a.manager_token),
        )
        assert made.status_code == 201, made.text
        device = Device(hub, DEVICE_SEED)
        resp = await hub.client.post(
            "/api/device/enroll",
            json={"code": made.json()["code"], "hardware_id": "hw-north-1",
                  "public_key": device.public_key},
        )  # fmt: skip
        assert resp.status_code == 201, resp.text
        device.device_id = resp.json()["device_id"]
        now = hub.clock()
        scans = [
            {"seq": seq, "at_ms": now - 60_000 + seq, "payload": f"NATIVE:code-{seq}",
             "ticket_id": show.tickets[i], "verdict": verdict, "reason": reason,
             "message": words, "direction": "entry", "gate": "North", "manual": False,
             "confirmed": None, "uploaded": False}
            for seq, i, verdict, reason, words in (
                (1, 0, "admit", "admitted", "Welcome in."),
                (2, 0, "deny", "already_admitted", "Already admitted."),
                (3, 1, "admit", "admitted", "Welcome in."),
            )
        ]  # fmt: skip
        batch = {"event_id": show.event_id, "manifest_revision": 1, "scans": scans}
        resp = await device.send("POST", "/api/device/scans", batch)
        assert resp.status_code == 200 and resp.json()["acked"] == [1, 2, 3], resp.text
        await hub.lock([show.tickets[2]], "chargeback_pending")
    finally:
        await stop_hub(hub, runner)
    return db_dir / "hub.sqlite"


def _gate(db_dir: Path) -> Path:
    from manifests.admission_types import Direction, ScanFact
    from scanner.service import GateService
    from scanner.store import GateStore
    from tests.scanner_fixtures import ADA, BEN, CAL, Clock, build, install

    path = db_dir / "gate.db"
    store = GateStore(path)
    try:
        fx = build(GATE_NOW_MS)
        install(store, fx, GATE_NOW_MS)
        store.set_config("hub_url", "https://hub.example:8443")
        store.set_config("sound", "off")
        store.set_config("verdict_clear_s", 4)
        clock = Clock(GATE_NOW_MS)
        service = GateService(store, clock=clock, dedupe_window_ms=0)
        outcomes = []
        for code in (fx.codes[ADA], fx.codes[ADA], fx.codes[CAL], fx.codes[BEN]):
            clock.advance(1_000)
            outcomes.append(service.scan(code))
        attention = outcomes[-1]
        assert attention is not None and attention.decision.verdict == "attention"
        service.confirm(attention.seq, True)
        entry = store.gate()
        store.set_gate(dataclasses.replace(entry, direction=Direction.EXIT))
        clock.advance(60_000)
        left = GateService(store, clock=clock, dedupe_window_ms=0).scan(fx.codes[ADA])
        assert left is not None and left.decision.verdict == "exit", left
        store.set_gate(entry)
        store.mark_uploaded([1, 2])
        store.merge_peer_scans(
            [ScanFact("peer-ticket-1", GATE_NOW_MS - 5_000, Direction.ENTRY, True, "South", "d2"),
             ScanFact("peer-ticket-2", GATE_NOW_MS - 4_000, Direction.EXIT, True, "South", "d2")]
        )  # fmt: skip
    finally:
        store.close()
    return path


def main(argv: list[str]) -> int:
    kind, out = argv[1], Path(argv[2]).resolve()
    import hub

    assert Path(hub.__file__).resolve().is_relative_to(Path.cwd().resolve()), hub.__file__
    with tempfile.TemporaryDirectory() as tmp:
        db = asyncio.run(_hub(Path(tmp))) if kind == "hub" else _gate(Path(tmp))
        _dump(db, out, kind)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
