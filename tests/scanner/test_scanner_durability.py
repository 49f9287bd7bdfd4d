"""Never lose a scan: a real `gate-scanner stream` process is SIGKILLed at random points
while 500 scans flow through it, then restarted from what the database holds, until every
scan is done. Every verdict line it printed must be on disk, each scan exactly once, and the
sequence numbers gap-free."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from protocol.sealed_payload import open_for_hub
from scanner.store import GateStore
from tests.paths import ROOT
from tests.scanner_fixtures import ADA, BEN, CAL, DOT, HUB_SEED, build, install

TOTAL = 500


def stored(db: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, payload, verdict FROM scans ORDER BY seq").fetchall()
    # payloads rest sealed to the hub: open them with the hub's key to compare
    return [(seq, open_for_hub(sealed, HUB_SEED), verdict) for seq, sealed, verdict in rows]


def start(db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scanner", "--db", str(db), "stream"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.slow
def test_sigkill_never_loses_or_doubles_a_scan(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    now = time.time_ns() // 1_000_000
    fx = build(now)
    db = tmp_path / "gate.db"
    with GateStore(db) as store:
        install(store, fx, now)
    # Unique payloads (a repeat within 2.5 s is one read, not a scan): junk and real codes.
    payloads = [f"JUNK-{i:04d}" for i in range(TOTAL)]
    for i, tid in zip(rng.sample(range(TOTAL), 4), (ADA, BEN, CAL, DOT), strict=True):
        payloads[i] = fx.codes[tid]

    printed: dict[int, str] = {}
    kills = 0
    for _ in range(200):  # a bound, so a process that keeps crashing fails the test
        done = len(stored(db))  # what the reader re-sends: everything not on disk
        assert done <= TOTAL
        if done == TOTAL:
            break
        proc = start(db)
        assert proc.stdin is not None and proc.stdout is not None
        # Kill while it starts (1 in 5) or a few ms after its k-th verdict line, wherever it
        # then is (parsing, deciding, inside a commit, printing, waiting for input). It gets
        # a few lines more than k and its input stays open, so it cannot finish before the
        # kill; only the last run, given everything that is left, ends on its own.
        remaining = payloads[done:]
        kill_after = 0 if rng.random() < 0.2 else rng.randint(1, 150)
        final = kill_after > 0 and len(remaining) <= kill_after
        fed = remaining if final else remaining[: kill_after + rng.randint(1, 30)]
        proc.stdin.write("".join(p + "\n" for p in fed))
        proc.stdin.flush()
        if final:
            proc.stdin.close()
        killer = threading.Timer(rng.uniform(0.0, 0.6), proc.kill)
        if not kill_after:
            killer.start()
        for n, line in enumerate(proc.stdout, start=1):
            seq, verdict, _reason = line.split()
            printed[int(seq)] = verdict
            if n == kill_after:
                time.sleep(rng.uniform(0.0, 0.005))
                proc.kill()
        killer.cancel()
        proc.stdout.close()
        if not proc.stdin.closed:
            proc.stdin.close()
        if proc.wait() == -signal.SIGKILL:
            kills += 1
    else:
        pytest.fail(f"seed {seed}: not done after 200 restarts")

    rows = stored(db)
    assert [seq for seq, _, _ in rows] == list(range(1, TOTAL + 1)), f"seed {seed}"
    assert [payload for _, payload, _ in rows] == payloads, f"seed {seed}"
    by_seq = {seq: verdict for seq, _, verdict in rows}
    assert all(by_seq[seq] == verdict for seq, verdict in printed.items()), f"seed {seed}"
    assert kills >= 3, f"seed {seed}: only {kills} kills"
    assert len(printed) > TOTAL // 2, f"seed {seed}"
    verdict_of = {payload: verdict for _, payload, verdict in rows}
    expected = {ADA: "admit", BEN: "attention", CAL: "deny", DOT: "admit"}
    assert {tid: verdict_of[fx.codes[tid]] for tid in expected} == expected
