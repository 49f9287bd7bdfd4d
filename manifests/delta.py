"""Moving a device from one manifest revision to the next, and the checks that keep it on its
last good manifest when anything is off.

Every function here returns a NEW Manifest or raises ManifestRejected; none mutates its
input, so a caller that catches the refusal still holds exactly what it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from manifests.codec import decode_delta, decode_manifest
from manifests.model import Manifest, ManifestDelta, ManifestHeader
from manifests.signing import ManifestRejected, open_envelope


def diff(old: Manifest, new: Manifest) -> ManifestDelta:
    """What turns `old` into `new`: changed and added rows, removed ids, the new header."""
    old_rows = old.tickets
    upserts = tuple(row for tid, row in new.tickets.items() if old_rows.get(tid) != row)
    removed = tuple(tid for tid in old_rows if tid not in new.tickets)
    return ManifestDelta(new.header, old.header.revision, upserts, removed)


def _check_fresh(header: ManifestHeader, now_ms: int) -> None:
    if header.expires_at_ms <= now_ms:
        raise ManifestRejected(
            "expired", f"manifest revision {header.revision} expired before it arrived"
        )


def apply_delta(current: Manifest, delta: ManifestDelta, now_ms: int) -> Manifest:
    """`current` moved to the delta's revision; refuses a delta for another event, one not
    built on `current`'s revision or not moving forward, and an expired one."""
    if delta.header.event.id != current.header.event.id:
        raise ManifestRejected(
            "wrong_event",
            f"delta is for event {delta.header.event.id}, this gate holds "
            f"{current.header.event.id}",
        )
    if delta.base_revision != current.revision or delta.header.revision <= current.revision:
        raise ManifestRejected(
            "revision_chain",
            f"delta {delta.base_revision}->{delta.header.revision} does not follow revision "
            f"{current.revision}",
        )
    _check_fresh(delta.header, now_ms)
    tickets = dict(current.tickets)
    for tid in delta.removed:
        tickets.pop(tid, None)
    for row in delta.upserts:
        tickets[row.ticket_id] = row
    return Manifest(delta.header, tickets)


def accept_manifest(new: Manifest, current: Manifest | None, now_ms: int) -> Manifest:
    """`new` if a device holding `current` may switch to it: not expired, and for the same
    event strictly newer (a replayed older manifest must not resurrect revoked tickets)."""
    _check_fresh(new.header, now_ms)
    if (
        current is not None
        and new.header.event.id == current.header.event.id
        and new.revision <= current.revision
    ):
        raise ManifestRejected(
            "revision_chain",
            f"manifest revision {new.revision} is not newer than revision {current.revision}",
        )
    return new


def verify_manifest(envelope: bytes, trusted_hub_keys: Mapping[int, bytes]) -> Manifest:
    """Open and decode a full manifest envelope, without the revision and expiry checks."""
    return decode_manifest(open_envelope(envelope, trusted_hub_keys))


def verify_and_apply(
    envelope: bytes,
    kind: Literal["full", "delta"],
    trusted_hub_keys: Mapping[int, bytes],
    current: Manifest | None,
    now_ms: int,
) -> Manifest:
    """The one entry point a device uses for what the hub sends: signature, decoding and
    chain checks in order. On any refusal the caller keeps `current`."""
    if kind == "full":
        return accept_manifest(verify_manifest(envelope, trusted_hub_keys), current, now_ms)
    if kind == "delta":
        delta = decode_delta(open_envelope(envelope, trusted_hub_keys))
        if current is None:
            raise ManifestRejected(
                "revision_chain", "a delta needs a manifest to apply to; fetch a full one"
            )
        return apply_delta(current, delta, now_ms)
    raise ManifestRejected("malformed", f"unknown manifest kind {kind!r}")
