"""pretix's codes through the real hub: a manifest for an event whose tickets carry backend
codes gets the event's lookup key (made once, kept) and the code hashes, never the codes; a
gate that installs it decides offline as the hub's online check decides online."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import httpx
import pytest

from hub.manifest_build import HubKeys, ManifestBuilder
from hub.store_manifests import BACKEND_CODE_SQL
from manifests.codec import decode_delta
from manifests.delta import verify_and_apply
from manifests.model import Manifest, RetiredCode, Scope
from manifests.signing import open_envelope
from protocol.backend_codes import code_digest, pretix_public_key
from protocol.credential import CodeMatch, CodeState
from tests.device_api import get_manifest, online_check, trusted_keys
from tests.hub_fixtures import HUB_SEED, Device, Hub, Show, add_show, enroll, offline_gate
from tests.pretix_codes import PRETIX, pretix_code, random_secret

_rng = random.Random(21)
PLAIN, NEW, OLD, BLOCKED, UNLISTED = (random_secret(_rng) for _ in range(5))
SIGNED = pretix_code(1)  # pretix's own code, valid at any time
PRETIX_KEY = pretix_public_key(PRETIX["pubkey"])


def sell(hub: Hub, show: Show) -> dict[str, str]:
    """What the pretix adapter writes (hub/store_backends.py): each ticket's code, an old code
    superseded, a code blocked; ticket -> code. Ticket 4 is the hub's own (no code)."""
    t = show.tickets
    codes = {t[0]: PLAIN, t[1]: SIGNED, t[2]: NEW, t[3]: BLOCKED}
    store = hub.store
    with store.db.conn:
        for ticket_id, code in codes.items():
            store.db.conn.execute(
                "UPDATE tickets SET backend_code = ? WHERE id = ?", [code, ticket_id]
            )
        store.db.conn.executemany(
            "INSERT INTO ticket_retired_codes (ticket_id, code, state, at_ms) VALUES (?, ?, ?, 0)",
            [(t[2], OLD, "superseded"), (t[3], BLOCKED, "blocked")],
        )
        touch(hub, t[2], t[3])
    return codes


def touch(hub: Hub, *ticket_ids: str) -> None:
    """A change beside the ticket row reaches gates by the row's trigger (as the adapter does)."""
    for ticket_id in ticket_ids:
        hub.store.db.conn.execute(
            "UPDATE tickets SET updated_ms = updated_ms + 1 WHERE id = ?", [ticket_id]
        )


def publish_signing_key(hub: Hub, show: Show) -> None:
    """As the adapter does for a pretix_sig1 event: the key (with a lookup key, if the event
    had none yet), and a new revision."""
    store = hub.store
    with store.db.conn:
        store.db.conn.execute(
            "INSERT INTO event_code_keys (event_id, lookup_key, signing_keys_json)"
            " VALUES (?, ?, ?) ON CONFLICT (event_id) DO UPDATE"
            " SET signing_keys_json = excluded.signing_keys_json",
            [show.event_id, bytes(range(32)), json.dumps([PRETIX_KEY.hex()])],
        )
        store.db.conn.execute(
            "UPDATE event_revisions SET revision = revision + 1 WHERE event_id = ?",
            [show.event_id],
        )


def lookup_key(hub: Hub, event_id: str) -> bytes | None:
    row = hub.store.db.conn.execute(
        "SELECT lookup_key FROM event_code_keys WHERE event_id = ?", [event_id]
    ).fetchone()
    return None if row is None else bytes(row[0])


async def fetch(hub: Hub, device: Device, show: Show) -> tuple[httpx.Response, Manifest]:
    resp = await get_manifest(device, show.event_id)
    assert resp.status_code == 200, resp.text
    return resp, verify_and_apply(resp.content, "full", await trusted_keys(hub), None, hub.clock())


async def test_the_manifest_carries_the_key_it_made_and_hashes_never_codes(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    _, before = await fetch(hub, device, show)
    assert before.header.code_lookup_key is None and lookup_key(hub, show.event_id) is None
    codes = sell(hub, show)
    resp, manifest = await fetch(hub, device, show)
    key = lookup_key(hub, show.event_id)
    assert key is not None and len(key) == 32
    assert manifest.header.code_lookup_key == key and manifest.header.code_signing_keys == ()
    assert manifest.revision > before.revision
    t = show.tickets
    for ticket_id, code in codes.items():
        assert manifest.tickets[ticket_id].code_digest == code_digest(key, code)
    assert manifest.tickets[t[4]].code_digest is None
    assert manifest.tickets[t[2]].retired_codes == (
        RetiredCode(code_digest(key, OLD), CodeState.SUPERSEDED),
    )
    assert manifest.tickets[t[3]].retired_codes == (
        RetiredCode(code_digest(key, BLOCKED), CodeState.BLOCKED),
    )
    payload = zlib.decompress(resp.content[4 + 4 + 2 : -64])  # envelope head, body head
    assert not [c for c in (*codes.values(), OLD) if c.encode() in payload]
    # the key is made once: the next revision keeps it, and brings the signing key
    publish_signing_key(hub, show)
    _, later = await fetch(hub, device, show)
    assert later.header.code_lookup_key == key == lookup_key(hub, show.event_id)
    assert later.header.code_signing_keys == (PRETIX_KEY,)
    assert later.tickets[t[0]] == manifest.tickets[t[0]]
    # a code blocked later reaches the newest rows and the delta from the last revision
    with hub.store.db.conn:
        hub.store.db.conn.execute(
            "INSERT INTO ticket_retired_codes (ticket_id, code, state, at_ms) VALUES (?, ?, ?, 0)",
            [t[0], PLAIN, "blocked"],
        )
        touch(hub, t[0])
    blocked = (RetiredCode(code_digest(key, PLAIN), CodeState.BLOCKED),)
    _, newest = await fetch(hub, device, show)
    assert newest.tickets[t[0]].retired_codes == blocked
    delta = await get_manifest(device, show.event_id, since=later.revision)
    assert delta.headers["X-Manifest-Kind"] == "delta"
    moved = decode_delta(open_envelope(delta.content, await trusted_keys(hub)))
    assert [(r.ticket_id, r.retired_codes) for r in moved.upserts] == [(t[0], blocked)]


async def test_the_online_check_and_an_offline_gate_judge_backend_codes_alike(
    hub: Hub, tmp_path: Path
) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    sell(hub, show)
    publish_signing_key(hub, show)
    resp, _ = await fetch(hub, device, show)
    t = show.tickets
    forged = SIGNED[:5] + ("B" if SIGNED[5] == "A" else "A") + SIGNED[6:]
    expected = {
        PLAIN: ("admit", "admitted", t[0]),
        SIGNED: ("admit", "admitted", t[1]),
        NEW: ("admit", "admitted", t[2]),
        OLD: ("deny", "superseded", t[2]),
        BLOCKED: ("deny", "locked", t[3]),
        UNLISTED: ("deny", "unknown_ticket", None),
        forged: ("deny", "bad_signature", None),
    }
    online = {code: await online_check(device, show.event_id, code) for code in expected}
    assert {c: (a["verdict"], a["reason"], a["ticket_id"]) for c, a in online.items()} == expected
    assert "blocked by the ticket seller" in online[BLOCKED]["message"]
    names = {code: show.holders.get(t) for code, (_, _, t) in expected.items() if t}
    names[OLD] = names[BLOCKED] = None  # refused: the engine shows no guest's name
    assert {c: online[c]["display"]["holder"] for c in names} == names
    # a gate that holds the hub's manifest decides the same, offline
    with offline_gate(tmp_path / "gate.db", hub, hub.a.venue_id, await trusted_keys(hub)) as gate:
        gate.install(resp.content)
        offline, shown = {}, {}
        for code in expected:
            d = gate.decide(code)
            offline[code] = (str(d.verdict), str(d.reason), d.ticket_id)
            shown[code] = d.display.holder
    assert offline == expected
    # names are sealed with the code each holder carries: the gate reads them as it scans
    assert {c: shown[c] for c in names} == names
    named = [t[0], t[2]]  # even tickets carry a name; these have backend codes
    assert all(show.holders.get(tid) for tid in named)
    issued = hub.store.credentials_of(named)
    assert issued == {}  # so no native credential was signed to seal them


# -- the store's side --------------------------------------------------------------------


def coded_show(hub: Hub) -> Show:
    show = add_show(hub, hub.a)
    with hub.store.db.conn:
        hub.store.db.conn.execute(
            "UPDATE tickets SET backend_code = ? WHERE id = ?", [PLAIN, show.tickets[0]]
        )
    return show


async def test_the_key_is_made_once_with_a_revision_of_its_own(hub: Hub) -> None:
    show = coded_show(hub)
    store = hub.store
    revision = store.event_revision(show.event_id)
    first = store.manifest_source(show.event_id)
    assert first is not None and first.code_lookup_key == lookup_key(hub, show.event_id)
    assert first.revision == store.event_revision(show.event_id) == revision + 1
    again = store.manifest_source(show.event_id, with_tickets=False)
    assert again is not None and again.code_lookup_key == first.code_lookup_key
    assert store.event_revision(show.event_id) == revision + 1
    # retired codes come with the tickets a source holds, and only with them
    t = show.tickets
    with store.db.conn:
        store.db.conn.executemany(
            "INSERT INTO ticket_retired_codes (ticket_id, code, state, at_ms) VALUES (?, ?, ?, 0)",
            [(t[1], OLD, "superseded"), (t[2], BLOCKED, "blocked")],
        )
        touch(hub, t[1])
    since = store.manifest_source(show.event_id, since=first.revision)
    assert since is not None and [r["id"] for r in since.tickets] == [t[1]]
    assert since.retired_codes == {t[1]: ((OLD, "superseded"),)}
    every = store.manifest_source(show.event_id)
    assert every is not None and set(every.retired_codes) == {t[1], t[2]}


async def test_a_signing_key_that_is_no_ed25519_key_is_left_out_and_logged(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    show = coded_show(hub)
    with hub.store.db.conn:
        hub.store.db.conn.execute(
            "INSERT INTO event_code_keys (event_id, lookup_key, signing_keys_json)"
            " VALUES (?, ?, ?)",
            [show.event_id, bytes(32), json.dumps(["zz", "00" * 31, 7, PRETIX_KEY.hex()])],
        )
    source = hub.store.manifest_source(show.event_id, with_tickets=False)
    assert source is not None and source.code_signing_keys == (PRETIX_KEY,)
    assert len([r for r in caplog.records if "no Ed25519 key" in r.getMessage()]) == 3


async def test_a_build_that_finds_codes_and_no_key_ships_nothing(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    show = coded_show(hub)
    store = hub.store
    monkeypatch.setattr(store, "_code_keys", lambda event_id: (None, (), False))
    builder = ManifestBuilder(store, HubKeys.single(HUB_SEED))
    with pytest.raises(RuntimeError, match="no lookup key"):
        builder.serve(show.event_id, Scope(hub.a.venue_id), None, hub.clock())


async def test_the_online_check_finds_a_code_by_indexes(hub: Hub) -> None:
    show = coded_show(hub)
    assert hub.store.backend_code_matches(show.event_id, PLAIN) == [
        CodeMatch(show.tickets[0], CodeState.CURRENT)
    ]
    assert hub.store.backend_code_matches("another-event", PLAIN) == []
    sql = "EXPLAIN QUERY PLAN " + BACKEND_CODE_SQL
    plan = [row[-1] for row in hub.store.db.conn.execute(sql, ["e", "c", "c", "e"])]
    assert not [step for step in plan if step.startswith("SCAN")], plan
    # a code no longer current is found by its own index, not by every ticket of the event
    assert any("USING INDEX ticket_retired_codes_code (code=?)" in step for step in plan), plan
