"""Installing a hub manifest on the gate: verify, check the chain, store without holding up
a scan.

A full manifest or a delta is verified against the trusted hub keys (scanner/hub_keys.py),
its revision chain checked against what is installed, and handed to the store, which writes a
full one in short chunks beside the scans (scanner/store.py). The installed header is decoded
once per install and shared with the decision loop (scanner/service.py).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

from manifests.codec import decode_delta, decode_manifest, decode_manifest_header, encode_manifest
from manifests.delta import verify_and_apply
from manifests.model import Manifest, ManifestHeader
from manifests.signing import MAGIC, ManifestRejected, open_envelope
from scanner.hub_keys import trusted_hub_keys
from scanner.store import ChunkCallback, GateStore, Stamp


def decode_stored(encoded: bytes, trusted: Mapping[int, bytes]) -> Manifest:
    """The installed manifest: a hub envelope is verified again; a body built on this device
    by applying a verified delta is decoded as is."""
    body = open_envelope(encoded, trusted) if encoded[: len(MAGIC)] == MAGIC else encoded
    return decode_manifest(body)


def stored_header(store: GateStore) -> ManifestHeader | None:
    """The installed manifest's header: the one this process installed (verified then), else
    verified and decoded from the stored envelope, header only (no 100k rows built)."""
    found = stamped_header(store)
    return None if found is None else found[1]


def stamped_header(store: GateStore) -> tuple[Stamp, ManifestHeader] | None:
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
