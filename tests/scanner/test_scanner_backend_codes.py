"""pretix's own codes at a gate, offline: a manifest with code hashes installed the way the
CLI installs it (signed envelope, staged tables), then scans through GateService and the
admission engine. Random secrets and pretix_sig1 codes admit; superseded, blocked, unlisted,
forged and out-of-window codes do not; deltas and later manifests move the codes on; and no
code is anywhere on the gate's disk."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from contextlib import closing
from pathlib import Path

from manifests.codec import encode_delta, encode_manifest
from manifests.model import Manifest, ManifestDelta, RetiredCode, TicketRow
from manifests.sealing import seal_holder
from manifests.signing import sign_envelope
from protocol.backend_codes import code_digest, code_seal, pretix_public_key
from protocol.credential import CodeMatch, CodeState
from protocol.reasons import Reason, Verdict
from scanner.install import install_manifest
from scanner.service import GateService
from scanner.store import GateStore
from tests import factories
from tests.pretix_codes import PRETIX, pretix_code, random_secret
from tests.scanner_fixtures import (
    ADA,
    DOT,
    HUB_KEY_ID,
    HUB_SEED,
    NOW,
    Clock,
    GateFixture,
    build,
    install,
)
from tests.vectors.releases import copy_release

KEY = bytes(range(7, 39))
EVE = "0e000000-0000-4000-8000-00000000000e"  # a code that replaced an older one
FAY = "0f000000-0000-4000-8000-00000000000f"  # the seller blocked her code
GUS = "01000000-0000-4000-8000-000000000001"  # a signed code valid from 2026-10-01 only
HAL = "02000000-0000-4000-8000-000000000002"  # gets a new code in a delta
_rng = random.Random(11)
CODES = {name: random_secret(_rng) for name in ("ada", "eve", "eve_old", "fay", "hal", "hal_new")}
UNLISTED = random_secret(_rng)
SIGNED, SIGNED_LATER = pretix_code(0), pretix_code(2)  # NOW is inside the first one's window


def digest(code: str) -> bytes:
    return code_digest(KEY, code)


def retired(code: str, state: CodeState) -> tuple[RetiredCode, ...]:
    return (RetiredCode(digest(code), state),)


def coded(revision: int = 1) -> GateFixture:
    """The shared gate fixture (ADA..DOT around NOW) with pretix codes on ADA, DOT and four
    more tickets, and the event's code keys in the header."""
    fx = build(NOW, revision)
    rows = dict(fx.manifest.tickets)
    rows[ADA] = dataclasses.replace(
        rows[ADA],
        code_digest=digest(CODES["ada"]),
        holder_sealed=seal_holder("Ada Lovelace", code_seal(CODES["ada"]), ADA),
    )
    rows[DOT] = dataclasses.replace(
        rows[DOT],
        code_digest=digest(SIGNED),
        holder_sealed=seal_holder("Dorothy Vaughan", code_seal(SIGNED), DOT),
    )
    extra = [
        factories.row(
            EVE,
            code_digest=digest(CODES["eve"]),
            retired_codes=retired(CODES["eve_old"], CodeState.SUPERSEDED),
        ),
        factories.row(
            FAY,
            code_digest=digest(CODES["fay"]),
            retired_codes=retired(CODES["fay"], CodeState.BLOCKED),
        ),
        factories.row(GUS, code_digest=digest(SIGNED_LATER)),
        factories.row(HAL, code_digest=digest(CODES["hal"])),
    ]
    rows.update((r.ticket_id, r) for r in extra)
    header = dataclasses.replace(
        fx.manifest.header,
        code_lookup_key=KEY,
        code_signing_keys=(pretix_public_key(PRETIX["pubkey"]),),
    )
    manifest = Manifest(header, rows)
    return GateFixture(manifest, sign_envelope(encode_manifest(manifest), HUB_KEY_ID, HUB_SEED))


def scan(service: GateService, code: str) -> tuple[Verdict, Reason, str | None]:
    outcome = service.scan(code)
    assert outcome is not None
    d = outcome.decision
    return d.verdict, d.reason, d.ticket_id


def forged() -> str:
    """The first pretix code with one character of its signature changed."""
    flip = "B" if SIGNED[5] == "A" else "A"
    return SIGNED[:5] + flip + SIGNED[6:]


def test_a_gate_admits_pretix_codes_from_its_manifest_offline(tmp_path: Path) -> None:
    with GateStore(tmp_path / "gate.db") as store:
        install(store, coded(), NOW)
        service = GateService(store, clock=Clock(NOW), dedupe_window_ms=0)
        # the holder's name opens with the code the holder carries, as with native codes
        for code, name in ((CODES["ada"], "Ada Lovelace"), (SIGNED, "Dorothy Vaughan")):
            shown = service.preview(code)
            assert (shown.verdict, shown.display.holder) == (Verdict.ADMIT, name)
            assert shown.message == f"Welcome in. {name}."
        assert scan(service, CODES["ada"]) == (Verdict.ADMIT, Reason.ADMITTED, ADA)
        assert scan(service, SIGNED) == (Verdict.ADMIT, Reason.ADMITTED, DOT)
        assert scan(service, CODES["eve"]) == (Verdict.ADMIT, Reason.ADMITTED, EVE)
        # the code is the ticket: a second read is the ticket's second entry
        assert scan(service, CODES["ada"]) == (Verdict.DENY, Reason.ALREADY_ADMITTED, ADA)
        # a reader's framing around the code changes nothing
        assert scan(service, f"]Q1{CODES['hal']}\r\n") == (Verdict.ADMIT, Reason.ADMITTED, HAL)


def test_codes_that_no_longer_admit_are_refused_with_their_reason(tmp_path: Path) -> None:
    with GateStore(tmp_path / "gate.db") as store:
        install(store, coded(), NOW)
        service = GateService(store, clock=Clock(NOW), dedupe_window_ms=0)
        assert scan(service, CODES["eve_old"]) == (Verdict.DENY, Reason.SUPERSEDED, EVE)
        blocked = service.scan(CODES["fay"])
        assert blocked is not None
        assert (blocked.decision.reason, blocked.decision.ticket_id) == (Reason.LOCKED, FAY)
        assert "blocked by the ticket seller" in blocked.decision.message
        assert scan(service, UNLISTED) == (Verdict.DENY, Reason.UNKNOWN_TICKET, None)
        assert scan(service, forged()) == (Verdict.DENY, Reason.BAD_SIGNATURE, None)
        assert scan(service, SIGNED_LATER) == (Verdict.DENY, Reason.TOO_EARLY, GUS)
        assert scan(service, pretix_code(1)) == (Verdict.DENY, Reason.UNKNOWN_TICKET, None)
        # native codes read as before at the same gate
        fx = build(NOW)
        assert scan(service, fx.codes[DOT]) == (Verdict.ADMIT, Reason.ADMITTED, DOT)


def test_no_code_is_on_the_gates_disk(tmp_path: Path) -> None:
    db = tmp_path / "gate.db"
    secrets = [*CODES.values(), UNLISTED, SIGNED, SIGNED_LATER]
    with GateStore(db) as store:
        install(store, coded(), NOW)
        service = GateService(store, clock=Clock(NOW), dedupe_window_ms=0)
        for code in secrets:
            service.scan(code)
        store.export_json(tmp_path / "export.json")
        files = [*sorted(tmp_path.glob("gate.db*")), tmp_path / "export.json"]
        assert {p.name for p in files} >= {"gate.db", "gate.db-wal"}
        on_disk = b"".join(p.read_bytes() for p in files)
        assert digest(CODES["ada"]) in on_disk  # the hashes are there, and only they
        leaked = [c for c in secrets if c.encode() in on_disk or c[::-1].encode() in on_disk]
        assert leaked == []


def test_a_delta_moves_a_ticket_to_its_new_code_and_drops_a_removed_ones(tmp_path: Path) -> None:
    first = coded()
    with GateStore(tmp_path / "gate.db") as store:
        install(store, first, NOW)
        moved = dataclasses.replace(
            first.manifest.tickets[HAL],
            code_digest=digest(CODES["hal_new"]),
            retired_codes=retired(CODES["hal"], CodeState.SUPERSEDED),
        )
        unblocked = dataclasses.replace(first.manifest.tickets[FAY], retired_codes=())
        delta = ManifestDelta(
            dataclasses.replace(first.manifest.header, revision=2),
            1,
            (moved, unblocked),
            (GUS, EVE),
        )
        install_manifest(store, sign_envelope(encode_delta(delta), HUB_KEY_ID, HUB_SEED), NOW)
        assert store.ticket(HAL) == moved
        assert store.code_matches(digest(SIGNED_LATER)) == []  # GUS is gone, codes and all
        assert store.code_matches(digest(CODES["eve_old"])) == []  # EVE too
        service = GateService(store, clock=Clock(NOW), dedupe_window_ms=0)
        assert scan(service, CODES["hal"]) == (Verdict.DENY, Reason.SUPERSEDED, HAL)
        assert scan(service, CODES["hal_new"]) == (Verdict.ADMIT, Reason.ADMITTED, HAL)
        assert scan(service, CODES["fay"]) == (Verdict.ADMIT, Reason.ADMITTED, FAY)
        assert scan(service, SIGNED_LATER) == (Verdict.DENY, Reason.UNKNOWN_TICKET, None)


def test_a_later_full_manifest_replaces_the_codes_whole(tmp_path: Path) -> None:
    with GateStore(tmp_path / "gate.db") as store:
        install(store, coded(), NOW)
        assert set(store.code_matches(digest(CODES["fay"]))) == {
            CodeMatch(FAY, CodeState.CURRENT),
            CodeMatch(FAY, CodeState.BLOCKED),
        }
        later = coded(revision=2)
        rows = dict(later.manifest.tickets)
        rows[FAY] = dataclasses.replace(rows[FAY], retired_codes=())
        del rows[EVE]
        manifest = Manifest(later.manifest.header, rows)
        envelope = sign_envelope(encode_manifest(manifest), HUB_KEY_ID, HUB_SEED)
        install_manifest(store, envelope, NOW)
        store.wait_cleaned()
        assert store.code_matches(digest(CODES["fay"])) == [CodeMatch(FAY, CodeState.CURRENT)]
        assert store.code_matches(digest(CODES["eve_old"])) == []
        assert store.ticket(FAY) == rows[FAY] and store.ticket(HAL) == rows[HAL]
        # the installed table finds a code by its key, not by reading every row; the one it
        # replaced is gone
        with closing(sqlite3.connect(store.path)) as conn:
            plans = conn.execute(
                "EXPLAIN QUERY PLAN SELECT ticket_id FROM ticket_codes WHERE digest = ?", [b"x"]
            ).fetchall()
            tables = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
            names = sorted(name for (name,) in tables if "codes" in name)
        assert "USING PRIMARY KEY (digest=?)" in plans[0][-1], plans
        assert names == ["ticket_codes"]


def test_a_gate_of_an_earlier_release_takes_a_manifest_with_codes(tmp_path: Path) -> None:
    path = tmp_path / "gate.db"
    copy_release("gate_release_010fbb0.db", path)  # made at NOW by the release before steps
    with GateStore(path) as store:
        install_manifest(store, coded(revision=2).envelope, NOW)
        service = GateService(store, clock=Clock(NOW + 120_000), dedupe_window_ms=0)
        assert scan(service, CODES["eve"]) == (Verdict.ADMIT, Reason.ADMITTED, EVE)
        assert scan(service, CODES["eve_old"]) == (Verdict.DENY, Reason.SUPERSEDED, EVE)
        assert store.ticket(EVE) == coded().manifest.tickets[EVE]


def test_rows_without_codes_read_back_as_they_were(tmp_path: Path) -> None:
    with GateStore(tmp_path / "gate.db") as store:
        install(store, build(NOW), NOW)
        row = store.ticket(ADA)
        assert isinstance(row, TicketRow) and row.code_digest is None and row.retired_codes == ()
        assert store.code_matches(digest(CODES["ada"])) == []
