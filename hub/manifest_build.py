"""Building what the hub sends devices: signed manifests (full and delta) and the native
credentials whose signatures seal holder names.

The store records, per ticket, the revision of its last change (by trigger), so a delta
from any revision R is just the tickets changed after R: its cost follows the number of
changes, not the size of the event. The full rows are kept in memory for the newest revision
and moved forward the same way; envelopes are built once per (revision, scope). An idle poll
therefore costs one indexed read.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hub.engine_facts import ticket_row
from hub.secret_box import SecretBox
from hub.storage import HubStore
from hub.store_api import HubStorage
from hub.store_manifests import ManifestSource
from hub.thread_owned import ThreadOwned
from hub.venue_keys import legacy_keys
from manifests.codec import encode_delta, encode_manifest
from manifests.keyset import KeySet, sign_key_set
from manifests.model import (
    EventFacts,
    Manifest,
    ManifestDelta,
    ManifestHeader,
    RetiredCode,
    Scope,
    TicketRow,
)
from manifests.policy import EXPIRY_AFTER_END_MS, ScanPolicy
from manifests.sealing import seal_holder
from manifests.signing import sign_envelope
from protocol import base45
from protocol.backend_codes import code_digest, code_seal
from protocol.credential import CodeState
from protocol.native import BODY_BYTES, SIG_BYTES, issue_credential, public_key

log = logging.getLogger("hub.manifests")
MEMO_EVENTS = 8  # events whose newest full rows are kept in memory
MEMO_ENVELOPES = 512  # signed envelopes kept in memory


@dataclass(frozen=True, slots=True)
class HubKeys:
    """The hub's current signing key and every public key devices should still trust (the
    current one included), so a key can be rotated without a flag day."""

    key_id: int
    seed: bytes
    trusted: Mapping[int, bytes]
    version: int = 1  # the keyring's change count: what devices compare to refetch the set

    @classmethod
    def single(
        cls, seed: bytes, key_id: int = 1, retired: Mapping[int, bytes] | None = None
    ) -> HubKeys:
        return cls(key_id, seed, {**(retired or {}), key_id: public_key(seed)})

    @property
    def public(self) -> bytes:
        """The signing key's public half (what enrollment hands a new device)."""
        return self.trusted[self.key_id]

    def key_set(self, now_ms: int) -> bytes:
        """The trusted keys as a document signed by the current key, for devices."""
        return sign_key_set(KeySet(self.version, self.key_id, self.trusted, now_ms), self.seed)


@dataclass(frozen=True, slots=True)
class Warmed:
    """An event's rows and one full envelope, built by one builder for another to keep."""

    manifest: Manifest
    scope: Scope
    served: Served
    keys: HubKeys


@dataclass(frozen=True, slots=True)
class Served:
    """One signed answer: `kind` is 'full' or 'delta'; `base_revision` only for a delta."""

    kind: str
    revision: int
    envelope: bytes
    base_revision: int | None = None


def scope_tag(scope: Scope) -> str:
    """A short, stable name for a scope, part of the ETag."""
    text = json.dumps([scope.venue_id, scope.gate_id, list(scope.zones)])
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def credential_signature(credential: str) -> bytes:
    """The 64-byte Ed25519 signature inside a native credential (what seals holder names)."""
    raw = base45.decode(credential)
    return raw[BODY_BYTES : BODY_BYTES + SIG_BYTES]


def event_facts(source: ManifestSource) -> EventFacts:
    e = source.event
    types = [""] * max((t["code"] for t in source.ticket_types), default=0)
    for t in source.ticket_types:
        if t["code"] >= 1:
            types[t["code"] - 1] = t["name"]
    return EventFacts(
        id=e["id"],
        code=e["code"],
        name=e["name"],
        venue_id=e["venue_id"],
        timezone=e["timezone"],
        start_ms=e["start_ms"],
        end_ms=e["end_ms"],
        doors_ms=e["doors_ms"],
        days=tuple(json.loads(e["days_json"])),
        venue_name=source.venue["name"],
        ticket_types=tuple(types),
        zones=tuple(source.zones),
    )


def code_hashes(
    source: ManifestSource, ticket: Mapping[str, Any]
) -> tuple[bytes | None, tuple[RetiredCode, ...]]:
    """The keyed hashes of a ticket's backend codes, current and retired, as gates hold them
    (protocol/backend_codes.code_digest): never the codes themselves."""
    key, code = source.code_lookup_key, ticket["backend_code"]
    if key is None:
        if code is not None:  # manifest_source makes the key first: no codes without it
            raise RuntimeError(f"event {source.event['id']} has backend codes and no lookup key")
        return None, ()
    retired = tuple(
        RetiredCode(code_digest(key, old), CodeState(state))
        for old, state in source.retired_codes.get(ticket["id"], ())
    )
    return (None if code is None else code_digest(key, code)), retired


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class ManifestBuilder:
    """Builds and memoises manifests for one hub (one store, one set of keys)."""

    def __init__(
        self,
        store: HubStorage,
        keys: HubKeys | Callable[[], HubKeys],
        secrets: SecretBox | None = None,
    ) -> None:
        self.store = store
        # opens the venues' TicketToken keys, sealed beside the database (hub/venue_keys.py)
        self.secrets = secrets or SecretBox.for_database(store.path)
        self._source = keys if callable(keys) else None
        self._keys = keys() if callable(keys) else keys
        self._latest: OrderedDict[str, Manifest] = OrderedDict()
        self._envelopes: OrderedDict[tuple[Any, ...], Served] = OrderedDict()
        self._headers: OrderedDict[tuple[Any, ...], tuple[ManifestSource, ManifestHeader]] = (
            OrderedDict()
        )

    @property
    def keys(self) -> HubKeys:
        return self.refresh_keys()

    def refresh_keys(self) -> HubKeys:
        """The keys in use, read again from their source (the keyring) on each entry point; a
        change drops every memo, since headers list the trusted keys and envelopes carry the
        signing key."""
        if self._source is not None:
            fresh = self._source()
            if fresh is not self._keys:
                self._keys = fresh
                self._latest.clear()
                self._envelopes.clear()
                self._headers.clear()
        return self._keys

    # credentials -------------------------------------------------------------------------
    def credential_for(self, source: ManifestSource, ticket: Mapping[str, Any], now_ms: int) -> str:
        """The ticket's native credential for its current generation, issued once and kept."""
        self.refresh_keys()
        found = self.store.credentials_of([ticket["id"]]).get((ticket["id"], ticket["generation"]))
        if found is not None:
            return found
        credential = self._issue(event_facts(source), source, ticket)
        self.store.save_credentials([(ticket["id"], ticket["generation"], credential)], now_ms)
        return credential

    def _issue(self, facts: EventFacts, source: ManifestSource, ticket: Mapping[str, Any]) -> str:
        type_code = next(
            (t["code"] for t in source.ticket_types if t["id"] == ticket["ticket_type_id"]), 0
        )
        zone_code = facts.zones.index(ticket["zone"]) + 1 if ticket["zone"] in facts.zones else 0
        return issue_credential(
            signing_key=self._keys.seed,
            key_id=self._keys.key_id,
            event_code=facts.code,
            ticket_id=ticket["id"],
            generation=ticket["generation"],
            ticket_type=type_code if 0 <= type_code <= 255 else 0,
            zone=zone_code if zone_code <= 255 else 0,
            valid_from_ms=facts.start_ms - facts.checkin_before_ms,
            valid_until_ms=facts.end_ms + facts.checkin_after_ms,
            comp=ticket["comp_reason"] is not None,
        )

    def _signatures(self, source: ManifestSource, now_ms: int) -> dict[str, bytes]:
        """What seals the name of every named ticket: the code its holder carries. That is the
        backend's code where the ticket has one (its code_seal), else the signature of the
        ticket's current native credential, issuing missing ones. Tickets whose id is not a
        UUID cannot carry a native credential: no sealed name."""
        holders = [t for t in source.tickets if t["holder_name"]]
        out = {t["id"]: code_seal(t["backend_code"]) for t in holders if t["backend_code"]}
        named = [t for t in holders if t["id"] not in out and _is_uuid(t["id"])]
        issued = self.store.credentials_of([t["id"] for t in named])
        facts = event_facts(source)
        fresh: list[tuple[str, int, str]] = []
        for t in named:
            credential = issued.get((t["id"], t["generation"]))
            if credential is None:
                credential = self._issue(facts, source, t)
                fresh.append((t["id"], t["generation"], credential))
            out[t["id"]] = credential_signature(credential)
        if fresh:
            self.store.save_credentials(fresh, now_ms)
        return out

    # manifests ---------------------------------------------------------------------------
    def current_header(
        self, event_id: str, scope: Scope, now_ms: int
    ) -> tuple[ManifestSource, ManifestHeader] | None:
        """The event's header (no rows) at its current revision, for online checks: one
        memo when nothing changed since the last call."""
        self.refresh_keys()
        revision = self.store.current_revision(event_id)
        key = (event_id, revision, scope)
        hit = self._headers.get(key)
        if hit is not None:
            return hit
        source = self.store.manifest_source(event_id, with_tickets=False)
        if source is None:
            return None
        made = (source, self.header(source, scope, now_ms))
        self._remember(self._headers, (event_id, source.revision, scope), made, MEMO_ENVELOPES)
        return made

    def remembered_header(
        self, event_id: str, scope: Scope
    ) -> tuple[ManifestSource, ManifestHeader] | None:
        """current_header from memory alone, or None (ask current_header on the database
        thread): the event loop's fast path for online checks."""
        if self._source is not None and self._source() is not self._keys:
            return None  # new keys: current_header drops the memos first
        revision = self.store.remembered_revision(event_id)
        return None if revision is None else self._headers.get((event_id, revision, scope))

    def header(self, source: ManifestSource, scope: Scope, now_ms: int) -> ManifestHeader:
        e = source.event
        return ManifestHeader(
            event=event_facts(source),
            scope=scope,
            revision=source.revision,
            issued_at_ms=now_ms,
            expires_at_ms=e["end_ms"] + EXPIRY_AFTER_END_MS,
            issuer_keys=dict(self._keys.trusted),
            policy=ScanPolicy.from_json(json.loads(e["policy_json"] or "{}")),
            legacy=legacy_keys(source.legacy_key_sets, self.secrets),
            revoked=dict(source.revoked),
            code_lookup_key=source.code_lookup_key,
            code_signing_keys=source.code_signing_keys,
        )

    def _ticket_rows(self, source: ManifestSource, now_ms: int) -> dict[str, TicketRow]:
        """Every ticket of `source` as the manifest carries it: the same rows the online check
        judges (hub/engine_facts.py), plus the holder's name sealed with the ticket's code and
        the keyed hashes of its backend codes (never the codes)."""
        signatures = self._signatures(source, now_ms)
        type_names = {t["id"]: t["name"] for t in source.ticket_types}
        tickets: dict[str, TicketRow] = {}
        for t in source.tickets:
            sig = signatures.get(t["id"])
            sealed = seal_holder(t["holder_name"], sig, t["id"]) if sig else None
            tickets[t["id"]] = ticket_row(t, type_names, sealed, *code_hashes(source, t))
        return tickets

    def rows(self, event_id: str, now_ms: int) -> Manifest | None:
        """The newest revision's rows under a venue-wide header; moved forward from the last
        one kept by applying only the tickets changed since."""
        self.refresh_keys()
        memo = self._latest.get(event_id)
        if memo is not None and memo.revision == self.store.event_revision(event_id):
            return memo
        if memo is not None:
            source = self.store.manifest_source(event_id, since=memo.revision)
            if source is None:
                return None
            tickets = dict(memo.tickets)
            for ticket_id in source.removed:
                tickets.pop(ticket_id, None)
            tickets.update(self._ticket_rows(source, now_ms))
        else:
            source = self.store.manifest_source(event_id)
            if source is None:
                return None
            tickets = self._ticket_rows(source, now_ms)
        manifest = Manifest(self.header(source, Scope(source.event["venue_id"]), now_ms), tickets)
        self._remember(self._latest, event_id, manifest, MEMO_EVENTS)
        return manifest

    def serve(self, event_id: str, scope: Scope, since: int | None, now_ms: int) -> Served | None:
        """A delta from `since` (a revision 1 <= since < now), else the full manifest."""
        self.refresh_keys()
        revision = self.store.event_revision(event_id)
        memo = self.cached(event_id, revision, scope, since)
        if memo is not None:
            return memo
        base = since if since is not None and 1 <= since < revision else None
        if base is not None:
            source = self.store.manifest_source(event_id, since=base)
            if source is None:
                return None
            delta = ManifestDelta(
                self.header(source, scope, now_ms),
                base,
                tuple(self._ticket_rows(source, now_ms).values()),
                source.removed,
            )
            served = Served("delta", source.revision, self._sign(encode_delta(delta)), base)
        else:
            current = self.rows(event_id, now_ms)
            if current is None:
                return None
            served = self._full(current, scope)
        self._remember(
            self._envelopes, (event_id, served.revision, scope, base), served, MEMO_ENVELOPES
        )
        return served

    def holds_rows(self, event_id: str) -> bool:
        """Whether the event's newest full rows are in memory (moving them forward is cheap)."""
        return event_id in self._latest

    def cold(self, event_id: str, scope: Scope, now_ms: int) -> Warmed | None:
        """The event's rows and its full envelope for `scope`, not kept here: for another
        builder to adopt (ManifestWorker.warm)."""
        keys = self.refresh_keys()
        manifest = self.rows(event_id, now_ms)
        self._latest.pop(event_id, None)
        if manifest is None or not self.signed_with(keys):
            return None
        return Warmed(manifest, scope, self._full(manifest, scope), keys)

    def adopt(self, warmed: Warmed) -> None:
        """What cold() made elsewhere, kept as if built here, unless the keys changed since or
        newer rows are held."""
        manifest, scope, served = warmed.manifest, warmed.scope, warmed.served
        event_id = manifest.header.event.id
        held = self._latest.get(event_id)
        if self.refresh_keys() is not warmed.keys or (held and held.revision >= served.revision):
            return
        self._remember(self._latest, event_id, manifest, MEMO_EVENTS)
        key = (event_id, served.revision, scope, None)
        self._remember(self._envelopes, key, served, MEMO_ENVELOPES)

    def _full(self, current: Manifest, scope: Scope) -> Served:
        scoped = Manifest(replace(current.header, scope=scope), current.tickets)
        return Served("full", current.revision, self._sign(encode_manifest(scoped)))

    def signed_with(self, keys: HubKeys) -> bool:
        """Whether the memos were made with `keys` (read only: safe from another thread)."""
        return self._keys is keys

    def cached(
        self, event_id: str, revision: int, scope: Scope, since: int | None
    ) -> Served | None:
        """The envelope already built for this request, if any (no database read)."""
        base = since if since is not None and 1 <= since < revision else None
        return self._envelopes.get((event_id, revision, scope, base))

    def _sign(self, body: bytes) -> bytes:
        return sign_envelope(body, self._keys.key_id, self._keys.seed)

    @staticmethod
    def _remember(memo: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
        memo[key] = value
        memo.move_to_end(key)
        while len(memo) > limit:
            memo.popitem(last=False)


class ManifestWorker:
    """Builds manifests off the event loop: a cold build of a big event (every row, a
    credential signed per named ticket) takes seconds, and on the loop it would stall every
    other request. One worker thread with its own database connection (sqlite connections stay
    on their thread) and its own builder, whose memos it alone touches; requests for the same
    manifest that arrive while it is being built wait for that one build."""

    def __init__(self, path: str, keys: HubKeys | Callable[[], HubKeys]) -> None:
        self.path = path
        self._keys = keys
        self._thread: ThreadOwned[ManifestBuilder] = ThreadOwned(
            "hub-manifest-build",
            lambda: ManifestBuilder(HubStore(self.path, migrate=False), self._keys),
            lambda builder: builder.store.close(),
        )
        self._builder: ManifestBuilder | None = None  # the thread's, once made: memos read here
        self._building: dict[tuple[Any, ...], asyncio.Future[Served | None]] = {}
        self.builds = 0  # builds run on the thread (memo hits on the loop not counted)
        # warm(): cold builds beside the serving thread, which never waits behind one
        self._warmer: ThreadOwned[ManifestBuilder] = ThreadOwned(
            "hub-manifest-warm",
            lambda: ManifestBuilder(HubStore(self.path, migrate=False), self._keys),
            lambda builder: builder.store.close(),
        )
        self._warming: dict[str, asyncio.Task[None]] = {}  # held: a task nobody holds may vanish

    async def serve(
        self, event_id: str, scope: Scope, since: int | None, revision: int, now_ms: int
    ) -> Served | None:
        """As ManifestBuilder.serve; `revision` is the one the caller just read. A whole
        manifest asked for while its event warms up (warm()) waits for that build rather than
        making a second one beside it."""
        base = since if since is not None and 1 <= since < revision else None
        warming = self._warming.get(event_id)
        if warming is not None and base is None:
            await asyncio.wait([warming])  # never raises: the warm-up logs its own failure
        builder = self._builder
        if builder is not None:  # a finished envelope needs no thread
            memo = builder.cached(event_id, revision, scope, since)
            keys = self._keys() if callable(self._keys) else self._keys
            if memo is not None and builder.signed_with(keys):
                return memo
        key = (event_id, revision, scope, base)
        pending = self._building.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                self._thread.run(
                    lambda builder: self._build(builder, event_id, scope, since, now_ms)
                )
            )
            self._building[key] = pending
            pending.add_done_callback(lambda _: self._building.pop(key, None))
        # shielded: one caller going away must not cancel the build the others wait for
        return await asyncio.shield(pending)

    def _build(
        self, builder: ManifestBuilder, event_id: str, scope: Scope, since: int | None, now_ms: int
    ) -> Served | None:
        self._builder = builder
        self.builds += 1
        return builder.serve(event_id, scope, since, now_ms)

    def warm(self, changed: Mapping[str, str], now_ms: int) -> list[asyncio.Task[None]]:
        """After a pull changed these events' tickets (event id -> venue id): an event whose
        full rows are not in memory (a backend's first pull of it, or the first change since
        the hub started) is built now on a thread of its own, with the envelope its venue's
        gates ask for, and handed to the serving thread: a gate enrolling after a first pull
        of 100,000 tickets then waits for none of it, and a gate asking for a delta meanwhile
        is not queued behind it. Rows in memory are moved forward when next asked for.
        Nobody needs to await the tasks (done once each build is kept); failures are logged."""
        builder, warming = self._builder, []
        for event_id, venue_id in changed.items():
            if event_id in self._warming or (builder is not None and builder.holds_rows(event_id)):
                continue
            task = asyncio.create_task(self._warm(event_id, Scope(venue_id), now_ms))
            self._warming[event_id] = task
            warming.append(task)
        return warming

    async def _warm(self, event_id: str, scope: Scope, now_ms: int) -> None:
        try:
            warmed = await self._warmer.run(functools.partial(_cold, event_id, scope, now_ms))
            if warmed is not None:
                await self._thread.run(lambda builder: self._adopt(builder, warmed))
        except Exception:
            log.exception("manifest warm-up failed", extra={"event": event_id})
        finally:
            self._warming.pop(event_id, None)

    def _adopt(self, builder: ManifestBuilder, warmed: Warmed) -> None:
        self._builder = builder
        builder.adopt(warmed)

    def close(self) -> None:
        for task in self._warming.values():
            task.cancel()
        self._warmer.close()
        self._thread.close()


def _cold(event_id: str, scope: Scope, now_ms: int, builder: ManifestBuilder) -> Warmed | None:
    return builder.cold(event_id, scope, now_ms)
