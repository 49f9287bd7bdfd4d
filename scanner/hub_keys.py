"""Which hub keys this gate trusts for manifests, and taking the hub's signed key set.

The first key comes with enrolment (or `load-manifest --hub-key`); later ones only from a key
set signed by a key already trusted, never older than the last one taken (a key rotation).
Keys live in the store's key table under `hub_key:<id>` (scanner/settings.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from manifests.keyset import open_key_set
from manifests.signing import MAGIC, ManifestRejected, envelope_key_id
from scanner.settings import HUB_KEY_PREFIX, HUB_KEYS_VERSION
from scanner.store import GateStore


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
