"""Base45 (RFC 9285): binary to the QR alphanumeric alphabet, so a credential's QR code uses
alphanumeric mode (5.5 bits a character) instead of byte mode (8 bits)."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


class Base45Error(ValueError):
    pass


def encode(data: bytes) -> str:
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 2025)
        d, c = divmod(rest, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def encoded_length(n_bytes: int) -> int:
    return n_bytes // 2 * 3 + (2 if n_bytes % 2 else 0)


def decode(text: str) -> bytes:
    """Strict decode: raises Base45Error on a bad character, length or value."""
    if len(text) % 3 == 1:
        raise Base45Error("base45 length cannot be 1 mod 3")
    try:
        values = [_INDEX[c] for c in text]
    except KeyError as exc:
        raise Base45Error(f"character {exc.args[0]!r} is not base45") from None
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i : i + 3]
        if len(chunk) == 3:
            n = chunk[0] + chunk[1] * 45 + chunk[2] * 2025
            if n > 0xFFFF:
                raise Base45Error("base45 triple out of range")
            out += n.to_bytes(2, "big")
        else:
            n = chunk[0] + chunk[1] * 45
            if n > 0xFF:
                raise Base45Error("base45 pair out of range")
            out.append(n)
    return bytes(out)
