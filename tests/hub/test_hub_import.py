"""`gate-hub import` and `gate-hub demo-data`: good files land whole, bad files land nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.cli import main
from hub.storage import HubStore

EVENTS = (
    "event_id,venue_id,name,timezone,start,end,doors,days,code,policy,comp_limit\n"
    "ev-1,{venue},Summer Fest,Europe/Berlin,2026-07-01T16:00,2026-07-02T23:00,,"
    "2026-07-01;2026-07-02,4242,festival,10\n"
)
TYPES = "event_id,code,name,zone\nev-1,1,Weekend,GA\nev-1,2,VIP Day,VIP\n"
TICKETS = (
    "ticket_id,event_id,ticket_type,status,holder_name,valid_days\n"
    "t-1,ev-1,Weekend,ACTIVE,Ada Okafor,\n"
    "t-2,ev-1,VIP Day,SOLD,Ben Rossi,2026-07-02\n"
)


@pytest.fixture
def world(tmp_path: Path) -> tuple[str, str, Path]:
    db = tmp_path / "hub.sqlite"
    store = HubStore(db)
    tenant = store.create_tenant("alpha", 0)
    venue = store.create_venue(tenant["id"], "Park", "Europe/Berlin", "t", 0)
    other = store.create_tenant("bravo", 0)
    store.create_venue(other["id"], "Elsewhere", "UTC", "t", 0)
    store.close()
    (tmp_path / "events.csv").write_text(EVENTS.format(venue=venue["id"]))
    (tmp_path / "types.csv").write_text(TYPES)
    (tmp_path / "tickets.csv").write_text(TICKETS)
    return str(db), venue["id"], tmp_path


def counts(db: str) -> tuple[int, int, int]:
    store = HubStore(db)
    try:
        return tuple(  # type: ignore[return-value]
            store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("events", "ticket_types", "tickets")
        )
    finally:
        store.close()


def test_csv_import_lands_everything(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, _, d = world
    files = [str(d / f) for f in ("tickets.csv", "types.csv", "events.csv")]
    assert main(["import", *files, "--tenant", "alpha", "--db", db]) == 0
    assert "imported 1 events, 2 ticket types, 2 tickets" in capsys.readouterr().out
    store = HubStore(db)
    event = store.get_event("ev-1", store.find_tenant("alpha")["id"])
    assert event["code"] == 4242 and json.loads(event["policy_json"])["reentry_enabled"] is True
    assert event["start_ms"] == 1_782_914_400_000  # 16:00 Berlin summer time = 14:00 UTC
    ticket = store.get_ticket("t-2", store.find_tenant("alpha")["id"])
    assert (ticket["ticket_type_name"], ticket["zone"], ticket["status"]) == (
        "VIP Day",
        "VIP",
        "SOLD",
    )
    store.close()


@pytest.mark.parametrize(
    ("file", "text", "where", "message"),
    [
        ("tickets.csv", TICKETS + "t-3,ev-1,Weekend,GONE,X,\n", ":4:4:", "unknown status"),
        ("tickets.csv", TICKETS + "t-1,ev-1,Weekend,ACTIVE,X,\n", ":4:1:", "appears twice"),
        ("tickets.csv", TICKETS + "t-3,ev-9,,,X,\n", ":4:2:", "no event ev-9"),
        ("tickets.csv", TICKETS + "t-3,ev-1,Balcony,,X,\n", ":4:3:", "no ticket type"),
        ("tickets.csv", TICKETS + "t-3,ev-1,,,X,2026-08-01\n", ":4:6:", "days of the event"),
        ("tickets.csv", TICKETS + "t-3,ev-1\n", ":4:3:", "expected 6 cells"),
        ("types.csv", TYPES + "ev-1,1,Weekend,GA\n", ":4:3:", "already exists"),
        ("types.csv", "event_id,code,name,colour\n", ":1:4:", "unknown column"),
    ],
)
def test_bad_file_is_refused_with_line_and_column_and_nothing_lands(  # type: ignore[no-untyped-def]
    world, capsys, file: str, text: str, where: str, message: str
) -> None:
    db, _, d = world
    (d / file).write_text(text)
    files = [str(d / f) for f in ("events.csv", "types.csv", "tickets.csv")]
    assert main(["import", *files, "--tenant", "alpha", "--db", db]) == 2
    err = capsys.readouterr().err
    assert f"{file}{where}" in err and message in err and "nothing imported" in err
    assert counts(db) == (0, 0, 0)


def test_bad_event_fields(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, venue, d = world
    bad_rows = {
        "Mars/Olympus": "unknown time zone",
        "later": "ISO 8601",
    }
    for value, message in bad_rows.items():
        text = EVENTS.format(venue=venue)
        text = (
            text.replace("Europe/Berlin", value)
            if "/" in value
            else text.replace("2026-07-01T16:00", value)
        )
        (d / "events.csv").write_text(text)
        assert main(["import", str(d / "events.csv"), "--tenant", "alpha", "--db", db]) == 2
        assert message in capsys.readouterr().err
    # another tenant's venue is not this tenant's to fill
    store = HubStore(db)
    other_venue = store.list_venues(store.find_tenant("bravo")["id"])[0]["id"]
    store.close()
    (d / "events.csv").write_text(EVENTS.format(venue=other_venue))
    assert main(["import", str(d / "events.csv"), "--tenant", "alpha", "--db", db]) == 2
    assert "events.csv:2:2: no venue" in capsys.readouterr().err
    assert counts(db) == (0, 0, 0)


def test_jsonl_import_and_errors(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, venue, d = world
    lines = [
        {
            "kind": "event",
            "event_id": "ev-2",
            "venue_id": venue,
            "name": "Gig",
            "timezone": "UTC",
            "start": "2026-09-01T20:00+00:00",
            "end": "2026-09-01T23:00+00:00",
            "policy": {"duplicate_window_minutes": 10, "reentry_enabled": True},
        },
        {"kind": "ticket_type", "event_id": "ev-2", "code": 1, "name": "GA", "zone": "GA"},
        {"kind": "ticket", "event_id": "ev-2", "ticket_id": "g-1", "ticket_type": "GA"},
    ]
    path = d / "gig.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"kind": "ticket", oops}\n')
    assert main(["import", str(path), "--tenant", "alpha", "--db", db]) == 2
    assert "gig.jsonl:4:20: invalid JSON" in capsys.readouterr().err
    bad = {**lines[2], "ticket_id": "g-2", "generation": -1}
    path.write_text("\n".join(json.dumps(x) for x in [*lines, bad]))
    assert main(["import", str(path), "--tenant", "alpha", "--db", db]) == 2
    err = capsys.readouterr().err
    column = json.dumps(bad).find('"generation"') + 1
    assert f"gig.jsonl:4:{column}: generation must be a whole number" in err
    assert counts(db) == (0, 0, 0)
    path.write_text("\n".join(json.dumps(x) for x in lines))
    assert main(["import", str(path), "--tenant", "alpha", "--db", db]) == 0
    assert counts(db) == (1, 1, 1)
    # importing the same file again clashes with what is there and changes nothing
    assert main(["import", str(path), "--tenant", "alpha", "--db", db]) == 2
    assert "event ev-2 already exists" in capsys.readouterr().err
    assert counts(db) == (1, 1, 1)


def test_demo_data(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "hub.sqlite")
    assert main(["demo-data", "--tickets", "250", "--db", db]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert counts(db) == (1, 2, 250)
    store = HubStore(db)
    assert store.token_for(summary["admin_token"])["tenant_id"] == summary["tenant_id"]
    assert (
        store.get_event(summary["event_id"], summary["tenant_id"])["code"] == summary["event_code"]
    )
    store.close()
    assert main(["demo-data", "--tickets", "-5", "--db", db]) == 2


def test_times_may_be_epoch_ms_or_offset_iso(world) -> None:  # type: ignore[no-untyped-def]
    db, venue, d = world
    (d / "events.csv").write_text(
        "event_id,venue_id,name,timezone,start,end\n"
        f"ev-9,{venue},Matinee,UTC,1790000000000,2026-09-21T18:00:00+02:00\n"
    )
    assert main(["import", str(d / "events.csv"), "--tenant", "alpha", "--db", db]) == 0
    store = HubStore(db)
    event = store.get_event("ev-9", store.find_tenant("alpha")["id"])
    assert (event["start_ms"], event["end_ms"]) == (
        1_790_000_000_000,
        1_790_006_400_000,
    )  # 16:00 UTC
    store.close()
