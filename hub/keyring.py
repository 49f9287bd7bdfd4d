"""The hub's keyring: the key it signs with and every hub key devices should trust, so the
signing key can be rotated without a flag day.

A key moves through three states:
  next     announced to devices (they trust it from their next sync), not yet signing;
  current  signs manifests, credentials and the key-set document (exactly one);
  retired  no longer signs, still trusted so what it signed keeps verifying, until removed.

The file is JSON, mode 0600, replaced atomically; `version` counts its changes, and devices
refetch the key set when the hub announces a new one. An older hub key file holding just a hex
seed reads as key 1, current. Private seeds never leave this file: nothing here prints them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub.config import ConfigError, load_or_create_seed
from hub.manifest_build import HubKeys
from protocol.native import public_key
from protocol.signing import b64encode, key_fingerprint

NEXT, CURRENT, RETIRED = "next", "current", "retired"
STATES = (NEXT, CURRENT, RETIRED)
FORMAT = "venue-gate-hub-keyring/1"
MAX_KEY_ID = 255  # a native credential carries its key id in one byte

log = logging.getLogger("hub")


class KeyringError(ConfigError):
    """The keyring file is unreadable, or a key command does not fit its state."""


@dataclass(frozen=True, slots=True)
class HubKey:
    key_id: int
    state: str
    seed: bytes
    created_ms: int

    @property
    def public(self) -> bytes:
        return public_key(self.seed)

    def describe(self) -> dict[str, Any]:
        """What an operator may see: never the seed."""
        return {
            "key_id": self.key_id,
            "state": self.state,
            "public_key": b64encode(self.public),
            "fingerprint": key_fingerprint(self.public),
            "created_ms": self.created_ms,
        }


@dataclass(frozen=True, slots=True)
class Keyring:
    version: int
    last_key_id: int  # ids are never reused, even after a key is removed
    keys: tuple[HubKey, ...]

    @classmethod
    def first(cls, seed: bytes, now_ms: int = 0) -> Keyring:
        return cls(1, 1, (HubKey(1, CURRENT, seed, now_ms),))

    @property
    def current(self) -> HubKey:
        return next(k for k in self.keys if k.state == CURRENT)

    def find(self, state: str) -> HubKey | None:
        return next((k for k in self.keys if k.state == state), None)

    def hub_keys(self) -> HubKeys:
        current = self.current
        trusted = {k.key_id: k.public for k in self.keys}
        return HubKeys(current.key_id, current.seed, trusted, self.version)

    # the three commands ------------------------------------------------------------------
    def rotate(self, now_ms: int, seed: bytes | None = None) -> Keyring:
        """A fresh key as `next`: devices learn it while the current key still signs."""
        pending = self.find(NEXT)
        if pending is not None:
            raise KeyringError(f"key {pending.key_id} is already next: activate it first")
        key_id = self.last_key_id + 1
        if key_id > MAX_KEY_ID:
            raise KeyringError(f"no key ids left (at most {MAX_KEY_ID})")
        made = HubKey(key_id, NEXT, seed or secrets.token_bytes(32), now_ms)
        return Keyring(self.version + 1, key_id, (*self.keys, made))

    def activate(self) -> Keyring:
        """`next` starts signing; the current key is retired (still trusted)."""
        upcoming = self.find(NEXT)
        if upcoming is None:
            raise KeyringError("there is no next key: run `gate-hub key rotate` first")
        moved = tuple(
            replace(k, state=CURRENT)
            if k.key_id == upcoming.key_id
            else replace(k, state=RETIRED)
            if k.state == CURRENT
            else k
            for k in self.keys
        )
        return Keyring(self.version + 1, self.last_key_id, moved)

    def retire(self, key_id: int) -> Keyring:
        """Remove a retired key: devices stop trusting it after their next sync."""
        key = next((k for k in self.keys if k.key_id == key_id), None)
        if key is None:
            raise KeyringError(f"no key {key_id} in the keyring")
        if key.state != RETIRED:
            raise KeyringError(f"key {key_id} is {key.state}: only a retired key can be removed")
        kept = tuple(k for k in self.keys if k.key_id != key_id)
        return Keyring(self.version + 1, self.last_key_id, kept)

    # the file ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "last_key_id": self.last_key_id,
            "keys": [
                {
                    "key_id": k.key_id,
                    "state": k.state,
                    "seed": k.seed.hex(),
                    "created_ms": k.created_ms,
                }
                for k in self.keys
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Keyring:
        try:
            if data["format"] != FORMAT:
                raise ValueError("unknown format")
            keys = tuple(
                HubKey(
                    int(k["key_id"]),
                    str(k["state"]),
                    bytes.fromhex(k["seed"]),
                    int(k["created_ms"]),
                )
                for k in data["keys"]
            )
            ring = cls(int(data["version"]), int(data["last_key_id"]), keys)
        except (KeyError, TypeError, ValueError):
            raise KeyringError("the keyring file is malformed") from None
        states = [k.state for k in keys]
        ids = [k.key_id for k in keys]
        if (
            any(s not in STATES for s in states)
            or states.count(CURRENT) != 1
            or states.count(NEXT) > 1
            or len(set(ids)) != len(ids)
            or any(not 1 <= i <= ring.last_key_id <= MAX_KEY_ID for i in ids)
            or any(len(k.seed) != 32 for k in keys)
        ):
            raise KeyringError("the keyring file is inconsistent (states, ids or seeds)")
        return ring


def load_keyring(path: str | Path) -> Keyring:
    """The keyring in `path`: JSON, or an older hub key file's hex seed (key 1, current)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyringError(f"cannot read key file {path}: {exc.strerror}") from None
    if not text.lstrip().startswith("{"):
        return Keyring.first(load_or_create_seed(path))
    try:
        data = json.loads(text)
    except ValueError:
        raise KeyringError(f"key file {path} is not valid JSON") from None
    try:
        return Keyring.from_json(data)
    except KeyringError as exc:
        raise KeyringError(f"key file {path}: {exc}") from None


def load_or_create_keyring(path: str | Path) -> Keyring:
    """As the hub starts: a missing key file is created (a fresh seed, key 1)."""
    if not Path(path).exists():
        load_or_create_seed(path)
    return load_keyring(path)


def save_keyring(path: str | Path, keyring: Keyring) -> None:
    """Write atomically (a reader never sees half a file) and private (0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(keyring.to_json(), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class KeyringWatch:
    """The hub's keys from its keyring file, read again whenever the file changed, so a
    `gate-hub key ...` command takes effect in the running hub without a restart. The check is
    one stat() per call; a file that does not load keeps the keys already in use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._keys = load_keyring(self.path).hub_keys()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def __call__(self) -> HubKeys:
        stamp = self._stat()
        if stamp == self._stamp or stamp is None:
            return self._keys
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._keys = load_keyring(self.path).hub_keys()
                    log.info(
                        "hub keys reloaded",
                        extra={"key_id": self._keys.key_id, "version": self._keys.version},
                    )
                except ConfigError as exc:
                    log.warning("hub keyring not reloaded: %s", exc)
                self._stamp = stamp
        return self._keys
