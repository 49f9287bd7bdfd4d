"""The gate's decision loop: one payload in, one durably stored verdict out.

Every front end (Textual app, `gate-scanner check`, `gate-scanner stream`) goes through
`GateService.scan`, so there is exactly one order of steps: parse, look up, decide, COMMIT,
then (and only then) feedback and display. The manifest header is decoded once per installed
revision and cached; a scan costs a few primary-key lookups and one fsynced insert.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from hardware.dedupe import DEFAULT_WINDOW_MS, Deduper
from hardware.feedback import Feedback
from manifests.admission import decide, parse_context
from manifests.admission_types import Decision, Direction, GateContext
from manifests.codec import decode_delta, decode_manifest, decode_manifest_header, encode_manifest
from manifests.delta import verify_and_apply
from manifests.keyset import open_key_set
from manifests.model import Manifest, ManifestHeader, TicketRow
from manifests.signing import MAGIC, ManifestRejected, envelope_key_id, open_envelope
from protocol.credential import Credential, CredentialFormat
from protocol.parse import parse_credential
from protocol.reasons import Reason, Verdict, default_message
from protocol.sealed_payload import PayloadSealer
from scanner.scanlog import ScanRecord, nameless
from scanner.settings import HUB_KEY_PREFIX, HUB_KEYS_VERSION, STALE_AFTER_MS, VENUE_PIN
from scanner.store import ChunkCallback, GateStore, Stamp

Clock = Callable[[], int]
MANUAL_PREFIX = "manual:"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


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


def trusted_hub_keys(store: GateStore) -> dict[int, bytes]:
    """Hub public keys this device trusts for manifests, by key id."""
    named = store.keys_named(HUB_KEY_PREFIX)
    return {int(name[len(HUB_KEY_PREFIX) :]): value for name, value in named.items()}


def trust_hub_key(store: GateStore, key_id: int, public: bytes) -> None:
    if len(public) != 32:
        raise ValueError("a hub key is a 32-byte Ed25519 public key")
    store.set_key(f"{HUB_KEY_PREFIX}{key_id}", public)


@dataclass(frozen=True, slots=True)
class HubKeyUpdate:
    """What a hub key-set document changed: `kept` are keys the hub dropped that still sign
    the installed manifest; they go once a newer manifest is in (the version is then stored)."""

    version: int
    added: tuple[int, ...]
    dropped: tuple[int, ...]
    kept: tuple[int, ...]


def apply_hub_key_set(store: GateStore, envelope: bytes) -> HubKeyUpdate:
    """Take the hub's key set if a key this gate already trusts signed it and it is not older
    than the last one taken: trust the keys it adds, forget the ones it no longer lists (never
    its signer). Raises ManifestRejected (nothing changed) otherwise, e.g. a forged document
    ('unknown_key'), or a replayed old one ('stale_keys')."""
    trusted = trusted_hub_keys(store)
    key_set = open_key_set(envelope, trusted)
    taken = store.setting(HUB_KEYS_VERSION)
    if taken is not None and key_set.version < taken:
        raise ManifestRejected(
            "stale_keys", f"hub key set version {key_set.version} is older than {taken}"
        )
    added = tuple(k for k, v in sorted(key_set.keys.items()) if trusted.get(k) != v)
    for key_id in added:
        trust_hub_key(store, key_id, key_set.keys[key_id])
    gone = sorted(set(trusted) - set(key_set.keys) - {key_set.signing_key_id})
    encoded = store.manifest_encoded()
    in_use = envelope_key_id(encoded) if encoded and encoded[: len(MAGIC)] == MAGIC else None
    dropped = tuple(k for k in gone if k != in_use)
    for key_id in dropped:
        store.delete_key(f"{HUB_KEY_PREFIX}{key_id}")
    kept = tuple(k for k in gone if k == in_use)
    if not kept:
        store.set_setting(HUB_KEYS_VERSION, key_set.version)
    return HubKeyUpdate(key_set.version, added, dropped, kept)


def decode_stored(encoded: bytes, trusted: Mapping[int, bytes]) -> Manifest:
    """The installed manifest: a hub envelope is verified again; a body built on this device
    by applying a verified delta is decoded as is."""
    body = open_envelope(encoded, trusted) if encoded[: len(MAGIC)] == MAGIC else encoded
    return decode_manifest(body)


def stored_header(store: GateStore) -> ManifestHeader | None:
    """The installed manifest's header: the one this process installed (verified then), else
    verified and decoded from the stored envelope, header only (no 100k rows built)."""
    found = _stored_header(store)
    return None if found is None else found[1]


def _stored_header(store: GateStore) -> tuple[Stamp, ManifestHeader] | None:
    with store.reading():  # the stamp and the envelope of one install
        stamp = store.manifest_stamp()
        if stamp is None:
            return None
        memo = store.installed_header
        if memo is not None and memo[0] == stamp:
            return memo
        encoded = store.manifest_encoded()
    if encoded is None:
        return None
    body = (
        open_envelope(encoded, trusted_hub_keys(store))
        if encoded[: len(MAGIC)] == MAGIC
        else encoded
    )
    store.installed_header = (stamp, decode_manifest_header(body))
    return store.installed_header


_turns_lock = threading.Lock()
_turns_held = 0
_turns_before = 0.0
SHORT_TURN_S = 0.00005


@contextmanager
def short_turns() -> Iterator[None]:
    """While a manifest decodes and installs (CPU-bound Python on the sync thread), hand the
    interpreter lock over every 0.05 ms instead of every 5: each SQLite call of a scan on the
    UI thread gives the lock up and waits a whole interval to get it back, and a scan makes
    about ten. Costs nothing when no other thread wants the lock."""
    global _turns_held, _turns_before
    with _turns_lock:
        if _turns_held == 0:
            _turns_before = sys.getswitchinterval()
            sys.setswitchinterval(SHORT_TURN_S)
        _turns_held += 1
    try:
        yield
    finally:
        with _turns_lock:
            _turns_held -= 1
            if _turns_held == 0:
                sys.setswitchinterval(_turns_before)


def install_manifest(
    store: GateStore,
    envelope: bytes,
    now_ms: int,
    *,
    event_id: str | None = None,
    on_chunk: ChunkCallback | None = None,
) -> Manifest:
    """Verify a hub envelope (full manifest or delta) against the trusted hub keys, check the
    revision chain against what is installed, and store it (see GateStore.replace_manifest:
    scans go on meanwhile; `on_chunk` reports progress). Raises ManifestRejected (nothing
    changed) when anything is off. With `event_id` (the event the gate asked for) a manifest
    of any other event is refused; a full manifest of another event than the installed one
    replaces it whatever its revision (revisions count per event): the gate moved on to the
    next event."""
    with short_turns():
        return _install(store, envelope, now_ms, event_id, on_chunk)


def _install(
    store: GateStore,
    envelope: bytes,
    now_ms: int,
    event_id: str | None,
    on_chunk: ChunkCallback | None,
) -> Manifest:
    trusted = trusted_hub_keys(store)
    body = open_envelope(envelope, trusted)
    kind: Literal["full", "delta"] = "delta" if body[:1] == b"D" else "full"
    current = None
    if kind == "full":  # judged by the installed header alone: its rows are not needed
        header = stored_header(store)
        current = None if header is None else Manifest(header, {})
    else:
        encoded = store.manifest_encoded()
        if encoded is not None:
            current = decode_stored(encoded, trusted)
    new = verify_and_apply(envelope, kind, trusted, current, now_ms)
    if event_id is not None and new.header.event.id != event_id:
        raise ManifestRejected(
            "wrong_event", f"asked for event {event_id}, the hub sent {new.header.event.id}"
        )
    if kind == "full":
        moved_on = current is not None and current.header.event.id != new.header.event.id
        store.replace_manifest(new, envelope, now_ms, other_event=moved_on, on_chunk=on_chunk)
    else:  # only the changed rows are written; the stored body becomes the merged manifest
        store.apply_delta(decode_delta(body), encode_manifest(new), now_ms)
    return new


# -- venue PIN ---------------------------------------------------------------------------


def set_pin(store: GateStore, pin: str) -> None:
    """Stored as a salted scrypt hash: a stolen gate's disk does not give the PIN away."""
    if len(pin) < 4 or not pin.isdigit():
        raise ValueError("the venue PIN must be at least 4 digits")
    salt = os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, **_SCRYPT)
    store.set_setting(VENUE_PIN, {"salt": salt.hex(), "hash": digest.hex(), **_SCRYPT})


def has_pin(store: GateStore) -> bool:
    return store.setting(VENUE_PIN) is not None


def check_pin(store: GateStore, pin: str) -> bool:
    data = store.setting(VENUE_PIN)
    if data is None:
        return False
    digest = hashlib.scrypt(
        pin.encode(), salt=bytes.fromhex(data["salt"]), n=data["n"], r=data["r"], p=data["p"]
    )
    return hmac.compare_digest(digest, bytes.fromhex(data["hash"]))


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
            found = _stored_header(self.store)
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
            return self._unready(header, gate), None
        parsed = parse_credential(payload, parse_context(header, now, self.store.nonces))
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
            decision = self._unready(header, gate)
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

    @staticmethod
    def _unready(header: ManifestHeader | None, gate: GateContext | None) -> Decision:
        if gate is None:
            return Decision(
                Verdict.DENY,
                Reason.DEVICE_NOT_AUTHORIZED,
                "This gate is not set up yet: ask a supervisor to run setup.",
            )
        return Decision(
            Verdict.DENY,
            Reason.MANIFEST_EXPIRED,
            "No ticket list on this device: load a manifest before scanning.",
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
