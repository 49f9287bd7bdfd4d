"""The console's reports against the real hub: an event's conflicts (offline double entries
with the winner and the duplicate, per-scan outcomes), its comps by reason and issuer against
the limit, and the audit log filtered and paged as GET /api/admin/audit is; each scoped, each
refused to roles without the permission."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hub.paging import PageAsk
from manifests.policy import MINUTE_MS
from tests.console_session import sign_in
from tests.device_api import upload
from tests.hub_fixtures import Hub, add_show, enroll, store_device

LOCK = "fraud_investigation"


async def double_entry(hub: Hub) -> tuple[str, str]:
    """Two North gates' devices let tickets[0] in a minute apart (both offline), "North
    early" first; a third scan is a denial. (event id, ticket id)."""
    show = add_show(hub, hub.a)
    token, venue = hub.a.manager_token, hub.a.venue_id
    first = await enroll(hub, token, venue, gate_id=show.north, name="North early")
    second = await enroll(hub, token, venue, gate_id=show.north, name="North late")
    now, tid = hub.clock(), show.tickets[0]
    later = upload(show.event_id, tid, 1, now)
    denied = upload(show.event_id, show.tickets[1], 2, now)["scans"][0]
    later["scans"].append(denied | {"verdict": "deny", "reason": "revoked"})
    for device, batch in ((first, upload(show.event_id, tid, 1, now - MINUTE_MS)), (second, later)):
        answer = await device.send("POST", "/api/device/scans", batch)
        assert answer.status_code == 200, answer.text
    return show.event_id, tid


# conflicts -----------------------------------------------------------------------------------
async def test_conflicts_show_double_entries_with_winner_duplicate_and_outcomes(hub: Hub) -> None:
    event_id, tid = await double_entry(hub)
    staff = await sign_in(hub, "a", "venue_staff")  # the report is ticket.read, as in the API
    page = await staff.get("/conflicts", params={"event": event_id})
    assert page.status_code == 200
    text = page.text
    assert re.search(r"<strong>1</strong> <span aria-hidden=\"true\">✔</span> Counted", text)
    assert re.search(r"<strong>1</strong> <span aria-hidden=\"true\">!</span> Duplicate", text)
    assert re.search(r"<strong>1</strong> <span aria-hidden=\"true\">✖</span> Refused", text)
    assert "Double entries (1)" in text
    row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", text, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert tid in cells[0]
    assert "North early #1" in cells[1] and "North late #1" in cells[2]  # the earlier won
    assert "Already admitted" in cells[3]
    # the scans that did not count, one by one: the duplicate and the denial
    assert text.count("Duplicate</span>") == 1 and text.count("Error</span>") == 1
    # the default event is the one that started last; another tenant's is not found
    assert "Double entries (1)" in (await staff.get("/conflicts")).text
    stranger = await sign_in(hub, "b", "admin")
    assert (await stranger.get("/conflicts", params={"event": event_id})).status_code == 404
    assert tid not in (await stranger.get("/conflicts")).text


def test_store_pages_the_scans_that_did_not_count(hub: Hub) -> None:
    """scan_outcome_page: newest first, one outcome kind or several, a page at a time."""
    show = add_show(hub, hub.a)
    device = store_device(hub.store, hub.a.id, hub.a.venue_id, hub.clock())
    for i, outcome in enumerate(("SUCCESS", "ERROR", "DUPLICATE", "ERROR")):
        scan_id = i + 1
        hub.store.db.execute(
            "INSERT INTO scans (id, device_id, device_seq, event_id, ticket_id, verdict,"
            " reason, direction, scanned_ms, arrived_ms) VALUES (?, ?, ?, ?, ?, 'admit',"
            " 'admitted', 'entry', 0, 0)",
            [scan_id, device, scan_id, show.event_id, show.tickets[0]],
        )
        hub.store.db.execute(
            "INSERT INTO scan_outcomes VALUES (?, ?, ?, ?, 'r', 'm', 0, 0)",
            [scan_id, show.event_id, show.tickets[0], outcome],
        )
    hub.store.db.conn.commit()
    kinds = ("DUPLICATE", "ERROR")
    first = hub.store.scan_outcome_page(show.event_id, kinds, PageAsk(None, 2))
    assert [r["scan_id"] for r in first.rows] == [4, 3]
    assert first.next_cursor is not None
    rest = hub.store.scan_outcome_page(show.event_id, kinds, PageAsk(first.next_cursor, 2))
    assert [r["scan_id"] for r in rest.rows] == [2] and rest.next_cursor is None
    assert hub.store.scan_outcome_page("another", kinds, None).rows == []


# comps ---------------------------------------------------------------------------------------
async def test_comps_by_reason_and_issuer_against_the_limit(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    hub.store.db.execute("UPDATE events SET comp_limit = 3 WHERE id = ?", [show.event_id])
    hub.store.db.conn.commit()
    ann = await sign_in(hub, "a", "box_office", username="ann")
    bo = await sign_in(hub, "a", "venue_manager", username="bo")
    path = f"/events/{show.event_id}/comps"
    for client, reason in ((ann, "press_pass"), (ann, "press_pass"), (bo, "artist_guest")):
        answer = await client.post(path, {"reason": reason, "holder_name": "Guest"})
        assert answer.status_code == 303, answer.text
    page = await ann.get(path)
    assert page.status_code == 200
    text = page.text
    assert "<strong>3</strong> issued" in text and "<strong>3</strong> allowed" in text
    assert "Limit reached" in text
    rows = [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
        for r in re.findall(r"<tr>(.*?)</tr>", text)
    ]
    assert ["Press pass", "2"] in rows and ["Artist guest", "1"] in rows
    assert ["Press pass", "user:ann", "2", "2"] in rows
    assert ["Artist guest", "user:bo", "1", "1"] in rows
    over = await ann.post(path, {"reason": "staff", "holder_name": "One too many"})
    assert over.status_code == 409 and "comp limit has been reached" in over.text
    assert len(hub.store.comp_counts(show.event_id)) == 2
    comps = [e for e in hub.store.audit_entries(hub.a.id) if e["action"] == "ticket.comp"]
    assert [e["actor"] for e in comps] == ["user:ann", "user:ann", "user:bo"]
    staff = await sign_in(hub, "a", "venue_staff")
    assert (await staff.get(path)).status_code == 200  # may read the report
    refused = await staff.post(path, {"reason": "staff", "holder_name": "Sneaky"})
    assert refused.status_code == 403
    forged = await ann.post(path, {"reason": "staff", "holder_name": "X"}, csrf=False)
    assert forged.status_code == 403
    stranger = await sign_in(hub, "b", "admin")
    assert (await stranger.get(path)).status_code == 404
    assert (await stranger.post(path, {"reason": "staff", "holder_name": "X"})).status_code == 404
    assert len([e for e in hub.store.audit_entries(hub.a.id) if e["action"] == "ticket.comp"]) == 3


# audit ---------------------------------------------------------------------------------------
def targets(html: str) -> list[str]:
    return re.findall(r'<a href="/tickets/([^"]+)" class="ticket-id">', html)


async def test_audit_filters_and_pages_like_the_api(hub: Hub) -> None:
    show = add_show(hub, hub.a, n_tickets=30)
    theirs = add_show(hub, hub.b, n_tickets=1)
    tickets = {t: hub.store.get_ticket(t, hub.a.id) for t in show.tickets}
    base = hub.clock()
    for i, tid in enumerate(show.tickets):  # 60 entries: a lock and an unlock, a minute apart
        ticket = tickets[tid]
        assert ticket is not None
        hub.store.set_locks([ticket], hub.a.id, LOCK, "user:x", base + i * MINUTE_MS)
        hub.store.set_locks([ticket], hub.a.id, None, "user:x", base + i * MINUTE_MS + 1)
    manager = await sign_in(hub, "a", "venue_manager")
    locks = await manager.get("/audit", params={"action": "ticket.lock"})
    assert locks.status_code == 200
    assert targets(locks.text) == list(reversed(show.tickets))  # 30: one page, newest first
    one = await manager.get("/audit", params={"target": show.tickets[4]})
    assert targets(one.text) == [show.tickets[4]] * 2
    # from/until on the venue's wall clock (Europe/Berlin), as the form sends them
    zone = ZoneInfo("Europe/Berlin")
    since = datetime.fromtimestamp((base + 10 * MINUTE_MS) / 1000, UTC).astimezone(zone)
    until = datetime.fromtimestamp((base + 13 * MINUTE_MS) / 1000, UTC).astimezone(zone)
    window = await manager.get(
        "/audit",
        params={
            "action": "ticket.lock",
            "since": since.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "until": until.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        },
    )
    assert targets(window.text) == list(reversed(show.tickets[10:13]))
    # all of it: 50 a page, then the rest, each entry once (the API's cursor)
    first = await manager.get("/audit")
    link = re.search(r'href="([^"]*cursor=[^"]*)" rel="next"', first.text)
    assert link is not None
    second = await manager.get(link.group(1).replace("&amp;", "&"))
    seen = targets(first.text) + targets(second.text)
    assert first.text.count("<tr>") == 1 + 50  # the header's row, then a page of entries
    assert sorted(seen) == sorted(show.tickets * 2)
    assert theirs.tickets[0] not in first.text + second.text
    bad = await manager.get("/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "Since must be a date and time" in bad.text
    assert (await manager.get("/audit", params={"cursor": "a1.x"})).status_code == 400
    detail = await manager.get(
        "/audit", params={"target": show.tickets[0], "action": "ticket.lock"}
    )
    assert "fraud_investigation" in detail.text and "user:x" in detail.text
    for role in ("box_office", "venue_staff"):  # audit.read is a manager's
        lower = await sign_in(hub, "a", role)
        assert (await lower.get("/audit")).status_code == 403
    stranger = await sign_in(hub, "b", "venue_manager")
    assert targets((await stranger.get("/audit")).text) == []


async def test_audit_entries_of_the_console_name_the_staff_user(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    manager = await sign_in(hub, "a", "venue_manager")
    answer = await manager.post(f"/tickets/{show.tickets[0]}/lock", {"reason": LOCK})
    assert answer.status_code == 303
    page = await manager.get("/audit", params={"action": "ticket.lock"})
    entry = hub.store.audit_entries(hub.a.id)[-1]
    assert entry["actor"] == f"user:{manager.username}"
    assert json.loads(entry["detail_json"]) == {"reason": LOCK, "previous": None}
    assert f"user:{manager.username}" in page.text and targets(page.text) == [show.tickets[0]]
