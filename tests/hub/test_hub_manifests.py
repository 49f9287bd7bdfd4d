"""Manifests over the real server: signed full manifests, deltas, ETag/304, scope, sealed
holder names opened by the hub-issued credential, key rotation, box-office credentials."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from hub.manifest_build import HubKeys, ManifestBuilder, ManifestWorker, credential_signature
from hub.storage import HubStore
from manifests.admission import decide, parse_context
from manifests.admission_types import Direction, GateContext
from manifests.codec import decode_delta, decode_manifest
from manifests.delta import verify_and_apply
from manifests.model import Manifest, Scope
from manifests.sealing import unseal_holder
from manifests.signing import ManifestRejected, open_envelope
from protocol.credential import Credential
from protocol.parse import parse_credential
from protocol.reasons import Reason, Verdict
from protocol.signing import b64decode
from tests.device_api import get_manifest
from tests.hub_fixtures import (
    HUB_SEED,
    Clock,
    Hub,
    add_show,
    credential_text,
    enroll,
    make_tenant,
)


async def trusted_keys(hub: Hub) -> dict[int, bytes]:
    body = (await hub.client.get("/api/hub")).json()
    return {int(k): b64decode(v) for k, v in body["trusted_keys"].items()}


async def test_full_manifest_is_signed_scoped_and_unseals_names_with_the_credential(
    hub: Hub,
) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    resp = await get_manifest(device, show.event_id)
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Manifest-Kind"] == "full"
    manifest = verify_and_apply(resp.content, "full", await trusted_keys(hub), None, hub.clock())
    assert manifest.revision == int(resp.headers["X-Manifest-Revision"])
    assert manifest.header.scope == Scope(hub.a.venue_id, show.north, ("GA",))
    assert manifest.header.event.code == show.code
    assert set(manifest.tickets) == set(show.tickets)
    for tid in show.tickets:
        row = manifest.tickets[tid]
        if tid not in show.holders:
            assert row.holder_sealed is None
            continue
        assert show.holders[tid].encode() not in resp.content  # never in the clear
        credential = await credential_text(hub, tid)
        signature = credential_signature(credential)
        assert unseal_holder(row.holder_sealed, signature, tid) == show.holders[tid]
        parsed = parse_credential(credential, parse_context(manifest.header, hub.clock()))
        assert isinstance(parsed, Credential) and parsed.signature == signature


async def test_idle_poll_is_a_304_and_a_change_moves_the_revision_and_the_etag(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    first = await get_manifest(device, show.event_id)
    tag, revision = first.headers["ETag"], int(first.headers["X-Manifest-Revision"])
    idle = await get_manifest(device, show.event_id, etag=tag)
    assert idle.status_code == 304 and idle.content == b""
    assert (await get_manifest(device, show.event_id, since=revision)).status_code == 304
    await hub.lock([show.tickets[0]], "fraud_investigation")
    changed = await get_manifest(device, show.event_id, etag=tag)
    assert changed.status_code == 200
    assert int(changed.headers["X-Manifest-Revision"]) > revision
    assert changed.headers["ETag"] != tag


async def test_delta_since_a_served_revision_rebuilds_the_new_manifest(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=40)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    trusted = await trusted_keys(hub)
    first = await get_manifest(device, show.event_id)
    old = verify_and_apply(first.content, "full", trusted, None, hub.clock())
    manager = hub.auth(hub.a.manager_token)
    reissued, locked = show.tickets[0], show.tickets[1]
    assert (
        await hub.client.post(f"/api/admin/tickets/{reissued}/reissue", headers=manager)
    ).status_code == 200
    await hub.lock([locked], "chargeback_pending")
    delta = await get_manifest(device, show.event_id, since=old.revision)
    assert delta.status_code == 200
    assert delta.headers["X-Manifest-Kind"] == "delta"
    assert int(delta.headers["X-Manifest-Base-Revision"]) == old.revision
    moved = verify_and_apply(delta.content, "delta", trusted, old, hub.clock())
    full = await get_manifest(device, show.event_id)
    fresh = verify_and_apply(full.content, "full", trusted, None, hub.clock())
    assert moved.revision == fresh.revision > old.revision
    assert dict(moved.tickets) == dict(fresh.tickets)
    # The full rows were moved forward from the kept revision: same as built from scratch.
    scratch = ManifestBuilder(hub.store, HubKeys.single(HUB_SEED)).rows(show.event_id, 0)
    assert scratch is not None and dict(scratch.tickets) == dict(fresh.tickets)
    assert moved.tickets[reissued].generation == old.tickets[reissued].generation + 1
    assert moved.tickets[locked].lock_reason == "chargeback_pending"
    changes = decode_delta(open_envelope(delta.content, trusted))
    assert {r.ticket_id for r in changes.upserts} == {reissued, locked} and not changes.removed
    assert len(delta.content) < len(full.content)
    # The reissued ticket's name is sealed under its NEW credential.
    new_sig = credential_signature(await credential_text(hub, reissued))
    assert (
        unseal_holder(moved.tickets[reissued].holder_sealed, new_sig, reissued)
        == (show.holders[reissued])
    )


async def test_unknown_since_gets_the_full_manifest_and_says_so(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    for since in (0, 10_000):
        resp = await get_manifest(device, show.event_id, since=since)
        assert resp.status_code == 200
        assert resp.headers["X-Manifest-Kind"] == "full"
        assert resp.headers["X-Manifest-Delta"] == "unavailable"
        decode_manifest(open_envelope(resp.content, await trusted_keys(hub)))
    bad = await get_manifest(device, show.event_id, since=None)
    assert bad.status_code == 200
    path = f"/api/device/events/{show.event_id}/manifest?since=abc"
    resp = await hub.client.get(path, headers=device.signed("GET", path))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_since"


async def test_devices_only_get_manifests_of_their_own_venue_and_must_sign(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    other = await enroll(hub, hub.b.manager_token, hub.b.venue_id)
    resp = await get_manifest(other, show.event_id)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    unsigned = await hub.client.get(f"/api/device/events/{show.event_id}/manifest")
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] == "missing_signature"


def test_rotated_hub_key_signs_new_manifests_and_old_keys_stay_trusted(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "hub.sqlite")
    try:
        from tests.hub_fixtures import Clock, make_tenant

        clock = Clock()
        hub = Hub(store, clock, "", None)  # type: ignore[arg-type]
        hub.a = make_tenant(store, "alpha", clock())
        show = add_show(hub, hub.a)
        old_seed, new_seed = secrets.token_bytes(32), secrets.token_bytes(32)
        old = HubKeys.single(old_seed, 1)
        new = HubKeys.single(new_seed, 2, retired={1: old.trusted[1]})
        assert set(new.trusted) == {1, 2}
        served = ManifestBuilder(store, new).serve(show.event_id, Scope(hub.a.venue_id), None, 0)
        assert served is not None
        manifest: Manifest = decode_manifest(open_envelope(served.envelope, new.trusted))
        assert dict(manifest.header.issuer_keys) == dict(new.trusted)
        with pytest.raises(ManifestRejected) as refused:
            open_envelope(served.envelope, old.trusted)
        assert refused.value.code == "unknown_key"
    finally:
        store.close()


async def test_a_warmed_event_is_served_whole_without_a_build_of_its_own(tmp_path: Path) -> None:
    """After a pull changed an event's tickets, the hub builds its manifest beside the serving
    thread (ManifestWorker.warm): a venue-wide gate asking meanwhile waits for that build and
    gets it without one of its own, byte for byte what a cold build signs."""
    store = HubStore(tmp_path / "hub.sqlite")
    keys = HubKeys.single(HUB_SEED)
    worker = ManifestWorker(store.path, keys)
    try:
        clock = Clock()
        hub = Hub(store, clock, "", None)  # type: ignore[arg-type]
        hub.a = make_tenant(store, "alpha", clock())
        show = add_show(hub, hub.a)
        changed = {show.event_id: hub.a.venue_id}
        warming = worker.warm(changed, 0)
        scope, revision = Scope(hub.a.venue_id), store.event_revision(show.event_id)
        served = await worker.serve(show.event_id, scope, None, revision, 0)
        assert served is not None and worker.builds == 0
        await asyncio.gather(*warming)
        cold = ManifestBuilder(store, keys).serve(show.event_id, scope, None, 0)
        assert cold is not None and served.envelope == cold.envelope
        assert worker.warm(changed, 0) == []  # its rows are held: moved forward when asked
    finally:
        worker.close()
        store.close()


async def test_hub_lists_its_trusted_keys(hub: Hub) -> None:
    body = (await hub.client.get("/api/hub")).json()
    assert body["key_id"] == 1
    assert body["trusted_keys"] == {"1": body["public_key"]}


async def test_box_office_gets_the_credential_as_text_png_or_svg(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    tid = show.tickets[1]
    box = hub.auth(hub.a.box_office_token)
    url = f"/api/admin/tickets/{tid}/credential"
    text = await credential_text(hub, tid)
    assert text == await credential_text(hub, tid)  # issued once, then kept
    png = await hub.client.get(url + "?format=png", headers=box)
    assert png.headers["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"
    svg = await hub.client.get(url + "?format=svg", headers=box)
    assert svg.headers["Content-Type"].startswith("image/svg+xml") and b"<svg" in svg.content
    bad = await hub.client.get(url + "?format=bmp", headers=box)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_format"
    staff = await hub.client.get(url, headers=hub.auth(hub.a.staff_token))
    assert staff.status_code == 403
    elsewhere = await hub.client.get(url, headers=hub.auth(hub.b.admin_token))
    assert elsewhere.status_code == 404
    await hub.client.post(f"/api/admin/tickets/{tid}/reissue", headers=box)
    again = await credential_text(hub, tid)
    assert again != text
    assert (await hub.client.get(url, headers=box)).headers["X-Ticket-Generation"] == "1"


async def test_any_ticket_change_even_outside_the_api_goes_out_in_the_next_delta(
    hub: Hub,
) -> None:
    """Revisions come from triggers, so a cancellation written by any path is not missed."""
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    trusted = await trusted_keys(hub)
    old = verify_and_apply(
        (await get_manifest(device, show.event_id)).content, "full", trusted, None, hub.clock()
    )
    cancelled, refunded, deleted = show.tickets[3], show.tickets[4], show.tickets[5]
    with hub.store.db.atomic():
        hub.store.db.execute("UPDATE tickets SET status = 'CANCELLED' WHERE id = ?", [cancelled])
        hub.store.db.execute("UPDATE tickets SET status = 'REFUNDED' WHERE id = ?", [refunded])
        hub.store.db.execute("DELETE FROM tickets WHERE id = ?", [deleted])
    delta = await get_manifest(device, show.event_id, since=old.revision)
    assert delta.headers["X-Manifest-Kind"] == "delta"
    moved = verify_and_apply(delta.content, "delta", trusted, old, hub.clock())
    assert moved.revision == old.revision + 3
    assert deleted in old.tickets and deleted not in moved.tickets
    full = await get_manifest(device, show.event_id)
    assert dict(verify_and_apply(full.content, "full", trusted, None, 0).tickets) == dict(
        moved.tickets
    )
    assert (moved.tickets[cancelled].status, moved.tickets[refunded].status) == (
        "CANCELLED",
        "REFUNDED",
    )


async def test_revoked_refunded_and_transferred_tickets_go_out_in_the_next_delta(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=10)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    trusted = await trusted_keys(hub)
    old = verify_and_apply(
        (await get_manifest(device, show.event_id)).content, "full", trusted, None, hub.clock()
    )
    revoked, refunded, sold_on = show.tickets[0], show.tickets[1], show.tickets[2]
    seller_code = await credential_text(hub, sold_on)
    moved_on = await hub.client.post(
        f"/api/admin/tickets/{sold_on}/transfer",
        json={"holder_name": "New Holder"},
        headers=hub.auth(hub.a.manager_token),
    )
    assert moved_on.status_code == 200, moved_on.text
    for ticket, status in ((revoked, "REVOKED"), (refunded, "REFUNDED")):
        resp = await hub.client.post(
            "/api/admin/tickets/status",
            json={"ticket_ids": [ticket], "status": status},
            headers=hub.auth(hub.a.manager_token),
        )
        assert resp.status_code == 200, resp.text
    delta = await get_manifest(device, show.event_id, since=old.revision)
    assert delta.headers["X-Manifest-Kind"] == "delta"
    moved = verify_and_apply(delta.content, "delta", trusted, old, hub.clock())
    assert moved.tickets[revoked].status == "REVOKED"
    assert moved.tickets[refunded].status == "REFUNDED"
    gate = GateContext(hub.a.venue_id, show.north, "North", Direction.ENTRY, ("GA",))
    buyer_code = await credential_text(hub, sold_on)
    cases = [
        (revoked, await credential_text(hub, revoked), Verdict.DENY, Reason.REVOKED),
        (refunded, await credential_text(hub, refunded), Verdict.DENY, Reason.REFUNDED),
        (sold_on, seller_code, Verdict.DENY, Reason.SUPERSEDED),  # the seller's old code
        (sold_on, buyer_code, Verdict.ADMIT, Reason.ADMITTED),
    ]
    for ticket, code, verdict, reason in cases:
        parsed = parse_credential(code, parse_context(moved.header, hub.clock()))
        decision = decide(parsed, moved.header, moved.tickets[ticket], [], gate, hub.clock())
        assert (decision.verdict, decision.reason) == (verdict, reason), ticket
