"""Keyboard-wedge assembly and the one-scan-per-code window, fed with exact times."""

from __future__ import annotations

import pytest

from hardware.dedupe import Deduper
from hardware.wedge import WedgeAssembler

CODE = "6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDE"


def typed(text: str, start: int = 0, per_char: int = 3) -> list[tuple[str, int]]:
    return [(c, start + i * per_char) for i, c in enumerate(text)]


def run(events: list[tuple[str, int]], poll_at: int | None = None, **kw: int) -> list[str]:
    wedge = WedgeAssembler(**kw)
    out: list[str] = []
    for key, t in events:
        out += wedge.feed(key, t)
    if poll_at is not None:
        out += wedge.poll(poll_at)
    return out


@pytest.mark.parametrize(
    ("events", "poll_at", "expected"),
    [
        # Enter-terminated line (character or Textual key name)
        ([*typed(CODE), ("\r", 200)], None, [CODE]),
        ([*typed(CODE), ("enter", 200)], None, [CODE]),
        ([*typed(CODE), ("\r", 200), ("\n", 201)], None, [CODE]),  # CR LF: one payload
        # Tab-terminated
        ([*typed(CODE), ("\t", 200)], None, [CODE]),
        ([*typed(CODE), ("tab", 200)], None, [CODE]),
        # no terminator: completed by the idle gap (poll), not before it
        (typed(CODE), 3 * (len(CODE) - 1) + 80, [CODE]),
        (typed(CODE), 3 * (len(CODE) - 1) + 79, []),
        # two bursts back to back, separated only by a gap: the second key flushes the first
        ([*typed("AAAA1111"), *typed("BBBB2222", start=500)], 2000, ["AAAA1111", "BBBB2222"]),
        # stray key presses (shorter than min_length) are dropped
        ([("x", 0), ("\r", 5)], None, []),
        ([("x", 0), ("y", 300)], 1000, []),
        # a lone Enter is nothing
        ([("\r", 0)], None, []),
        # spaces are part of base45 and kept; control characters are ignored
        ([*typed(" A B C "), ("\x1b", 30), ("\r", 40)], None, [" A B C "]),
    ],
)
def test_wedge_assembly(
    events: list[tuple[str, int]], poll_at: int | None, expected: list[str]
) -> None:
    assert run(events, poll_at) == expected


def test_configurable_gap_and_pending() -> None:
    wedge = WedgeAssembler(idle_gap_ms=30)
    assert wedge.feed_text("ABCDEF", 0, per_char_ms=10) == []
    assert wedge.pending == "ABCDEF"
    assert wedge.poll(50 + 29) == []
    assert wedge.poll(50 + 30) == ["ABCDEF"]
    assert wedge.pending == ""
    assert wedge.poll(1000) == []


def test_slow_human_typing_splits_into_dropped_fragments() -> None:
    # 150 ms between keys: every key is its own "burst", each below min_length.
    assert run(typed("HELLO", per_char=150), poll_at=2000) == []


@pytest.mark.parametrize(
    ("reads_ms", "expected"),
    [
        ([0], [True]),
        ([0, 2499], [True, False]),
        ([0, 2500], [True, True]),  # the edge: exactly the window apart is a new scan
        ([0, 1000, 2000, 3000, 4000], [True, False, False, False, False]),  # held: slides
        ([0, 2000, 4600], [True, False, True]),
    ],
)
def test_dedupe_window_edges(reads_ms: list[int], expected: list[bool]) -> None:
    dedupe = Deduper(2500)
    assert [dedupe.accept("CODE", t) for t in reads_ms] == expected


def test_dedupe_is_per_payload_and_configurable() -> None:
    dedupe = Deduper(window_ms=100)
    assert dedupe.accept("A", 0)
    assert dedupe.accept("B", 10)
    assert not dedupe.accept("A", 50)
    assert dedupe.accept("A", 150)
    dedupe.reset()
    assert dedupe.accept("A", 151)
    with pytest.raises(ValueError):
        Deduper(-1)


def test_dedupe_memory_is_bounded() -> None:
    dedupe = Deduper(window_ms=1000, max_tracked=10)
    for i in range(100):
        assert dedupe.accept(f"code-{i}", i)  # all recent, all distinct: all new
    assert len(dedupe._last_seen) <= 10
    assert not dedupe.accept("code-99", 100)  # the newest is still remembered
