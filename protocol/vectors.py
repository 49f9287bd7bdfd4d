"""Run a vectors file shaped like tickettoken-legacy.json through the public parser, in file
order on one simulated device, so a venue can check its keys against known codes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.credential import Credential, ParseContext
from protocol.legacy import legacy_keys_from_vectors
from protocol.parse import parse_credential
from protocol.reasons import Reason

# The vectors speak of a code's own expiry as "expired"; our reason for that is expired_code
# (`expired` is kept for tickets past the event).
_EXPECT_ALIASES = {"expired": Reason.EXPIRED_CODE.value}


@dataclass(frozen=True, slots=True)
class VectorOutcome:
    index: int
    expect: str
    got: str
    note: str
    ok: bool


def run_vectors(doc: Mapping[str, Any]) -> list[VectorOutcome]:
    legacy = legacy_keys_from_vectors(dict(doc))
    seen: set[str] = set()
    outcomes = []
    for i, vector in enumerate(doc["vectors"]):
        ctx = ParseContext(
            now_ms=int(doc["now_ms"]),
            event_id=doc.get("event_id"),
            legacy=legacy,
            seen_nonces=seen,
        )
        result = parse_credential(vector["payload"], ctx)
        if isinstance(result, Credential):
            got = "valid"
            ok_fields = vector.get("ticket_id") in (None, result.ticket_id)
            if result.nonce is not None:
                seen.add(result.nonce)  # the device records a nonce once the scan is kept
        else:
            got, ok_fields = result.reason.value, True
        expect = _EXPECT_ALIASES.get(vector["expect"], vector["expect"])
        outcomes.append(
            VectorOutcome(
                i, vector["expect"], got, vector.get("note", ""), got == expect and ok_fields
            )
        )
    return outcomes
