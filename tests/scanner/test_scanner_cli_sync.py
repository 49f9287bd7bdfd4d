"""`gate-scanner sync` and the first pull of `gate-scanner enroll`, as real processes against
the real hub on 127.0.0.1 (issue #13): a gate enrolled from the shell scans at once; `sync` runs
one cycle of the app's own sync worker (scans up, ticket list down, full or delta), reports it
and says in its exit code how it went; a hub that is down or refuses the gate is a sentence and
an exit code, never a traceback, and nothing on the gate is lost."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from pathlib import Path
from typing import Any

from hub.metrics import METRICS
from scanner.cli import EXIT_HUB_REFUSED, EXIT_SYNC_INCOMPLETE
from scanner.faults import EXIT_DENY, EXIT_OK, EXIT_REFUSED
from scanner.store import GateStore
from tests.gate_cli import async_gate_cli, cli_env
from tests.hub_fixtures import Show, add_show, credential_text
from tests.live_hub import LiveHub, deactivate, enrolment_code, hub_seqs
from tests.paths import ROOT
from tests.processes import read_terminal

HOUR_MS = 3_600_000


async def enrolled(live: LiveHub, tmp_path: Path, *options: str) -> tuple[Show, Path, str]:
    """A show on now, and a gate database enrolled at its north gate by `gate-scanner enroll`
    (stdout: what it printed)."""
    show = add_show(live.hub, live.hub.a, n_tickets=6)
    db = tmp_path / "gate.db"
    rc, out, err = await async_gate_cli(
        db, "enroll", live.hub.url, await enrolment_code(live, gate_id=show.north), *options
    )
    assert rc == EXIT_OK, out + err
    assert "Traceback" not in err and "ticket list [" not in err  # a pipe: no progress bar
    return show, db, out


async def check(db: Path, payload: str, *options: str) -> tuple[int, dict[str, Any]]:
    rc, out, err = await async_gate_cli(db, "check", payload, "--json", *options)
    assert "Traceback" not in err
    return rc, json.loads(out)


async def sync_json(db: Path, *options: str) -> tuple[int, dict[str, Any], str]:
    rc, out, err = await async_gate_cli(db, "sync", "--json", *options)
    assert "Traceback" not in err and err == "", err  # --json: nothing on stderr, no bar
    return rc, json.loads(out), err


def pending(db: Path) -> list[int]:
    with GateStore(db) as store:
        return [r.seq for r in store.pending_uploads()]


async def test_enroll_pulls_the_ticket_list_so_check_admits_right_away(
    live: LiveHub, tmp_path: Path
) -> None:
    show, db, out = await enrolled(live, tmp_path)
    assert "enrolled as" in out
    assert f"of event {show.event_id}, 6 tickets (new)" in out
    rc, verdict = await check(db, await credential_text(live.hub, show.tickets[0]))
    assert rc == EXIT_OK, verdict
    assert (verdict["verdict"], verdict["reason"]) == ("admit", "admitted")


async def test_enroll_no_sync_then_check_says_run_sync_and_sync_makes_it_admit(
    live: LiveHub, tmp_path: Path
) -> None:
    show, db, out = await enrolled(live, tmp_path, "--no-sync")
    assert "ticket list" not in out
    code = await credential_text(live.hub, show.tickets[0])
    rc, verdict = await check(db, code)
    assert rc == EXIT_DENY and verdict["reason"] == "manifest_expired"
    assert "run `gate-scanner sync`" in verdict["message"], verdict["message"]

    rc, out, err = await async_gate_cli(db, "sync")
    assert rc == EXIT_OK and err == "", err
    assert out.splitlines()[0] == f"synced with {live.hub.url}"
    assert "6 tickets (new)" in out and "scans: 1 pushed, 0 waiting to go up" in out
    rc, verdict = await check(db, code)
    assert rc == EXIT_OK and verdict["verdict"] == "admit", verdict


async def test_sync_pushes_pending_scans_and_pulls_a_delta_after_a_change_at_the_hub(
    live: LiveHub, tmp_path: Path
) -> None:
    show, db, _ = await enrolled(live, tmp_path)
    codes = [await credential_text(live.hub, t) for t in show.tickets[:2]]
    for code in codes:  # `check` stores its scans; only a sync sends them
        assert (await check(db, code))[0] == EXIT_OK
    assert pending(db) == [1, 2]
    manifest_bytes = live.runner.app[METRICS].manifest_bytes
    full_before = manifest_bytes["full"]
    await live.hub.lock([show.tickets[3]], "fraud_investigation")

    with GateStore(db) as store:
        first = store.manifest_revision()
    rc, report, _ = await sync_json(db)
    assert rc == EXIT_OK, report
    assert report["ok"] is True and report["error"] is None
    assert (report["pushed"], report["pending"]) == (2, 0)
    assert report["manifest"]["new"] is True and report["manifest"]["revision"] > first
    assert report["manifest"]["tickets"] == 6
    assert manifest_bytes["delta"] > 0 and manifest_bytes["full"] == full_before  # a delta
    assert pending(db) == []
    with GateStore(db) as store:
        assert hub_seqs(live, store) == [1, 2]
        locked = store.ticket(show.tickets[3])
    assert locked is not None and locked.lock_reason == "fraud_investigation"

    rc, report, _ = await sync_json(db)  # nothing new: nothing pushed, nothing installed
    assert rc == EXIT_OK and (report["pushed"], report["manifest"]["new"]) == (0, False)


async def test_sync_against_a_stopped_hub_is_a_sentence_and_an_exit_code_and_loses_nothing(
    live: LiveHub, tmp_path: Path
) -> None:
    show, db, _ = await enrolled(live, tmp_path)
    assert (await check(db, await credential_text(live.hub, show.tickets[0])))[0] == EXIT_OK
    await live.stop()
    try:
        rc, out, err = await async_gate_cli(db, "sync")
        assert rc == EXIT_SYNC_INCOMPLETE, out + err
        assert err.splitlines() == [
            "gate-scanner: sync failed: the hub cannot be reached; check the network and that "
            "the hub is running (scans stay on this gate and go up later) (hub_unreachable)"
        ]
        assert "scans: 0 pushed, 1 waiting to go up" in out
        rc, report, _ = await sync_json(db)
        assert rc == EXIT_SYNC_INCOMPLETE
        assert report["ok"] is False and report["error"]["code"] == "hub_unreachable"
        assert pending(db) == [1]
        # the ticket list stays: the gate still decides
        assert (report["manifest"]["tickets"], report["manifest"]["new"]) == (6, False)
    finally:
        await live.restart()
    rc, report, _ = await sync_json(db)
    assert rc == EXIT_OK and (report["pushed"], report["pending"]) == (1, 0)
    with GateStore(db) as store:
        assert hub_seqs(live, store) == [1]


async def test_sync_of_a_gate_the_hub_refuses_says_to_enrol_again(
    live: LiveHub, tmp_path: Path
) -> None:
    _, db, _ = await enrolled(live, tmp_path)
    with GateStore(db) as store:
        await deactivate(live, store)
    rc, out, err = await async_gate_cli(db, "sync")
    assert rc == EXIT_HUB_REFUSED, out + err
    assert "Traceback" not in err
    assert "deactivated at the hub; ask a supervisor to enrol it again" in err


async def test_sync_needs_an_enrolled_gate(tmp_path: Path) -> None:
    db = tmp_path / "gate.db"
    rc, _, err = await async_gate_cli(db, "setup", "--gate", "North", "--venue", "v1")
    assert rc == EXIT_OK, err
    rc, out, err = await async_gate_cli(db, "sync", "--json")
    assert rc == EXIT_REFUSED and json.loads(out)["error"]["code"] == "not_enrolled"


async def test_enrolment_stands_when_its_first_pull_fails(live: LiveHub, tmp_path: Path) -> None:
    """A gate clock two hours off: the enrolment (unsigned) goes through, the first signed
    request is refused as stale. The gate keeps its enrolment, says to run sync, and sync
    then works (it signs with the hub's time it learnt)."""
    skew = ("--clock-skew-ms", str(2 * HOUR_MS))
    show = add_show(live.hub, live.hub.a, n_tickets=6)
    db = tmp_path / "gate.db"
    code = await enrolment_code(live, gate_id=show.north)
    rc, out, err = await async_gate_cli(db, *skew, "enroll", live.hub.url, code, "--json")
    assert rc == EXIT_OK and "Traceback" not in err, out + err
    enrolment = json.loads(out)
    first = enrolment["sync"]
    assert first["ok"] is False and first["error"]["code"] == "stale_timestamp"
    assert "run `gate-scanner sync`" in first["error"]["message"]
    with GateStore(db) as store:
        assert store.device_id == enrolment["device_id"] and store.manifest_revision() is None
    rc, out, err = await async_gate_cli(db, *skew, "sync", "--json")
    assert rc == EXIT_OK and err == "", out + err
    assert json.loads(out)["manifest"]["tickets"] == len(show.tickets)

    # the same in words, for a person at the gate
    code = await enrolment_code(live, gate_id=show.north)
    rc, out, err = await async_gate_cli(tmp_path / "south.db", *skew, "enroll", live.hub.url, code)
    assert rc == EXIT_OK and out.startswith("enrolled as "), out + err
    assert err.startswith("gate-scanner: enrolled, but the first sync failed: this gate's clock")
    assert err.endswith("; run `gate-scanner sync` to retry (stale_timestamp)\n"), err
    assert len(err.splitlines()) == 1


async def test_enroll_json_carries_the_first_sync_report(live: LiveHub, tmp_path: Path) -> None:
    show, db, out = await enrolled(live, tmp_path, "--json")
    report = json.loads(out)["sync"]
    assert set(report) == {
        "ok",
        "hub",
        "event_id",
        "manifest",
        "pushed",
        "pending",
        "peers_merged",
        "clock_offset_ms",
        "hub_keys",
        "error",
    }
    assert (report["ok"], report["hub"], report["event_id"]) == (True, live.hub.url, show.event_id)
    with GateStore(db) as store:
        revision = store.manifest_revision()
    assert report["manifest"] == {"revision": revision, "tickets": 6, "new": True}
    assert (report["pushed"], report["pending"], report["error"]) == (0, 0, None)
    assert isinstance(report["clock_offset_ms"], int)


async def test_enroll_draws_a_progress_bar_only_on_a_terminal(
    live: LiveHub, tmp_path: Path
) -> None:
    show = add_show(live.hub, live.hub.a, n_tickets=6)
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scanner", "--db", str(tmp_path / "gate.db"), "enroll",
            live.hub.url, await enrolment_code(live, gate_id=show.north),
            stdout=asyncio.subprocess.PIPE, stderr=slave, cwd=ROOT, env=cli_env(),
        )  # fmt: skip
        os.close(slave)
        slave = -1
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == EXIT_OK
        terminal = read_terminal(master)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    assert "ticket list [" + "#" * 30 + "] 100%" in terminal, terminal
    assert "6 tickets (new)" in out.decode()
