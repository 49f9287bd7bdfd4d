"""HubStore's side of a venue's TicketToken keys (hub/venue_keys.py): key sets and their
rotation, each change audited and moving every event of the venue to a new manifest
revision, so its gates pull the keys at their next sync.

The states are the hub keyring's (hub/keyring.py), decided here inside the write transaction
that changes them: a venue's first set is `current` at once; `rotate` announces a `next` set
beside it; `activate` makes the next set current and the current one `retired`; a retired
set (or a next one never activated) is then `removed`, its sealed secrets dropped. The store
only ever sees sealed secrets: `seal(key_set)` seals them for the row being made.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlite_utils

from hub.store_base import Row, StoreBase
from hub.venue_keys import CURRENT, NEXT, REMOVED, RETIRED, TRUSTED, VenueKeysRefused

if TYPE_CHECKING:
    from hub.store_api import NewVenueKeySet

# Every column but the sealed secrets.
_PUBLIC = (
    "venue_id, key_set, state, fingerprints_json, rotation_interval_ms, format_c_validity_ms,"
    " created_ms, activated_ms, retired_ms, removed_ms"
)
# current, then next, then retired ones newest first: the order gates try them in
_TRUST_ORDER = (
    f"CASE state WHEN '{TRUSTED[0]}' THEN 0 WHEN '{TRUSTED[1]}' THEN 1 ELSE 2 END, key_set DESC"
)


def trusted_key_sets(db: sqlite_utils.Database, venue_id: str) -> tuple[Row, ...]:
    """The venue's trusted sets with their sealed secrets, in trust order: what its
    manifests are built from (hub/store_manifests.py, in its read transaction)."""
    return tuple(
        db.query(
            f"SELECT {_PUBLIC}, secrets_sealed FROM venue_legacy_keys"
            f" WHERE venue_id = ? AND state != ? ORDER BY {_TRUST_ORDER}",
            [venue_id, REMOVED],
        )
    )


class VenueKeyStore(StoreBase):
    def venue_key_sets(self, venue_id: str) -> list[Row]:
        """The venue's key sets that gates trust, without their secrets, in trust order."""
        return list(
            self.db.query(
                f"SELECT {_PUBLIC} FROM venue_legacy_keys WHERE venue_id = ? AND state != ?"
                f" ORDER BY {_TRUST_ORDER}",
                [venue_id, REMOVED],
            )
        )

    def add_venue_key_set(
        self, tenant_id: str, keys: NewVenueKeySet, actor: str, now_ms: int
    ) -> Row:
        """The venue's first set as `current` (TicketToken issues with it already), or a new
        set as `next` beside the current one (a rotation announced). Numbers go on from the
        highest the venue ever had. VenueKeysRefused when the state does not fit."""
        venue_id, state = keys.venue_id, keys.state
        if state not in (CURRENT, NEXT):
            raise ValueError(f"a new key set is current or next, not {state}")
        with self._writing():
            held = {r["state"]: r["key_set"] for r in self.venue_key_sets(venue_id)}
            if state == CURRENT and CURRENT in held:
                raise VenueKeysRefused(
                    f"this venue's keys are set already (key set {held[CURRENT]} is current):"
                    " rotate announces new keys, activate then switches to them",
                    "key_set_exists",
                )
            if state == NEXT and CURRENT not in held:
                raise VenueKeysRefused(
                    "this venue has no TicketToken keys to rotate yet: set its first keys",
                    "no_key_set",
                )
            if state == NEXT and NEXT in held:
                raise VenueKeysRefused(
                    f"key set {held[NEXT]} is announced already: activate it (or retire it)"
                    " before announcing another",
                    "key_set_exists",
                )
            key_set = (
                1
                + self.db.execute(
                    "SELECT coalesce(max(key_set), 0) FROM venue_legacy_keys WHERE venue_id = ?",
                    [venue_id],
                ).fetchone()[0]
            )
            row: Row = {
                "venue_id": venue_id,
                "key_set": key_set,
                "state": state,
                "secrets_sealed": keys.seal(key_set),
                "fingerprints_json": json.dumps(dict(keys.fingerprints), sort_keys=True),
                "rotation_interval_ms": keys.rotation_interval_ms,
                "format_c_validity_ms": keys.format_c_validity_ms,
                "created_ms": now_ms,
                "activated_ms": now_ms if state == CURRENT else None,
            }
            self.db.table("venue_legacy_keys").insert(row)
            action = "venue_keys.set" if state == CURRENT else "venue_keys.rotate"
            detail = {
                "key_set": key_set,
                "fingerprints": dict(keys.fingerprints),
                "rotation_interval_ms": keys.rotation_interval_ms,
                "format_c_validity_ms": keys.format_c_validity_ms,
            }
            self._changed(tenant_id, venue_id, actor, action, detail, now_ms)
        return self._key_set(venue_id, key_set)

    def activate_venue_key_set(
        self, tenant_id: str, venue_id: str, actor: str, now_ms: int
    ) -> list[Row]:
        """The next set becomes current, the current one retired (still trusted, so codes it
        made just before keep scanning); the two rows as they are now."""
        with self._writing():
            held = {r["state"]: r["key_set"] for r in self.venue_key_sets(venue_id)}
            if NEXT not in held:
                raise VenueKeysRefused(
                    "this venue has no announced key set to activate: rotate announces one",
                    "no_key_set",
                )
            self.db.execute(
                "UPDATE venue_legacy_keys SET state = ?, retired_ms = ?"
                " WHERE venue_id = ? AND state = ?",
                [RETIRED, now_ms, venue_id, CURRENT],
            )
            self.db.execute(
                "UPDATE venue_legacy_keys SET state = ?, activated_ms = ?"
                " WHERE venue_id = ? AND key_set = ?",
                [CURRENT, now_ms, venue_id, held[NEXT]],
            )
            detail = {"key_set": held[NEXT], "retired": held.get(CURRENT)}
            self._changed(tenant_id, venue_id, actor, "venue_keys.activate", detail, now_ms)
        sets = [held[NEXT]] + ([held[CURRENT]] if CURRENT in held else [])
        return [self._key_set(venue_id, n) for n in sets]

    def remove_venue_key_set(
        self, tenant_id: str, venue_id: str, key_set: int, actor: str, now_ms: int
    ) -> Row:
        """A retired set, or a next one never activated, stops being trusted: its sealed
        secrets are dropped, its row (and number) kept. The current set cannot go."""
        with self._writing():
            row = self._one(
                f"SELECT {_PUBLIC} FROM venue_legacy_keys WHERE venue_id = ? AND key_set = ?",
                [venue_id, key_set],
            )
            if row is None or row["state"] == REMOVED:
                raise VenueKeysRefused(
                    f"this venue has no key set {key_set} in use", "no_such_key_set"
                )
            if row["state"] == CURRENT:
                raise VenueKeysRefused(
                    f"key set {key_set} is current (TicketToken issues with it): rotate and"
                    " activate new keys first, then it can be retired",
                    "key_set_in_use",
                )
            self.db.execute(
                "UPDATE venue_legacy_keys SET state = ?, secrets_sealed = NULL, removed_ms = ?"
                " WHERE venue_id = ? AND key_set = ?",
                [REMOVED, now_ms, venue_id, key_set],
            )
            detail = {"key_set": key_set, "was": row["state"]}
            self._changed(tenant_id, venue_id, actor, "venue_keys.remove", detail, now_ms)
        return self._key_set(venue_id, key_set)

    def _key_set(self, venue_id: str, key_set: int) -> Row:
        row = self._one(
            f"SELECT {_PUBLIC} FROM venue_legacy_keys WHERE venue_id = ? AND key_set = ?",
            [venue_id, key_set],
        )
        assert row is not None
        return row

    def _changed(
        self,
        tenant_id: str,
        venue_id: str,
        actor: str,
        action: str,
        detail: Mapping[str, Any],
        now_ms: int,
    ) -> None:
        """Audit a change (never with a secret) and give every event of the venue a new
        manifest revision: its header carries the keys, so gates pull it at their next sync."""
        self._audit(tenant_id, venue_id, actor, action, venue_id, detail, now_ms)
        self.db.execute(
            "INSERT INTO event_revisions (event_id, revision) SELECT id, 1 FROM events"
            " WHERE venue_id = ? ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1",
            [venue_id],
        )
