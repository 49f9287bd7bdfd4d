"""Revision chain: deltas and full manifests move a device forward or are refused, and a
refusal leaves the device's last good manifest exactly as it was."""

from __future__ import annotations

import dataclasses

import pytest
from nacl.signing import SigningKey

from demo.sample import sample_changes, sample_hub_seed, sample_manifest
from manifests.codec import encode_delta, encode_manifest
from manifests.delta import accept_manifest, apply_delta, diff, verify_and_apply
from manifests.model import Manifest, TicketStatus
from manifests.signing import ManifestRejected, sign_envelope

SEED = sample_hub_seed(key_id=3)
TRUSTED = {3: bytes(SigningKey(SEED).verify_key)}


@pytest.fixture(scope="module")
def v1() -> Manifest:
    return sample_manifest(80, seed=21)


@pytest.fixture(scope="module")
def v2(v1: Manifest) -> Manifest:
    return sample_changes(v1, 30, seed=5)


def _now(m: Manifest) -> int:
    return m.header.issued_at_ms + 1


def _refused(code: str, call, *args) -> None:
    with pytest.raises(ManifestRejected) as exc:
        call(*args)
    assert exc.value.code == code, exc.value.message


def test_diff_carries_only_changes_and_apply_rebuilds_new(v1: Manifest, v2: Manifest) -> None:
    delta = diff(v1, v2)
    changed = {t for t, r in v2.tickets.items() if v1.tickets.get(t) != r}
    assert {r.ticket_id for r in delta.upserts} == changed
    assert set(delta.removed) == set(v1.tickets) - set(v2.tickets)
    assert 0 < len(delta.upserts) <= 30 and delta.removed
    assert delta.base_revision == v1.revision and delta.header == v2.header
    assert apply_delta(v1, delta, _now(v2)) == v2


def test_diff_of_equal_manifests_is_empty(v1: Manifest) -> None:
    delta = diff(v1, v1)
    assert delta.upserts == () and delta.removed == ()


def test_signed_delta_applies_through_the_one_entry_point(v1: Manifest, v2: Manifest) -> None:
    envelope = sign_envelope(encode_delta(diff(v1, v2)), 3, SEED)
    assert verify_and_apply(envelope, "delta", TRUSTED, v1, _now(v2)) == v2


def test_full_manifest_is_accepted_on_an_empty_device(v1: Manifest) -> None:
    envelope = sign_envelope(encode_manifest(v1), 3, SEED)
    assert verify_and_apply(envelope, "full", TRUSTED, None, _now(v1)) == v1


def test_delta_on_the_wrong_base_is_refused(v1: Manifest, v2: Manifest) -> None:
    v3 = sample_changes(v2, 5, seed=6)
    _refused("revision_chain", apply_delta, v1, diff(v2, v3), _now(v3))  # skips v2
    _refused("revision_chain", apply_delta, v2, diff(v1, v2), _now(v2))  # already applied


def test_delta_that_does_not_move_forward_is_refused(v1: Manifest) -> None:
    same = Manifest(dataclasses.replace(v1.header), dict(v1.tickets))
    _refused("revision_chain", apply_delta, v1, diff(v1, same), _now(v1))


def test_expired_delta_and_manifest_are_refused(v1: Manifest, v2: Manifest) -> None:
    late = v2.header.expires_at_ms
    _refused("expired", apply_delta, v1, diff(v1, v2), late)
    _refused("expired", accept_manifest, v2, v1, late)
    assert apply_delta(v1, diff(v1, v2), late - 1) == v2


def test_delta_for_another_event_is_refused(v1: Manifest) -> None:
    other = sample_manifest(10, seed=99)  # different event id
    nxt = sample_changes(other, 2)
    _refused("wrong_event", apply_delta, v1, diff(other, nxt), _now(nxt))


def test_older_or_same_full_manifest_is_refused_but_another_event_is_taken(
    v1: Manifest, v2: Manifest
) -> None:
    _refused("revision_chain", accept_manifest, v1, v2, _now(v2))
    _refused("revision_chain", accept_manifest, v2, v2, _now(v2))
    other = sample_manifest(10, seed=99)
    assert accept_manifest(other, v2, _now(other)) is other


def test_refusals_leave_the_last_good_manifest_untouched(v1: Manifest, v2: Manifest) -> None:
    """Every failure path leaves `current` byte-for-byte as it was."""
    before = encode_manifest(v2)
    good = sign_envelope(encode_delta(diff(v1, v2)), 3, SEED)
    tampered = good[:-1] + bytes([good[-1] ^ 1])
    attempts = [
        (tampered, "delta", TRUSTED, "bad_signature"),
        (good, "delta", {9: TRUSTED[3]}, "unknown_key"),
        (good, "delta", TRUSTED, "revision_chain"),  # v2 already holds this delta
        (good, "full", TRUSTED, "malformed"),  # a delta body is no full manifest
        (good, "patch", TRUSTED, "malformed"),
        (sign_envelope(b"garbage", 3, SEED), "delta", TRUSTED, "malformed"),
    ]
    for envelope, kind, trusted, code in attempts:
        _refused(code, verify_and_apply, envelope, kind, trusted, v2, _now(v2))
    assert encode_manifest(v2) == before


def test_apply_does_not_mutate_its_input(v1: Manifest, v2: Manifest) -> None:
    before = dict(v1.tickets)
    apply_delta(v1, diff(v1, v2), _now(v2))
    assert dict(v1.tickets) == before


def test_delta_needs_a_current_manifest(v1: Manifest, v2: Manifest) -> None:
    envelope = sign_envelope(encode_delta(diff(v1, v2)), 3, SEED)
    _refused("revision_chain", verify_and_apply, envelope, "delta", TRUSTED, None, _now(v2))


def test_status_change_travels_in_the_delta(v1: Manifest) -> None:
    tid = next(iter(v1.tickets))
    row = dataclasses.replace(v1.tickets[tid], status=TicketStatus.REVOKED)
    header = dataclasses.replace(v1.header, revision=v1.revision + 1)
    v2 = Manifest(header, {**v1.tickets, tid: row})
    envelope = sign_envelope(encode_delta(diff(v1, v2)), 3, SEED)
    applied = verify_and_apply(envelope, "delta", TRUSTED, v1, _now(v1))
    assert applied.tickets[tid].status == TicketStatus.REVOKED
    assert v1.tickets[tid].status != TicketStatus.REVOKED
