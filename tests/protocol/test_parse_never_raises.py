"""The public entry point ends every input as a credential or a typed refusal."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.credential import Credential, ParseContext, Refusal
from protocol.legacy import legacy_keys_from_vectors
from protocol.parse import MAX_INPUT_CHARS, parse_credential
from protocol.reasons import Reason
from tests.paths import VECTORS

DOC = json.loads((VECTORS / "tickettoken-legacy.json").read_text())
CTX = ParseContext(
    now_ms=DOC["now_ms"], event_id=DOC["event_id"], legacy=legacy_keys_from_vectors(DOC)
)
PAYLOADS = [v["payload"] for v in DOC["vectors"]]


def _typed(result: object) -> None:
    assert isinstance(result, Credential | Refusal)
    if isinstance(result, Refusal):
        assert isinstance(result.reason, Reason) and result.message


@settings(max_examples=3000, deadline=None)
@given(st.text())
def test_random_text(raw: str) -> None:
    _typed(parse_credential(raw, CTX))


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(PAYLOADS), st.data())
def test_mutated_vectors(payload: str, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(payload)))
    cut = data.draw(st.integers(0, 4))
    insert = data.draw(st.text(max_size=4))
    _typed(parse_credential(payload[:pos] + insert + payload[pos + cut :], CTX))


def test_oversize_and_odd_inputs() -> None:
    for raw in ("", " \r\n", "\x00" * 10, "A" * (MAX_INPUT_CHARS + 1), "TKT:" + "ab" * 3000):
        result = parse_credential(raw, CTX)
        assert isinstance(result, Refusal) and result.reason is Reason.MALFORMED
