"""Issue #12: the hub carries each ticket's order reference, attention note and entry limit
(import columns, admin API, manifests, online check), so a hub-fed gate finds an order with
F2's lookup and its engine applies the note and the limit exactly as the hub's online check
does. The real hub on 127.0.0.1; a real gate database synced by the real SyncWorker."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.importer import CatalogueError, hub_ticket_id, import_files
from hub.manifest_build import HubKeys, ManifestBuilder
from hub.migrations import STEP_NAMES, applied
from hub.schema import TICKET_FIELDS
from hub.storage import HubStore
from hub.store_api import NewGate
from manifests.policy import HOUR_MS
from scanner.connection import ConnectionMonitor, LinkPolicy
from scanner.enroll import enroll as enroll_gate
from scanner.hub_client import HubClient
from scanner.service import GateService
from scanner.store import GateStore
from scanner.sync import SyncWorker
from tests.hub_fixtures import HUB_SEED, Device, Hub, credential_text, enroll
from tests.vectors.releases import copy_release

POLICY = LinkPolicy(fail_after=3, recover_after=2, slow_after_s=2.0, poll_s=0.05)
ORDER_A, ORDER_B, LIMITED, NOTED = (str(uuid.UUID(int=i, version=4)) for i in range(1, 5))
NOTE = "Check student ID"


def write(path: Path, rows: list[list[Any]]) -> Path:
    path.write_text("\n".join(",".join(str(c) for c in row) for row in rows) + "\n")
    return path


def import_show(hub: Hub, tmp_path: Path) -> str:
    """An event on now under the "conference" policy (re-entry, no duplicate window: the
    ticket's own max_entries is the limit) and four tickets, imported from CSV as
    `gate-hub import` does: two of order TT-1, one limited to 2 entries, one with a note."""
    now, event_id = hub.clock(), f"ev-{uuid.uuid4().hex[:8]}"
    events = write(
        tmp_path / "events.csv",
        [
            ["event_id", "venue_id", "name", "timezone", "start", "end", "policy"],
            [event_id, hub.a.venue_id, "Fields", "UTC", now - HOUR_MS, now + 3 * HOUR_MS,
             "conference"],
        ],
    )  # fmt: skip
    tickets = write(
        tmp_path / "tickets.csv",
        [
            ["ticket_id", "event_id", "zone", "order_ref", "attention", "max_entries"],
            [ORDER_A, event_id, "GA", "TT-1", "", ""],
            [ORDER_B, event_id, "GA", "TT-1", "", ""],
            [LIMITED, event_id, "GA", "TT-10", "", "2"],
            [NOTED, event_id, "GA", "", NOTE, ""],
        ],
    )
    import_files(hub.store, hub.a.id, [events, tickets], "test", now)
    return event_id


async def hub_fed_gate(
    hub: Hub, tmp_path: Path, event_id: str, http: httpx.Client | None = None
) -> tuple[GateStore, SyncWorker]:
    """A gate database enrolled at the North gate the real way, with its manifest synced."""
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North 1 scanner", "gate_id": north(hub)},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    store = GateStore(tmp_path / "gate.db")
    service = GateService(store)
    await asyncio.to_thread(enroll_gate, service, hub.url, made.json()["code"], hardware_id="hw")
    monitor = ConnectionMonitor(POLICY, random.Random(7))
    worker = SyncWorker(HubClient(store, hub.url, http=http), event_id=event_id, monitor=monitor)
    assert await asyncio.to_thread(worker.sync_once), worker.snapshot().last_error
    return store, worker


def north(hub: Hub) -> str:
    """The venue's North gate (entry into GA), made on first use."""
    gates = {g["name"]: g["id"] for g in hub.store.list_gates(hub.a.venue_id)}
    if "North" in gates:
        return gates["North"]
    made = hub.store.create_gate(
        hub.a.id, NewGate(hub.a.venue_id, "North", "entry", ["GA"]), "t", 0
    )
    return str(made["id"])


async def online(device: Device, event_id: str, payload: str, seq: int) -> dict[str, Any]:
    body = {"event_id": event_id, "payload": payload, "seq": seq}
    resp = await device.send("POST", "/api/device/check", body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def verdicts(decisions: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(d["verdict"], d["reason"], d["message"]) for d in decisions]


async def test_imported_fields_reach_the_gate_and_online_and_offline_verdicts_agree(
    hub: Hub, tmp_path: Path
) -> None:
    event_id = import_show(hub, tmp_path)
    store, worker = await hub_fed_gate(hub, tmp_path, event_id)
    try:
        # F2's lookup on the gate finds both tickets of the order, and only them.
        service = GateService(store, dedupe_window_ms=0)
        found = service.lookup("TT-1")
        assert sorted(r.ticket_id for r in found) == sorted([ORDER_A, ORDER_B])
        assert {r.order_ref for r in found} == {"TT-1"}
        limited, noted = store.ticket(LIMITED), store.ticket(NOTED)
        assert limited is not None and (limited.max_entries, limited.attention) == (2, None)
        assert noted is not None and (noted.attention, noted.max_entries) == (NOTE, None)

        # Offline, on the gate's own engine: two entries, then the ticket's limit; the note.
        codes = {tid: await credential_text(hub, tid) for tid in (LIMITED, NOTED)}
        offline: list[dict[str, Any]] = []
        for payload in [codes[LIMITED]] * 3 + [codes[NOTED]]:
            outcome = service.scan(payload)
            assert outcome is not None
            offline.append(outcome.decision.to_json())
        assert verdicts(offline) == [
            ("admit", "admitted", "Welcome in."),
            ("admit", "reentry", "Re-entry allowed."),
            ("deny", "reentry_limit", "Entry limit reached: 2 of 2."),
            ("attention", "attention_required", NOTE),
        ]
        # Online, at the hub, by another gate (the first gate's scans are not uploaded).
        device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=north(hub))
        checks = [codes[LIMITED]] * 3 + [codes[NOTED]]
        answers = [await online(device, event_id, p, seq) for seq, p in enumerate(checks, 1)]
        assert verdicts(answers) == verdicts(offline)
        assert answers[-1]["display"]["note"] == offline[-1]["display"]["note"] == NOTE
    finally:
        worker.stop()
        store.close()


def test_import_checks_the_three_columns_and_names_line_and_column(
    hub: Hub, tmp_path: Path
) -> None:
    event_id = import_show(hub, tmp_path)
    header = ["ticket_id", "event_id", "order_ref", "attention", "max_entries"]
    bad = {
        "max_entries": ["0", "x", "10000001", "1.5"],
        "order_ref": ["T" * 65, "Bestellung-Ü"],
        "attention": ["N" * 201, '"Check\nID"'],
    }
    for column, values in bad.items():
        for value in values:
            row = [str(uuid.uuid4()), event_id, "TT-2", "Look", "3"]
            row[header.index(column)] = value
            path = write(
                tmp_path / "bad.csv", [header, [str(uuid.uuid4()), event_id, "", "", ""], row]
            )
            with pytest.raises(CatalogueError) as caught:
                import_files(hub.store, hub.a.id, [path], "test", hub.clock())
            where = f"{path}:{4 if chr(10) in value else 3}:{header.index(column) + 1}: "
            assert str(caught.value).startswith(where + column + " must be "), str(caught.value)
    assert hub.store.db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 4  # the show's
    # A tickets file without the new columns still imports; so does JSON Lines with them.
    plain = write(tmp_path / "plain.csv", [["ticket_id", "event_id"], ["plain-1", event_id]])
    lines = tmp_path / "more.jsonl"
    record = {"kind": "ticket", "ticket_id": "jl-1", "event_id": event_id, "order_ref": " TT-3 ",
              "attention": "Wheelchair user: accessible lane", "max_entries": 3}  # fmt: skip
    lines.write_text(json.dumps(record) + "\n")
    import_files(hub.store, hub.a.id, [plain, lines], "test", hub.clock())
    plain_id, jl_id = (hub_ticket_id(hub.a.id, given) for given in ("plain-1", "jl-1"))
    got = hub.store.get_tickets([plain_id, jl_id], hub.a.id)
    assert [got[plain_id][f] for f in TICKET_FIELDS] == [None, None, None]
    assert [got[jl_id][f] for f in TICKET_FIELDS] == ["TT-3", record["attention"], 3]


@contextmanager
def unchanged(hub: Hub, ticket_id: str, event_id: str) -> Iterator[None]:
    """The ticket row and the event's manifest revision are as they were."""
    before = (hub.store.get_ticket(ticket_id, hub.a.id), hub.store.event_revision(event_id))
    yield
    assert (hub.store.get_ticket(ticket_id, hub.a.id), hub.store.event_revision(event_id)) == before


async def test_admin_api_creates_reads_and_changes_the_fields_and_refuses_bad_values(
    hub: Hub, tmp_path: Path
) -> None:
    event_id = import_show(hub, tmp_path)
    auth = hub.auth(hub.a.box_office_token)
    made = await hub.client.post(
        f"/api/admin/events/{event_id}/comps",
        json={"reason": "press_pass", "holder_name": "Ada", "order_ref": "PRESS-7",
              "attention": "Press: wristband", "max_entries": 4},
        headers=auth,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    comp = made.json()
    assert (comp["order_ref"], comp["attention"], comp["max_entries"]) == (
        "PRESS-7",
        "Press: wristband",
        4,
    )
    read = (await hub.client.get(f"/api/admin/tickets/{comp['id']}", headers=auth)).json()
    assert read == comp

    url = f"/api/admin/tickets/{LIMITED}"
    for body in (
        {"max_entries": 0},
        {"max_entries": 10_000_001},
        {"max_entries": "2"},
        {"max_entries": True},
        {"order_ref": "T" * 65},
        {"order_ref": "Bestellung-Ü"},
        {"order_ref": "TT-1\n"},
        {"order_ref": "   "},
        {"attention": "N" * 201},
        {"attention": "Check\nID"},
        {"attention": 5},
        {"attention": "Fine", "max_entries": -1},  # one bad field: nothing of the body lands
        {},
    ):
        with unchanged(hub, LIMITED, event_id):
            resp = await hub.client.patch(url, json=body, headers=auth)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["code"] in ("invalid_field", "missing_field"), body
    resp = await hub.client.patch(url, json={"order_ref": "X"}, headers=hub.auth(hub.a.staff_token))
    assert resp.status_code == 403  # venue staff may read tickets, not change them

    changed = await hub.client.patch(
        url, json={"order_ref": " TT-9 ", "attention": "Prüfe Ausweis"}, headers=auth
    )
    assert changed.status_code == 200, changed.text
    assert [changed.json()[f] for f in TICKET_FIELDS] == ["TT-9", "Prüfe Ausweis", 2]
    cleared = await hub.client.patch(
        url, json={"attention": None, "max_entries": None}, headers=auth
    )
    assert [cleared.json()[f] for f in TICKET_FIELDS] == ["TT-9", None, None]
    audit = (await hub.client.get("/api/admin/audit", headers=hub.auth(hub.a.admin_token))).json()
    updates = [e["detail"] for e in audit["entries"] if e["action"] == "ticket.update"]
    assert {"order_ref": ["TT-10", "TT-9"], "attention": "set"} in updates
    assert "Ausweis" not in json.dumps(audit)  # a note may name someone: never its text

    doc = (await hub.client.get("/openapi.json")).json()
    op = doc["paths"]["/api/admin/tickets/{ticket_id}"]["patch"]
    props = op["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(props) == set(TICKET_FIELDS)
    assert props["max_entries"] == {"type": ["integer", "null"], "minimum": 1, "maximum": 10**7}
    assert props["order_ref"]["maxLength"] == 64 and props["attention"]["maxLength"] == 200
    comps = doc["paths"]["/api/admin/events/{event_id}/comps"]["post"]["requestBody"]
    assert set(TICKET_FIELDS) <= set(comps["content"]["application/json"]["schema"]["properties"])
    answer = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(TICKET_FIELDS) <= set(answer["required"])


async def test_a_change_of_any_field_reaches_the_gate_in_the_next_delta(
    hub: Hub, tmp_path: Path
) -> None:
    event_id = import_show(hub, tmp_path)
    kinds: list[str] = []

    def seen(resp: httpx.Response) -> None:
        if "/manifest" in resp.request.url.path:
            kinds.append(resp.headers.get("X-Manifest-Kind", str(resp.status_code)))

    http = httpx.Client(timeout=10, event_hooks={"response": [seen]})
    store, worker = await hub_fed_gate(hub, tmp_path, event_id, http)
    assert kinds == ["full"]
    auth = hub.auth(hub.a.manager_token)
    try:
        service = GateService(store, dedupe_window_ms=0)
        code = await credential_text(hub, ORDER_A)
        first = service.scan(code)
        assert first is not None and first.decision.verdict == "admit"
        for change in (
            {"attention": "Escort to the accessible lane"},
            {"max_entries": 1},
            {"order_ref": "TT-77"},
        ):
            resp = await hub.client.patch(
                f"/api/admin/tickets/{ORDER_A}", json=change, headers=auth
            )
            assert resp.status_code == 200, resp.text
            assert await asyncio.to_thread(worker.pull_manifest) is not None
            assert kinds[-1] == "delta"
            row = store.ticket(ORDER_A)
            assert row is not None
            assert {f: getattr(row, f) for f in change} == change
        assert [r.ticket_id for r in service.lookup("TT-77")] == [ORDER_A]
        assert [r.ticket_id for r in service.lookup("TT-1")] == [ORDER_B]
        # The note asks staff to look, until the limit of one entry denies the second.
        second = service.scan(code)
        assert second is not None
        assert (second.decision.verdict, second.decision.message) == (
            "deny",
            "Entry limit reached: 1 of 1.",
        )
        noted = service.scan(await credential_text(hub, ORDER_B))
        assert noted is not None and noted.decision.verdict == "admit"
        await hub.client.patch(
            f"/api/admin/tickets/{ORDER_B}", json={"attention": NOTE}, headers=auth
        )
        # The hub's online check has it at once; the gate after its next pull.
        device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=north(hub))
        answer = await online(device, event_id, await credential_text(hub, ORDER_B), 1)
        assert (answer["verdict"], answer["message"]) == ("attention", NOTE)
    finally:
        worker.stop()
        http.close()
        store.close()


def test_a_hub_database_of_the_previous_schema_opens_and_keeps_its_tickets(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.sqlite"
    copy_release("hub_release_54097c8.db", path)  # the hub of schema version 3
    old = sqlite3.connect(path)
    assert old.execute("SELECT version FROM schema_info").fetchall() == [(3,)]
    tables = [r[0] for r in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    before = {t: old.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
    columns = [r[1] for r in old.execute("PRAGMA table_info(tickets)")]
    assert not set(TICKET_FIELDS) & set(columns) and len(before["tickets"]) == 3
    old.close()

    store = HubStore(path)
    try:
        assert applied(store.db) == list(STEP_NAMES)  # every step recorded, in order
        assert not store.db["schema_info"].exists()  # the overwritten number is gone
        for table, rows in before.items():
            if table == "schema_info":
                continue
            names = ", ".join(f'"{c}"' for c in store.db[table].columns_dict)
            now = store.db.execute(f'SELECT {names} FROM "{table}" ORDER BY 1').fetchall()
            width = len(rows[0]) if rows else 0
            assert [tuple(r[:width]) for r in now] == rows, table  # old columns first, as were
            assert all(r[width:] == (None,) * (len(r) - width) for r in now), table
        # The upgraded table holds the new fields, with the same bounds a new one has.
        ticket_id = before["tickets"][1][0]
        store.db.execute("UPDATE tickets SET attention = ?, max_entries = 2 WHERE id = ?",
                         [NOTE, ticket_id])  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute("UPDATE tickets SET max_entries = 0 WHERE id = ?", [ticket_id])
        manifest = ManifestBuilder(store, HubKeys.single(HUB_SEED)).rows("ev-v3", 0)
        assert manifest is not None and len(manifest.tickets) == 3
        row = manifest.tickets[ticket_id]
        assert (row.attention, row.max_entries, row.seat) == (NOTE, 2, "R2")
    finally:
        store.close()
    # Opening it again (an upgraded database) changes nothing more.
    again = HubStore(path)
    try:
        assert again.db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 3
    finally:
        again.close()
