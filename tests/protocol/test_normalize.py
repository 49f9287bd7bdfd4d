"""Scanner framing is removed and the symbol's data is left exactly as encoded."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.credential import ParseContext
from protocol.legacy import legacy_keys_from_vectors
from protocol.normalize import normalize_scan
from protocol.parse import parse_credential
from tests.paths import VECTORS

DOC = json.loads((VECTORS / "tickettoken-legacy.json").read_text())
PAYLOADS = [v["payload"] for v in DOC["vectors"]]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("abc", "abc"),
        ("  abc \r\n", "abc"),
        ("\tabc\t\r", "abc"),
        ("\x00abc\x00\x04", "abc"),
        ("\ufeffabc\u200b", "abc"),  # byte-order mark, zero-width space
        ("]Q0abc", "abc"),
        ("]Q1abc", "abc"),
        ("]Q6abc", "abc"),
        ("]d2abc", "abc"),
        ("]C1abc", "abc"),
        ("]Q3\\000026abc", "abc"),
        ("\\000026abc", "abc"),
        ("]Q2\\000026\\000003abc\r\n", "abc"),
        ("\r\n]Q1 \\000026 abc", "abc"),
        ("]Q1", ""),
        ("", ""),
        (" \r\n\t ", ""),
        ("AbC+/xyz==", "AbC+/xyz=="),  # case kept: base64 is case-sensitive
        ("ab cd", "ab cd"),  # inner spaces kept: base45 has them
        ("x]Q1abc", "x]Q1abc"),  # an identifier only counts at the start
        ("abc]Q1", "abc]Q1"),
        ("\\00002abc", "\\00002abc"),  # five digits: not an ECI marker
        ("abc\\000026", "abc\\000026"),
        ("]1abc", "]1abc"),  # symbology is a letter: not an identifier
        ("]Q", "]Q"),  # no modifier character
    ],
)
def test_table(raw: str, clean: str) -> None:
    assert normalize_scan(raw) == clean


def test_vector_payloads_are_left_alone() -> None:
    assert [normalize_scan(p) for p in PAYLOADS] == PAYLOADS


def test_framed_payloads_parse_like_bare_ones() -> None:
    legacy = legacy_keys_from_vectors(DOC)
    for payload in PAYLOADS:
        ctx = ParseContext(now_ms=DOC["now_ms"], event_id=DOC["event_id"], legacy=legacy)
        bare = parse_credential(payload, ctx)
        for framed in (f"]Q1{payload}\r\n", f"\x00]Q1\\000026{payload}\t", f"{payload}\n"):
            assert parse_credential(framed, ctx) == bare


def test_non_text_gives_empty() -> None:
    assert normalize_scan(None) == ""  # type: ignore[arg-type]
    assert normalize_scan(b"]Q1abc") == ""  # type: ignore[arg-type]


def _noise(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in {"Cc", "Cf", "Zs", "Zl", "Zp"}


@settings(max_examples=2000, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("]Q1d2\\0000026 \r\n\t\x00\ufeffaZ+/=:"), max_size=40)
    | st.text(max_size=80)
)
def test_never_raises_is_idempotent_and_only_cuts_the_front_and_back(raw: str) -> None:
    clean = normalize_scan(raw)
    assert clean in raw
    assert normalize_scan(clean) == clean
    if clean:
        assert not _noise(clean[0]) and not _noise(clean[-1])
