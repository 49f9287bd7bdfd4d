"""One online check as plain data: what the request established (device, gate, payload,
time) and the event's facts at the revision it was judged against. Plain data, so the check
can be judged in the check writer process (hub/check_writer.py) as well as in this one; the
event's facts travel once per revision, not once per check (`context_id`). A check pickles
as a flat tuple: a dataclass's default pickling cost more than the rest of the hand-off."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from hub.engine_facts import scan_fact, ticket_row
from manifests.admission import decide, parse_context
from manifests.admission_types import Decision, Direction, GateContext
from manifests.model import ManifestHeader, Scope
from protocol.credential import CodeMatch, ParseResult
from protocol.parse import parse_credential
from protocol.reasons import Verdict

# Looks up a code the hub issued: (ticket id, generation) -> credential text (see
# ParseContext.issued).
Issued = Callable[[str, int], str | None]
# Finds a code a ticketing system printed: (event id, code) -> the tickets that carry it (see
# ParseContext.code_lookup).
BackendCodes = Callable[[str, str], Sequence[CodeMatch]]
ContextKey = tuple[str, int, Scope]  # event, revision, the gate's scope


@dataclass(frozen=True, slots=True)
class CheckContext:
    """The event as checks judge it at one manifest revision, for one gate's scope; `id`
    is how checks name it on the way to the writer."""

    id: int
    event_id: str
    revision: int
    header: ManifestHeader
    type_names: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class OnlineCheck:
    """`seq` is the device's scan-log sequence number: (device_id, seq) stored once."""

    device_id: str
    seq: int
    payload: str
    now_ms: int
    gate: GateContext
    zone: str | None
    context_id: int  # names a CheckContext the writer was given

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        g = self.gate
        gate = (g.venue_id, g.gate_id, g.gate_name, g.direction.value, g.zones, g.authorized)
        return _check, (
            self.device_id,
            self.seq,
            self.payload,
            self.now_ms,
            gate,
            self.zone,
            self.context_id,
        )

    @property
    def raw_hash(self) -> str:
        """What the scan row keeps of the payload: a stored check is the same read as a
        retry with the same seq only if this matches."""
        return hashlib.sha256(self.payload.encode()).hexdigest()

    def identify(
        self, context: CheckContext, issued: Issued, backend_codes: BackendCodes
    ) -> ParseResult:
        """Parse and verify the credential (a code the hub issued itself is matched against
        its record instead of a signature check; its key id is still checked). A code a
        ticketing system printed is looked up as it is: the hub holds the codes, gates only
        their hashes."""
        codes = partial(backend_codes, context.event_id)
        parse = replace(parse_context(context.header, self.now_ms, codes=codes), issued=issued)
        return parse_credential(self.payload, parse)

    def judge(
        self,
        context: CheckContext,
        credential: ParseResult,
        ticket: Mapping[str, Any] | None,
        scans: Sequence[Mapping[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The decision's JSON and the scan row to store, from the ticket's stored row and
        every counted scan of it so far."""
        row = None
        if ticket is not None and ticket["event_id"] == context.event_id:
            row = ticket_row(ticket, context.type_names)
        holder = ticket["holder_name"] if row is not None and ticket else None
        facts = [scan_fact(s) for s in scans]
        decision: Decision = decide(
            credential, context.header, row, facts, self.gate, self.now_ms, holder
        )
        counted = decision.verdict in (Verdict.ADMIT, Verdict.EXIT)
        as_json = decision.to_json()
        detail = {
            "decision": as_json,
            "gate": self.gate.gate_name,
            "online": True,
            "payload": self.payload,
        }
        stored = {
            "event_id": context.event_id,
            "ticket_id": credential.ticket_id,
            "raw_hash": self.raw_hash,
            "verdict": str(decision.verdict),
            "reason": str(decision.reason),
            "direction": str(self.gate.direction),
            "gate_id": self.gate.gate_id,
            "zone": self.zone,
            "scanned_ms": self.now_ms,
            "manifest_revision": context.revision,
            "counted": int(counted),
            "detail_json": json.dumps(detail),
        }
        return as_json, stored


def _check(
    device_id: str,
    seq: int,
    payload: str,
    now_ms: int,
    gate: tuple[str, str, str, str, tuple[str, ...], bool],
    zone: str | None,
    context_id: int,
) -> OnlineCheck:
    venue_id, gate_id, name, direction, zones, authorized = gate
    place = GateContext(venue_id, gate_id, name, Direction(direction), zones, authorized)
    return OnlineCheck(device_id, seq, payload, now_ms, place, zone, context_id)
