"""Clean what a reader sends before any parser sees it.

Hand-held scanners and keyboard wedges wrap the symbol's data: trailing CR/LF or Tab, an AIM
symbology identifier (`]Q1` for QR, `]d2` for DataMatrix...) and ECI markers (`\\000026` for
UTF-8) when the reader is set to transmit them. The data itself is left alone: base64 is
case-sensitive and base45 may hold inner spaces (the native parser restores edge spaces and
reads lower case itself).
"""

from __future__ import annotations

import re
import unicodedata

_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]")  # ] + symbology letter + modifier (]Q1, ]d2, ]C1)
_ECI = re.compile(r"\\[0-9]{6}")  # \ + six-digit ECI assignment (\000026 = UTF-8)
_EDGE_NOISE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})  # controls, BOM, spaces


def normalize_scan(raw: str) -> str:
    """The symbol's data without reader framing. Never raises; non-text gives ''."""
    if not isinstance(raw, str):
        return ""
    text = _trim(raw)
    # No payload format starts with `]` or `\`, so peeling every leading prefix is safe, and it
    # makes cleaning idempotent (callers may normalise input that was already normalised).
    while prefix := _AIM.match(text) or _ECI.match(text):
        text = _trim(text[prefix.end() :])
    return text


def _trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _edge_noise(text[start]):
        start += 1
    while end > start and _edge_noise(text[end - 1]):
        end -= 1
    return text[start:end]


def _edge_noise(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in _EDGE_NOISE_CATEGORIES
