"""No holder name at rest on a gate: every file of its database (db, -wal, -shm) and its
export are searched, byte for byte, for the names of the guests it scanned.

Names are sealed in the manifest with each ticket's own code; the README promises a stolen
gate's disk gives none away. The verdict shown may name the guest; what is stored may not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import pytest

from manifests.admission import parse_context
from manifests.codec import encode_manifest
from manifests.model import Manifest
from manifests.sealing import seal_holder
from manifests.signing import sign_envelope
from protocol.credential import Credential
from protocol.parse import parse_credential
from protocol.reasons import Verdict
from scanner.service import GateService
from scanner.store import GateStore
from tests.gate_cli import gate_cli
from tests.scanner_fixtures import (
    ADA,
    ADA_NAME,
    BEN,
    DOT,
    HUB_KEY_ID,
    HUB_SEED,
    GateFixture,
    build,
    install,
)

NAMES = {ADA: ADA_NAME, BEN: "Benoît Mandelbrotson", DOT: "Dorothy Vaughanfield"}


def named(now_ms: int) -> GateFixture:
    """The shared fixture with a sealed name on ADA (admit), BEN (attention) and DOT."""
    fx = build(now_ms)
    header = fx.manifest.header
    rows = dict(fx.manifest.tickets)
    for tid, name in NAMES.items():
        parsed = parse_credential(fx.codes[tid], parse_context(header, now_ms))
        assert isinstance(parsed, Credential) and parsed.signature
        sealed = seal_holder(name, parsed.signature, tid)
        rows[tid] = dataclasses.replace(rows[tid], holder_sealed=sealed)
    manifest = Manifest(header, rows)
    envelope = sign_envelope(encode_manifest(manifest), HUB_KEY_ID, HUB_SEED)
    return GateFixture(manifest, envelope, fx.codes)


def name_forms(name: str) -> list[bytes]:
    """The name, its surname alone, and both as JSON escapes them (non-ASCII as \\uXXXX)."""
    forms = {name, name.split()[-1]}
    forms |= {json.dumps(f)[1:-1] for f in set(forms)}
    return sorted(f.encode() for f in forms)


def leaks(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [
            f"{path.name}: {f.decode()}" for n in NAMES.values() for f in name_forms(n) if f in data
        ]
    return found


def gate_files(db: Path) -> list[Path]:
    files = sorted(db.parent.glob(db.name + "*"))
    assert db in files
    return files


def test_scans_through_the_service_leave_no_name_on_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Scanned while the store is open, so -wal and -shm are there to be searched too; the
    verdicts on screen still name the guests."""
    caplog.set_level(logging.DEBUG)
    now = time.time_ns() // 1_000_000
    fx = named(now)
    db = tmp_path / "gate.db"
    with GateStore(db) as store:
        install(store, fx, now)
        service = GateService(store, clock=lambda: now)
        outcomes = {tid: service.scan(fx.codes[tid]) for tid in (ADA, BEN, DOT)}
        shown = {tid: o.decision for tid, o in outcomes.items() if o is not None}
        service.confirm(outcomes[BEN].seq, admitted=True)  # type: ignore[union-attr]
        again = service.scan(fx.codes[ADA], manual=True)  # already admitted: a deny
        assert again is not None and again.decision.verdict is Verdict.DENY
        assert {tid: d.display.holder for tid, d in shown.items()} == NAMES
        assert ADA_NAME in shown[ADA].message  # the screen greets the guest by name
        stored = [r.message for r in store.scans()]
        assert stored[0] == "Welcome in." and len(stored) == 4
        files = gate_files(db)
        assert {p.name for p in files} >= {"gate.db", "gate.db-wal", "gate.db-shm"}
        assert leaks(files) == []
        export = tmp_path / "export.json"
        store.export_json(export)
        assert leaks([export]) == []
    assert leaks(gate_files(db)) == []
    assert not [
        r.getMessage() for r in caplog.records if any(n in r.getMessage() for n in NAMES.values())
    ]


def test_scans_through_the_cli_leave_no_name_on_disk_or_in_the_export(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000  # the CLI runs on the wall clock
    fx = named(now)
    db = tmp_path / "gate.db"
    with GateStore(db) as store:
        install(store, fx, now)
    admitted = gate_cli(db, "check", fx.codes[ADA], "--json")
    assert admitted.returncode == 0, admitted.stderr
    shown = json.loads(admitted.stdout)
    assert shown["verdict"] == "admit" and shown["display"]["holder"] == ADA_NAME
    streamed = gate_cli(db, "stream", stdin=f"{fx.codes[DOT]}\n{fx.codes[BEN]}\n")
    assert streamed.stdout.splitlines() == ["2 admit admitted", "3 attention attention_required"]
    export = tmp_path / "scans.json"
    exported = gate_cli(db, "export-scans", str(export))
    assert exported.returncode == 0, exported.stderr
    scans = json.loads(export.read_text())["scans"]
    assert [(s["ticket_id"], s["message"]) for s in scans[:2]] == [
        (ADA, "Welcome in."),
        (DOT, "Welcome in."),
    ]
    assert leaks([*gate_files(db), export]) == []
