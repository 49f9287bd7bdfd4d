"""Device request signing: genuine requests pass; anything altered, old or repeated fails."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from protocol.native import public_key
from protocol.signing import (
    BAD_SIGNATURE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    MAX_SKEW_MS,
    MISSING_SIGNATURE,
    REPLAYED_NONCE,
    STALE_TIMESTAMP,
    b64decode,
    canonical_string,
    enrollment_uri,
    key_fingerprint,
    parse_enrollment_uri,
    sign_request,
    verify_request,
)

SEED = b"\x07" * 32
NOW = 1_790_000_000_000
BODY = b'{"pending_uploads": 3}'


def signed(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = dict(
        device_id="dev-1",
        seed=SEED,
        method="POST",
        path="/api/device/heartbeat?x=1",
        body=BODY,
        now_ms=NOW,
    )
    args.update(overrides)
    return sign_request(**args)  # type: ignore[arg-type]


def check(headers: dict[str, str], **overrides: object) -> str | None:
    seen: set[str] = set()

    def seen_nonce(nonce: str) -> bool:
        if nonce in seen:
            return True
        seen.add(nonce)
        return False

    args: dict[str, object] = dict(
        method="POST",
        path="/api/device/heartbeat?x=1",
        headers=headers,
        body=BODY,
        device_public_key=public_key(SEED),
        now_ms=NOW,
        seen_nonce=seen_nonce,
    )
    args.update(overrides)
    return verify_request(**args)  # type: ignore[arg-type]


def test_genuine_request_passes_and_headers_are_case_insensitive() -> None:
    headers = signed()
    assert check(headers) is None
    assert check({k.lower(): v for k, v in headers.items()}) is None


def test_signature_is_ed25519_over_the_canonical_string() -> None:
    headers = signed(nonce="n" * 20)
    message = canonical_string("POST", "/api/device/heartbeat?x=1", "dev-1", NOW, "n" * 20, BODY)
    expected = SigningKey(SEED).sign(message).signature
    assert b64decode(headers[HEADER_SIGNATURE]) == expected


@pytest.mark.parametrize(
    "override",
    [
        {"body": BODY + b" "},
        {"path": "/api/device/heartbeat?x=2"},
        {"path": "/api/device/heartbeat"},
        {"method": "PUT"},
        {"device_public_key": public_key(b"\x08" * 32)},
    ],
)
def test_any_change_breaks_the_signature(override: dict[str, object]) -> None:
    assert check(signed(), **override) == BAD_SIGNATURE


def test_changed_headers_break_the_signature() -> None:
    headers = signed()
    assert check({**headers, HEADER_TIMESTAMP: str(NOW + 1)}) == BAD_SIGNATURE
    assert check({**headers, HEADER_NONCE: "z" * 24}) == BAD_SIGNATURE
    assert check({**headers, "X-Device-Id": "dev-2"}) == BAD_SIGNATURE
    assert check({**headers, HEADER_SIGNATURE: "!!notbase64"}) == BAD_SIGNATURE
    assert check({**headers, HEADER_TIMESTAMP: "12e5"}) == BAD_SIGNATURE


def test_missing_headers() -> None:
    headers = signed()
    for name in list(headers):
        partial = {k: v for k, v in headers.items() if k != name}
        assert check(partial) == MISSING_SIGNATURE


def test_timestamp_must_be_within_five_minutes_either_way() -> None:
    assert check(signed(now_ms=NOW - MAX_SKEW_MS)) is None
    assert check(signed(now_ms=NOW + MAX_SKEW_MS)) is None
    assert check(signed(now_ms=NOW - MAX_SKEW_MS - 1)) == STALE_TIMESTAMP
    assert check(signed(now_ms=NOW + MAX_SKEW_MS + 1)) == STALE_TIMESTAMP


def test_replayed_nonce_refused_and_forgeries_never_touch_nonce_memory() -> None:
    remembered: list[str] = []

    def seen_nonce(nonce: str) -> bool:
        if nonce in remembered:
            return True
        remembered.append(nonce)
        return False

    headers = signed()
    assert check(headers, seen_nonce=seen_nonce) is None
    assert check(headers, seen_nonce=seen_nonce) == REPLAYED_NONCE
    forged = {**signed(), HEADER_SIGNATURE: headers[HEADER_SIGNATURE]}
    assert check(forged, seen_nonce=seen_nonce) == BAD_SIGNATURE
    assert remembered == [headers[HEADER_NONCE]]


def test_fresh_nonce_each_time() -> None:
    assert signed()[HEADER_NONCE] != signed()[HEADER_NONCE]


def test_enrollment_uri_round_trip_and_fingerprint() -> None:
    fp = key_fingerprint(public_key(SEED))
    assert len(fp.replace(":", "")) == 32 and fp != key_fingerprint(public_key(b"\x01" * 32))
    uri = enrollment_uri("https://hub.local:8443/", "c0de&=x", fp)
    assert parse_enrollment_uri(uri) == ("https://hub.local:8443/", "c0de&=x", fp)
    assert parse_enrollment_uri("https://example.com") is None
    assert parse_enrollment_uri("gatehub-enroll:?hub=x") is None
