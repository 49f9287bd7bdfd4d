"""The gate's decision loop: one payload in, one durably stored verdict out.

Installing manifests is scanner/install.py, the hub keys scanner/hub_keys.py, the venue PIN
scanner/pin.py; this module only reads what they keep.

Every front end (Textual app, `gate-scanner check`, `gate-scanner stream`) goes through
`GateService.scan`, so there is exactly one order of steps: parse, look up, decide, COMMIT,
then (and only then) feedback and display. The manifest header is decoded once per installed
revision and cached; a scan costs a few primary-key lookups and one fsynced insert.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hardware.dedupe import DEFAULT_WINDOW_MS, Deduper
from hardware.feedback import Feedback
from manifests.admission import decide, parse_context
from manifests.admission_types import Decision, Direction, GateContext
from manifests.model import ManifestHeader, TicketRow
from protocol.backend_codes import hashed_lookup
from protocol.credential import Credential, CredentialFormat
from protocol.parse import parse_credential
from protocol.reasons import Reason, Verdict, default_message
from protocol.sealed_payload import PayloadSealer
from scanner.clock import Clock, wall_clock_ms
from scanner.hub_keys import trusted_hub_keys
from scanner.install import stamped_header
from scanner.pin import has_pin
from scanner.scanlog import ScanRecord, nameless
from scanner.settings import HUB_URL, STALE_AFTER_MS
from scanner.store import GateStore, Stamp

MANUAL_PREFIX = "manual:"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """A scan that is on disk: `seq` is its place in the gap-free scan log."""

    seq: int
    decision: Decision
    at_ms: int
    payload: str
    manual: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "at_ms": self.at_ms, "manual": self.manual}
        return {**out, **self.decision.to_json()}


def after_check(decision: Decision, admitted: bool) -> Decision:
    """What an attention verdict became once staff decided, as the screen shows it. The engine
    counted the entry in advance ("Entries today 1" if admitted); a guest turned away is a
    denial (the Denied counter takes it) and has made no entry, so the count goes back."""
    if admitted:
        return replace(
            decision, verdict=Verdict.ADMIT, message=f"Admitted after check: {decision.message}"
        )
    before = max(0, decision.display.entries_today - 1)
    return replace(
        decision,
        verdict=Verdict.DENY,
        message=f"Turned away after check: {decision.message}",
        display=replace(decision.display, entries_today=before),
    )


# -- the decision loop -------------------------------------------------------------------


class GateService:
    def __init__(
        self,
        store: GateStore,
        clock: Clock = wall_clock_ms,
        feedback: Feedback | None = None,
        dedupe_window_ms: int = DEFAULT_WINDOW_MS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.feedback = feedback
        self.deduper = Deduper(dedupe_window_ms)
        self._manifest_stamp: Stamp | None = None
        self._header: ManifestHeader | None = None
        self._sealer: PayloadSealer | None = None
        self._gate: GateContext | None = store.gate()
        # Set by a front end that syncs: told after every commit (wakes the upload; never
        # waits on the network), and asked for the link's state for the status bar.
        self.on_commit: Callable[[], None] | None = None
        self.link: Callable[[], Mapping[str, Any] | None] | None = None

    # -- context ---------------------------------------------------------------------

    @property
    def gate(self) -> GateContext | None:
        return self._gate

    def set_gate(self, gate: GateContext) -> None:
        self.store.set_gate(gate)
        self._gate = gate

    def header(self) -> ManifestHeader | None:
        """The installed manifest's header, decoded once per install: one small read per
        scan; after an install in this process, the header its installer verified."""
        stamp = self.store.manifest_stamp()
        if stamp is None:
            return None
        if stamp != self._manifest_stamp:
            found = stamped_header(self.store)
            if found is None:  # removed between the two reads
                return None
            self._manifest_stamp, self._header = found
        return self._header

    # -- scanning --------------------------------------------------------------------

    def scan(self, payload: str, *, manual: bool = False) -> ScanOutcome | None:
        """Decide and commit one read. None: the same payload was read again within the
        dedupe window (the guest's phone is still in front of the reader), nothing stored."""
        now = self.clock()
        if not manual and not self.deduper.accept(payload, now):
            return None
        try:
            with self.store.scanning():  # a manifest install pauses between chunks meanwhile
                decision, nonce = self._decide(payload, now)
                return self._commit(payload, decision, now, manual, nonce)
        except BaseException:  # not stored (disk full...): the guest's next read must count
            self.deduper.forget(payload)
            raise

    def preview(self, payload: str) -> Decision:
        """What `scan` would decide now, storing nothing (dry runs, support)."""
        return self._decide(payload, self.clock())[0]

    def _decide(self, payload: str, now: int) -> tuple[Decision, str | None]:
        header, gate = self.header(), self._gate
        if header is None or gate is None:
            return self._unready(gate), None
        # a ticketing system's codes are found by their keyed hashes (the codes are not here)
        codes = hashed_lookup(header.code_lookup_key, self.store.code_matches)
        parsed = parse_credential(payload, parse_context(header, now, self.store.nonces, codes))
        ticket_id = parsed.ticket_id
        ticket = self.store.ticket(ticket_id) if ticket_id else None
        history = self.store.history_for(ticket_id) if ticket_id else []
        decision = decide(parsed, header, ticket, history, gate, now)
        if decision.detail:  # the codec's words go to the log; staff read the reason's sentence
            log.info("scan refused (%s): %s", decision.reason, decision.detail)
        # a genuine legacy-C code is spent once seen (stored with the scan, atomically)
        nonce = parsed.nonce if isinstance(parsed, Credential) else None
        return decision, nonce

    def manual_admit(self, ticket_id: str) -> ScanOutcome:
        """Staff found the ticket by lookup (no code to read): the same rules, minus the
        credential checks, recorded as a manual scan."""
        now = self.clock()
        header, gate = self.header(), self._gate
        if header is None or gate is None:
            decision = self._unready(gate)
        else:
            cred = Credential(format=CredentialFormat.UNKNOWN, ticket_id=ticket_id)
            ticket = self.store.ticket(ticket_id)
            history = self.store.history_for(ticket_id)
            decision = decide(cred, header, ticket, history, gate, now)
        return self._commit(MANUAL_PREFIX + ticket_id, decision, now, True, None)

    def _commit(
        self, payload: str, decision: Decision, now: int, manual: bool, nonce: str | None
    ) -> ScanOutcome:
        gate = self._gate
        seq = self.store.record_scan(
            self._at_rest(payload, manual),
            nameless(decision),  # the name stays on screen, never on disk
            at_ms=now,
            direction=gate.direction if gate else Direction.ENTRY,
            gate=gate.gate_name if gate else "",
            manual=manual,
            nonce=nonce,
        )
        if self.feedback is not None:
            self.feedback.verdict(decision.verdict)
        self._committed()
        return ScanOutcome(seq, decision, now, payload, manual)

    def _committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit()

    def _at_rest(self, payload: str, manual: bool) -> str:
        """What the scan log keeps of a read: sealed to the hub (see protocol/sealed_payload),
        or only its digest before any hub key is known. Manual scans hold no code."""
        if manual:
            return payload
        hub_keys = trusted_hub_keys(self.store)
        if hub_keys:
            hub_key = hub_keys[max(hub_keys)]
            if self._sealer is None or self._sealer.hub_public_key != hub_key:
                self._sealer = PayloadSealer(hub_key)
            return self._sealer.seal(payload)
        return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()

    def _unready(self, gate: GateContext | None) -> Decision:
        """No gate or no ticket list: denied, with what to do about it. An enrolled gate gets
        its list from the hub (the app's sync, or `gate-scanner sync`); any other one from a
        signed file (`gate-scanner load-manifest`)."""
        if gate is None:
            return Decision(
                Verdict.DENY,
                Reason.DEVICE_NOT_AUTHORIZED,
                "This gate is not set up yet: ask a supervisor to run setup.",
            )
        if self.store.setting(HUB_URL):
            todo = "wait for the sync with the hub, or run `gate-scanner sync`"
        else:
            todo = "load a manifest before scanning (`gate-scanner load-manifest`)"
        return Decision(
            Verdict.DENY, Reason.MANIFEST_EXPIRED, f"No ticket list on this device yet: {todo}."
        )

    def confirm(self, seq: int, admitted: bool) -> None:
        """Staff checked an attention guest: admitted counts as an entry, else turned away."""
        self.store.confirm_attention(seq, admitted)
        self._committed()
        if admitted and self.feedback is not None:
            self.feedback.attention_confirmed()

    # -- lookups for the UI and CLI --------------------------------------------------

    def lookup(self, query: str, limit: int = 20) -> list[TicketRow]:
        """Manifest rows by ticket id (or its start) or order reference. Holder names are
        sealed with each ticket's own code, so they cannot be searched offline."""
        text = query.strip()
        if len(text) < 4:
            return []
        return self.store.find_tickets(text, text, limit)

    def venue_timezone(self) -> str | None:
        """The venue's timezone (the installed event's): every time on a gate's screen is read
        on this clock, as the engine writes times into verdicts. None: no manifest yet."""
        header = self.header()
        return None if header is None else header.event.timezone

    def recent_scans(self, n: int = 50) -> list[ScanRecord]:
        """The last `n` scans, newest first."""
        return self.store.recent_scans(n)

    def status(self) -> dict[str, Any]:
        now = self.clock()
        gate = self._gate
        header = self.header()
        c = self.store.counters()
        link = dict(self.link() or {}) if self.link is not None else None
        manifest: dict[str, Any] | None = None
        if header is not None:
            age = now - header.issued_at_ms
            stale_after = self.store.setting(STALE_AFTER_MS)
            manifest = {
                "revision": header.revision,
                "event": header.event.name,
                "event_id": header.event.id,
                "issued_at_ms": header.issued_at_ms,
                "expires_at_ms": header.expires_at_ms,
                "age_ms": age,
                "stale": age > stale_after,
                "expired": header.expires_at_ms <= now,
                "tickets": self.store.ticket_count(),
                "timezone": header.event.timezone,
            }
        return {
            "gate": None
            if gate is None
            else {
                "name": gate.gate_name,
                "id": gate.gate_id,
                "venue_id": gate.venue_id,
                "direction": str(gate.direction),
                "zones": list(gate.zones),
            },
            "manifest": manifest,
            "counters": {
                "admitted": c.admitted,
                "denied": c.denied,
                "exited": c.exited,
                "attention_pending": c.attention_pending,
                "inside_now": c.inside_now,
            },
            "pending_upload": c.pending_upload,
            "connection": str(link["state"]) if link else "offline",
            "sync": link,
            "pin_set": has_pin(self.store),
            "timezone": None if header is None else header.event.timezone,
            "now_ms": now,  # the gate's clock, for the age of what the status reports
        }


def reason_text(reason: str) -> str:
    """A stored reason code as words, for history lists."""
    try:
        return default_message(Reason(reason))
    except ValueError:
        return reason.replace("_", " ")
