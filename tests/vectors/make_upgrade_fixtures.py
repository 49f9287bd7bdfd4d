"""Rebuild the upgrade fixtures from git history: the database files that OLDER releases' own
code wrote, which tests/hub/test_migrations_hub.py, tests/scanner/test_migrations_gate.py and
tests/hub/test_hub_ticket_fields.py copy and open with today's code (tests/vectors/releases.py).

    .venv/bin/python tests/vectors/make_upgrade_fixtures.py

rebuilds every file in FIXTURES: for each, a detached `git worktree` of the release's commit in
a temporary folder, this script run there (`KIND OUT.db`, with the old release's packages and
tests/ helpers the ones imported), the worktree removed. The file is the database as the old
code closed it, copied byte for byte (no dump, no VACUUM): its name says the release's commit.
Rebuilt files differ from the committed ones in their random ids, keys and tokens only.

What goes in: `hub`: two tenants with venues, zones and tokens (tests/hub_fixtures.start_hub),
an event with six tickets and two gates (add_show), a device enrolled through the API with the
fixed seed DEVICE_SEED, one batch of three scans uploaded through the signed device API, a
ticket locked (audit rows throughout). `hub_v3` (the hub of schema version 3, before the
ticket fields): HubStore(path), create_tenant, create_venue, create_zone and import_catalogue
of one event ('ev-v3'), one ticket type and three tickets, at the fixed time HUB_V3_NOW_MS.
`gate`: setup, hub key and a signed manifest (tests/scanner_fixtures.install), settings, five
scans through GateService (an admit, a duplicate, a refunded ticket, an attention confirmed by
staff, an exit), the first two marked uploaded, two peer movements.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the old release's packages, not this checkout's

DEVICE_SEED = bytes(range(100, 132))  # the hub fixture's device key; the test signs with it
GATE_NOW_MS = 1_790_000_000_000  # the gate fixture's clock; the test scans at this time too
HUB_V3_NOW_MS = 1_783_670_400_000
HERE = Path(__file__).resolve().parent
# file: (what goes in, the release's git commit)
FIXTURES = {
    "hub_release_010fbb0.db": ("hub", "010fbb0"),  # the last hub before numbered steps
    "hub_release_54097c8.db": ("hub_v3", "54097c8"),  # the hub of schema version 3
    "gate_release_010fbb0.db": ("gate", "010fbb0"),  # the last gate before numbered steps
    "gate_release_c16968c.db": ("gate", "c16968c"),  # the first gate schema, no install table
}


def _copy(db: Path, out: Path) -> None:
    """The file as the old code left it: closed, so its write-ahead log is checkpointed."""
    for side in ("-wal", "-journal"):
        left = db.with_name(db.name + side)
        assert not left.exists() or left.stat().st_size == 0, f"{left} still holds writes"
    shutil.copyfile(db, out)


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


def _hub_v3(db_dir: Path) -> Path:
    from hub.storage import HubStore

    path = db_dir / "hub.sqlite"
    store = HubStore(path)
    try:
        now = HUB_V3_NOW_MS
        tenant = store.create_tenant("legacy", now)["id"]
        venue = store.create_venue(tenant, "Old Hall", "Europe/Berlin", "test", now)["id"]
        store.create_zone(tenant, venue, "GA", "test", now)
        event = {
            "id": "ev-v3",
            "venue_id": venue,
            "code": 303,
            "name": "Release 3 show",
            "timezone": "Europe/Berlin",
            "start_ms": now,
            "end_ms": now + 3_600_000,
        }
        tickets = [
            {
                "id": f"00000000-0000-4000-8000-00000000000{n}",
                "event_id": "ev-v3",
                "ticket_type_id": "tt-v3",
                "status": "ACTIVE",
                "zone": "GA",
                **extra,
            }
            for n, extra in ((1, {}), (2, {"seat": "R2", "holder_name": "Guest 2"}), (3, {}))
        ]
        store.import_catalogue(
            tenant_id=tenant, events=[event], tickets=tickets, actor="test", now_ms=now,
            ticket_types=[{"id": "tt-v3", "event_id": "ev-v3", "code": 1, "name": "Standing",
                           "zone": "GA"}],
        )  # fmt: skip
    finally:
        store.close()
    return path


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


MAKERS = {"hub": lambda d: asyncio.run(_hub(d)), "hub_v3": _hub_v3, "gate": _gate}


def make(kind: str, out: Path) -> None:
    """Build one fixture with the packages of the checkout this runs in (the working folder)."""
    import hub

    assert Path(hub.__file__).resolve().is_relative_to(Path.cwd().resolve()), hub.__file__
    with tempfile.TemporaryDirectory() as tmp:
        _copy(MAKERS[kind](Path(tmp)), out)


def rebuild_all() -> None:
    for name, (kind, rev) in FIXTURES.items():
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / rev
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev],
                           cwd=HERE, check=True, capture_output=True)  # fmt: skip
            try:
                subprocess.run([sys.executable, __file__, kind, str(HERE / name)],
                               cwd=tree, check=True)  # fmt: skip
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)],
                               cwd=HERE, check=True)  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) == 1:
        rebuild_all()
    else:
        make(argv[1], Path(argv[2]).resolve())
        print(f"wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
