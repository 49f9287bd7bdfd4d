"""Base45 (RFC 9285): binary to the QR alphanumeric alphabet, so a credential's QR code uses
alphanumeric mode (5.5 bits a character) instead of byte mode (8 bits)."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
# bytes.translate maps each base45 character to its value as one byte, anything else to 0xFF.
_TABLE = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else 0xFF for b in range(256))


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


_BAD = 0xFF


def decode(text: str) -> bytes:
    """Strict decode: raises Base45Error on a bad character, length or value."""
    if len(text) % 3 == 1:
        raise Base45Error("base45 length cannot be 1 mod 3")
    if not text.isascii():
        bad = next(c for c in text if not c.isascii())
        raise Base45Error(f"character {bad!r} is not base45")
    values = text.encode("ascii").translate(_TABLE)
    if _BAD in values:
        raise Base45Error(f"character {text[values.index(_BAD)]!r} is not base45")
    out = bytearray()
    whole = len(values) - len(values) % 3
    for i in range(0, whole, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        if n > 0xFFFF:
            raise Base45Error("base45 triple out of range")
        out += n.to_bytes(2, "big")
    if whole < len(values):
        n = values[whole] + values[whole + 1] * 45
        if n > 0xFF:
            raise Base45Error("base45 pair out of range")
        out.append(n)
    return bytes(out)


def is_base45(text: str) -> bool:
    """Every character is in the alphabet (upper case only, as base45 is)."""
    return text.isascii() and _BAD not in text.encode("ascii").translate(_TABLE)
