"""Verdicts and reason codes: the one list both gate and hub speak.

Each reason has a stable machine code (stored in scan logs, sent over the wire) and a default
sentence a gate worker understands; the engine replaces the default with one that names the
fact behind it when it knows more.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    ADMIT = "admit"
    DENY = "deny"
    ATTENTION = "attention"  # admit only after staff confirm (check ID, wristband...)
    EXIT = "exit"


class Reason(StrEnum):
    # positive outcomes
    ADMITTED = "admitted"
    REENTRY = "reentry"
    EXITED = "exited"
    ATTENTION_REQUIRED = "attention_required"
    # what the code itself says
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_CODE = "expired_code"
    REPLAYED = "replayed"
    WRONG_EVENT = "wrong_event"
    WRONG_VENUE = "wrong_venue"
    # what the manifest says about the ticket
    UNKNOWN_TICKET = "unknown_ticket"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    LOCKED = "locked"
    BAD_STATUS = "bad_status"
    # time
    TOO_EARLY = "too_early"
    TOO_LATE = "too_late"
    EXPIRED = "expired"
    NOT_VALID_TODAY = "not_valid_today"
    # place and history
    ZONE_DENIED = "zone_denied"
    ALREADY_ADMITTED = "already_admitted"
    REENTRY_COOLDOWN = "reentry_cooldown"
    REENTRY_LIMIT = "reentry_limit"
    # the device itself
    DEVICE_NOT_AUTHORIZED = "device_not_authorized"
    MANIFEST_EXPIRED = "manifest_expired"


DEFAULT_MESSAGES: dict[Reason, str] = {
    Reason.ADMITTED: "Welcome in.",
    Reason.REENTRY: "Re-entry allowed.",
    Reason.EXITED: "Exit recorded.",
    Reason.ATTENTION_REQUIRED: "Check before admitting.",
    Reason.MALFORMED: (
        "This code cannot be read as a ticket. Ask the guest to show it again or use the box "
        "office."
    ),
    Reason.BAD_SIGNATURE: "Code is not genuine (signature does not match).",
    Reason.UNKNOWN_KEY: "Code signed by a key this gate does not trust.",
    Reason.EXPIRED_CODE: "Code has expired: ask the guest to refresh the ticket on their phone.",
    Reason.REPLAYED: "This exact code was already used on this device (copy or screenshot).",
    Reason.WRONG_EVENT: "Ticket is for a different event.",
    Reason.WRONG_VENUE: "Ticket is for a different venue.",
    Reason.UNKNOWN_TICKET: "Ticket not found for this event.",
    Reason.REVOKED: "Ticket has been revoked.",
    Reason.SUPERSEDED: "Old code: this ticket was transferred or reissued.",
    Reason.CANCELLED: "Ticket was cancelled.",
    Reason.REFUNDED: "Ticket was refunded.",
    Reason.LOCKED: "Ticket is locked.",
    Reason.BAD_STATUS: "Ticket is not in a state that allows entry.",
    Reason.TOO_EARLY: "Too early: check-in has not opened.",
    Reason.TOO_LATE: "Too late: check-in has closed.",
    Reason.EXPIRED: "Ticket has expired: the event is over.",
    Reason.NOT_VALID_TODAY: "Ticket is not valid today.",
    Reason.ZONE_DENIED: "Ticket does not give access to this zone.",
    Reason.ALREADY_ADMITTED: "Already admitted.",
    Reason.REENTRY_COOLDOWN: "Re-entry not yet allowed (cool-down).",
    Reason.REENTRY_LIMIT: "No re-entries left on this ticket.",
    Reason.DEVICE_NOT_AUTHORIZED: "This device is not authorised to scan here.",
    Reason.MANIFEST_EXPIRED: "Ticket list on this device is out of date: sync before scanning.",
}


# Codes a ticketing system printed (protocol/backend_codes.py), where the reason's default
# sentence would not tell staff what happened or what to do.
BLOCKED_CODE_MESSAGE = (
    "This code was blocked by the ticket seller: the ticket is locked. Send the guest to the "
    "box office."
)
UNLISTED_CODE_MESSAGE = (
    "Code not on this event's ticket list (sync the gate if the ticket was just sold), "
    "else send the guest to the box office."
)
SHARED_CODE_MESSAGE = (
    "This code is on several tickets of the list: send the guest to the box office."
)
DAMAGED_SIGNED_CODE_MESSAGE = "Damaged signed ticket code: ask the guest to show it again."


def default_message(reason: Reason) -> str:
    return DEFAULT_MESSAGES[reason]
