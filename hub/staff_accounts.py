"""Staff passwords for the venue console: argon2id (argon2-cffi), never stored or logged in
the clear.

Hashing costs ~50 ms of CPU on purpose, so callers on the event loop run it in an executor.
An unknown username is checked against a dummy hash, so the answer takes as long either way
and does not tell which usernames exist.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.auth import ROLES
from hub.schema import STAFF_USERNAME_PATTERN

PASSWORD_MIN_LEN = 12  # a passphrase; NIST 800-63B asks for 8 at least, we ask a bit more
PASSWORD_MAX_LEN = 256

_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("not a password anyone has: equal work for unknown usernames")


class BadAccount(ValueError):
    """A username, role or password the console cannot take; the message says why."""


def check_username(username: str) -> str:
    if not re.fullmatch(STAFF_USERNAME_PATTERN, username):
        raise BadAccount(
            "A username is 2 to 64 characters: lower-case letters, digits and . _ @ -,"
            " starting with a letter or digit."
        )
    return username


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadAccount(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    return role


def hash_password(password: str) -> str:
    if not PASSWORD_MIN_LEN <= len(password) <= PASSWORD_MAX_LEN:
        raise BadAccount(
            f"A password is {PASSWORD_MIN_LEN} to {PASSWORD_MAX_LEN} characters long;"
            " a few words together are easy to type and hard to guess."
        )
    return _HASHER.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether the password opens the hash; None (no such user) costs the same and fails."""
    try:
        _HASHER.verify(password_hash or _DUMMY, password[:PASSWORD_MAX_LEN])
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None
