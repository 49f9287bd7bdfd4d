"""A venue's TicketToken keys through the real hub: set through the admin API, they reach a
gate in the venue's signed manifests, so it admits TicketToken's format A and C codes offline
(and the hub's online check admits them alike), and refuses codes of any other key. Rotated
as the hub's own keys are: a code made with the old keys scans while they are retired and
kept, and is refused once they are removed. Keys never rest in the database in the clear,
never come back in an answer, and only the tenant's admin may change them."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.secret_box import key_path_for
from hub.store_api import CatalogueImport
from manifests.codec import decode_manifest_header
from manifests.signing import open_envelope
from protocol.credential import LegacyKeys
from tests.device_api import get_manifest, online_check, trusted_keys
from tests.hub_fixtures import Device, Hub, OfflineGate, Show, add_show, enroll, offline_gate
from tests.legacy_codes import A_KEY, C_SECRET, code_a, code_c

NEW_A = "a new TicketToken QR key, 32+ chars"
NEW_C = bytes(range(32, 64))
OTHER_A, OTHER_C = "W" * 32, b"not this venue's secret"
KEYS = {"format_a_key": A_KEY, "format_c_secret_hex": C_SECRET.hex()}
NEW_KEYS = {"format_a_key": NEW_A, "format_c_secret_hex": NEW_C.hex()}


def path(hub: Hub, venue_id: str | None = None) -> str:
    return f"/api/admin/venues/{venue_id or hub.a.venue_id}/legacy-keys"


async def admin(hub: Hub, method: str, where: str, body: Any = None) -> httpx.Response:
    return await hub.client.request(method, where, json=body, headers=hub.auth(hub.a.admin_token))


def format_a(hub: Hub, show: Show, ticket: int, key: str, interval_ms: int = 30_000) -> str:
    """A format A code of a ticket, of the rotation window it is now."""
    fields = {"ticketId": show.tickets[ticket], "eventId": show.event_id, "nonce": "ab12"}
    return code_a({**fields, "timestamp": hub.clock() // interval_ms}, key)


def format_c(hub: Hub, show: Show, ticket: int, secret: bytes, nonce: str) -> str:
    return code_c(show.tickets[ticket], hub.clock(), nonce, secret)


def verdict(gate: OfflineGate, code: str) -> tuple[str, str]:
    d = gate.decide(code)
    return str(d.verdict), str(d.reason)


ADMIT = ("admit", "admitted")


async def sync(gate: OfflineGate, device: Device, show: Show, since: int) -> int:
    """The gate's next sync: the delta from the revision it holds, installed."""
    resp = await get_manifest(device, show.event_id, since=since)
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Manifest-Kind"] == "delta"
    return gate.install(resp.content).revision


async def test_a_gate_holding_the_manifest_admits_codes_of_the_venues_keys_only(
    hub: Hub, tmp_path: Path
) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    before = await get_manifest(device, show.event_id)
    made = await admin(hub, "POST", path(hub), {**KEYS, "rotation_interval_ms": 30_000})
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "current" and made.json()["formats"] == ["A", "C"]
    resp = await get_manifest(device, show.event_id)
    assert resp.status_code == 200, resp.text
    codes = {
        format_a(hub, show, 0, A_KEY): ADMIT,
        format_c(hub, show, 1, C_SECRET, "c-1"): ADMIT,
        format_a(hub, show, 3, OTHER_A): ("deny", "malformed"),
        format_c(hub, show, 4, OTHER_C, "c-2"): ("deny", "bad_signature"),
    }
    with offline_gate(tmp_path / "gate.db", hub, hub.a.venue_id, await trusted_keys(hub)) as gate:
        held = gate.install(resp.content)
        assert held.revision > int(before.headers["X-Manifest-Revision"])
        assert held.header.legacy == LegacyKeys((A_KEY.encode(),), (), (C_SECRET,))
        assert {code: verdict(gate, code) for code in codes} == codes
    # the hub's online check reads the same keys from the same header
    online = {code: await online_check(device, show.event_id, code) for code in codes}
    assert {c: (a["verdict"], a["reason"]) for c, a in online.items()} == codes
    assert [online[c]["ticket_id"] for c in codes][:2] == show.tickets[:2]


async def test_rotation_old_codes_scan_while_retired_and_kept_and_not_once_removed(
    hub: Hub, tmp_path: Path
) -> None:
    show = add_show(hub, hub.a, n_tickets=8)  # GA, where the North gate admits: 0 1 3 4 6 7
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    assert (await admin(hub, "POST", path(hub), KEYS)).status_code == 201
    full = await get_manifest(device, show.event_id)
    with offline_gate(tmp_path / "gate.db", hub, hub.a.venue_id, await trusted_keys(hub)) as gate:
        revision = gate.install(full.content).revision
        # announced: gates trust the new keys from their next sync, the old ones still current
        rotated = await admin(hub, "POST", path(hub) + "/rotate", NEW_KEYS)
        assert rotated.status_code == 201 and rotated.json()["state"] == "next"
        assert verdict(gate, format_c(hub, show, 0, NEW_C, "n-0")) == ("deny", "bad_signature")
        revision = await sync(gate, device, show, revision)
        assert verdict(gate, format_c(hub, show, 0, NEW_C, "n-1")) == ADMIT
        assert verdict(gate, format_a(hub, show, 1, A_KEY)) == ADMIT
        header = gate.store.installed_header
        assert header is not None and header[1].legacy.format_a_keys[0] == A_KEY.encode()
        # activated: TicketToken issues with the new keys; the old ones retired, still trusted
        activated = await admin(hub, "POST", path(hub) + "/activate")
        assert activated.status_code == 200, activated.text
        states = {s["key_set"]: s["state"] for s in activated.json()["key_sets"]}
        assert states == {2: "current", 1: "retired"}
        revision = await sync(gate, device, show, revision)
        header = gate.store.installed_header
        assert header is not None
        assert header[1].legacy.format_a_keys == (NEW_A.encode(), A_KEY.encode())
        assert verdict(gate, format_a(hub, show, 3, A_KEY)) == ADMIT  # issued just before
        assert verdict(gate, format_c(hub, show, 4, C_SECRET, "o-1")) == ADMIT
        # removed: the old keys' codes are refused from the next sync on
        removed = await admin(hub, "DELETE", path(hub) + "/1")
        assert removed.status_code == 200 and removed.json()["state"] == "removed"
        await sync(gate, device, show, revision)
        old_a, old_c = format_a(hub, show, 0, A_KEY), format_c(hub, show, 0, C_SECRET, "o-2")
        assert verdict(gate, old_a) == ("deny", "malformed")
        assert verdict(gate, old_c) == ("deny", "bad_signature")
        assert verdict(gate, format_a(hub, show, 6, NEW_A)) == ADMIT
    assert (await online_check(device, show.event_id, old_c))["reason"] == "bad_signature"
    listed = (await admin(hub, "GET", path(hub))).json()["key_sets"]
    assert [(s["key_set"], s["state"]) for s in listed] == [(2, "current")]


async def test_keys_rest_sealed_and_never_come_back(hub: Hub, tmp_path: Path) -> None:
    add_show(hub, hub.a)
    answers = [await admin(hub, "POST", path(hub), KEYS)]
    answers.append(await admin(hub, "POST", path(hub) + "/rotate", NEW_KEYS))
    answers.append(await admin(hub, "GET", path(hub)))
    answers.append(await admin(hub, "GET", "/api/admin/audit"))
    for resp in answers:
        assert resp.status_code in (200, 201), resp.text
        for secret in (A_KEY, C_SECRET.hex(), NEW_A, NEW_C.hex()):
            assert secret not in resp.text.lower()
    listed = answers[2].json()["key_sets"]
    # the first 8 hex digits of `printf %s KEY | sha256sum` (of the secret's bytes for C)
    assert [(s["key_set"], s["state"]) for s in listed] == [(1, "current"), (2, "next")]
    assert listed[0]["fingerprints"] == {"A": "d55e53bb", "C": "0c83901a"}
    actions = [e["action"] for e in answers[3].json()["entries"]]
    assert {"venue_keys.set", "venue_keys.rotate"} <= set(actions)
    # the database and its write-ahead log hold the sealed secrets, never the keys
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("hub.sqlite*"))
    sealed = hub.store.db.execute("SELECT secrets_sealed FROM venue_legacy_keys").fetchall()
    assert len(sealed) == 2 and all(row[0] in on_disk for row in sealed)
    for secret in (A_KEY.encode(), C_SECRET, C_SECRET.hex().encode(), NEW_A.encode(), NEW_C):
        assert secret not in on_disk
    assert key_path_for(tmp_path / "hub.sqlite").stat().st_mode & 0o777 == 0o600


async def test_a_set_the_secrets_key_cannot_open_is_left_out_and_said(
    hub: Hub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    assert (await admin(hub, "POST", path(hub), KEYS)).status_code == 201
    # the secrets key is lost (a restore without it): a new one cannot open the sealed set
    key_path_for(tmp_path / "hub.sqlite").unlink()
    with caplog.at_level(logging.ERROR, logger="hub"):
        resp = await get_manifest(device, show.event_id)
    assert resp.status_code == 200, resp.text  # the venue's other facts still reach its gates
    with offline_gate(tmp_path / "gate.db", hub, hub.a.venue_id, await trusted_keys(hub)) as gate:
        assert gate.install(resp.content).header.legacy == LegacyKeys()
    assert "TicketToken key set 1 left out of its manifests" in caplog.text
    assert A_KEY not in caplog.text and C_SECRET.hex() not in caplog.text


@pytest.mark.parametrize(
    ("token", "tenant", "method", "suffix", "status"),
    [
        ("manager", "a", "POST", "", 403),  # a venue manager cannot change keys
        ("manager", "a", "POST", "/rotate", 403),
        ("manager", "a", "POST", "/activate", 403),
        ("manager", "a", "DELETE", "/1", 403),
        ("manager", "a", "GET", "", 200),  # ... but may see the fingerprints
        ("staff", "a", "GET", "", 403),
        ("box_office", "a", "GET", "", 403),
        ("admin", "b", "GET", "", 404),  # another tenant's venue is not found
        ("admin", "b", "POST", "", 404),
        ("admin", "b", "POST", "/rotate", 404),
        ("admin", "b", "POST", "/activate", 404),
        ("admin", "b", "DELETE", "/1", 404),
        ("admin", "a", "DELETE", "/9", 404),  # no such key set
        ("admin", "a", "DELETE", "/one", 404),
        ("admin", "a", "DELETE", "/1", 409),  # the current set stays
        ("admin", "a", "POST", "", 409),  # set twice
        ("admin", "a", "POST", "/activate", 409),  # nothing announced
    ],
)
async def test_who_may_see_and_change_keys_and_what_is_refused(
    hub: Hub, token: str, tenant: str, method: str, suffix: str, status: int
) -> None:
    """Every call names tenant a's venue, which has key set 1 current; tenant b's admin is
    answered as if the venue did not exist."""
    assert (await admin(hub, "POST", path(hub), KEYS)).status_code == 201
    tokens = {
        "admin": (hub.a if tenant == "a" else hub.b).admin_token,
        "manager": hub.a.manager_token,
        "staff": hub.a.staff_token,
        "box_office": hub.a.box_office_token,
    }
    target = path(hub) + suffix
    body = NEW_KEYS if method == "POST" and suffix != "/activate" else None
    before = hub.store.venue_key_sets(hub.a.venue_id)
    resp = await hub.client.request(method, target, json=body, headers=hub.auth(tokens[token]))
    assert resp.status_code == status, resp.text
    if status >= 400:
        assert hub.store.venue_key_sets(hub.a.venue_id) == before
        assert resp.json()["error"]["message"].endswith(".")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"rotation_interval_ms": 30_000}, "missing_field"),
        ({"format_a_key": "too short"}, "invalid_field"),
        ({"format_a_key": "x" * 31 + "\n"}, "invalid_field"),
        ({"format_b_key": 12345678901234567890123456789012}, "invalid_field"),
        ({"format_c_secret_hex": "abc"}, "invalid_field"),
        ({**KEYS, "rotation_interval_ms": 999}, "invalid_field"),
        ({**KEYS, "format_c_validity_ms": 3_600_001}, "invalid_field"),
        ({**KEYS, "format_d_key": A_KEY}, "unknown_field"),
    ],
)
async def test_keys_that_cannot_be_right_are_refused_and_not_echoed(
    hub: Hub, body: dict[str, Any], code: str
) -> None:
    resp = await admin(hub, "POST", path(hub), body)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == code, resp.text
    assert "too short" not in resp.text and "x" * 31 not in resp.text
    assert hub.store.venue_key_sets(hub.a.venue_id) == []


async def test_each_key_change_moves_every_event_of_the_venue_and_no_other(hub: Hub) -> None:
    events = [add_show(hub, hub.a).event_id, str(uuid.uuid4()), add_show(hub, hub.b).event_id]
    now = hub.clock()
    later = {"venue_id": hub.a.venue_id, "code": 7, "name": "Later", "timezone": "UTC"}
    hub.store.import_catalogue(
        hub.a.id,
        CatalogueImport(
            events=[{"id": events[1], **later, "start_ms": now + 10**9, "end_ms": now + 2 * 10**9}]
        ),
        "test",
        now,
    )

    def revisions() -> list[int]:
        return [hub.store.event_revision(e) for e in events]

    steps = [("POST", "", KEYS), ("POST", "/rotate", NEW_KEYS), ("POST", "/activate", None)]
    steps.append(("DELETE", "/1", None))
    for method, suffix, body in steps:
        before = revisions()
        resp = await admin(hub, method, path(hub) + suffix, body)
        assert resp.status_code in (200, 201), resp.text
        after = revisions()
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 0], suffix
    refused = await admin(hub, "POST", path(hub) + "/activate")  # nothing announced
    assert refused.status_code == 409 and revisions() == after


async def header_legacy(hub: Hub, device: Device, show: Show) -> LegacyKeys:
    resp = await get_manifest(device, show.event_id)
    assert resp.status_code == 200, resp.text
    body = open_envelope(resp.content, await trusted_keys(hub))
    return decode_manifest_header(body).legacy


async def test_gates_try_the_current_set_first_then_next_then_retired_newest_first(
    hub: Hub,
) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    third = "the third TicketToken key, 32 chars+"

    async def step(suffix: str, body: Any = None) -> None:
        resp = await admin(hub, "POST", path(hub) + suffix, body)
        assert resp.status_code in (200, 201), resp.text

    await step("", {"format_a_key": A_KEY})
    await step("/rotate", {"format_a_key": NEW_A, "rotation_interval_ms": 60_000})
    assert (await admin(hub, "POST", path(hub) + "/rotate", KEYS)).status_code == 409
    await step("/activate")
    await step("/rotate", {"format_a_key": third, "rotation_interval_ms": 45_000})
    listed = (await admin(hub, "GET", path(hub))).json()["key_sets"]
    assert [(s["key_set"], s["state"]) for s in listed] == [
        (2, "current"),
        (3, "next"),
        (1, "retired"),
    ]
    legacy = await header_legacy(hub, device, show)
    assert legacy.format_a_keys == (NEW_A.encode(), third.encode(), A_KEY.encode())
    assert legacy.rotation_interval_ms == 60_000  # the current set's: TicketToken's now
    await step("/activate")
    legacy = await header_legacy(hub, device, show)
    assert legacy.format_a_keys == (third.encode(), NEW_A.encode(), A_KEY.encode())
    assert legacy.rotation_interval_ms == 45_000


async def test_rotating_before_any_keys_are_set_is_refused(hub: Hub) -> None:
    resp = await admin(hub, "POST", path(hub) + "/rotate", KEYS)
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "no_key_set"
    assert hub.store.venue_key_sets(hub.a.venue_id) == []
