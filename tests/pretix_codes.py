"""pretix's ticket codes for tests, made without the code under test: the vectors pretix's own
generator made (tests/vectors/pretix_sig1.json), pretix_sig1 codes laid out byte by byte here
(a protobuf writer and the envelope, signed with `cryptography`), and random secrets in the
alphabet pretix's default generator draws from."""

from __future__ import annotations

import base64
import json
import random
import struct
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.paths import VECTORS

PRETIX: dict[str, Any] = json.loads((VECTORS / "pretix_sig1.json").read_text())
# Their public key as raw bytes, read with `cryptography` alone: what the hub stores.
PRETIX_PEM = base64.b64decode(PRETIX["pubkey"])
RANDOM_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # pretix RandomTicketSecretGenerator


def pretix_code(index: int) -> str:
    return str(PRETIX["codes"][index]["secret"])


def random_secret(rng: random.Random, length: int = 32) -> str:
    return "".join(rng.choices(RANDOM_ALPHABET, k=length))


def signing_key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def pem_setting(key: Ed25519PrivateKey) -> str:
    """The public key as pretix's event setting holds it: base64 of the PEM."""
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pem).decode()


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf writes it: two's complement, 10 bytes if < 0
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, wire: int, body: bytes) -> bytes:
    return varint(number << 3 | wire) + body


def text_field(number: int, text: bytes) -> bytes:
    return field(number, 2, varint(len(text)) + text)


def ticket_payload(
    seed: str = "Vy6JnmsSg",
    item: int = 4711,
    variation: int = 0,
    subevent: int = 0,
    valid_from: int | None = 0,
    valid_until: int | None = 0,
) -> bytes:
    """pretix's Ticket message as protobuf writes it: proto3 leaves zero scalars out, the two
    `optional` times are written whenever set, 0 included (pretix sets them always)."""
    out = text_field(1, seed.encode())
    for number, value in ((2, item), (3, variation), (4, subevent)):
        if value:
            out += field(number, 0, varint(value))
    for number, time in ((5, valid_from), (6, valid_until)):
        if time is not None:
            out += field(number, 0, varint(time))
    return out


def sig1_code(
    payload: bytes,
    key: Ed25519PrivateKey,
    *,
    version: int = 1,
    payload_len: int | None = None,
    sig_len: int | None = None,
    cut: int = 0,
) -> str:
    """version | payload length | signature length | payload | signature, base64, reversed;
    the lengths as announced may be set, and `cut` bytes dropped from the end."""
    signature = key.sign(payload)
    head = struct.pack(
        ">BHH",
        version,
        len(payload) if payload_len is None else payload_len,
        len(signature) if sig_len is None else sig_len,
    )
    raw = (head + payload + signature)[: -cut or None]
    return base64.b64encode(raw).decode()[::-1]
