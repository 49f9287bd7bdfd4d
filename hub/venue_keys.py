"""A venue's TicketToken keys (protocol/legacy.py's formats A, B and C) as the hub takes them
in, keeps them and hands them to gates.

They come in through `gate-hub venue-keys` and the admin API, are checked here once (the same
rules for both, stated as patterns /openapi.json shows), and are sealed with the hub's
secrets key (hub/secret_box.py) before the store sees them: the database holds ciphertext
and short fingerprints, never a key. A manifest build opens them again into the
`LegacyKeys` gates try, current set first. Nothing here prints, logs or raises a key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.errors import matches
from hub.schema import LEGACY_KEY_STATES, LEGACY_MS_HIGH, LEGACY_MS_LOW
from hub.secret_box import SecretBox, SecretUnreadable
from hub.store_api import NewVenueKeySet
from protocol.credential import LegacyKeys
from protocol.legacy import AES_KEY_BYTES

log = logging.getLogger("hub")

NEXT, CURRENT, RETIRED, REMOVED = LEGACY_KEY_STATES
TRUSTED = (CURRENT, NEXT, RETIRED)  # the sets gates trust, in the order they try them
DEFAULTS = LegacyKeys()  # TicketToken's rotation interval and format C validity: 30 s
# An AES key as TicketToken's config holds it: one line of text, of which AES-256 uses the
# first 32 bytes (so at least 32 characters; each is one byte or more in UTF-8).
AES_KEY_PATTERN = rf"^[^\x00-\x1f\x7f]{{{AES_KEY_BYTES},512}}$"
HMAC_SECRET_PATTERN = r"^(?:[0-9a-fA-F]{2}){1,256}$"  # format C's HMAC secret, as hex
FORMATS = {"A": "format_a_key", "B": "format_b_key", "C": "format_c_secret_hex"}  # API fields
TIMES = ("rotation_interval_ms", "format_c_validity_ms")


def option(name: str) -> str:
    """The `gate-hub venue-keys` option of an admin API field: --format-a-key for
    format_a_key; refusals name whichever the caller gave."""
    return "--" + name.replace("_", "-")


class VenueKeysRefused(Exception):
    """Keys or a key command that cannot be right; the message says why and what to do,
    never a key. `code` names the case for the admin API."""

    def __init__(self, message: str, code: str = "invalid_field") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One key set's secrets as TicketToken's QR service holds them: its AES keys as text,
    its HMAC secret as bytes. Kept out of repr."""

    format_a_key: str | None = field(default=None, repr=False)
    format_b_key: str | None = field(default=None, repr=False)
    format_c_secret: bytes | None = field(default=None, repr=False)

    def fingerprints(self) -> dict[str, str]:
        """Format -> the first 8 hex digits of SHA-256 of its key (of the UTF-8 text for A
        and B, of the secret's bytes for C): enough to tell keys apart and to compare with
        TicketToken's config (`printf %s "$KEY" | sha256sum`), never enough to use one."""
        return {
            name: hashlib.sha256(raw).hexdigest()[:8]
            for name, raw in (
                ("A", None if self.format_a_key is None else self.format_a_key.encode()),
                ("B", None if self.format_b_key is None else self.format_b_key.encode()),
                ("C", self.format_c_secret),
            )
            if raw is not None
        }

    def sealed(self, box: SecretBox, bound_to: str) -> bytes:
        text = json.dumps(
            {
                "a": self.format_a_key,
                "b": self.format_b_key,
                "c": None if self.format_c_secret is None else self.format_c_secret.hex(),
            }
        )
        return box.seal(text, bound_to)

    @classmethod
    def opened(cls, box: SecretBox, sealed: bytes, bound_to: str) -> KeyMaterial:
        """SecretUnreadable when this hub's secrets key does not open it."""
        doc = json.loads(box.open(sealed, bound_to))
        c = doc["c"]
        return cls(doc["a"], doc["b"], None if c is None else bytes.fromhex(c))


def key_material(a_key: Any, b_key: Any, c_secret_hex: Any, *, cli: bool = False) -> KeyMaterial:
    """The secrets of a new key set, each checked against the pattern /openapi.json states;
    at least one. The refusal names the field (the option, for the CLI) and what is wrong,
    never its value."""
    name = option if cli else str
    given = dict(zip(FORMATS.values(), (a_key, b_key, c_secret_hex), strict=True))
    for field_name, value in given.items():
        pattern = HMAC_SECRET_PATTERN if field_name == FORMATS["C"] else AES_KEY_PATTERN
        if value is not None and not (isinstance(value, str) and matches(pattern, value)):
            raise VenueKeysRefused(f"{name(field_name)} {_problem(field_name, value)}")
    if all(v is None for v in given.values()):
        listed = ", ".join(name(f) for f in FORMATS.values())
        raise VenueKeysRefused(f"give at least one key: {listed}", "missing_field")
    return KeyMaterial(a_key, b_key, None if c_secret_hex is None else bytes.fromhex(c_secret_hex))


def _problem(name: str, value: Any) -> str:
    if not isinstance(value, str):
        return "must be text"
    if name == FORMATS["C"]:
        return "must be the HMAC secret as hex digits (an even number, at most 512)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "must be one line of text, without control characters"
    return (
        f"is {len(value)} characters: TicketToken's AES keys are {AES_KEY_BYTES} to 512 (AES-256"
        f" uses the first {AES_KEY_BYTES} bytes)"
    )


def times(
    rotation_interval_ms: int | None, format_c_validity_ms: int | None, *, cli: bool = False
) -> tuple[int, int]:
    """The set's rotation interval (format A) and format C validity; TicketToken's 30 s each
    when not given."""
    out = []
    for name, value in zip(TIMES, (rotation_interval_ms, format_c_validity_ms), strict=True):
        value = getattr(DEFAULTS, name) if value is None else value
        if not LEGACY_MS_LOW <= value <= LEGACY_MS_HIGH:
            raise VenueKeysRefused(
                f"{option(name) if cli else name} must be from {LEGACY_MS_LOW} to"
                f" {LEGACY_MS_HIGH} milliseconds"
            )
        out.append(value)
    return out[0], out[1]


def bound_to(venue_id: str, key_set: int) -> str:
    """What a set's sealed secrets are bound to: moved to another row, they do not open."""
    return f"venue_legacy_keys/{venue_id}/{key_set}"


@dataclass(frozen=True, slots=True)
class NewKeys:
    """A key set as `gate-hub venue-keys` and the admin API take it in: its secrets and times,
    checked whole before anything changes."""

    material: KeyMaterial
    rotation_interval_ms: int
    format_c_validity_ms: int

    @classmethod
    def checked(
        cls, secrets: Iterable[Any], intervals: Iterable[int | None], *, cli: bool = False
    ) -> NewKeys:
        """The set of these secrets (formats A, B, C) and times (TIMES), or VenueKeysRefused.
        The times come first: a CLI reads its key files (or standard input) only for a set
        whose numbers are right."""
        interval, validity = times(*intervals, cli=cli)
        return cls(key_material(*secrets, cli=cli), interval, validity)

    def kept(self, box: SecretBox, venue_id: str, state: str) -> NewVenueKeySet:
        """What the store keeps of it: the secrets sealed to the set's (venue, number), so
        they open nowhere else, and their fingerprints."""
        return NewVenueKeySet(
            venue_id,
            state,
            lambda key_set: self.material.sealed(box, bound_to(venue_id, key_set)),
            self.material.fingerprints(),
            self.rotation_interval_ms,
            self.format_c_validity_ms,
        )


def key_set_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """What anyone may see of a key set: never a key."""
    prints = json.loads(row["fingerprints_json"])
    return {
        "key_set": row["key_set"],
        "venue_id": row["venue_id"],
        "state": row["state"],
        "formats": sorted(prints),
        "fingerprints": prints,
        "rotation_interval_ms": row["rotation_interval_ms"],
        "format_c_validity_ms": row["format_c_validity_ms"],
        "created_ms": row["created_ms"],
        "activated_ms": row["activated_ms"],
        "retired_ms": row["retired_ms"],
    }


def legacy_keys(rows: Iterable[Mapping[str, Any]], box: SecretBox) -> LegacyKeys:
    """The keys gates try, from a venue's trusted sets in the order they try them (current,
    next, retired newest first; hub/store_venue_keys.py reads them so): each format's keys
    in that order, the rotation interval and format C validity of the first set. A set this
    hub's secrets key cannot open is left out and logged (by its number, never a key): the
    venue's other keys must still reach its gates."""
    a: list[bytes] = []
    b: list[bytes] = []
    c: list[bytes] = []
    first: Mapping[str, Any] | None = None
    for row in rows:
        where = bound_to(row["venue_id"], row["key_set"])
        try:
            keys = KeyMaterial.opened(box, row["secrets_sealed"], where)
        except SecretUnreadable:
            log.error(
                "venue %s: TicketToken key set %s left out of its manifests: this hub's"
                " secrets key (%s) does not open it",
                row["venue_id"],
                row["key_set"],
                box.key_path,
            )
            continue
        if first is None:
            first = row
        a += [keys.format_a_key.encode()] if keys.format_a_key is not None else []
        b += [keys.format_b_key.encode()] if keys.format_b_key is not None else []
        c += [keys.format_c_secret] if keys.format_c_secret is not None else []
    if first is None:
        return DEFAULTS
    return LegacyKeys(
        tuple(a),
        tuple(b),
        tuple(c),
        first["rotation_interval_ms"],
        first["format_c_validity_ms"],
    )
