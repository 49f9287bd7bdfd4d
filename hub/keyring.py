"""The hub's keyring: the key it signs with and every hub key devices should trust, so the
signing key can be rotated without a flag day.

A key moves through three states:
  next     announced to devices (they trust it from their next sync), not yet signing;
  current  signs manifests, credentials and the key-set document (exactly one);
  retired  no longer signs, still trusted so what it signed keeps verifying, until removed.

The file is JSON, mode 0600, replaced atomically; `version` counts its changes, and devices
refetch the key set when the hub announces a new one. An older hub key file holding just a hex
seed reads as key 1, current. Private seeds never leave this file: nothing here prints them.

The file is the hub's identity: gates pinned its key at enrolment. So the hub database records
the keys' fingerprints (`hub_identity`), and a key file that is missing or does not match them
stops the hub with a sentence instead of becoming a new identity every gate would refuse; only
`gate-hub key new-identity --confirm` starts a new one.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub.config import ConfigError, load_or_create_seed
from hub.manifest_build import HubKeys
from hub.store_base import StoreBase
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


# the identity the database recorded ---------------------------------------------------------
def fingerprints(ring: Keyring) -> dict[str, str]:
    """What the database records of a keyring: key id -> fingerprint, never a seed."""
    return {str(k.key_id): key_fingerprint(k.public) for k in ring.keys}


def _record(ring: Keyring, now_ms: int) -> dict[str, Any]:
    """The identity row for `ring`, nothing pending."""
    return {
        "keys_json": json.dumps(fingerprints(ring)),
        "pending_json": None,
        "version": ring.version,
        "last_key_id": ring.last_key_id,
        "recorded_ms": now_ms,
    }


def _advice(problem: str, db: str, path: Path) -> str:
    """The problem, then both ways out: the backup, or a new identity on purpose."""
    command = f"gate-hub key new-identity --db {db}"
    if str(path) != f"{db}.hubkey":
        command += f" --key-file {path}"
    return (
        f"{problem}. The hub signs only with the keys its gates trust, or they would refuse "
        f'every manifest it sends. Restore {path} from your backup (README, "Backing up the '
        f'hub key"), or start a new hub identity on purpose with `{command} --confirm` '
        "(every enrolled gate must then be enrolled again)"
    )


def _mismatch(path: Path, held: dict[str, str], recorded: dict[str, str]) -> str:
    differences = []
    for key_id in sorted(set(held) | set(recorded), key=int):
        if key_id not in held:
            differences.append(f"key {key_id} is not in the file")
        elif key_id not in recorded:
            differences.append(f"key {key_id} was never recorded")
        elif held[key_id] != recorded[key_id]:
            differences.append(
                f"key {key_id} has fingerprint {held[key_id]}, recorded {recorded[key_id]}"
            )
    return (
        f"the hub key file {path} does not match the keys this database recorded "
        f"({'; '.join(differences)})"
    )


def open_keyring(
    store: StoreBase, path: str | Path, now_ms: int, *, create: bool = False
) -> Keyring:
    """The keyring in `path`, held to the fingerprints the database recorded. A new database
    gets its key file (with `create`, as the hub starts) and a record; a database from before
    the record trusts the file it finds, once (the key its gates pinned). A missing file for a
    database whose key is in use, an unreadable one or one that does not match: KeyringError,
    saying what is wrong and how to restore or deliberately replace it."""
    path, db = Path(path), store.path
    record = store.hub_identity()
    if not path.exists():
        if record is not None or store.hub_identity_in_use():
            problem = f"the hub key file {path} is missing, but this database already has a hub"
            if record is not None:
                listed = ", ".join(
                    f"key {k} {f}" for k, f in json.loads(record["keys_json"]).items()
                )
                problem += f" identity ({listed})"
            else:
                problem += " identity (enrolled gates or issued codes rely on its key)"
            raise KeyringError(_advice(problem, db, path))
        if not create:
            raise KeyringError(
                f"there is no hub key file {path} yet: `gate-hub serve` makes it on first start"
            )
        try:
            load_or_create_seed(path)
        except OSError as exc:
            raise KeyringError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        ring = load_keyring(path)
    except ConfigError as exc:
        raise KeyringError(_advice(str(exc), db, path)) from None
    held = fingerprints(ring)
    if record is None:
        store.record_hub_identity(_record(ring, now_ms))
        return ring
    recorded = json.loads(record["keys_json"])
    if held == recorded:
        return ring
    pending = record["pending_json"]
    if pending is not None and held == json.loads(pending):
        store.record_hub_identity(_record(ring, now_ms))  # a key command stopped mid-way
        return ring
    raise KeyringError(_advice(_mismatch(path, held, recorded), db, path))


def write_keyring(store: StoreBase, path: str | Path, ring: Keyring, now_ms: int) -> None:
    """Save a changed keyring (a key command) with the record in step: the new set is recorded
    as pending first, so a crash after the file is written still leaves a file the hub
    accepts (it finishes the record at start)."""
    record = store.hub_identity()
    if record is not None:
        store.record_hub_identity({**record, "pending_json": json.dumps(fingerprints(ring))})
    save_keyring(path, ring)
    store.record_hub_identity(_record(ring, now_ms))


def new_identity(store: StoreBase, path: str | Path, now_ms: int) -> tuple[Keyring, Path | None]:
    """A new hub key replacing whatever `path` holds (missing, altered or fine): the one way to
    a new identity, so it is audited. Key ids and the version go on from the old ones, so no
    gate can take the new key for an old one. The file it replaces is kept beside it, as
    `<file>.replaced-<ms>`, in case it was the right one after all. Returns the keyring and
    where the old file was kept."""
    path = Path(path)
    record = store.hub_identity()
    version, last_key_id = (record["version"], record["last_key_id"]) if record else (0, 0)
    try:
        old = load_keyring(path)
        version, last_key_id = max(version, old.version), max(last_key_id, old.last_key_id)
    except ConfigError:
        pass  # missing or unreadable: the record has the numbers
    key_id = last_key_id + 1 if last_key_id < MAX_KEY_ID else 1
    ring = Keyring(version + 1, key_id, (HubKey(key_id, CURRENT, secrets.token_bytes(32), now_ms),))
    if record is not None:
        store.record_hub_identity({**record, "pending_json": json.dumps(fingerprints(ring))})
    kept = None
    if path.exists():
        kept = path.with_name(f"{path.name}.replaced-{now_ms}")
        shutil.copy2(path, kept)  # mode 0600 kept too
    save_keyring(path, ring)
    detail = {
        "old_keys": json.loads(record["keys_json"]) if record else None,
        "key_id": key_id,
        "fingerprint": key_fingerprint(ring.current.public),
        "old_file_kept_as": None if kept is None else str(kept),
    }
    store.record_hub_identity(_record(ring, now_ms), audit=("hub.new_identity", detail))
    return ring, kept


def recorded_by(db: str | Path, path: str | Path) -> Callable[[Keyring], None]:
    """For the running hub's KeyringWatch: raise KeyringError unless a changed key file matches
    the database's record (or the set a key command is recording). Its own short connection,
    as the watch is called on whichever thread builds a manifest."""
    db, path = Path(db), Path(path)

    def verify(ring: Keyring) -> None:
        with closing(sqlite3.connect(db, timeout=5)) as conn:
            row = conn.execute(
                "SELECT keys_json, pending_json FROM hub_identity WHERE id = 1"
            ).fetchone()
        if row is None:
            raise KeyringError("the hub database has no record of its keys")
        held = fingerprints(ring)
        recorded = json.loads(row[0])
        if held != recorded and (row[1] is None or held != json.loads(row[1])):
            raise KeyringError(_mismatch(path, held, recorded))

    return verify


class KeyringWatch:
    """The hub's keys from its keyring file, read again whenever the file changed, so a
    `gate-hub key ...` command takes effect in the running hub without a restart. The check is
    one stat() per call. A file that does not load, or that `verify` refuses (altered: not the
    keys the database recorded), is not adopted: the hub keeps signing with the last good keys
    and logs an error, as gates would refuse anything signed with other keys."""

    def __init__(
        self,
        path: str | Path,
        *,
        ring: Keyring | None = None,
        verify: Callable[[Keyring], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._verify = verify
        self._stamp = self._stat()
        self._keys = (ring or load_keyring(self.path)).hub_keys()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def __call__(self) -> HubKeys:
        stamp = self._stat()
        if stamp == self._stamp:
            return self._keys
        with self._lock:
            if stamp != self._stamp:
                self._reload(stamp)
        return self._keys

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        kept = {"key_id": self._keys.key_id, "version": self._keys.version}
        if stamp is None:
            self._stamp = stamp  # said once
            log.error("hub key file %s is gone: restore it from backup", self.path, extra=kept)
            return
        try:
            ring = load_keyring(self.path)
            if self._verify is not None:
                self._verify(ring)
        except ConfigError as exc:
            log.error(
                "hub keyring not reloaded, still signing with the last good keys: %s",
                exc,
                extra=kept,
            )
        except sqlite3.Error as exc:  # the record could not be read: try again next call
            log.warning("hub keyring not reloaded yet: %s", exc, extra=kept)
            return
        else:
            self._keys = ring.hub_keys()
            log.info(
                "hub keys reloaded",
                extra={"key_id": self._keys.key_id, "version": self._keys.version},
            )
        self._stamp = stamp
