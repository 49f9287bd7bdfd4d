"""Gate <-> hub sync in the background: scans up, manifest down, clock offset measured.

A scan never waits for the network: `GateService.scan` commits to SQLite and returns; this
worker, in its own thread with its own HTTP client, later sends what is pending. The scan log
is the queue, so a crash or a dead link loses nothing: a scan is marked uploaded only after the
hub acknowledged it (and only as it was sent), and a batch whose answer was lost is simply
sent again (the hub stores scans idempotently by device and seq).

A manifest is downloaded whole into memory, then verified and installed in one transaction by
`install_manifest`: a cut-off download or a bad signature leaves the installed one untouched.

Every request goes through the gate's HubClient (scanner/hub_client.py: signed with the device
key made at enrollment, the hub's errors typed, the clock offset kept). Each cycle starts with
a heartbeat, which probes the link, reports the gate's health and returns the hub's clock.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from msgspec import UnsetType

from manifests.admission_types import ScanFact
from manifests.signing import ManifestRejected
from protocol.wire import (
    MAX_BATCH,
    SEQ_CONFLICT,
    SEQ_CONFLICT_MESSAGE,
    Heartbeat,
    HeartbeatAnswer,
    RefusedScan,
    ScanBatch,
    ScanBatchAnswer,
)
from scanner.connection import ConnectionMonitor, LinkPolicy, LinkState
from scanner.faults import StorageFault, storage_fault
from scanner.hub_client import APP_VERSION, HubClient, HubError, read_answer
from scanner.hub_keys import HubKeyUpdate, apply_hub_key_set, trusted_hub_keys
from scanner.install import decode_stored, install_manifest
from scanner.link_reasons import (
    SYNC_CRASHED,
    is_refusal,
    link_reason,
    link_sentence,
    reason_words,
)
from scanner.scanlog import ScanRecord
from scanner.settings import (
    EVENT,
    HUB_EVENT,
    HUB_KEYS_VERSION,
    LINK,
    MANIFEST_SYNC,
    peer_cursor,
)
from scanner.store import GateStore, StoreError

log = logging.getLogger("scanner.sync")
link_log = logging.getLogger("scanner.link")  # state changes, as sentences (scanner/gate_log.py)

LINK_WRITE_EVERY_MS = 60_000  # a steady link rewrites its last good sync at most this often
SAME_MOVEMENT_MS = 2_000  # a peer movement seen again within this is the one already merged

Listener = Callable[["SyncSnapshot"], None]
Progress = Callable[[int, int | None], None]


class ScansRefused(HubError):
    """The hub answered but refused scans it holds other content for under the same seq
    (protocol/wire.py SEQ_CONFLICT): the link is fine, the gate's identity is not. The scans
    stay pending on the gate; the fault shows until it is re-enrolled."""


class ManifestRefused(HubError):
    """The hub answered but its manifest did not verify or chain: the link is fine, the
    installed manifest stays, and the next pull asks for a full one."""


@dataclass(frozen=True, slots=True)
class SyncSnapshot:
    """What the gate screen shows about the hub link."""

    state: LinkState
    last_sync_ms: int | None  # device time of the last fully good cycle
    pending_uploads: int
    clock_offset_ms: int | None
    manifest_revision: int | None
    last_error: str | None  # error code of the last failed cycle, cleared by a good one
    failures: int  # consecutive failed cycles
    latency_ms: int | None
    next_attempt_s: float | None
    download: tuple[int, int | None] | None  # bytes received / total while a manifest loads
    reason: str | None = None  # last_error in words for the status bar (scanner/link_reasons)

    def to_json(self) -> dict[str, Any]:
        """For `GateService.status()` and the status bar."""
        return {
            "state": str(self.state),
            "last_sync_ms": self.last_sync_ms,
            "pending_uploads": self.pending_uploads,
            "clock_offset_ms": self.clock_offset_ms,
            "last_error": self.last_error,
            "failures": self.failures,
            "latency_ms": self.latency_ms,
            "download": None if self.download is None else list(self.download),
            "reason": self.reason,
        }


@dataclass(slots=True)
class _Tally:
    """What the cycle in progress has done so far (a failed cycle may have done some)."""

    pushed: int = 0  # scans the hub acknowledged
    merged: int = 0  # other gates' movements merged
    installed: int | None = None  # the manifest revision this cycle installed
    hub_keys: HubKeyUpdate | None = None  # the hub key set this cycle took


@dataclass(frozen=True, slots=True)
class SyncReport:
    """One cycle and what it did (`SyncWorker.run_once`): for `gate-scanner sync` and the
    first pull after `gate-scanner enroll`."""

    ok: bool
    error: str | None  # the failed cycle's code (scanner/link_reasons.py); None when ok
    advice: str | None  # that code as a sentence: what happened and what to do
    hub_url: str
    event_id: str | None  # the event synced; None when none is given, set or named by the hub
    manifest_revision: int | None  # installed after the cycle
    manifest_new: bool  # this cycle installed it (a full manifest or a delta)
    tickets: int  # rows of the installed manifest
    pushed: int
    pending: int  # scans still waiting to go up
    peers_merged: int
    clock_offset_ms: int | None
    hub_keys: HubKeyUpdate | None  # a key set taken in this cycle (a hub key rotation)

    def to_json(self) -> dict[str, Any]:
        keys = self.hub_keys
        return {
            "ok": self.ok,
            "hub": self.hub_url,
            "event_id": self.event_id,
            "manifest": None
            if self.manifest_revision is None
            else {
                "revision": self.manifest_revision,
                "tickets": self.tickets,
                "new": self.manifest_new,
            },
            "pushed": self.pushed,
            "pending": self.pending,
            "peers_merged": self.peers_merged,
            "clock_offset_ms": self.clock_offset_ms,
            "hub_keys": None
            if keys is None
            else {
                "version": keys.version,
                "added": list(keys.added),
                "dropped": list(keys.dropped),
                "kept": list(keys.kept),
            },
            "error": None if self.error is None else {"code": self.error, "message": self.advice},
        }


class SyncWorker:
    """Run `start()` for the background thread, or call `sync_once()` (or `run_once()`, which
    says what the cycle did) yourself.

    `on_change` and `on_progress` are called from the worker thread (a Textual app hands
    them on with `call_from_thread`); an exception in them is logged, never fatal.
    """

    def __init__(
        self,
        hub: HubClient,
        *,
        event_id: str | None = None,
        policy: LinkPolicy | None = None,
        monitor: ConnectionMonitor | None = None,
        on_change: Listener | None = None,
        on_progress: Progress | None = None,
        batch_size: int = MAX_BATCH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`hub`: the gate's client of its hub, whose store, URL and clock the worker uses
        (hub_link shares one with the live channel: one clock offset)."""
        if not 0 < batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
        self.hub = hub
        self.store = hub.store
        self.clock = hub.clock
        self.monitor = monitor or ConnectionMonitor(policy)
        self.on_change = on_change
        self.on_progress = on_progress
        self.batch_size = batch_size
        self._event_id = event_id
        self._monotonic = monotonic
        persisted = self.store.setting(LINK) or {}
        self._last_sync_ms: int | None = _int_or_none(persisted.get("last_sync_ms"))
        self._error: str | None = persisted.get("last_error") or None
        self._persisted: dict[str, Any] = dict(persisted)
        self._logged: tuple[str, str | None] | None = None  # the link as last logged
        self._failed_code: str | None = None  # of the run of failed cycles, logged once
        self._failed_cycles = 0
        self._tally = _Tally()  # of the cycle in progress, or the last one
        self._fault: str | None = None  # storage fault last logged
        self._synced_once = False  # the first good cycle of a process is always logged
        self._busy = False
        self._download: tuple[int, int | None] | None = None
        self._next_delay: float | None = None
        self._force_full = False
        self._header_event: tuple[int, str] | None = None  # (revision, event id) cache
        self._hub_keys_version: int | None = None  # as the last heartbeat announced it
        self._cycle = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._full_wanted = False  # the next cycle is a whole one, woken or not
        self._full_at = -math.inf  # when the last whole cycle started (monotonic)
        self._hub_revision: int | None = None  # the event's revision, as the last upload said
        # Whether the live channel is open (scanner/hub_link.py): then an upload between
        # whole cycles does not ask for other gates' movements, the socket brought them.
        self.live_connected: Callable[[], bool] = lambda: False
        self._peers_wanted = True
        self._thread: threading.Thread | None = None

    # -- the background thread ---------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the sync worker is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="gate-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop after the exchange in flight (at most one request timeout)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.hub.close()

    def wake(self) -> None:
        """A scan was just recorded: upload it now, unless we are backing off a failing hub.
        Between whole cycles that is all a wake does (see `_run`)."""
        if self.monitor.failures == 0:
            self._wake.set()

    def wake_whole(self) -> None:
        """The hub says the tickets changed: a whole cycle now (the manifest pull with it)."""
        self._full_wanted = True
        self._wake.set()

    def _run(self) -> None:
        """A whole cycle (heartbeat, upload, hub keys, manifest) every poll while well, and
        between them an upload alone for each wake by a scan: the upload is a heartbeat at
        the hub too, and its answer's revision says whether a manifest pull is due. Fifty
        gates scanning at once then send 50 requests to the hub, not 150."""
        woken = False
        while not self._stopping.is_set():
            poll_s = self.monitor.policy.poll_s
            since_whole = self._monotonic() - self._full_at
            upload_only = (
                woken
                and not self._full_wanted
                and self.monitor.failures == 0
                and since_whole < poll_s
            )
            try:
                self.sync_once(upload_only=upload_only)
            except Exception as exc:  # never let the thread die: the gate would stop syncing
                self._crashed(exc)
            wait_s = self._next_delay or poll_s
            if upload_only and self.monitor.failures == 0:  # the whole cycle stays on time
                wait_s = max(0.0, self._full_at + poll_s - self._monotonic())
            woken = self._wake.wait(wait_s)
            self._wake.clear()

    # -- one cycle ---------------------------------------------------------------------

    def sync_once(self, *, upload_only: bool = False) -> bool:
        """Heartbeat, push every pending scan, pull the manifest (`upload_only`: push, and
        pull only when the upload's answer says the manifest moved). True when all went
        well. The cycle counts as one good or bad exchange for the link state."""
        with self._cycle:
            try:
                return self._cycle_once(upload_only)
            finally:
                self._busy = False
                self._download = None
                self._next_delay = self.monitor.next_delay_s()
                self._publish()
                self._note_link()

    def run_once(self) -> SyncReport:
        """One cycle, exactly as the background thread runs it, and what it did. A fault of
        the gate's own disk or a bug raises (the thread logs those, see `_crashed`); a hub that
        cannot be reached or refuses is a report with its error code and advice."""
        ok = self.sync_once()
        tally, error = self._tally, None if ok else self._error
        reason = link_reason(error, self.hub.offset)
        return SyncReport(
            ok=ok,
            error=error,
            advice=None if reason is None else reason.advice,
            hub_url=self.hub.hub_url,
            event_id=self.event_id(),
            manifest_revision=self.store.manifest_revision(),
            manifest_new=tally.installed is not None,
            tickets=self.store.ticket_count(),
            pushed=tally.pushed,
            pending=self.pending_count(),
            peers_merged=tally.merged,
            clock_offset_ms=self.hub.offset,
            hub_keys=tally.hub_keys,
        )

    def hub_refused(self, code: str) -> None:
        """The hub refused this device elsewhere (the live socket's 4403): show and log it
        now, not at the next sync cycle. Called from the live channel's thread."""
        self.monitor.refused()
        self._error = code
        self._publish()
        self._note_link()

    def _crashed(self, exc: Exception) -> None:
        """A cycle ended in an exception: the gate's disk (a storage fault, logged once per
        fault) or a bug (logged with its traceback); the link shows it, the thread goes on."""
        fault = storage_fault(exc, self.store.path)
        if fault is not None:
            self._storage_fault(fault, "during sync")
            self._error = fault.code
        else:
            log.exception("sync cycle crashed")
            self._error = SYNC_CRASHED
        self.monitor.bad()
        self._next_delay = self.monitor.next_delay_s()
        with contextlib.suppress(Exception):  # the disk may still refuse: keep the thread
            self._publish()
            self._note_link()

    def _cycle_once(self, upload_only: bool) -> bool:
        latency_s = 0.0
        tally = self._tally = _Tally()
        try:
            if upload_only:
                started = self._monotonic()
                self._peers_wanted = not self.live_connected()
                self.push_scans()
                latency_s = self._monotonic() - started
                if self._hub_revision not in (None, self.store.manifest_revision()):
                    tally.installed = self.pull_manifest()
                return self._cycle_ok(latency_s, tally)
            self._full_wanted = False
            self._full_at = self._monotonic()
            self._peers_wanted = True  # what a live push missed comes here
            latency_s = self._heartbeat()
            self._busy = self.pending_count() > 0
            self._publish()
            self.push_scans()
            keys_refused: ManifestRefused | None = None
            try:
                tally.hub_keys = self.refresh_hub_keys()
            except ManifestRefused as exc:  # reported, but the manifest is still pulled
                keys_refused = exc
            tally.installed = self.pull_manifest()
            if keys_refused is not None:
                raise keys_refused
        except (ManifestRefused, ScansRefused) as exc:
            self.monitor.good(latency_s)  # the hub answered: only what it sent or took failed
            self._failed(exc)
            return False
        except HubError as exc:
            if is_refusal(exc.code):  # the hub answered "not you": no flaky link to ride out
                self.monitor.refused()
            else:
                self.monitor.bad()
            self._failed(exc)
            return False
        return self._cycle_ok(latency_s, tally)

    def _cycle_ok(self, latency_s: float, tally: _Tally) -> bool:
        self.monitor.good(latency_s)
        self._fault = None
        self._error = None
        self._last_sync_ms = self.clock()
        recovered, self._failed_code = self._failed_code, None
        self._failed_cycles = 0
        installed, new = self.store.manifest_revision(), tally.installed is not None
        news = tally.pushed or tally.merged or new or recovered or not self._synced_once
        self._synced_once = True
        log.log(
            logging.INFO if news else logging.DEBUG,
            "sync ok: pushed %d scans, manifest revision %s%s, %d peer movements merged",
            tally.pushed,
            installed,
            " (new)" if new else "",
            tally.merged,
        )
        return True

    def _failed(self, exc: HubError) -> None:
        """A failed cycle at WARNING with its code; the same failure again only at DEBUG
        (a dead hub retried every 30 s for hours would bury everything else)."""
        self._error = exc.code
        self._failed_cycles += 1
        repeat = exc.code == self._failed_code
        self._failed_code = exc.code
        log.log(
            logging.DEBUG if repeat else logging.WARNING,
            "sync failed (%s): %s [%d in a row]",
            exc.code,
            exc.message,
            self._failed_cycles,
        )

    def _note_link(self) -> None:
        """Log the link when it changes (online/offline, or why) and keep it in the config,
        so a restarted gate and `gate-scanner status` know the last good sync and why not."""
        state = str(LinkState.ONLINE if self.monitor.online else LinkState.OFFLINE)
        now = self.clock()
        # Still online while a dead link is ridden out (fail_after): the failed cycle is
        # logged, the link is not down yet. A refusal the hub answered with is a change.
        why = None if state == LinkState.ONLINE and self.monitor.failures else self._error
        changed = (state, why) != self._logged
        if changed:
            first, self._logged = self._logged is None, (state, why)
            quiet = first and state == LinkState.OFFLINE and why is None
            if not quiet:  # a gate starting up has no link to report yet
                level = logging.WARNING if why else logging.INFO
                link_log.log(level, "link: %s", link_sentence(state, why, self.hub.offset))
        kept = self._persisted
        stale_sync = self._last_sync_ms is not None and (
            kept.get("last_sync_ms") is None
            or self._last_sync_ms - int(kept["last_sync_ms"]) >= LINK_WRITE_EVERY_MS
        )
        if kept.get("state") == state and kept.get("last_error") == self._error and not stale_sync:
            return
        record = {
            "state": state,
            "last_error": self._error,
            "last_sync_ms": self._last_sync_ms,
            "since_ms": now if changed or "since_ms" not in kept else kept["since_ms"],
        }
        try:
            self.store.set_setting(LINK, record)
        except Exception as exc:  # a full or read-only disk must not end the sync thread
            fault = storage_fault(exc, self.store.path)
            if fault is None:
                raise
            self._storage_fault(fault, "keeping the link state")
            return
        self._persisted = record

    def _storage_fault(self, fault: StorageFault, doing: str) -> None:
        """Log a fault of the gate's disk once, not at every retry while it lasts."""
        if fault.code != self._fault:
            log.error("storage fault %s (%s): %s", doing, fault.code, fault.message)
        self._fault = fault.code

    def _heartbeat(self) -> float:
        """Probe the link and measure the clock; returns the round-trip time in seconds. An
        answer that is no HeartbeatAnswer fails the cycle (bad_hub_response)."""
        event_id, revision = self.event_id(), self.store.manifest_revision()
        body = Heartbeat(
            app_version=APP_VERSION,
            pending_uploads=self.pending_count(),
            manifest_revisions=(
                {event_id: revision} if event_id is not None and revision is not None else None
            ),
            # so the hub can tell who is ready for a key switch
            hub_keys_version=self.store.setting(HUB_KEYS_VERSION),
        )
        sent_ms, started = self.clock(), self._monotonic()
        resp = self.hub.call("POST", "/api/device/heartbeat", body)
        latency_s = self._monotonic() - started
        answer = read_answer(resp.content, HeartbeatAnswer, "heartbeat answer")
        self._hub_keys_version = answer.hub_keys_version
        named = answer.event_id
        if named and named != self.store.setting(HUB_EVENT):
            self.store.set_setting(HUB_EVENT, named)
        self.hub.measured(answer.hub_time_ms, sent_ms, latency_s * 1000)
        return latency_s

    def refresh_hub_keys(self) -> HubKeyUpdate | None:
        """Take the hub's signed key set when the heartbeat announced a version this gate has
        not taken yet (a key rotation): one small request per change, none otherwise. The hub
        also moves every manifest revision on a key change, so the pull that follows brings
        the header listing the keys credentials may be signed with."""
        announced = self._hub_keys_version
        if announced is None or announced == self.store.setting(HUB_KEYS_VERSION):
            return None
        envelope = self.hub.call("GET", "/api/device/hub-keys", expect=200).content
        try:
            update = apply_hub_key_set(self.store, envelope)
        except ManifestRejected as exc:
            raise ManifestRefused(f"hub_keys_{exc.code}", exc.message) from None
        if update.added or update.dropped or update.kept:
            log.info(
                "hub keys updated",
                extra={"added": update.added, "dropped": update.dropped, "kept": update.kept},
            )
        return update

    def push_scans(self) -> int:
        """Send pending scans in seq order, in batches; returns how many the hub acked. An
        answer that is no ScanBatchAnswer fails the cycle (bad_hub_response) and marks
        nothing: the batch goes again next cycle (the hub stores it once)."""
        acked_total = 0
        while not self._stopping.is_set():
            batch = self.store.pending_uploads(self.batch_size)
            if not batch:
                break
            # Scans go up before the next manifest is pulled, so they belong to the event of
            # the installed one, even when the hub already names the next event.
            event_id = self.installed_event() or self.event_id()
            body = ScanBatch(
                scans=[r.to_wire() for r in batch],
                event_id=event_id,
                manifest_revision=self.store.manifest_revision(),
                clock_offset_ms=self.hub.offset,  # the hub orders scans from all gates by it
                # ask for other gates' movements in the answer
                peer_cursor=(
                    self.store.setting(peer_cursor(event_id))
                    if event_id is not None and self._peers_wanted
                    else None
                ),
            )
            resp = self.hub.call("POST", "/api/device/scans", body)
            answer = read_answer(resp.content, ScanBatchAnswer, "upload answer")
            acked = acknowledged(answer.acked, batch)
            self.store.mark_uploaded_as_sent(acked)
            if event_id is not None and event_id == self.installed_event():
                revision = answer.revision
                self._hub_revision = None if isinstance(revision, UnsetType) else revision
            if event_id is not None:
                self._merge_peers(answer, event_id)
            acked_total += len(acked)
            self._tally.pushed += len(acked)  # counted as they go: a later batch may fail
            self._publish()
            refused = refused_seqs(answer.refused or [])
            if refused:
                log.error(
                    "hub refused scans: %s (seqs %s); they stay on this gate",
                    SEQ_CONFLICT_MESSAGE,
                    refused[:20],
                )
                raise ScansRefused(SEQ_CONFLICT, SEQ_CONFLICT_MESSAGE)
            if len(acked) < len(batch):
                break  # the hub kept less than we sent: the rest goes next cycle
        return acked_total

    def _merge_peers(self, answer: ScanBatchAnswer, event_id: str) -> int:
        """Movements at other gates that came back with the acknowledgement, into the local
        history (so a ticket just used at the north gate is refused here while offline).
        The hub gives times on its clock; the gate's history runs on the gate's."""
        peers, cursor = answer.peer_scans, answer.peer_cursor
        if isinstance(peers, UnsetType) or isinstance(cursor, UnsetType):
            return 0
        offset = self.hub.offset or 0
        facts = [ScanFact.pushed(p, offset) for p in peers]
        merged = self.store.merge_peer_scans(unknown_peer_facts(self.store, facts))
        # after the merge: a crash re-merges
        self.store.set_setting(peer_cursor(event_id), cursor)
        self._tally.merged += merged
        return merged

    def pull_manifest(self) -> int | None:
        """Fetch and install the event's manifest if it changed: a delta from the installed
        revision when we have one, the full manifest otherwise. Returns the new revision,
        None when nothing changed (304) or no event is known."""
        event_id = self.event_id()
        if event_id is None:
            return None
        installed = self.store.manifest_revision()
        last = self.store.setting(MANIFEST_SYNC) or {}
        same = (
            installed is not None
            and last.get("event_id") == event_id
            and last.get("revision") == installed
        )
        path = f"/api/device/events/{quote(event_id, safe='')}/manifest"
        headers: dict[str, str] = {}
        if same and not self._force_full:
            path += f"?since={installed}"
            if last.get("etag"):
                headers["If-None-Match"] = str(last["etag"])
        envelope, etag = self._download_manifest(path, headers)
        if envelope is None:
            return None
        try:
            manifest = install_manifest(self.store, envelope, self.clock(), event_id=event_id)
        except (ManifestRejected, StoreError) as exc:
            self._force_full = True  # a delta that does not fit: ask for the whole thing
            code = getattr(exc, "code", "store_refused")
            raise ManifestRefused(f"manifest_{code}", str(exc)) from None
        self._force_full = False
        self.store.set_setting(
            MANIFEST_SYNC, {"event_id": event_id, "revision": manifest.revision, "etag": etag}
        )
        return manifest.revision

    def _download_manifest(
        self, path: str, headers: dict[str, str]
    ) -> tuple[bytes | None, str | None]:
        """The whole body in memory (never a half-applied manifest), with progress."""
        return self.hub.download(path, headers, self._progress, what="manifest download")

    # -- state for the screen ----------------------------------------------------------

    def snapshot(self) -> SyncSnapshot:
        if not self.monitor.online:
            state = LinkState.OFFLINE
        else:
            state = LinkState.SYNCING if self._busy else LinkState.ONLINE
        latency = self.monitor.last_latency_s
        return SyncSnapshot(
            state=state,
            last_sync_ms=self._last_sync_ms,
            pending_uploads=self.pending_count(),
            clock_offset_ms=self.hub.offset,
            manifest_revision=self.store.manifest_revision(),
            last_error=self._error,
            failures=self.monitor.failures,
            latency_ms=None if latency is None else round(latency * 1000),
            next_attempt_s=self._next_delay,
            download=self._download,
            reason=reason_words(self._error, self.hub.offset),
        )

    def pending_count(self) -> int:
        return self.store.counters().pending_upload

    def event_id(self) -> str | None:
        """The event to sync: given, configured, named by the hub, or the installed
        manifest's."""
        if self._event_id:
            return self._event_id
        configured = chosen_event(self.store)
        if configured:
            return configured
        return self.installed_event()

    def installed_event(self) -> str | None:
        """The event of the installed manifest: the one this gate's pending scans were
        decided against (the event to hold may have moved on since)."""
        revision = self.store.manifest_revision()
        if revision is None:
            return None
        pulled = self.store.setting(MANIFEST_SYNC) or {}
        if pulled.get("revision") == revision and pulled.get("event_id"):
            return str(pulled["event_id"])  # installed by this worker: no need to decode it
        if self._header_event is None or self._header_event[0] != revision:
            encoded = self.store.manifest_encoded()
            if encoded is None:
                return None
            try:
                header = decode_stored(encoded, trusted_hub_keys(self.store)).header
            except ManifestRejected:
                return None
            self._header_event = (revision, header.event.id)
        return self._header_event[1]

    def _publish(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.snapshot())
        except Exception:
            log.exception("sync listener failed")

    def _progress(self, received: int, total: int | None) -> None:
        self._download = (received, total)
        if received == 0:  # a manifest is coming: show "syncing" while it loads
            self._busy = True
            self._publish()
        if self.on_progress is not None:
            try:
                self.on_progress(received, total)
            except Exception:
                log.exception("progress listener failed")


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def chosen_event(store: GateStore) -> str | None:
    """The event set by the gate's operator, else the one the hub names for the venue now."""
    return store.setting(EVENT) or store.setting(HUB_EVENT) or None


def unknown_peer_facts(store: GateStore, facts: list[ScanFact]) -> list[ScanFact]:
    """The facts not yet in the history. The same movement reaches a gate twice (live push
    and upload ack), each time moved onto the gate clock with the offset of that moment, so
    equal-but-for-a-few-ms is the same movement: no two counted movements of one ticket at
    one gate happen that close together."""
    known = store.peer_movements(f.ticket_id for f in facts)  # a gate's own: never a peer's
    return [
        fact
        for fact in facts
        if not any(
            device_id == fact.device_id
            and direction == fact.direction
            and abs(at_ms - fact.at_ms) <= SAME_MOVEMENT_MS
            for device_id, direction, at_ms in known.get(fact.ticket_id, ())
        )
    ]


def acknowledged(acked: Iterable[int], batch: list[ScanRecord]) -> list[ScanRecord]:
    """The sent scans the hub says it stored (ScanBatchAnswer.acked): only scans of this
    batch, so a seq the gate did not send in it marks nothing."""
    seqs = set(acked)
    return [r for r in batch if r.seq in seqs]


def refused_seqs(refused: Iterable[RefusedScan]) -> list[int]:
    """The seqs the hub refused as a conflict (a refusal of another code is ignored)."""
    return [r.seq for r in refused if r.code == SEQ_CONFLICT]
