"""Secrets the hub must keep but never show (a backend's API token), sealed at rest.

The database holds only AES-256-GCM ciphertext; the key lives in its own file beside the
database (`<db>-secrets.key`, mode 0600), like the hub's keyring. A copy of the database
alone (a backup, a support bundle, a report) therefore reveals no token. The associated
data binds each sealed value to the row it belongs to, so a value moved to another row does
not open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = b"\x01"


class SecretUnreadable(Exception):
    """A sealed value that this key cannot open (another hub's key, or altered bytes)."""


def key_path_for(db_path: str | Path) -> Path:
    return Path(f"{db_path}-secrets.key")


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, made (0600, written whole before it is used) when missing."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(KEY_BYTES)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return key
    if len(key) != KEY_BYTES:
        raise SecretUnreadable(f"{path} is not a hub secrets key ({len(key)} bytes, not 32)")
    return key


class SecretBox:
    """Seals with the key of `key_path`, read (or made) at first use: a hub that never
    stores a secret never makes the file."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._cipher: AESGCM | None = None

    @classmethod
    def for_database(cls, db_path: str | Path) -> SecretBox:
        return cls(key_path_for(db_path))

    @property
    def _aead(self) -> AESGCM:
        if self._cipher is None:
            self._cipher = AESGCM(load_or_create_key(self.key_path))
        return self._cipher

    def seal(self, plaintext: str, bound_to: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), bound_to.encode())
        return _VERSION + nonce + sealed

    def open(self, sealed: bytes, bound_to: str) -> str:
        if sealed[:1] != _VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
            raise SecretUnreadable("not a sealed secret of this hub")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, bound_to.encode()).decode("utf-8")
        except InvalidTag:
            raise SecretUnreadable(
                "the backend's token cannot be opened with this hub's secrets key"
            ) from None
