"""The gate's decision loop in-process on a real SQLite file: commit before return, header
cache per manifest revision, manual admits under the same rules, the venue PIN."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from manifests.codec import encode_delta, encode_manifest
from manifests.delta import diff
from manifests.model import Manifest
from manifests.signing import ManifestRejected, sign_envelope
from protocol.reasons import Reason, Verdict
from scanner.install import install_manifest
from scanner.pin import check_pin, set_pin
from scanner.service import GateService
from scanner.store import GateStore, StoreError
from tests.scanner_fixtures import (
    ADA,
    BEN,
    CAL,
    DOT,
    HUB_KEY_ID,
    HUB_SEED,
    Clock,
    GateFixture,
    opened_gate,
)

NOW = 1_790_000_000_000


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[GateService, GateFixture, Clock]]:
    with opened_gate(tmp_path / "gate.db", NOW) as opened:
        yield opened


def test_scan_is_on_disk_when_it_returns(
    gate: tuple[GateService, GateFixture, Clock], tmp_path: Path
) -> None:
    service, fx, _ = gate
    outcome = service.scan(fx.codes[ADA])
    assert outcome is not None and outcome.decision.verdict is Verdict.ADMIT
    with GateStore(tmp_path / "gate.db") as other:  # a second connection sees it
        record = other.scan(outcome.seq)
    assert record is not None and record.ticket_id == ADA and record.at_ms == NOW


def test_preview_stores_nothing(gate: tuple[GateService, GateFixture, Clock]) -> None:
    service, fx, _ = gate
    assert service.preview(fx.codes[DOT]).verdict is Verdict.ADMIT
    assert service.store.scans() == []
    assert service.preview(fx.codes[DOT]).verdict is Verdict.ADMIT  # still not admitted


def test_dedupe_window_slides_then_lets_a_rescan_through(
    gate: tuple[GateService, GateFixture, Clock],
) -> None:
    service, fx, clock = gate
    assert service.scan(fx.codes[ADA]) is not None
    clock.advance(2_000)
    assert service.scan(fx.codes[ADA]) is None
    clock.advance(2_000)
    assert service.scan(fx.codes[ADA]) is None  # still held under the reader
    clock.advance(2_600)
    again = service.scan(fx.codes[ADA])
    assert again is not None and again.decision.reason is Reason.ALREADY_ADMITTED


def test_header_is_cached_per_revision(
    gate: tuple[GateService, GateFixture, Clock],
) -> None:
    service, fx, _ = gate
    first = service.header()
    assert first is not None and first is service.header()  # decoded once
    without_ben = {k: v for k, v in fx.manifest.tickets.items() if k != BEN}
    header2 = dataclasses.replace(fx.manifest.header, revision=2)
    envelope = sign_envelope(encode_manifest(Manifest(header2, without_ben)), HUB_KEY_ID, HUB_SEED)
    install_manifest(service.store, envelope, NOW)
    assert service.header() is not first and service.header().revision == 2  # type: ignore[union-attr]
    outcome = service.scan(fx.codes[BEN])
    assert outcome is not None and outcome.decision.reason is Reason.UNKNOWN_TICKET
    with pytest.raises(ManifestRejected) as err:
        install_manifest(service.store, fx.envelope, NOW)  # replaying revision 1
    assert err.value.code == "revision_chain"
    assert service.store.manifest_revision() == 2
    header3 = dataclasses.replace(fx.manifest.header, revision=3)
    envelope3 = sign_envelope(encode_manifest(Manifest(header3, without_ben)), HUB_KEY_ID, HUB_SEED)
    with pytest.raises(ManifestRejected) as err:  # not the event this gate asked for
        install_manifest(service.store, envelope3, NOW, event_id="another-event")
    assert err.value.code == "wrong_event" and service.store.manifest_revision() == 2


def test_manual_admit_follows_the_same_rules(
    gate: tuple[GateService, GateFixture, Clock],
) -> None:
    service, _, clock = gate
    refunded = service.manual_admit(CAL)
    assert refunded.decision.reason is Reason.REFUNDED
    first = service.manual_admit(DOT)
    assert first.decision.verdict is Verdict.ADMIT and first.manual
    clock.advance(60_000)
    assert service.manual_admit(DOT).decision.reason is Reason.ALREADY_ADMITTED
    assert [r.payload for r in service.store.scans()] == [f"manual:{t}" for t in (CAL, DOT, DOT)]


def test_attention_confirm_counts_once(gate: tuple[GateService, GateFixture, Clock]) -> None:
    service, fx, clock = gate
    outcome = service.scan(fx.codes[BEN])
    assert outcome is not None and outcome.decision.verdict is Verdict.ATTENTION
    assert service.store.counters().admitted == 0
    service.confirm(outcome.seq, True)
    assert service.store.counters().admitted == 1
    with pytest.raises(StoreError):
        service.confirm(outcome.seq, False)  # decided once
    clock.advance(60_000)
    again = service.scan(fx.codes[BEN])
    assert again is not None and again.decision.reason is Reason.ALREADY_ADMITTED


def test_recent_scans_newest_first(gate: tuple[GateService, GateFixture, Clock]) -> None:
    service, _, clock = gate
    for i in range(5):
        clock.advance(3_000)
        service.scan(f"junk-{i}")
    assert [r.seq for r in service.recent_scans(3)] == [5, 4, 3]


def test_pin_is_hashed_and_checked(gate: tuple[GateService, GateFixture, Clock]) -> None:
    service, _, _ = gate
    with pytest.raises(ValueError):
        set_pin(service.store, "12a4")
    set_pin(service.store, "4711")
    stored = service.store.config("venue_pin")
    assert "4711" not in str(stored)
    assert check_pin(service.store, "4711") and not check_pin(service.store, "4712")


def test_stale_manifest_is_flagged(gate: tuple[GateService, GateFixture, Clock]) -> None:
    service, _, clock = gate
    assert service.status()["manifest"]["stale"] is False
    clock.advance(2 * 60 * 60_000)
    status = service.status()
    assert status["manifest"]["stale"] is True and status["manifest"]["expired"] is False


def test_signed_delta_moves_the_gate_to_the_next_revision(
    gate: tuple[GateService, GateFixture, Clock],
) -> None:
    service, fx, _ = gate
    old = fx.manifest
    tickets = dict(old.tickets)
    tickets[DOT] = dataclasses.replace(tickets[DOT], status="REFUNDED")
    new = Manifest(dataclasses.replace(old.header, revision=2), tickets)
    envelope = sign_envelope(encode_delta(diff(old, new)), HUB_KEY_ID, HUB_SEED)
    assert install_manifest(service.store, envelope, NOW).revision == 2
    assert service.header() is not None and service.header().revision == 2  # type: ignore[union-attr]
    outcome = service.scan(fx.codes[DOT])
    assert outcome is not None and outcome.decision.reason is Reason.REFUNDED
    # Replaying the same delta is refused; the gate stays on revision 2.
    with pytest.raises(ManifestRejected) as err:
        install_manifest(service.store, envelope, NOW)
    assert err.value.code == "revision_chain" and service.store.manifest_revision() == 2
