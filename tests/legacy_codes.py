"""TicketToken's legacy codes for tests, made without the code under test: AES-256-CBC with
PKCS7 (formats A and B) and HMAC-SHA256 (format C) as TicketToken's QR service makes them,
under the published vector keys (tests/vectors/tickettoken-legacy.json) or any other."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.paths import VECTORS

DOC: dict[str, Any] = json.loads((VECTORS / "tickettoken-legacy.json").read_text())
A_KEY, B_KEY = str(DOC["format_a_key_utf8"]), str(DOC["format_b_key_utf8"])
C_SECRET = bytes.fromhex(DOC["format_c_hmac_secret_hex"])
IV = bytes(range(16))


def _encrypt(key_utf8: str, plain: bytes, iv: bytes = IV) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key_utf8.encode()[:32]), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _plain(fields: dict[str, Any] | bytes) -> bytes:
    return fields if isinstance(fields, bytes) else json.dumps(fields).encode()


def code_a(fields: dict[str, Any] | bytes, key: str = A_KEY) -> str:
    """`TKT:<hex iv>:<hex ciphertext>`; its payload's timestamp is now // rotation interval."""
    return f"TKT:{IV.hex()}:{_encrypt(key, _plain(fields)).hex()}"


def code_b(fields: dict[str, Any] | bytes, key: str = B_KEY) -> str:
    b64 = base64.b64encode
    return f"{b64(IV).decode()}:{b64(_encrypt(key, _plain(fields))).decode()}"


def code_c(ticket: str, stamp: int | str, nonce: str, secret: bytes = C_SECRET) -> str:
    signed = f"{ticket}:{stamp}:{nonce}".encode()
    return f"{ticket}:{stamp}:{nonce}:{hmac.new(secret, signed, hashlib.sha256).hexdigest()}"
