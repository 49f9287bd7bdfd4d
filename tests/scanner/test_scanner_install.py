"""A manifest install never makes a scan wait and never shows a reader half of it (issue #11):
the full manifest goes into a staging table in chunks and is swapped in by one short
transaction, and readers have connections of their own. Each install is made observable
through its chunk callback, which runs on the installing thread between two chunks: whatever
the test does there happens while the install is still under way."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from manifests.codec import encode_manifest
from manifests.model import Manifest
from manifests.signing import sign_envelope
from protocol.reasons import Verdict
from scanner.install import install_manifest
from scanner.service import GateService, ScanOutcome
from scanner.store import INSTALL_CHUNK_ROWS, GateStore
from tests import factories
from tests.scanner_fixtures import ADA, HUB_KEY_ID, HUB_SEED, Clock, GateFixture, build, install

NOW = 1_790_000_000_000
FILLER = "ffff"  # every filler ticket id starts with it, so a lookup can count them
OLD_FILLERS = INSTALL_CHUNK_ROWS + 7
NEW_FILLERS = 3 * INSTALL_CHUNK_ROWS + 11  # at least three chunks
HANG_GUARD_S = 20  # only so a broken build fails instead of hanging; never a speed limit


def filler_id(i: int) -> str:
    return f"{FILLER}{i:04x}-0000-4000-8000-{i:012x}"


def signed_full(fx: GateFixture, revision: int, fillers: int) -> bytes:
    """The fixture's four tickets plus `fillers` more, as the hub would sign it."""
    tickets = dict(fx.manifest.tickets)
    for i in range(fillers):
        tickets[filler_id(i)] = factories.row(filler_id(i))
    header = dataclasses.replace(fx.manifest.header, revision=revision)
    return sign_envelope(encode_manifest(Manifest(header, tickets)), HUB_KEY_ID, HUB_SEED)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[GateService, GateFixture]]:
    store = GateStore(tmp_path / "gate.db")
    fx = build(NOW)
    install(store, fx, NOW)
    install_manifest(store, signed_full(fx, 2, OLD_FILLERS), NOW)
    yield GateService(store, clock=Clock(NOW)), fx
    store.close()


class Reader(threading.Thread):
    """Counts the ticket table over and over from a thread of its own, the ways the app does:
    the store's count and the F2 lookup (which went around the store's lock)."""

    def __init__(self, service: GateService) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.counts: set[int] = set()
        self.found: set[int] = set()
        self.reads = 0
        self.turn = threading.Condition()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            found = len(self.service.lookup(FILLER, limit=10 * NEW_FILLERS))
            count = self.service.store.ticket_count()
            with self.turn:
                self.found.add(found)
                self.counts.add(count)
                self.reads += 1
                self.turn.notify_all()

    def wait_for_reads(self, n: int) -> None:
        """Block the caller (the installing thread) until `n` more reads are done."""
        with self.turn:
            target = self.reads + n
            assert self.turn.wait_for(lambda: self.reads >= target, HANG_GUARD_S), (
                "the reader could not read while the manifest installed"
            )


def test_readers_see_the_old_manifest_or_the_new_never_half(
    gate: tuple[GateService, GateFixture],
) -> None:
    service, fx = gate
    reader = Reader(service)
    reader.start()
    chunks: list[tuple[int, int]] = []

    def between_chunks(done: int, total: int) -> None:
        chunks.append((done, total))
        reader.wait_for_reads(2)

    try:
        install_manifest(
            service.store, signed_full(fx, 3, NEW_FILLERS), NOW, on_chunk=between_chunks
        )
    finally:
        reader.stop.set()
        reader.join()
    assert len(chunks) >= 3 and chunks[-1] == (4 + NEW_FILLERS, 4 + NEW_FILLERS)
    assert reader.found <= {OLD_FILLERS, NEW_FILLERS}
    assert reader.counts <= {4 + OLD_FILLERS, 4 + NEW_FILLERS}
    assert service.store.ticket_count() == 4 + NEW_FILLERS
    assert service.store.manifest_revision() == 3


def test_a_scan_during_an_install_does_not_wait_for_it(
    gate: tuple[GateService, GateFixture], tmp_path: Path
) -> None:
    service, fx = gate
    outcomes: list[ScanOutcome | None] = []
    revision_meanwhile: list[int | None] = []

    def between_chunks(done: int, total: int) -> None:
        if outcomes:
            return
        scanner = threading.Thread(target=lambda: outcomes.append(service.scan(fx.codes[ADA])))
        scanner.start()
        scanner.join(HANG_GUARD_S)
        assert not scanner.is_alive(), "the scan waited for the manifest install"
        outcome = outcomes[0]
        assert outcome is not None and outcome.decision.verdict is Verdict.ADMIT
        with GateStore(tmp_path / "gate.db") as other:  # committed, on disk, mid-install
            stored = other.scan(outcome.seq)
            revision_meanwhile.append(other.manifest_revision())
        assert stored is not None and stored.verdict is Verdict.ADMIT

    install_manifest(service.store, signed_full(fx, 3, NEW_FILLERS), NOW, on_chunk=between_chunks)
    assert len(outcomes) == 1 and revision_meanwhile == [2]
    assert service.store.manifest_revision() == 3
    assert service.header() is not None and service.header().revision == 3  # type: ignore[union-attr]
    service.clock.advance(3_000)  # type: ignore[attr-defined]  # past the re-read window
    again = service.scan(fx.codes[ADA])  # the new manifest sees the scan made during its install
    assert again is not None and again.decision.verdict is Verdict.DENY


def test_an_install_cut_off_between_chunks_leaves_the_old_manifest(
    gate: tuple[GateService, GateFixture], tmp_path: Path
) -> None:
    service, fx = gate

    def power_cut(done: int, total: int) -> None:
        if done < total:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        install_manifest(service.store, signed_full(fx, 3, NEW_FILLERS), NOW, on_chunk=power_cut)
    assert service.store.manifest_revision() == 2
    assert service.store.ticket_count() == 4 + OLD_FILLERS
    service.store.close()
    with GateStore(tmp_path / "gate.db") as store:  # reopened: the next install goes through
        assert store.ticket_count() == 4 + OLD_FILLERS
        install_manifest(store, signed_full(fx, 3, NEW_FILLERS), NOW)
        assert store.ticket_count() == 4 + NEW_FILLERS and store.manifest_revision() == 3
        assert store.ticket(filler_id(NEW_FILLERS - 1)) == factories.row(filler_id(NEW_FILLERS - 1))


def test_the_replaced_manifest_leaves_nothing_behind(
    gate: tuple[GateService, GateFixture], tmp_path: Path
) -> None:
    """The old ticket table and envelope are emptied behind the install, on a thread of the
    store's own; once it is done, the file holds one ticket table and one envelope."""
    service, fx = gate
    install_manifest(service.store, signed_full(fx, 3, NEW_FILLERS), NOW)
    service.store.wait_cleaned()
    raw = sqlite3.connect(tmp_path / "gate.db")
    tables = {
        name for (name,) in raw.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    raw.close()
    assert {t for t in tables if t.startswith(("tickets", "manifest"))} == {
        "tickets",
        "manifest",
        "manifest_install",
    }
    assert service.store.ticket_count() == 4 + NEW_FILLERS
