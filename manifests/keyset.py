"""The hub's key-set document: every hub public key devices should trust, signed by the hub's
current key in the same envelope as manifests, so a gate learns of a rotation only from a key
it already trusts.

Body: kind `K` | JSON {"version", "signing_key_id", "issued_at_ms", "keys": {id: base64url}}.
The kind byte differs from a manifest's (`M`) and a delta's (`D`), so neither can pass for
the other. `version` only ever grows (the hub's keyring counts its changes): a device refuses
an older document, so a replayed one cannot bring back a key the hub has since dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from manifests.signing import ManifestRejected, envelope_key_id, open_envelope, sign_envelope
from protocol.signing import b64decode, b64encode

KIND = b"K"
MAX_KEYS = 16  # a hub holds next, current and a few retired keys at most


@dataclass(frozen=True, slots=True)
class KeySet:
    version: int
    signing_key_id: int
    keys: Mapping[int, bytes]  # key id -> Ed25519 public key
    issued_at_ms: int


def sign_key_set(key_set: KeySet, seed: bytes) -> bytes:
    """The signed document; `seed` is the private seed of `signing_key_id`."""
    body = {
        "version": key_set.version,
        "signing_key_id": key_set.signing_key_id,
        "issued_at_ms": key_set.issued_at_ms,
        "keys": {str(k): b64encode(v) for k, v in sorted(key_set.keys.items())},
    }
    payload = KIND + json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return sign_envelope(payload, key_set.signing_key_id, seed)


def open_key_set(envelope: bytes, trusted: Mapping[int, bytes]) -> KeySet:
    """The key set if a trusted hub key signed it and it is well formed; else ManifestRejected
    ('unknown_key', 'bad_signature', 'malformed')."""
    body = open_envelope(envelope, trusted)
    if body[:1] != KIND:
        raise ManifestRejected("malformed", "not a hub key-set document")
    try:
        data = json.loads(body[1:])
        version, signer = data["version"], data["signing_key_id"]
        issued = data["issued_at_ms"]
        keys = {int(k): b64decode(v) for k, v in data["keys"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ManifestRejected("malformed", "the hub key-set document is malformed") from None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (version, signer, issued)):
        raise ManifestRejected("malformed", "the hub key-set document is malformed")
    if not 1 <= len(keys) <= MAX_KEYS or any(len(v) != 32 for v in keys.values()):
        raise ManifestRejected("malformed", "the hub key set must hold 1 to 16 Ed25519 keys")
    if signer != envelope_key_id(envelope) or keys.get(signer) != bytes(trusted[signer]):
        raise ManifestRejected("malformed", "the key set does not list the key that signed it")
    return KeySet(version, signer, keys, issued)
