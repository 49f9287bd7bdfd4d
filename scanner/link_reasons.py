"""Why a gate's link to the hub is down, in words: one table for the status bar, the log and
the CLI, so a dead network, a revoked device and a key mismatch never look alike.

Each sync or live error code (the hub's own codes from protocol/wire.py and
protocol/signing.py, and the gate's local ones below) maps to short words for the status bar
(at most 24 characters, shown after "OFFLINE · ") and a sentence saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.signing import BAD_SIGNATURE, MISSING_SIGNATURE, REPLAYED_NONCE, STALE_TIMESTAMP
from protocol.wire import DEVICE_DEACTIVATED, SEQ_CONFLICT, SEQ_CONFLICT_MESSAGE, UNKNOWN_DEVICE

# The gate's own codes for a cycle that failed before or without a hub answer.
HUB_UNREACHABLE = "hub_unreachable"
NOT_ENROLLED = "not_enrolled"
BAD_HUB_RESPONSE = "bad_hub_response"
SYNC_CRASHED = "sync_crashed"  # a bug in the sync cycle: logged with its traceback
MANIFEST_PREFIX = "manifest_"  # + the rejection code: the hub's manifest did not verify
HUB_KEYS_PREFIX = "hub_keys_"  # + the rejection code: the hub's key set did not verify
STORAGE_PREFIX = "storage_"  # + the fault (scanner/faults.py): the gate's own disk

MAX_WORDS = 24  # what the status bar has room for after "OFFLINE · " at 80 columns


@dataclass(frozen=True, slots=True)
class LinkReason:
    code: str
    words: str  # the status bar: "gate deactivated"
    advice: str  # the log and the CLI: what happened and what to do
    refusal: bool = False  # the hub refused this device: offline at once, not after retries


_REASONS: dict[str, LinkReason] = {
    r.code: r
    for r in (
        LinkReason(
            DEVICE_DEACTIVATED,
            "gate deactivated",
            "this gate was deactivated at the hub; ask a supervisor to enrol it again",
            refusal=True,
        ),
        LinkReason(
            UNKNOWN_DEVICE,
            "not known to hub",
            "the hub does not know this gate (enrolled with another hub, or the hub's "
            "database was replaced); enrol it again",
            refusal=True,
        ),
        LinkReason(
            BAD_SIGNATURE,
            "key mismatch",
            "the hub does not accept this gate's key (its database was replaced or copied); "
            "enrol it again",
            refusal=True,
        ),
        LinkReason(
            MISSING_SIGNATURE,
            "key mismatch",
            "the hub got an unsigned request from this gate; enrol it again",
            refusal=True,
        ),
        LinkReason(
            REPLAYED_NONCE,
            "request replayed",
            "the hub had seen this request before; the next try sends a fresh one",
        ),
        LinkReason(
            HUB_UNREACHABLE,
            "hub unreachable",
            "the hub cannot be reached; check the network and that the hub is running "
            "(scans stay on this gate and go up later)",
        ),
        LinkReason(
            NOT_ENROLLED,
            "not enrolled",
            "this gate has no hub identity; enrol it (gate-scanner enroll)",
        ),
        LinkReason(
            BAD_HUB_RESPONSE,
            "hub answered badly",
            "the hub's answer made no sense (a proxy or captive portal in the way?); retrying",
        ),
        LinkReason(SEQ_CONFLICT, "scans refused: re-enrol", SEQ_CONFLICT_MESSAGE.rstrip(".")),
        LinkReason(
            SYNC_CRASHED,
            "sync failed (bug)",
            "the sync cycle failed on an error in the gate's software (see the log); retrying",
        ),
    )
}


def link_reason(code: str | None, clock_offset_ms: int | None = None) -> LinkReason | None:
    """The reason for an error code; None for no error. A code not in the table (a hub error
    added later) still gets words: the gate never shows a bare code to staff."""
    if not code:
        return None
    known = _REASONS.get(code)
    if known is not None:
        return known
    if code == STALE_TIMESTAMP:
        return _clock_off(clock_offset_ms)
    if code.startswith(MANIFEST_PREFIX):
        return LinkReason(
            code,
            "ticket list refused",
            f"the hub's ticket list did not verify ({code}); the installed one stays in use "
            "and the next try asks for a full one",
        )
    if code.startswith(HUB_KEYS_PREFIX):
        return LinkReason(
            code,
            "hub keys refused",
            f"the hub's key set did not verify ({code}); the keys held stay in use; retrying",
        )
    if code.startswith(STORAGE_PREFIX):
        return LinkReason(
            code,
            "gate disk fault",
            f"this gate's disk failed ({code}); see the fault on screen and check the disk",
        )
    return LinkReason(code, "hub error", f"the hub answered {code}; retrying")


def _clock_off(offset_ms: int | None) -> LinkReason:
    if offset_ms is None:
        words, amount = "clock off > 5 min", "more than 5 min"
    else:
        minutes = max(1, round(abs(offset_ms) / 60_000))
        words, amount = f"clock off {minutes} min", f"about {minutes} min"
    return LinkReason(
        STALE_TIMESTAMP,
        words,
        f"this gate's clock is {amount} off the hub's, so the hub refused its request; it "
        "signs with corrected time from the next try (set the clock or NTP if this repeats)",
    )


def reason_words(code: str | None, clock_offset_ms: int | None = None) -> str | None:
    reason = link_reason(code, clock_offset_ms)
    return None if reason is None else reason.words


def is_refusal(code: str | None) -> bool:
    """The hub answered and refused this device: retrying cannot help, re-enrolling can."""
    reason = link_reason(code)
    return reason is not None and reason.refusal


def link_sentence(state: str, code: str | None, clock_offset_ms: int | None = None) -> str:
    """One line for the log and `stream --sync`: "offline — this gate was deactivated...".
    The code stays in it, for whoever greps the log."""
    reason = link_reason(code, clock_offset_ms)
    if reason is None:
        if state == "offline":
            return "offline — the hub answers again; back online after a run of good exchanges"
        return f"{state} — the hub answers; scans go up and the ticket list is kept current"
    return f"{state} — {reason.advice} ({reason.code})"
