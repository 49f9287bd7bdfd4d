"""One table of link reasons: every code the hub refuses a device with has words that fit
the status bar and a sentence that says what to do, spelled as the hub spells it."""

from __future__ import annotations

import pytest

from hub.auth import _SIGNING_MESSAGES
from protocol.wire import DEVICE_DEACTIVATED, SEQ_CONFLICT, UNKNOWN_DEVICE
from scanner.link_reasons import (
    MAX_WORDS,
    is_refusal,
    link_reason,
    link_sentence,
    reason_words,
)

HUB_DEVICE_CODES = [DEVICE_DEACTIVATED, UNKNOWN_DEVICE, SEQ_CONFLICT, *_SIGNING_MESSAGES]


@pytest.mark.parametrize("code", HUB_DEVICE_CODES)
def test_every_hub_refusal_code_has_its_own_words(code: str) -> None:
    reason = link_reason(code, clock_offset_ms=7 * 60_000)
    assert reason is not None and reason.code == code
    assert reason.words != "hub error"  # not the fallback for codes the table lacks
    assert 0 < len(reason.words) <= MAX_WORDS and reason.advice


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (DEVICE_DEACTIVATED, "gate deactivated"),
        (UNKNOWN_DEVICE, "not known to hub"),
        ("bad_signature", "key mismatch"),
        ("hub_unreachable", "hub unreachable"),
        ("bad_hub_response", "hub answered badly"),
        (SEQ_CONFLICT, "scans refused: re-enrol"),
        ("manifest_bad_signature", "ticket list refused"),
        ("storage_full", "gate disk fault"),
        ("http_502", "hub error"),
        (None, None),
    ],
)
def test_words_for_the_status_bar(code: str | None, words: str | None) -> None:
    assert reason_words(code) == words
    assert words is None or len(words) <= MAX_WORDS


def test_a_clock_far_off_says_by_how_much() -> None:
    assert reason_words("stale_timestamp", 7 * 60_000) == "clock off 7 min"
    assert reason_words("stale_timestamp", -125 * 60_000) == "clock off 125 min"
    assert reason_words("stale_timestamp") == "clock off > 5 min"


def test_only_a_hub_that_refuses_the_device_takes_the_gate_offline_at_once() -> None:
    assert {c for c in HUB_DEVICE_CODES if is_refusal(c)} == {
        DEVICE_DEACTIVATED,
        UNKNOWN_DEVICE,
        "bad_signature",
        "missing_signature",
    }
    assert not is_refusal("hub_unreachable") and not is_refusal("manifest_bad_signature")


def test_the_sentence_names_the_state_the_advice_and_the_code() -> None:
    assert link_sentence("offline", DEVICE_DEACTIVATED) == (
        "offline — this gate was deactivated at the hub; ask a supervisor to enrol it again "
        "(device_deactivated)"
    )
    assert link_sentence("online", None).startswith("online — the hub answers")
