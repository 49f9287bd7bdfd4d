"""The gate's log and the words for a refused link, against the real hub on 127.0.0.1 with
real gate database files, and the real `gate-scanner` where a user meets it: a deactivated
gate says so (log, snapshot, `stream --sync` stderr, `status`) after one exchange, a dead hub
is "hub unreachable", a restarted gate still knows when it last synced, and the log holds no
holder name and no secret."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner import gate_log
from scanner.app import GateApp
from scanner.hub_link import hub_link
from scanner.service import GateService
from scanner.settings import DEVICE_SEED_KEY
from scanner.store import GateStore
from scanner.sync import SyncWorker
from scanner.widgets import StatusBar
from tests.gate_cli import async_gate_cli, cli_env
from tests.hub_fixtures import add_show, credential_text
from tests.live_hub import LiveHub, deactivate, hub_seqs, wait_for, worker_for
from tests.paths import ROOT
from tests.scanner_fixtures import EnrolledGates

DEACTIVATED_SENTENCE = "this gate was deactivated at the hub; ask a supervisor to enrol it again"


@pytest.fixture(autouse=True)
def _detach_gate_log() -> Iterator[None]:
    """The log is configured per process: leave none behind for the next test."""
    yield
    gate_log.shutdown()


def log_text(db: Path) -> str:
    """Everything the gate logged, rotated files included."""
    return "".join(p.read_text() for p in sorted(db.parent.glob(db.stem + ".log*")))


class Stream:
    """A running `gate-scanner stream --sync`: payloads in, stdout and stderr kept."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(proc.stdout, self.out)),
            asyncio.create_task(self._read(proc.stderr, self.err)),
        ]

    @classmethod
    async def start(cls, db: Path, *args: str) -> Stream:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scanner", "--db", str(db), "stream", "--sync", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=cli_env(),
        )  # fmt: skip
        return cls(proc)

    @staticmethod
    async def _read(pipe: asyncio.StreamReader, into: list[str]) -> None:
        while line := await pipe.readline():
            into.append(line.decode().rstrip("\n"))

    async def send(self, payload: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(payload.encode() + b"\n")
        await self.proc.stdin.drain()

    async def finish(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rc = await asyncio.wait_for(self.proc.wait(), 30)
        await asyncio.gather(*self._readers)
        return rc

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def online(worker: SyncWorker) -> None:
    for _ in range(2):  # recover_after=2 good exchanges
        assert await asyncio.to_thread(worker.sync_once), worker.snapshot().last_error
    assert str(worker.snapshot().state) == "online"


async def logged_gate(gates: EnrolledGates, tmp_path: Path) -> tuple[GateStore, Path]:
    """A gate enrolled as gate.db whose log is configured: gate.log beside its database."""
    gate = await gates.enrol()
    db = tmp_path / "gate.db"
    assert gate_log.configure(db) == tmp_path / "gate.log"
    return gate, db


async def online_gate(gates: EnrolledGates) -> tuple[GateStore, SyncWorker]:
    """A gate enrolled as gate.db, brought online by its sync worker."""
    gate = await gates.enrol()
    worker = gates.worker(gate)
    await online(worker)
    return gate, worker


async def test_a_deactivated_gate_is_offline_with_its_reason_after_one_exchange(
    live: LiveHub, gates: EnrolledGates, tmp_path: Path
) -> None:
    gate, db = await logged_gate(gates, tmp_path)
    worker = gates.worker(gate)  # fail_after=3: a flaky link would still show online
    await online(worker)
    await deactivate(live, gate)
    assert not await asyncio.to_thread(worker.sync_once)
    snap = worker.snapshot()
    assert str(snap.state) == "offline" and snap.last_error == "device_deactivated"
    assert snap.to_json()["reason"] == "gate deactivated"
    text = log_text(db)
    assert "WARNING scanner.link link: offline — " + DEACTIVATED_SENTENCE in text
    assert "(device_deactivated)" in text
    assert "INFO scanner.link link: online — the hub answers" in text
    first = text.splitlines()[0]  # ISO UTC time first: 2026-11-28T14:03:05.123Z
    assert first[10] == "T" and first[23] == "Z", first


async def test_a_stopped_hub_is_logged_as_unreachable_once(
    live: LiveHub, gates: EnrolledGates, tmp_path: Path
) -> None:
    gate, db = await logged_gate(gates, tmp_path)
    worker = gates.worker(gate)
    await online(worker)
    await live.stop()
    for _ in range(3):  # fail_after=3: a dead network is ridden out before "offline"
        assert not await asyncio.to_thread(worker.sync_once)
    snap = worker.snapshot()
    assert str(snap.state) == "offline" and snap.reason == "hub unreachable"
    text = log_text(db)
    assert "link: offline — the hub cannot be reached; check the network" in text
    assert "(hub_unreachable)" in text
    # The first failure at WARNING with its code; the same failure again is not repeated.
    assert text.count("WARNING scanner.sync sync failed (hub_unreachable)") == 1
    await live.restart()
    await online(worker)
    assert "link: online" in log_text(db).split("(hub_unreachable)")[-1]


async def test_a_restarted_gate_still_knows_its_last_sync_and_why_it_is_down(
    live: LiveHub, gates: EnrolledGates, tmp_path: Path
) -> None:
    gate, worker = await online_gate(gates)
    db = tmp_path / "gate.db"
    synced = worker.snapshot().last_sync_ms
    assert synced is not None
    await asyncio.to_thread(worker.stop)
    gate.close()

    with GateStore(db) as again:  # the gate restarts: a new process, a new worker
        restarted = worker_for(live, again)
        try:
            snap = restarted.snapshot()
            assert snap.last_sync_ms == synced and snap.reason is None
        finally:
            restarted.stop()

    with GateStore(db) as again:  # deactivated while it runs, then restarted
        await deactivate(live, again)
        worker = worker_for(live, again)
        try:
            assert not await asyncio.to_thread(worker.sync_once)
        finally:
            await asyncio.to_thread(worker.stop)
    with GateStore(db) as again:
        restarted = worker_for(live, again)
        try:
            snap = restarted.snapshot()
            assert snap.last_sync_ms == synced  # not "never synced"
            assert snap.to_json()["reason"] == "gate deactivated"  # before any exchange
        finally:
            restarted.stop()


async def test_the_app_status_bar_says_a_gate_was_deactivated(
    live: LiveHub, gates: EnrolledGates
) -> None:
    """Through the real app at 80x24: once the hub switches the gate off, the status bar
    says why in words, not 'never synced' (it had synced)."""
    gate = await gates.enrol()
    link = hub_link(gate)
    assert link is not None
    sync, channel = link
    app = GateApp(GateService(gate), sync=sync, live=channel, camera="none")
    async with app.run_test(size=(80, 24)) as pilot:

        def line2() -> str:
            return app.screen.query_one(StatusBar).text.splitlines()[1]

        async def shows(text: str) -> None:
            for _ in range(200):
                if text in line2():
                    return
                await pilot.pause(0.05)
            raise AssertionError(f"{text!r} not in {line2()!r}")

        await shows("ONLINE")
        await deactivate(live, gate)
        sync.wake()
        await shows("OFFLINE · gate deactivated")
        assert "never synced" not in line2()


async def test_a_deactivation_on_the_live_socket_shows_in_the_sync_snapshot(
    live: LiveHub, gates: EnrolledGates, tmp_path: Path
) -> None:
    gate, db = await logged_gate(gates, tmp_path)
    link = hub_link(gate)
    assert link is not None
    sync, channel = link
    seen: list[str | None] = []
    sync.on_change = lambda snap: seen.append(snap.reason)
    try:
        await asyncio.to_thread(sync.sync_once)
        channel.start()
        assert await asyncio.to_thread(channel.connected.wait, 10)
        await deactivate(live, gate)
        # No sync cycle runs here: the live channel's 4403 alone must say it.
        assert await wait_for(lambda: sync.snapshot().reason == "gate deactivated", 5.0)
        assert str(sync.snapshot().state) == "offline"
        # the app hears it through on_change (called just after the state is set)
        assert await wait_for(lambda: "gate deactivated" in seen, 5.0)
        text = log_text(db)
        assert "INFO scanner.live live: connected" in text
        assert "WARNING scanner.live live: stopped, the hub closed the socket" in text
        assert DEACTIVATED_SENTENCE in text
    finally:
        await asyncio.to_thread(channel.stop)


async def test_stream_sync_says_why_on_stderr_and_status_remembers_it(
    live: LiveHub, gates: EnrolledGates, tmp_path: Path
) -> None:
    gate, worker = await online_gate(gates)
    db = tmp_path / "gate.db"
    await asyncio.to_thread(worker.stop)
    await deactivate(live, gate)
    gate.close()

    stream = await Stream.start(db)
    try:
        await stream.send("not a ticket")
        assert await wait_for(lambda: any("link:" in line for line in stream.err), 20.0)
        assert await wait_for(lambda: len(stream.out) == 1, 10.0)
        assert await stream.finish() == 0
    finally:
        stream.kill()
    link_lines = [line for line in stream.err if line.startswith("link: ")]
    assert link_lines == [f"link: offline — {DEACTIVATED_SENTENCE} (device_deactivated)"]
    assert not any("link" in line for line in stream.out)  # stdout stays the verdicts
    assert stream.out[0].split()[1] == "deny"

    rc, out, err = await async_gate_cli(db, "status")
    assert rc == 0, err
    (line,) = [x for x in out.splitlines() if x.startswith("last link:")]
    assert line.startswith("last link: offline · gate deactivated since ")
    assert "last good sync 20" in line  # a date, not "never"
    assert DEACTIVATED_SENTENCE in out
    rc, out, err = await async_gate_cli(db, "status", "--json")
    assert rc == 0, err
    kept = json.loads(out)["last_link"]
    assert kept["reason"] == "gate deactivated" and kept["last_error"] == "device_deactivated"
    assert isinstance(kept["last_sync_ms"], int)


async def test_the_log_holds_no_holder_name_and_no_secret(live: LiveHub, tmp_path: Path) -> None:
    hub = live.hub
    show = add_show(hub, hub.a)
    named = [t for t in show.tickets if t in show.holders]
    db = tmp_path / "gate.db"
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North 1 scanner", "gate_id": show.north},
        headers=hub.auth(hub.a.manager_token),
    )
    code = made.json()["code"]
    rc, _, err = await async_gate_cli(db, "enroll", hub.url, code)  # the real enrolment, logged
    assert rc == 0, err
    with GateStore(db) as gate:  # the ticket list first, so the scans below are admitted
        worker = worker_for(live, gate, event_id=show.event_id)
        await online(worker)
        await asyncio.to_thread(worker.stop)
        device_id = gate.device_id
        seed = gate.key(DEVICE_SEED_KEY)
        assert seed is not None

    stream = await Stream.start(db, "--event", show.event_id)
    try:
        for ticket in named:
            await stream.send(await credential_text(hub, ticket))
        assert await wait_for(lambda: len(stream.out) == len(named), 20.0), stream.err
        with GateStore(db) as gate:
            assert await wait_for(lambda: len(hub_seqs(live, gate)) == len(named), 20.0)
        assert await stream.finish() == 0
    finally:
        stream.kill()
    assert all(line.split()[1] == "admit" for line in stream.out), stream.out

    text = log_text(db)
    assert f"enrolled as device {device_id}" in text
    assert f"stream ended: {len(named)} scans stored" in text
    assert f"sync ok: pushed {len(named)} scans" in text  # the scans went up, and it says so
    secrets = [
        *(show.holders[t] for t in named),
        code,
        seed.hex(),
        base64.b64encode(seed).decode(),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
    ]
    found = [s for s in secrets if s in text]
    assert found == [], found


def test_a_log_file_that_cannot_be_opened_never_stops_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "gate.db"
    (tmp_path / "gate.log").mkdir()  # where the file should go: cannot be opened
    assert gate_log.configure(db) is None
    logging.getLogger("scanner.sync").warning("storage fault during sync (storage_full): x")
    logging.getLogger("scanner.sync").info("sync ok: pushed 0 scans")
    err = capsys.readouterr().err
    assert "WARNING scanner.sync storage fault during sync (storage_full): x" in err
    assert "sync ok" not in err  # the fallback keeps to warnings and worse

    # The real CLI on that gate (a database it did not make: check refuses a missing one):
    # the scan is stored and answered as ever.
    GateStore(db).close()
    env = cli_env()
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", "--db", str(db), "check", "x", "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 1 and json.loads(proc.stdout)["verdict"] == "deny", proc.stderr
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr


def test_under_systemd_the_journal_gets_the_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # stderr is the journal (JOURNAL_STREAM names it): level prefix, no time (journald adds it)
    script = (
        "import logging, os, sys\n"
        "st = os.fstat(2)\n"
        "os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'\n"
        "from scanner import gate_log\n"
        "gate_log.configure(sys.argv[1])\n"
        "logging.getLogger('scanner.link').warning('link: offline — x (hub_unreachable)')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "gate.db")],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=cli_env(),
    )  # fmt: skip
    assert proc.stderr == "<4>scanner.link: link: offline — x (hub_unreachable)\n", proc.stderr
    assert "link: offline" in (tmp_path / "gate.log").read_text()  # and the file still

    # The kiosk unit gives stderr to the screen: journald's own socket instead.
    sock_path = tmp_path / "journal.socket"
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(sock_path))
    journal.settimeout(5)
    monkeypatch.setattr(gate_log, "JOURNAL_SOCKET", str(sock_path))
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    try:
        gate_log.configure(tmp_path / "gate.db", console=False)
        logging.getLogger("scanner.link").warning("link: offline — y\nsecond line")
        datagram = journal.recv(65536)
    finally:
        journal.close()
    assert b"PRIORITY=4\n" in datagram and b"SYSLOG_IDENTIFIER=gate-scanner\n" in datagram
    assert b"MESSAGE\n" in datagram  # the binary-safe form for a message with a newline
    assert "scanner.link: link: offline — y\nsecond line".encode() in datagram
