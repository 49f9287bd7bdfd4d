"""Holder names sealed so a stolen gate's disk reveals nobody.

The key for a ticket's name is derived from the native credential's 64-byte signature, which
only the QR code carries: a gate can read the name only while that ticket is being scanned.
A new generation means a new credential, a new signature and so a new key; the nonce comes
from the ticket id, so a blob costs just the name plus the 16-byte Poly1305 tag.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

SIGNATURE_BYTES = 64
TAG_BYTES = 16
_KEY_PERSON = b"vg-holder-key1"
_NONCE_PERSON = b"vg-holder-non1"


def _key(credential_signature: bytes, ticket_id: str) -> bytes:
    return hashlib.blake2b(
        ticket_id.encode(), digest_size=32, key=credential_signature, person=_KEY_PERSON
    ).digest()


def _nonce(ticket_id: str) -> bytes:
    return hashlib.blake2b(ticket_id.encode(), digest_size=12, person=_NONCE_PERSON).digest()


def seal_holder(name: str, credential_signature: bytes, ticket_id: str) -> bytes:
    """Encrypt `name` for the manifest row of `ticket_id`."""
    if len(credential_signature) != SIGNATURE_BYTES:
        raise ValueError("credential_signature must be the 64-byte native signature")
    aead = ChaCha20Poly1305(_key(credential_signature, ticket_id))
    return aead.encrypt(_nonce(ticket_id), name.encode(), ticket_id.encode())


def unseal_holder(
    blob: bytes | None, credential_signature: bytes | None, ticket_id: str
) -> str | None:
    """The holder name, or None when this credential's signature does not open the blob
    (or there is no blob or no signature, as with legacy credentials)."""
    if not blob or not credential_signature:
        return None
    if len(credential_signature) != SIGNATURE_BYTES or len(blob) < TAG_BYTES:
        return None
    aead = ChaCha20Poly1305(_key(bytes(credential_signature), ticket_id))
    try:
        plain = aead.decrypt(_nonce(ticket_id), bytes(blob), ticket_id.encode())
        return plain.decode()
    except (InvalidTag, UnicodeDecodeError):
        return None
