"""Payloads at rest on a gate open only with the hub's private key."""

from __future__ import annotations

from protocol.native import public_key
from protocol.sealed_payload import PayloadSealer, is_sealed, open_for_hub, seal_for_hub
from tests.factories import ISSUER_SEED, OTHER_SEED, credential


def test_sealed_payload_opens_only_at_the_hub() -> None:
    code = credential("0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")
    sealed = seal_for_hub(code, public_key(ISSUER_SEED))
    assert is_sealed(sealed) and code not in sealed and len(sealed) < 4096
    assert open_for_hub(sealed, ISSUER_SEED) == code
    assert open_for_hub(sealed, OTHER_SEED) is None
    assert open_for_hub(sealed[:-4], ISSUER_SEED) is None
    assert open_for_hub(code, ISSUER_SEED) is None
    assert seal_for_hub(code, public_key(ISSUER_SEED)) != sealed  # fresh ephemeral key each time


def test_one_sealer_per_process_still_opens_only_at_the_hub() -> None:
    sealer = PayloadSealer(public_key(ISSUER_SEED))
    first, second = sealer.seal("TKT:one"), sealer.seal("TKT:one")
    assert first != second  # a fresh nonce per payload
    assert open_for_hub(first, ISSUER_SEED) == open_for_hub(second, ISSUER_SEED) == "TKT:one"
    assert open_for_hub(first, OTHER_SEED) is None
