"""The pretix harness against the real server: what the hub's pretix backend will rely on
(device initialisation, positions by device token, redeem and its check-in, signed secrets
and their key, revocation and blocks) works as pretixSCAN sees it, and survives an outage."""

from __future__ import annotations

import base64
import struct
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.pretix_server import Event, PretixServer

pytestmark = pytest.mark.pretix

# What pretixSCAN sends to POST /api/v1/device/initialize.
DEVICE_INFO = {
    "hardware_brand": "Venue Gate",
    "hardware_model": "hub",
    "os_name": "Linux",
    "os_version": "6.1",
    "software_brand": "venue-gate",
    "software_version": "0.1",
    "info": {"harness": True},
}


def device_client(pretix: PretixServer, organizer: str) -> httpx.Client:
    """A device made and initialised as pretixSCAN does it; a client with its token."""
    device = pretix.create_device(organizer)
    init = httpx.post(
        pretix.api_url + "device/initialize",
        json={"token": device.initialization_token, **DEVICE_INFO},
        timeout=30,
    )
    assert init.status_code == 200, init.text
    body = init.json()
    assert body["organizer"] == organizer and body["device_id"] == device.device_id
    return httpx.Client(
        base_url=pretix.api_url,
        headers={"Authorization": f"Device {body['api_token']}"},
        timeout=30,
    )


def redeem(device: httpx.Client, event: Event, secret: str, nonce: str) -> httpx.Response:
    """POST checkinrpc/redeem with the fields pretixSCAN sends for an entry scan."""
    return device.post(
        f"organizers/{event.organizer}/checkinrpc/redeem/",
        json={
            "secret": secret,
            "lists": [event.checkin_list],
            "type": "entry",
            "datetime": datetime.now(UTC).isoformat(),
            "nonce": nonce,
            "force": False,
        },
    )


def test_device_redeems_a_paid_ticket_and_pretix_keeps_it_across_a_restart(
    pretix: PretixServer,
) -> None:
    org = pretix.create_organizer("smoke-org", "Smoke Events")
    event = pretix.create_event("smoke", "Smoke Concert", organizer=org.slug)
    assert set(event.items) == {"Standing", "Balcony"}
    assert pretix.event_json(event)["live"] is True
    order = pretix.create_order(event, ["Ada Lovelace", "Grace Hopper"])
    assert order.status == "p" and [p.attendee_name for p in order.positions] == [
        "Ada Lovelace",
        "Grace Hopper",
    ]
    ada = order.positions[0]

    with device_client(pretix, org.slug) as device:
        listed = device.get(f"{event.path}/orderpositions/", params={"order": order.code})
        assert listed.status_code == 200, listed.text
        assert {p["secret"] for p in listed.json()["results"]} == {
            p.secret for p in order.positions
        }

        nonce = uuid.uuid4().hex
        first = redeem(device, event, ada.secret, nonce)
        assert first.status_code == 201, first.text
        assert first.json()["status"] == "ok"
        # A retry with the same nonce (a lost answer) is ok again and no second check-in.
        assert redeem(device, event, ada.secret, nonce).json()["status"] == "ok"
        again = redeem(device, event, ada.secret, uuid.uuid4().hex)
        assert again.status_code == 400 and again.json()["reason"] == "already_redeemed"
        unknown = redeem(device, event, "no-such-ticket", uuid.uuid4().hex)
        assert unknown.status_code == 404 and unknown.json()["reason"] == "invalid"

    admitted = pretix.checkins(event, successful=True)
    assert [(c["position"], c["list"], c["type"]) for c in admitted] == [
        (ada.id, event.checkin_list, "entry")
    ]
    assert [c["error_reason"] for c in pretix.checkins(event, successful=False)] == [
        "already_redeemed",
        "invalid",
    ]
    assert len(pretix.position(event, ada.id)["checkins"]) == 1

    pretix.stop()
    try:
        assert not pretix.running
        with pytest.raises(httpx.ConnectError):
            httpx.get(pretix.api_url + "version", timeout=2)
    finally:
        pretix.start()  # the session's other tests need it, whatever failed here
    assert pretix.order(event, order.code).status == "p"
    assert [c["position"] for c in pretix.checkins(event, successful=True)] == [ada.id]


def _sig1_signature_holds(public_key_b64: str, secret: str) -> bool:
    """pretix_sig1 (pretix/base/secrets.py): reversed base64 of 0x01, payload length, signature
    length (big-endian u16 each), protobuf payload, Ed25519 signature of the payload."""
    raw = base64.b64decode(secret[::-1])
    payload_len, sig_len = struct.unpack(">HH", raw[1:5])
    payload, signature = raw[5 : 5 + payload_len], raw[5 + payload_len : 5 + payload_len + sig_len]
    key: Any = load_pem_public_key(base64.b64decode(public_key_b64))
    assert raw[0] == 1 and isinstance(key, Ed25519PublicKey)
    key.verify(signature, payload)  # raises when it does not hold
    return True


def test_signed_secrets_their_key_revocation_and_blocks(pretix: PretixServer) -> None:
    event = pretix.create_event("signed", secret_generator="pretix_sig1")
    assert pretix.valid_keys(event) == {"pretix_sig1": []}  # made with the first signed ticket
    order = pretix.create_order(event, ["Ada", "Bob", "Cy"])
    keys = pretix.valid_keys(event)["pretix_sig1"]
    assert len(keys) == 1
    assert base64.b64decode(keys[0]).startswith(b"-----BEGIN PUBLIC KEY-----")
    ada, bob, cy = order.positions
    assert all(_sig1_signature_holds(keys[0], p.secret) for p in order.positions)

    renewed = pretix.regenerate_position_secret(event, bob.id)
    assert renewed.secret != bob.secret
    assert pretix.revoked_secrets(event) == [bob.secret]
    blocked = pretix.block_position(event, cy.id)
    assert pretix.blocked_secrets(event) == [cy.secret]

    with device_client(pretix, event.organizer) as device:
        old = redeem(device, event, bob.secret, uuid.uuid4().hex)
        assert old.status_code == 400 and old.json()["reason"] == "revoked"
        assert redeem(device, event, blocked.secret, uuid.uuid4().hex).json()["reason"] == "blocked"

    pretix.unblock_position(event, cy.id)
    assert pretix.blocked_secrets(event) == []
    canceled = pretix.cancel_order(event, order.code)
    assert canceled.status == "c"
    assert set(pretix.revoked_secrets(event)) == {bob.secret, ada.secret, renewed.secret, cy.secret}


def test_bulk_positions_are_real_random_secret_tickets(pretix: PretixServer) -> None:
    event = pretix.create_event("bulk")
    positions = pretix.bulk_paid_positions(event, 600, per_order=250)
    assert [p.attendee_name for p in positions[:2]] == ["Guest 0", "Guest 1"]
    assert len({p.secret for p in positions}) == 600
    assert len({p.order for p in positions}) == 3
    last = pretix.order(event, positions[-1].order)
    assert last.status == "p" and last.positions == positions[-100:]

    first = positions[0]
    renewed = pretix.regenerate_position_secret(event, first.id)
    # Random secrets are checked online: pretix keeps no revocation list for them.
    assert renewed.secret != first.secret and pretix.revoked_secrets(event) == []
    with device_client(pretix, event.organizer) as device:
        assert redeem(device, event, positions[-1].secret, uuid.uuid4().hex).status_code == 201
        old = redeem(device, event, first.secret, uuid.uuid4().hex)
        assert old.status_code == 404 and old.json()["reason"] == "invalid"
