"""What a scanned code turns into: a parsed credential or a typed refusal, and the facts
a parser needs (keys, the event it scans for, the time), all passed in.

Nothing here touches a disk, a socket or a clock: the gate and the hub build a
`ParseContext` from their own stores and call `protocol.parse.parse_credential`.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from protocol.reasons import Reason, default_message


class CredentialFormat(StrEnum):
    NATIVE = "native"  # Ed25519-signed, base45 (protocol/native.py)
    LEGACY_A = "legacy_a"  # TKT:<hex iv>:<hex AES-256-CBC>, rotating
    LEGACY_B = "legacy_b"  # <b64 iv>:<b64 AES-256-CBC>, static
    LEGACY_B_UNSIGNED = "legacy_b_unsigned"  # bare base64 JSON: always refused
    LEGACY_C = "legacy_c"  # ticketId:timestamp:nonce:hmac
    BACKEND_CODE = "backend_code"  # a code a ticketing system printed, found in the ticket list
    PRETIX_SIG1 = "pretix_sig1"  # pretix's Ed25519-signed code (protocol/backend_codes.py)
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Credential:
    """A code that passed every credential-level check (format, signature, freshness, event)."""

    format: CredentialFormat
    ticket_id: str
    event_id: str | None = None
    event_code: int | None = None  # native codes carry a short code the manifest binds
    key_id: int | None = None
    generation: int | None = None  # None: the format carries no generation (legacy)
    ticket_type: int | None = None  # native: code into the manifest's ticket type list
    zone: int | None = None  # native: code into the manifest's zone list
    valid_from_ms: int | None = None
    valid_until_ms: int | None = None
    day_mask: int = 0  # bit i: valid on the local date of valid_from + i days; 0 = every day
    comp: bool = False
    attention: bool = False
    rotating: bool = False
    nonce: str | None = None  # legacy C: accepted once per device
    user_id: str | None = None
    # What the holder's name is sealed with (manifests/sealing.py): a native code's signature,
    # a backend code's protocol/backend_codes.code_seal.
    signature: bytes | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A code that cannot be admitted on its own terms; `message` says why in plain words a
    gate worker can act on; `detail` keeps a decoder's technical words for logs and support,
    never for the screen."""

    reason: Reason
    message: str
    format: CredentialFormat = CredentialFormat.UNKNOWN
    ticket_id: str | None = None
    detail: str | None = None

    @classmethod
    def of(
        cls,
        reason: Reason,
        fmt: CredentialFormat = CredentialFormat.UNKNOWN,
        message: str | None = None,
        ticket_id: str | None = None,
        detail: str | None = None,
    ) -> Refusal:
        return cls(reason, message or default_message(reason), fmt, ticket_id, detail)


ParseResult = Credential | Refusal


@dataclass(frozen=True, slots=True)
class LegacyKeys:
    """The TicketToken backend's per-venue secrets, as a venue enabled them: every key of a
    format a code may have been made with, the one TicketToken issues with now first (then
    one announced for its next rotation and retired ones still kept), so codes issued around
    a key rotation keep scanning. The keys stay out of repr: nothing logs them by accident."""

    format_a_keys: tuple[bytes, ...] = field(default=(), repr=False)  # UTF-8; AES: 32 bytes
    format_b_keys: tuple[bytes, ...] = field(default=(), repr=False)
    format_c_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    rotation_interval_ms: int = 30_000
    format_c_validity_ms: int = 30_000


class CodeState(StrEnum):
    """What a code a ticketing system printed still does for its ticket."""

    CURRENT = "current"  # the ticket's code now: admits
    SUPERSEDED = "superseded"  # replaced by a newer code (pretix: a revoked secret)
    BLOCKED = "blocked"  # the seller blocked it: the ticket is locked while it is


@dataclass(frozen=True, slots=True)
class CodeMatch:
    """A ticket the ticket list holds a scanned backend code for, and in which state."""

    ticket_id: str
    state: CodeState


# Every ticket the list holds a scanned code for (normally one); protocol/backend_codes.py
# decides between several.
CodeLookup = Callable[[str], Sequence[CodeMatch]]


@dataclass(frozen=True, slots=True)
class ParseContext:
    """Everything parsing may consult. `seen_nonces` is the device's replay memory, read only
    here; the caller records a nonce after it has committed the scan."""

    now_ms: int
    issuer_keys: Mapping[int, bytes] = field(default_factory=dict)  # key id -> Ed25519 public
    event_id: str | None = None  # the event this gate scans for; None: accept any event
    event_codes: Mapping[int, str] = field(default_factory=dict)  # native short code -> id
    legacy: LegacyKeys = field(default_factory=LegacyKeys)
    rotation_secret: bytes | None = None  # per-event secret for rotating native codes
    rotation_period_s: int = 15
    seen_nonces: Container[str] = frozenset()
    # The issuer's own record of the native codes it issued, by (ticket id, generation): a
    # static code identical to its record is genuine without a signature check (the hub keeps
    # every code it issued). The key id is still checked, so a retired key's codes still fail.
    issued: Callable[[str, int], str | None] | None = None
    # Codes a ticketing system printed (pretix secrets, protocol/backend_codes.py): the
    # event's public keys for the codes it signs (pretix_sig1, raw Ed25519), and where a
    # scanned code's ticket is found (a gate: by the code's keyed hash; the hub: its own
    # table). None: the event has no such codes, and text no other format reads is malformed.
    code_signing_keys: tuple[bytes, ...] = ()
    code_lookup: CodeLookup | None = None
