"""Hub reconciliation: merged order by corrected time, duplicates and conflicts, re-entry,
refused scans, idempotence, and the incremental per-ticket path agreeing with the full one."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from hub.reconcile import (
    Conflict,
    HubScan,
    Outcome,
    ReconcileReport,
    ScanRef,
    reconcile,
    reconcile_ticket,
)
from manifests.admission_types import Direction
from manifests.model import TicketStatus
from manifests.policy import HOUR_MS, MINUTE_MS, TEMPLATES
from protocol.reasons import Reason, Verdict
from tests.factories import header, ms, row

T = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
U = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
NOON = ms("2026-06-12T18:00:00")  # Friday, day 1, doors open
TICKETS = {T: row(T), U: row(U)}


def scan(
    device: str,
    seq: int,
    at_ms: int,
    *,
    ticket: str | None = T,
    gate: str | None = None,
    direction: Direction = Direction.ENTRY,
    offset: int = 0,
    arrival: int = 0,
    verdict: Verdict | None = None,
    reason: Reason | None = None,
    confirmed: bool | None = None,
) -> HubScan:
    """A scan as `device` recorded it: `at_ms` on its own clock, `offset` its measured error."""
    if verdict is None:
        verdict = Verdict.EXIT if direction is Direction.EXIT else Verdict.ADMIT
    if reason is None:
        reason = {Verdict.EXIT: Reason.EXITED, Verdict.ADMIT: Reason.ADMITTED}.get(
            verdict, Reason.ATTENTION_REQUIRED
        )
    return HubScan(
        device_id=device,
        seq=seq,
        gate_name=gate or f"Gate {device[-1]}",
        direction=direction,
        ticket_id=ticket,
        device_time_ms=at_ms,
        clock_offset_ms=offset,
        hub_arrival=arrival,
        verdict=verdict,
        reason=reason,
        confirmed=confirmed,
    )


def outcomes(report: ReconcileReport) -> dict[tuple[str, int], Outcome]:
    return {(o.device_id, o.seq): o.outcome for o in report.outcomes}


def test_two_offline_gates_admit_one_ticket_earlier_corrected_time_wins() -> None:
    later = scan("dev-1", 5, NOON + 4 * MINUTE_MS, gate="North 1", arrival=1)
    earlier = scan("dev-2", 9, NOON + 1 * MINUTE_MS, gate="South 2", arrival=2)
    report = reconcile(header(), TICKETS, [later, earlier])
    assert outcomes(report) == {("dev-2", 9): Outcome.SUCCESS, ("dev-1", 5): Outcome.DUPLICATE}
    assert report.conflicts == (
        Conflict(
            T,
            winner=ScanRef("dev-2", 9, "South 2", NOON + MINUTE_MS),
            duplicate=ScanRef("dev-1", 5, "North 1", NOON + 4 * MINUTE_MS),
            reason=Reason.ALREADY_ADMITTED,
        ),
    )
    dup = next(o for o in report.outcomes if o.outcome is Outcome.DUPLICATE)
    assert "South 2" in dup.message  # the engine's own sentence names the first gate
    assert report.counts() == {Outcome.SUCCESS: 1, Outcome.DUPLICATE: 1, Outcome.ERROR: 0}


def test_a_third_admission_still_loses_to_the_first_not_to_the_duplicate() -> None:
    scans = [scan(f"dev-{i}", 1, NOON + i * MINUTE_MS) for i in (1, 2, 3)]
    report = reconcile(header(), TICKETS, scans)
    assert [o.outcome for o in report.outcomes] == [
        Outcome.SUCCESS,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
    ]
    assert {c.winner.device_id for c in report.conflicts} == {"dev-1"}
    assert [c.duplicate.device_id for c in report.conflicts] == ["dev-2", "dev-3"]


def test_a_clock_two_hours_fast_is_corrected_by_its_measured_offset() -> None:
    # dev-1's clock runs 2 h fast: on its own clock it scanned last, in truth it was first
    fast = scan("dev-1", 1, NOON + 2 * HOUR_MS + MINUTE_MS, offset=-2 * HOUR_MS, arrival=2)
    right = scan("dev-2", 1, NOON + 3 * MINUTE_MS, arrival=1)
    report = reconcile(header(), TICKETS, [right, fast])
    assert outcomes(report) == {("dev-1", 1): Outcome.SUCCESS, ("dev-2", 1): Outcome.DUPLICATE}
    (conflict,) = report.conflicts
    assert conflict.winner == ScanRef("dev-1", 1, "Gate 1", NOON + MINUTE_MS)
    # without the offset the raw clocks would have picked the other winner
    raw = reconcile(header(), TICKETS, [right, scan("dev-1", 1, fast.device_time_ms)])
    assert raw.conflicts[0].winner.device_id == "dev-2"


def test_equal_corrected_times_are_ordered_by_hub_arrival() -> None:
    a = scan("dev-1", 1, NOON, arrival=20)
    b = scan("dev-2", 1, NOON + HOUR_MS, offset=-HOUR_MS, arrival=10)
    report = reconcile(header(), TICKETS, [a, b])
    assert report.conflicts[0].winner.device_id == "dev-2"
    swapped = reconcile(header(), TICKETS, [scan("dev-1", 1, NOON, arrival=5), b])
    assert swapped.conflicts[0].winner.device_id == "dev-1"


def test_festival_exit_and_reentry_sequences_make_no_conflict() -> None:
    hdr = header(TEMPLATES["festival"])
    scans = [
        scan("dev-1", 1, NOON, gate="North 1"),
        scan("dev-5", 1, NOON + HOUR_MS, gate="Exit 5", direction=Direction.EXIT),
        scan("dev-2", 1, NOON + 2 * HOUR_MS, gate="South 2"),
        scan("dev-5", 2, NOON + 3 * HOUR_MS, gate="Exit 5", direction=Direction.EXIT),
        scan("dev-1", 2, NOON + 4 * HOUR_MS, gate="North 1"),
    ]
    report = reconcile(hdr, TICKETS, scans)
    assert report.conflicts == ()
    assert {o.outcome for o in report.outcomes} == {Outcome.SUCCESS}
    assert [o.reason for o in report.outcomes] == [
        Reason.ADMITTED,
        Reason.EXITED,
        Reason.REENTRY,
        Reason.EXITED,
        Reason.REENTRY,
    ]


def test_festival_two_gates_within_the_duplicate_window_is_a_conflict() -> None:
    hdr = header(TEMPLATES["festival"])
    scans = [scan("dev-1", 1, NOON), scan("dev-2", 1, NOON + 10 * MINUTE_MS)]
    report = reconcile(hdr, TICKETS, scans)
    assert [o.outcome for o in report.outcomes] == [Outcome.SUCCESS, Outcome.DUPLICATE]
    assert len(report.conflicts) == 1


def test_a_duplicate_does_not_use_up_the_ticket_reentry_allowance() -> None:
    """Concert: one re-entry. A duplicate admission must not count as the re-entry."""
    hdr = header(TEMPLATES["concert"])
    scans = [
        scan("dev-1", 1, NOON),
        scan("dev-2", 1, NOON + 2 * MINUTE_MS),  # screenshot at another gate: duplicate
        scan("dev-5", 1, NOON + HOUR_MS, direction=Direction.EXIT),
        scan("dev-1", 2, NOON + 2 * HOUR_MS),  # the one re-entry
        scan("dev-5", 2, NOON + 3 * HOUR_MS, direction=Direction.EXIT),
        scan("dev-2", 2, NOON + 4 * HOUR_MS),  # over the limit
    ]
    report = reconcile(hdr, TICKETS, scans)
    assert [o.outcome for o in report.outcomes] == [
        Outcome.SUCCESS,
        Outcome.DUPLICATE,
        Outcome.SUCCESS,
        Outcome.SUCCESS,
        Outcome.SUCCESS,
        Outcome.DUPLICATE,
    ]
    assert report.outcomes[3].reason is Reason.REENTRY
    assert [c.reason for c in report.conflicts] == [Reason.ALREADY_ADMITTED, Reason.REENTRY_LIMIT]
    assert report.conflicts[1].winner == ScanRef("dev-1", 2, "Gate 1", NOON + 2 * HOUR_MS)


def test_refused_and_unconfirmed_scans_are_errors_and_never_conflicts() -> None:
    scans = [
        scan("dev-1", 1, NOON, verdict=Verdict.DENY, reason=Reason.BAD_SIGNATURE),
        scan("dev-2", 1, NOON + MINUTE_MS),
        scan("dev-3", 1, NOON + 2 * MINUTE_MS, verdict=Verdict.DENY, reason=Reason.REPLAYED),
        scan("dev-3", 2, NOON + 3 * MINUTE_MS, verdict=Verdict.ATTENTION, confirmed=False),
        scan("dev-3", 3, NOON + 4 * MINUTE_MS, verdict=Verdict.ATTENTION, confirmed=None),
        scan("dev-4", 1, NOON, ticket=None, verdict=Verdict.DENY, reason=Reason.MALFORMED),
    ]
    report = reconcile(header(), TICKETS, scans)
    assert outcomes(report) == {
        ("dev-1", 1): Outcome.ERROR,
        ("dev-2", 1): Outcome.SUCCESS,  # the refused scan before it did not let anyone in
        ("dev-3", 1): Outcome.ERROR,
        ("dev-3", 2): Outcome.ERROR,
        ("dev-3", 3): Outcome.ERROR,
        ("dev-4", 1): Outcome.ERROR,
    }
    assert report.conflicts == ()
    by_key = {(o.device_id, o.seq): o for o in report.outcomes}
    assert by_key[("dev-1", 1)].reason is Reason.BAD_SIGNATURE
    assert by_key[("dev-4", 1)].ticket_id is None and report.outcomes[-1].device_id == "dev-4"
    # a movement with no ticket id on record cannot be merged with anything
    (odd,) = reconcile(header(), TICKETS, [scan("dev-4", 2, NOON, ticket=None)]).outcomes
    assert (odd.outcome, odd.reason) == (Outcome.ERROR, Reason.UNKNOWN_TICKET)


def test_confirmed_attention_is_a_movement() -> None:
    scans = [
        scan("dev-1", 1, NOON, verdict=Verdict.ATTENTION, confirmed=True),
        scan("dev-2", 1, NOON + MINUTE_MS),
    ]
    report = reconcile(header(), TICKETS, scans)
    assert [o.outcome for o in report.outcomes] == [Outcome.SUCCESS, Outcome.DUPLICATE]


def test_unknown_or_no_longer_admissible_tickets_are_errors_not_duplicates() -> None:
    refunded = {T: row(T, status=TicketStatus.REFUNDED)}
    scans = [scan("dev-1", 1, NOON), scan("dev-2", 1, NOON + MINUTE_MS)]
    report = reconcile(header(), refunded, scans)
    assert [(o.outcome, o.reason) for o in report.outcomes] == [
        (Outcome.ERROR, Reason.REFUNDED),
        (Outcome.ERROR, Reason.REFUNDED),
    ]
    assert report.conflicts == ()
    unknown = reconcile(header(), {}, scans)
    assert {(o.outcome, o.reason) for o in unknown.outcomes} == {
        (Outcome.ERROR, Reason.UNKNOWN_TICKET)
    }


def test_times_are_rejudged_at_the_corrected_time() -> None:
    # the device thought it was Friday evening; in truth it scanned before check-in opened
    early = ms("2026-06-12T08:00:00")
    s = scan("dev-1", 1, NOON, offset=early - NOON)
    (o,) = reconcile(header(), TICKETS, [s]).outcomes
    assert (o.outcome, o.reason, o.corrected_ms) == (Outcome.ERROR, Reason.TOO_EARLY, early)


def random_scans(seed: int, n: int) -> list[HubScan]:
    rng = random.Random(seed)
    seqs: dict[str, int] = defaultdict(int)
    out = []
    for _ in range(n):
        dev = f"dev-{rng.randint(1, 6)}"
        seqs[dev] += 1
        direction = Direction.EXIT if dev == "dev-6" else Direction.ENTRY
        verdict = rng.choice([None, None, None, Verdict.DENY, Verdict.ATTENTION])
        out.append(
            scan(
                dev,
                seqs[dev],
                NOON + rng.randint(0, 8 * HOUR_MS),
                ticket=rng.choice([T, U, None]),
                direction=direction,
                offset=rng.randint(-3, 3) * 20 * MINUTE_MS,
                arrival=rng.randint(0, 5),  # repeats: ties fall through to device and seq
                verdict=None if direction is Direction.EXIT else verdict,
                reason=Reason.ZONE_DENIED if verdict is Verdict.DENY else None,
                confirmed=rng.choice([True, False, None]),
            )
        )
    return out


@pytest.mark.parametrize(
    ("template", "seed"), [("standard", 1), ("festival", 2), ("concert", 3), ("conference", 4)]
)
def test_idempotent_order_independent_and_incremental_equals_full(template: str, seed: int) -> None:
    hdr = header(TEMPLATES[template])
    scans = random_scans(seed, 120)
    first = reconcile(hdr, TICKETS, scans)
    assert reconcile(hdr, TICKETS, scans) == first
    shuffled = scans[:]
    random.Random(1).shuffle(shuffled)
    assert reconcile(hdr, TICKETS, shuffled) == first
    assert len(first.outcomes) == len(scans)
    assert {(o.device_id, o.seq) for o in first.outcomes} == {(s.device_id, s.seq) for s in scans}
    # incremental: each ticket on its own, as the hub does for tickets an upload touched
    for tid in (T, U):
        mine = [s for s in shuffled if s.ticket_id == tid]
        done, clashes = reconcile_ticket(hdr, TICKETS[tid], mine)
        assert done == [o for o in first.outcomes if o.ticket_id == tid]
        assert clashes == [c for c in first.conflicts if c.ticket_id == tid]
    # every conflict's winner came first, and named a SUCCESS; the loser a DUPLICATE
    status = outcomes(first)
    for c in first.conflicts:
        assert c.winner.corrected_ms <= c.duplicate.corrected_ms
        assert status[(c.winner.device_id, c.winner.seq)] is Outcome.SUCCESS
        assert status[(c.duplicate.device_id, c.duplicate.seq)] is Outcome.DUPLICATE
    dups = sum(o.outcome is Outcome.DUPLICATE for o in first.outcomes)
    assert dups == len(first.conflicts)


def test_reconcile_ticket_refuses_mixed_or_repeated_scans() -> None:
    with pytest.raises(ValueError, match="exactly one ticket"):
        reconcile_ticket(
            header(), TICKETS[T], [scan("dev-1", 1, NOON), scan("dev-2", 1, NOON, ticket=U)]
        )
    with pytest.raises(ValueError, match="repeat"):
        reconcile_ticket(header(), TICKETS[T], [scan("dev-1", 1, NOON), scan("dev-1", 1, NOON)])
    with pytest.raises(ValueError, match="at least one"):
        reconcile_ticket(header(), TICKETS[T], [])


@pytest.mark.parametrize("template", ["standard", "festival", "concert"])
def test_a_new_upload_rejudges_only_from_its_first_scan_on(template: str) -> None:
    hdr = header(TEMPLATES[template])
    everything = [s for s in random_scans(len(template), 150) if s.ticket_id == T]
    by_time = sorted(everything, key=lambda s: s.corrected_ms)
    n = len(by_time)
    assert n > 20
    old = by_time[: n // 2] + by_time[2 * n // 3 : 3 * n // 4]  # the rest comes in late
    before, _ = reconcile_ticket(hdr, TICKETS[T], old)
    settled = {(o.device_id, o.seq): o for o in before}
    done, clashes = reconcile_ticket(hdr, TICKETS[T], everything, settled)
    full = reconcile(hdr, TICKETS, everything)
    first_new = min(
        full.outcomes.index(o) for o in full.outcomes if (o.device_id, o.seq) not in settled
    )
    assert done == list(full.outcomes[first_new:])
    assert clashes == [
        c for c in full.conflicts if full.outcomes.index(_find(full, c.duplicate)) >= first_new
    ]
    assert full.outcomes[:first_new] == tuple(before[:first_new])  # the reused prefix held
    assert len(done) < len(everything)


def _find(report: ReconcileReport, ref: ScanRef):
    return next(o for o in report.outcomes if (o.device_id, o.seq) == (ref.device_id, ref.seq))
