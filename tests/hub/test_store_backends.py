"""The hub's side of the backend seam over a real SQLite file: a pull becomes hub rows (and
only changes move revisions), retired codes, the outbox the scans trigger fills, pushes
marked once, removal, and tokens sealed at rest."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hub.backends.seam import (
    Pull,
    PushOutcome,
    RetiredCode,
    UpstreamEvent,
    UpstreamTicket,
    UpstreamTicketType,
)
from hub.secret_box import SecretBox, SecretUnreadable, key_path_for
from hub.storage import HubStore
from hub.store_api import ConnectedBackend, DeviceScans, PushedScans
from hub.store_backends import idempotency_key, upstream_id
from manifests.model import TicketStatus
from tests.hub_fixtures import store_backend, store_device

NOW = 1_790_000_000_000
SIG_KEY = bytes(range(32))


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = HubStore(tmp_path / "hub.sqlite")
    yield s
    s.close()


def _backend(store: HubStore, seal: Any = None) -> dict[str, Any]:
    settings = {"url": "https://pretix.example", "organizer": "river"}
    return store_backend(store, "Riverside", NOW, settings=settings, seal=seal)


def _ticket(ref: str, **changes: Any) -> UpstreamTicket:
    fields: dict[str, Any] = {
        "ref": ref,
        "event_ref": "fest",
        "type_ref": "7",
        "status": TicketStatus.ACTIVE,
        "code": f"secret{ref}",
        "holder_name": f"Holder {ref}",
        "order_ref": "ABC12",
    }
    return UpstreamTicket(**{**fields, **changes})


def _pull(*tickets: UpstreamTicket, retired: tuple[RetiredCode, ...] = ()) -> Pull:
    event = UpstreamEvent(
        "fest",
        "River Fest",
        "Europe/Berlin",
        NOW,
        NOW + 3_600_000,
        (SIG_KEY,),
        {"checkin_list": 3},
    )
    return Pull(
        events=[event],
        ticket_types=[UpstreamTicketType("7", "fest", "Day pass")],
        tickets=list(tickets),
        retired_codes=list(retired),
        cursor={"n": len(tickets)},
    )


def _scan(seq: int, ticket_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "ticket_id": ticket_id,
        "event_id": None,
        "verdict": "admit",
        "reason": "admitted",
        "direction": "entry",
        "scanned_ms": NOW + seq,
        "clock_offset_ms": 0,
        "counted": 1,
        **changes,
    }


def test_a_pull_becomes_hub_rows_and_a_quiet_pull_moves_nothing(store: HubStore) -> None:
    backend = _backend(store)
    summary = store.apply_pull(backend, _pull(_ticket("1"), _ticket("2")), NOW)
    assert (summary.events, summary.tickets_added, summary.tickets_changed) == (1, 2, 0)
    event_id = upstream_id(backend["id"], "event", "fest")
    ticket = store.db["tickets"].get(upstream_id(backend["id"], "ticket", "1"))
    assert ticket["event_id"] == event_id and ticket["backend_id"] == backend["id"]
    assert ticket["backend_code"] == "secret1" and ticket["status"] == "ACTIVE"
    assert ticket["holder_name"] == "Holder 1" and ticket["order_ref"] == "ABC12"
    event = store.db["events"].get(event_id)
    assert event["venue_id"] == backend["venue_id"] and event["name"] == "River Fest"
    keys = store.db["event_code_keys"].get(event_id)
    assert len(keys["lookup_key"]) == 32 and keys["signing_keys_json"] == f'["{SIG_KEY.hex()}"]'
    assert store.backend_cursor(backend["id"]) == {"n": 2}
    revision = store.current_revision(event_id)

    again = store.apply_pull(backend, _pull(_ticket("1"), _ticket("2")), NOW + 1)
    assert (again.tickets_added, again.tickets_changed, again.codes_retired) == (0, 0, 0)
    assert store.current_revision(event_id) == revision  # gates download nothing
    assert store.db["event_code_keys"].get(event_id)["lookup_key"] == keys["lookup_key"]


def test_tickets_a_pull_adds_reach_the_delta_of_a_gate_holding_the_event(
    store: HubStore,
) -> None:
    """New tickets are inserted together, their event's revision moved once for all of them
    (schema step 16), and each is in the delta from the revision a gate held before."""
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1")), NOW)
    event_id = upstream_id(backend["id"], "event", "fest")
    held = store.current_revision(event_id)
    summary = store.apply_pull(backend, _pull(*(_ticket(str(n)) for n in range(1, 5))), NOW + 1)
    assert summary.tickets_added == 3
    delta = store.manifest_source(event_id, since=held)
    assert delta is not None and delta.revision > held
    added = {upstream_id(backend["id"], "ticket", str(n)) for n in range(2, 5)}
    assert {t["id"] for t in delta.tickets} == added
    assert store.db.execute("SELECT count(*) FROM ticket_bulk_inserts").fetchone()[0] == 0


def test_upstream_changes_reach_the_ticket_and_move_the_revision(store: HubStore) -> None:
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1"), _ticket("2")), NOW)
    event_id = upstream_id(backend["id"], "event", "fest")
    one, two = (upstream_id(backend["id"], "ticket", r) for r in ("1", "2"))
    before = store.current_revision(event_id)
    cancelled = _ticket("1", status=TicketStatus.CANCELLED)
    new_code = _ticket("2", code="fresh2")
    summary = store.apply_pull(backend, _pull(cancelled, new_code), NOW + 5)
    assert summary.tickets_changed == 2 and summary.codes_retired == 1
    assert store.db["tickets"].get(one)["status"] == "CANCELLED"
    assert store.db["tickets"].get(two)["backend_code"] == "fresh2"
    retired = list(store.db.query("SELECT ticket_id, code, state FROM ticket_retired_codes"))
    assert retired == [{"ticket_id": two, "code": "secret2", "state": "superseded"}]
    assert store.current_revision(event_id) > before


def test_blocked_codes_lock_and_unblock_and_unknown_codes_are_counted(store: HubStore) -> None:
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1")), NOW)
    ticket_id = upstream_id(backend["id"], "ticket", "1")
    blocked = (
        RetiredCode("fest", "secret1", "blocked"),
        RetiredCode("fest", "nobody", "superseded"),
    )
    summary = store.apply_pull(backend, _pull(_ticket("1"), retired=blocked), NOW + 1)
    assert summary.unmatched_codes == 1
    states = store.db.execute("SELECT code, state FROM ticket_retired_codes").fetchall()
    assert states == [("secret1", "blocked")]
    revision = store.current_revision(upstream_id(backend["id"], "event", "fest"))
    unblocked = (RetiredCode("fest", "secret1", "blocked", active=False),)
    store.apply_pull(backend, _pull(_ticket("1"), retired=unblocked), NOW + 2)
    assert store.db.execute("SELECT count(*) FROM ticket_retired_codes").fetchone()[0] == 0
    assert store.current_revision(upstream_id(backend["id"], "event", "fest")) > revision
    assert store.db["tickets"].get(ticket_id)["status"] == "ACTIVE"


def test_a_failed_pull_changes_nothing(store: HubStore) -> None:
    backend = _backend(store)
    bad = _pull(_ticket("1"), _ticket("2", holder_name="x" * 10_000, order_ref="y" * 500))
    with pytest.raises(sqlite3.IntegrityError):
        store.apply_pull(backend, bad, NOW)
    assert store.db["tickets"].count == 0 and store.db["events"].count == 0
    assert store.backend_cursor(backend["id"]) == {}


def test_scans_of_backend_tickets_are_owed_in_the_transaction_that_stores_them(
    store: HubStore,
) -> None:
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1"), _ticket("2")), NOW)
    one, two = (upstream_id(backend["id"], "ticket", r) for r in ("1", "2"))
    device = store_device(store, backend["tenant_id"], backend["venue_id"], NOW)
    own = store.db["tickets"].get(one)
    store.db["tickets"].insert({**own, "id": "hub-own", "backend_id": None, "backend_code": None})
    scans = [
        _scan(1, one),
        _scan(2, two, verdict="deny", reason="already_admitted", online=True),
        _scan(3, "hub-own"),  # the hub's own ticket: nobody upstream to tell
        _scan(4, two, verdict="attention", reason="attention_required"),  # staff still look
        _scan(5, None, verdict="deny", reason="malformed"),
    ]
    store.record_scans(DeviceScans(device, scans, deactivated=False, clock_offset_ms=250), NOW + 10)
    owed = store.owed_scans(backend["id"], NOW + 10, 50)
    assert [(o.ticket_ref, o.admitted, o.decided_offline) for o in owed] == [
        (one, True, True),
        (two, False, False),
    ]
    first = owed[0]
    assert first.code == "secret1" and first.event_ref == "fest"
    assert first.event_detail == {"checkin_list": 3} and first.direction == "entry"
    assert first.at_ms == NOW + 1  # the gate's clock, the offset not measured per scan here
    assert first.idempotency_key == idempotency_key(device, 1)
    assert store.outbox_state(backend["id"]).owed == 3  # the attention scan waits, owed

    # the same upload again (a gate that never heard the answer) owes nothing more
    store.record_scans(DeviceScans(device, scans, deactivated=False), NOW + 20)
    assert store.outbox_state(backend["id"]).owed == 3


def test_pushes_are_marked_once_and_failures_wait(store: HubStore) -> None:
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1"), _ticket("2")), NOW)
    device = store_device(store, backend["tenant_id"], backend["venue_id"], NOW)
    ids = [upstream_id(backend["id"], "ticket", r) for r in ("1", "2")]
    store.record_scans(
        DeviceScans(device, [_scan(1, ids[0]), _scan(2, ids[1])], deactivated=False), NOW
    )
    first, second = store.owed_scans(backend["id"], NOW, 50)
    outcomes = [
        PushOutcome(first.scan_id, True, {"status": "error", "reason": "already_redeemed"}),
        PushOutcome(second.scan_id, False, error="pretix is not reachable (ConnectError)"),
    ]
    store.record_push(
        PushedScans(backend["id"], outcomes, lambda attempts: NOW + 1000 * attempts), NOW
    )
    assert store.owed_scans(backend["id"], NOW + 999, 50) == []  # backing off
    assert [o.scan_id for o in store.owed_scans(backend["id"], NOW + 1000, 50)] == [second.scan_id]
    state = store.outbox_state(backend["id"])
    assert (state.owed, state.failing, state.pushed) == (1, 1, 1)
    assert state.last_error == "pretix is not reachable (ConnectError)"
    # a late duplicate outcome for a pushed scan changes nothing
    store.record_push(PushedScans(backend["id"], outcomes[:1], lambda a: NOW), NOW + 5)
    row = store.db["backend_outbox"].get(first.scan_id)
    assert row["pushed_ms"] == NOW and row["attempts"] == 1
    event_id = upstream_id(backend["id"], "event", "fest")
    answers = store.upstream_answers(event_id)
    assert [a["scan_id"] for a in answers] == [first.scan_id]


def test_removing_a_backend_keeps_its_tickets_as_the_hubs_own(store: HubStore) -> None:
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1")), NOW)
    device = store_device(store, backend["tenant_id"], backend["venue_id"], NOW)
    ticket_id = upstream_id(backend["id"], "ticket", "1")
    store.record_scans(DeviceScans(device, [_scan(1, ticket_id)], deactivated=False), NOW)
    done = store.remove_backend(backend, "t", NOW + 1)
    assert done == {"dropped_owed_scans": 1, "tickets_kept": 1}
    ticket = store.db["tickets"].get(ticket_id)
    assert ticket["backend_id"] is None and ticket["backend_code"] == "secret1"
    assert store.list_backends() == []
    actions = [r["action"] for r in store.db.query("SELECT action FROM audit_log")]
    assert "backend.add" in actions and "backend.remove" in actions


def test_tokens_are_sealed_at_rest_and_bound_to_their_backend(
    store: HubStore, tmp_path: Path
) -> None:
    box = SecretBox.for_database(store.path)
    assert not key_path_for(store.path).exists()  # made at first use, not before
    token = "pretix-device-token-0123456789abcdef"
    backend = _backend(store, seal=lambda backend_id: box.seal(token, backend_id))
    assert key_path_for(store.path).stat().st_mode & 0o777 == 0o600
    sealed = store.backend_secret(backend["id"])
    assert sealed is not None and token.encode() not in sealed
    assert token.encode() not in Path(store.path).read_bytes()
    assert all("secret_sealed" not in row for row in store.list_backends())
    assert box.open(sealed, backend["id"]) == token
    with pytest.raises(SecretUnreadable):
        box.open(sealed, "another-backend")  # moved to another row: does not open
    other = SecretBox(tmp_path / "other.key")
    with pytest.raises(SecretUnreadable):
        other.open(sealed, backend["id"])


def test_ids_the_sellers_codes_carry_are_used_but_never_taken_over(store: HubStore) -> None:
    backend = _backend(store)
    event = UpstreamEvent(
        "ev", "Gig", "UTC", NOW, NOW + 1, hub_id="11111111-1111-4111-8111-111111111111"
    )
    pull = Pull(
        events=[event], tickets=[_ticket("1", event_ref="ev", type_ref=None, hub_id="t-uuid-1")]
    )
    store.apply_pull(backend, pull, NOW)
    assert store.db["tickets"].get("t-uuid-1")["event_id"] == event.hub_id
    # another backend (another tenant's connector) naming the same ids takes nothing over
    tenant = store.create_tenant("Other", NOW)
    venue = store.create_venue(tenant["id"], "Elsewhere", "UTC", "t", NOW)
    tt = ConnectedBackend(venue["id"], "tickettoken", "tt", {})
    other = store.create_backend(tenant["id"], tt, "t", NOW)
    hijack = Pull(
        events=[UpstreamEvent("ev", "Mine now", "UTC", NOW, NOW + 1, hub_id=event.hub_id)],
        tickets=[_ticket("9", event_ref="ev", type_ref=None, hub_id="t-uuid-1", holder_name="X")],
    )
    summary = store.apply_pull(other, hijack, NOW + 1)
    assert summary.refused == 1 and summary.tickets_added == 0
    assert store.db["events"].get(event.hub_id)["name"] == "Gig"
    assert store.db["tickets"].get("t-uuid-1")["holder_name"] == "Holder 1"


def test_a_complete_pull_revokes_what_upstream_deleted(store: HubStore) -> None:
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1"), _ticket("2")), NOW)
    complete = Pull(events=_pull().events, tickets=[_ticket("1")], complete_events=("fest",))
    summary = store.apply_pull(backend, complete, NOW + 1)
    assert summary.tickets_revoked == 1
    statuses = {r["id"]: r["status"] for r in store.db["tickets"].rows}
    assert statuses[upstream_id(backend["id"], "ticket", "2")] == "REVOKED"
    assert statuses[upstream_id(backend["id"], "ticket", "1")] == "ACTIVE"
    incremental = Pull(events=_pull().events, tickets=[_ticket("1")])  # not complete
    assert store.apply_pull(backend, incremental, NOW + 2).tickets_revoked == 0


def test_owed_entries_know_their_place_among_the_tickets_entries(store: HubStore) -> None:
    backend = _backend(store)
    store.apply_pull(backend, _pull(_ticket("1")), NOW)
    one = upstream_id(backend["id"], "ticket", "1")
    device = store_device(store, backend["tenant_id"], backend["venue_id"], NOW)
    scans = [
        _scan(1, one, scanned_ms=NOW + 500),
        _scan(2, one, scanned_ms=NOW + 100),  # earlier, uploaded later (another gate's clock)
        _scan(3, one, direction="exit", verdict="exit", reason="exited", scanned_ms=NOW + 900),
    ]
    store.record_scans(DeviceScans(device, scans, deactivated=False), NOW + 1000)
    owed = {o.scan_id: o for o in store.owed_scans(backend["id"], NOW + 1000, 50)}
    by_seq = dict(store.db.execute("SELECT device_seq, id FROM scans").fetchall())
    assert owed[by_seq[1]].entry_number == 2 and owed[by_seq[2]].entry_number == 1
    assert owed[by_seq[3]].entry_number == 0  # an exit is no entry
    assert all(o.single_entry for o in owed.values())  # the default policy admits once
    store.db["tickets"].update(one, {"max_entries": 3})
    assert not any(o.single_entry for o in store.owed_scans(backend["id"], NOW + 1000, 50))
