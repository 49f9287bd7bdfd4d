"""`gate-hub import` and `gate-hub demo-data`: good files land whole, bad files land nothing
and say every problem; files as Excel saves them import; a second import updates."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub.cli import main
from hub.importer import CatalogueError, hub_ticket_id, import_files
from hub.storage import HubStore
from hub.store_api import NewGate
from hub.store_search import TicketQuery
from tests.hub_fixtures import Hub, credential_text, enroll

T1, T2, T3 = (str(uuid.UUID(int=n)) for n in (0xA1, 0xA2, 0xA3))
EVENTS = [
    ["event_id", "venue_id", "name", "timezone", "start", "end", "doors", "days", "code",
     "policy", "comp_limit"],
    ["ev-1", "{venue}", "Summer Fest", "Europe/Berlin", "2026-07-01T16:00", "2026-07-02T23:00",
     "", "2026-07-01;2026-07-02", "4242", "festival", "10"],
]  # fmt: skip
TYPES = [["event_id", "code", "name", "zone"], ["ev-1", "1", "Weekend", "GA"],
         ["ev-1", "2", "VIP Day", "VIP"]]  # fmt: skip
TICKETS = [
    ["ticket_id", "event_id", "ticket_type", "status", "holder_name", "valid_days"],
    [T1, "ev-1", "Weekend", "ACTIVE", "Ada Okafor", ""],
    [T2, "ev-1", "VIP Day", "SOLD", "Ben Rossi", "2026-07-02"],
]


def excel(path: Path, rows: list[list[str]], sep: str = ";", encoding: str = "utf-8-sig") -> Path:
    """The file as Excel saves it: CRLF, cells holding the separator quoted, a BOM for
    "CSV UTF-8" (encoding utf-8-sig) and none for "CSV (Comma delimited)" (cp1252)."""
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator="\r\n").writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


@pytest.fixture
def world(tmp_path: Path) -> tuple[str, str, Path]:
    db = tmp_path / "hub.sqlite"
    store = HubStore(db)
    tenant = store.create_tenant("alpha", 0)
    venue = store.create_venue(tenant["id"], "Park", "Europe/Berlin", "t", 0)
    other = store.create_tenant("bravo", 0)
    store.create_venue(other["id"], "Elsewhere", "UTC", "t", 0)
    store.close()
    events = [[c.replace("{venue}", venue["id"]) for c in row] for row in EVENTS]
    excel(tmp_path / "events.csv", events, sep=",", encoding="utf-8")
    excel(tmp_path / "types.csv", TYPES, sep=",", encoding="utf-8")
    excel(tmp_path / "tickets.csv", TICKETS, sep=",", encoding="utf-8")
    return str(db), venue["id"], tmp_path


def run(db: str, *files: Path | str, tenant: str = "alpha", dry: bool = False) -> int:
    extra = ["--dry-run"] if dry else []
    return main(["import", *map(str, files), "--tenant", tenant, "--db", db, *extra])


def all_files(d: Path) -> list[Path]:
    return [d / f for f in ("events.csv", "types.csv", "tickets.csv")]


@contextmanager
def opened(db: str, tenant: str = "alpha") -> Iterator[tuple[HubStore, str]]:
    store = HubStore(db)
    try:
        yield store, store.find_tenant(tenant)["id"]
    finally:
        store.close()


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
    assert run(db, d / "tickets.csv", d / "types.csv", d / "events.csv") == 0
    out = capsys.readouterr().out
    assert out == "imported 1 event (1 added), 2 ticket types (2 added), 2 tickets (2 added)\n"
    with opened(db) as (store, tenant):
        event = store.get_event("ev-1", tenant)
        assert event["code"] == 4242 and json.loads(event["policy_json"])["reentry_enabled"] is True
        assert event["start_ms"] == 1_782_914_400_000  # 16:00 Berlin summer time = 14:00 UTC
        ticket = store.get_ticket(T2, tenant)
        assert (ticket["ticket_type_name"], ticket["zone"], ticket["status"]) == (
            "VIP Day",
            "VIP",
            "SOLD",
        )


def test_excel_csv_utf8_with_bom_crlf_and_semicolons(world, capsys) -> None:  # type: ignore[no-untyped-def]
    """Excel's "CSV UTF-8" in a European locale: BOM, CRLF, `;` between cells (the days cell,
    holding `;`, quoted); headers in any case; statuses in any case; types by code."""
    db, venue, d = world
    events = [[c.replace("{venue}", "park") for c in row] for row in EVENTS]  # venue by name
    events[0] = [c.upper() for c in events[0]]
    tickets = [TICKETS[0], [T1, "ev-1", "1", "active", "Zoë Müller", ""],
               [T2, "ev-1", "vip day", "Sold", "Ben Rossi", "2026-07-02"]]  # fmt: skip
    files = [
        excel(d / "events.csv", events),
        excel(d / "types.csv", TYPES),
        excel(d / "tickets.csv", tickets),
    ]
    assert files[2].read_bytes().startswith(b"\xef\xbb\xbfticket_id;") and b"\r\n" in (
        files[2].read_bytes()
    )
    assert run(db, *files) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "2 tickets (2 added)" in captured.out and captured.err == ""
    with opened(db) as (store, tenant):
        assert json.loads(store.get_event("ev-1", tenant)["days_json"]) == [
            "2026-07-01",
            "2026-07-02",
        ]
        assert store.get_event("ev-1", tenant)["venue_id"] == venue
        got = store.get_tickets([T1, T2], tenant)
        assert (got[T1]["holder_name"], got[T1]["ticket_type_name"], got[T1]["status"]) == (
            "Zoë Müller",
            "Weekend",
            "ACTIVE",
        )
        assert (got[T2]["ticket_type_name"], got[T2]["status"]) == ("VIP Day", "SOLD")


def test_windows_1252_is_read_with_a_note_and_other_bytes_are_refused(world, capsys) -> None:  # type: ignore[no-untyped-def]
    """Excel's "CSV (Comma delimited)" writes Windows-1252: read as such, and said."""
    db, _, d = world
    tickets = [TICKETS[0], [T1, "ev-1", "Weekend", "ACTIVE", "Jürgen Weiß – VIP", ""]]
    path = excel(d / "tickets.csv", tickets, encoding="cp1252")
    assert b"J\xfcrgen" in path.read_bytes()
    assert run(db, *all_files(d)) == 0
    captured = capsys.readouterr()
    assert f"note: {path} is not UTF-8 (byte 0xfc on line 2)" in captured.err
    assert "read as Windows-1252" in captured.err and "CSV UTF-8" in captured.err
    with opened(db) as (store, tenant):
        assert store.get_ticket(T1, tenant)["holder_name"] == ("Jürgen Weiß – VIP")
    # 0x81 is no character in Windows-1252 either: refused, naming the encoding to use
    path.write_bytes(path.read_bytes().replace(b"J\xfcrgen", b"J\x81rgen"))
    assert run(db, path) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:" in err and 'save it as "CSV UTF-8' in err and "nothing imported" in err


def test_a_header_that_fits_nothing_lists_the_columns_of_each_kind(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, _, d = world
    path = excel(d / "tickets.csv", [["id", "event", "holder"], [T1, "ev-1", "Ada"]])
    assert run(db, path, *all_files(d)[:2]) == 2
    err = capsys.readouterr().err
    assert f"{path}:1:1: the header fits no kind of file: found id, event, holder" in err
    for expected in (
        "events need event_id, venue_id, name, timezone, start, end (optional: doors",
        "ticket types need event_id, code, name (optional: zone)",
        "tickets need ticket_id, event_id (optional: ticket_type, status",
    ):
        assert expected in err
    assert counts(db) == (0, 0, 0)


def test_every_problem_of_every_file_is_reported_and_nothing_lands(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, venue, d = world
    events = [[c.replace("{venue}", venue) for c in row] for row in EVENTS]
    events.append([*events[1][:3], "Paris", *events[1][4:]])
    events[2][0], events[2][8] = "ev-2", ""
    excel(d / "events.csv", events)
    excel(d / "types.csv", [*TYPES, ["ev-1", "abc", "Balcony", ""]])
    excel(
        d / "tickets.csv",
        [*TICKETS, [T3, "ev-1", "Pit", "gone", "X", "2026-08-01"], [T1, "ev-1", "", "", "", ""]],
    )
    assert run(db, *all_files(d)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{d / 'events.csv'}:3:4: timezone Paris is not a time zone name: write an IANA name "
        "such as Europe/Paris",
        f"{d / 'types.csv'}:4:2: code must be a whole number from 1 to 65535, not 'abc': write "
        "the number without decimals, spaces or thousands separators",
        f"{d / 'tickets.csv'}:4:3: no ticket type Pit at event ev-1: give one of its types by "
        "code or name (1 Weekend, 2 VIP Day)",
        f"{d / 'tickets.csv'}:4:4: status 'gone' is not a ticket status: write one of AVAILABLE, "
        "RESERVED, SOLD, MINTED, ACTIVE, TRANSFERRED, CHECKED_IN, USED, CANCELLED, REFUNDED, "
        "REVOKED, EXPIRED (in any case)",
        f"{d / 'tickets.csv'}:4:6: valid_days must be days of the event (2026-07-01, "
        "2026-07-02): remove the others",
        f"{d / 'tickets.csv'}:5:1: ticket {T1} appears twice (also line 2): keep one row per "
        "ticket",
        "gate-hub: 6 problems in the files: nothing imported; fix and import them again",
    ]
    assert counts(db) == (0, 0, 0)


@pytest.mark.parametrize(
    ("file", "row", "where", "message"),
    [
        ("tickets.csv", [T3, "ev-9", "", "", "X", ""], ":4:2:", "no event ev-9 in this import"),
        ("tickets.csv", [T3, "ev-1"], ":4:3:", "expected 6 cells as in the header, found 2"),
        ("types.csv", ["ev-1", "1", "Weekend", "GA"], ":4:2:", "code 1 appears twice"),
        ("types.csv", ["ev-1", "3", "Weekend", "GA"], ":4:3:", "name Weekend has code 1"),
        ("types.csv", ["ev-1", "", "Pit", ""], ":4:2:", "code is empty: give the type"),
    ],
)
def test_a_bad_row_is_refused_with_line_and_column_and_nothing_lands(  # type: ignore[no-untyped-def]
    world, capsys, file: str, row: list[str], where: str, message: str
) -> None:
    db, _, d = world
    excel(d / file, [*(TICKETS if file == "tickets.csv" else TYPES), row], sep=",")
    assert run(db, *all_files(d)) == 2
    err = capsys.readouterr().err
    assert f"{file}{where} " in err and message in err and "1 problem in the files" in err
    assert counts(db) == (0, 0, 0)


def test_uuid_ticket_ids_are_stored_in_one_spelling(world) -> None:  # type: ignore[no-untyped-def]
    """A native credential carries the ticket's UUID: an upper-case one is stored as gates
    spell it, and is the ticket's id itself (no external id)."""
    db, _, d = world
    excel(d / "tickets.csv", [*TICKETS, [T3.upper(), "ev-1", "", "", "", ""]])
    assert run(db, *all_files(d)) == 0
    with opened(db) as (store, tenant):
        assert store.get_ticket(T3, tenant)["external_id"] is None


def test_reimport_updates_audits_and_reaches_gates_as_a_delta(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, _, d = world
    assert run(db, *all_files(d)) == 0
    capsys.readouterr()
    with opened(db) as (store, tenant):
        before = store.event_revision("ev-1")
    # the same files again: all unchanged, and gates see nothing new
    assert run(db, *all_files(d)) == 0
    assert capsys.readouterr().out == (
        "imported 1 event (1 unchanged), 2 ticket types (2 unchanged), 2 tickets (2 unchanged)\n"
    )
    # a corrected, incremental export: T2 refunded and renamed, T3 new; T1 not in it
    excel(
        d / "tickets.csv",
        [["ticket_id", "event_id", "status", "holder_name"],
         [T2, "ev-1", "refunded", "Benedetta Rossi"], [T3, "ev-1", "", "Cy"]],
    )  # fmt: skip
    assert run(db, d / "tickets.csv", dry=True) == 0
    assert capsys.readouterr().out == "would import 2 tickets (1 added, 1 updated)\n"
    assert counts(db) == (1, 2, 2)
    with opened(db) as (store, tenant):
        assert store.event_revision("ev-1") == before
    assert run(db, d / "tickets.csv") == 0
    assert capsys.readouterr().out == "imported 2 tickets (1 added, 1 updated)\n"
    with opened(db) as (store, tenant):
        got = store.get_tickets([T1, T2, T3], tenant)
        assert (got[T2]["status"], got[T2]["holder_name"]) == ("REFUNDED", "Benedetta Rossi")
        # columns the file left out keep their values
        assert (got[T2]["ticket_type_name"], got[T2]["valid_days_json"]) == (
            "VIP Day",
            '["2026-07-02"]',
        )
        assert got[T1]["holder_name"] == "Ada Okafor"
        source = store.manifest_source("ev-1", since=before)
        assert source is not None and {t["id"] for t in source.tickets} == {T2, T3}
        audit = [e for e in store.audit_entries(tenant) if e["action"] == "ticket.update"]
        assert [(e["target"], e["actor"]) for e in audit] == [(T2, "cli")]
        assert json.loads(audit[0]["detail_json"]) == {
            "status": ["SOLD", "REFUNDED"],
            "holder_name": "changed",  # names stay out of the audit log
            "source": "import",
        }


def test_reimport_of_an_event_updates_it_but_keeps_its_code(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, venue, d = world
    assert run(db, *all_files(d)) == 0
    with opened(db) as (store, tenant):
        before = store.event_revision("ev-1")
    events = [[c.replace("{venue}", venue) for c in row] for row in EVENTS]
    events[1][2], events[1][8] = "Summer Fest (late)", ""  # code left empty: kept
    excel(d / "events.csv", events)
    assert run(db, d / "events.csv") == 0
    assert "imported 1 event (1 updated)" in capsys.readouterr().out
    with opened(db) as (store, tenant):
        event = store.get_event("ev-1", tenant)
        assert (event["name"], event["code"]) == ("Summer Fest (late)", 4242)
        assert store.event_revision("ev-1") > before  # the next manifest header has the name
    events[1][8] = "77"
    excel(d / "events.csv", events)
    assert run(db, d / "events.csv") == 2
    assert "has code 4242 at the hub: another code would void" in capsys.readouterr().err


def test_reimport_never_turns_a_reissued_ticket_back(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, _, d = world
    assert run(db, *all_files(d)) == 0
    with opened(db) as (store, tenant):
        store.reissue_ticket(store.get_ticket(T1, tenant), tenant, "box", 1)
    excel(d / "tickets.csv", [["ticket_id", "event_id", "generation"], [T1, "ev-1", "0"]])
    assert run(db, d / "tickets.csv") == 2
    assert "was reissued at the hub (generation 1): write 1 or more" in capsys.readouterr().err


def test_ids_of_another_tenant_are_refused_and_left_alone(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, _, d = world
    assert run(db, *all_files(d)) == 0
    with opened(db, "bravo") as (store, tenant):
        venue = store.list_venues(tenant)[0]["id"]
    events = [[c.replace("{venue}", venue) for c in row] for row in EVENTS]
    events[1][2], events[1][8] = "Hijack", ""
    excel(d / "events.csv", events)
    assert run(db, d / "events.csv", tenant="bravo") == 2
    err = capsys.readouterr().err
    assert "events.csv:2:1: event id ev-1 is taken by another tenant on this hub" in err
    # bravo's own event may not take alpha's tickets either, and never sees alpha's event
    events[1][0] = "ev-b"
    excel(d / "events.csv", events)
    excel(d / "tickets.csv", [["ticket_id", "event_id"], [T1, "ev-b"], [T3, "ev-1"]])
    assert run(db, d / "events.csv", d / "tickets.csv", tenant="bravo") == 2
    err = capsys.readouterr().err
    assert f"tickets.csv:2:1: ticket {T1} belongs to another tenant on this hub" in err
    assert "tickets.csv:3:2: no event ev-1 in this import or at the hub for this tenant" in err
    with opened(db) as (store, tenant):
        assert store.get_event("ev-1", tenant)["name"] == "Summer Fest"
        assert store.get_ticket(T1, tenant) is not None and counts(db) == (1, 2, 2)


def test_bad_event_fields(world, capsys) -> None:  # type: ignore[no-untyped-def]
    db, venue, d = world
    bad_rows = {
        (3, "Mars/Olympus"): "timezone Mars/Olympus is not a time zone name",
        (4, "later"): "start 'later' is not an ISO 8601 date-time: write 2026-07-01T18:00",
        (0, "ev 1"): "event_id 'ev 1' is not an id: use 1 to 64 letters",
        (9, "gala"): "policy 'gala' is not a template or JSON: write one of standard",
    }
    for (column, value), message in bad_rows.items():
        events = [[c.replace("{venue}", venue) for c in row] for row in EVENTS]
        events[1][column] = value
        excel(d / "events.csv", events)
        assert run(db, d / "events.csv") == 2
        assert f"events.csv:2:{column + 1}: {message}" in capsys.readouterr().err
    # another tenant's venue is not this tenant's to fill
    with opened(db, "bravo") as (store, tenant):
        other_venue = store.list_venues(tenant)[0]["id"]
    events = [[c.replace("{venue}", other_venue) for c in row] for row in EVENTS]
    excel(d / "events.csv", events)
    assert run(db, d / "events.csv") == 2
    err = capsys.readouterr().err
    assert f"events.csv:2:2: no venue {other_venue} for this tenant: write one of" in err
    assert counts(db) == (0, 0, 0)


def test_the_importer_keeps_reporting_through_its_api(world) -> None:  # type: ignore[no-untyped-def]
    """The Python entry point (used by fixtures) raises one CatalogueError holding them all."""
    db, _, d = world
    rows = [["T" * 65, "ev-1"] + [""] * 4, [T3, "ev-1", "", "", "", "-"]]
    excel(d / "tickets.csv", [*TICKETS, *rows])
    with opened(db) as (store, tenant), pytest.raises(CatalogueError) as caught:
        import_files(store, tenant, all_files(d), "test", 0)
    assert [(p.line, p.column) for p in caught.value.problems] == [(4, 1), (5, 6)]
    assert "ticket_id must be printable ASCII of at most 64 characters" in str(caught.value)


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
        {"kind": "ticket", "event_id": "ev-2", "ticket_id": T1, "ticket_type": 1},
    ]
    path = d / "gig.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"kind": "ticket", oops}\n')
    assert run(db, path) == 2
    assert "gig.jsonl:4:20: invalid JSON" in capsys.readouterr().err
    bad = {**lines[2], "ticket_id": T2, "generation": -1}
    path.write_text("\n".join(json.dumps(x) for x in [*lines, bad]))
    assert run(db, path) == 2
    err = capsys.readouterr().err
    column = json.dumps(bad).find('"generation"') + 1
    assert f"gig.jsonl:4:{column}: generation must be a whole number" in err
    assert counts(db) == (0, 0, 0)
    path.write_text("\n".join(json.dumps(x) for x in lines))
    assert run(db, path) == 0
    assert counts(db) == (1, 1, 1)
    # importing the same file again changes nothing
    assert run(db, path) == 0
    assert "1 ticket (1 unchanged)" in capsys.readouterr().out
    assert counts(db) == (1, 1, 1)


def test_demo_data(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "hub.sqlite")
    assert main(["demo-data", "--tickets", "250", "--db", db]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert counts(db) == (1, 2, 250)
    with opened(db, summary["tenant_id"]) as (store, tenant):
        assert store.token_for(summary["admin_token"])["tenant_id"] == tenant
        assert store.get_event(summary["event_id"], tenant)["code"] == summary["event_code"]
    assert main(["demo-data", "--tickets", "-5", "--db", db]) == 2


def test_times_may_be_epoch_ms_or_offset_iso(world) -> None:  # type: ignore[no-untyped-def]
    db, venue, d = world
    (d / "events.csv").write_text(
        "event_id,venue_id,name,timezone,start,end\n"
        f"ev-9,{venue},Matinee,UTC,1790000000000,2026-09-21T18:00:00+02:00\n"
    )
    assert run(db, d / "events.csv") == 0
    with opened(db) as (store, tenant):
        event = store.get_event("ev-9", tenant)
        assert (event["start_ms"], event["end_ms"]) == (
            1_790_000_000_000,
            1_790_006_400_000,
        )  # 16:00 UTC


OWN_IDS = [["ticket_id", "event_id", "holder_name"], ["A-1001", "ev-1", "Ada"],
           ["#1002 b", "ev-1", ""]]  # fmt: skip


def test_ticket_ids_that_are_not_uuids_get_the_hubs_own(world, capsys) -> None:  # type: ignore[no-untyped-def]
    """Any id a ticketing system gives is taken: the hub's id derives from it and the tenant
    with no lookup, so a re-import reaches the same row; the id as given is kept and found."""
    db, _, d = world
    excel(d / "tickets.csv", OWN_IDS)
    assert run(db, *all_files(d)) == 0
    assert "2 tickets (2 added)" in capsys.readouterr().out
    with opened(db) as (store, alpha):
        ours = hub_ticket_id(alpha, "A-1001")
        ticket = store.get_ticket(ours, alpha)
        assert uuid.UUID(ours).version == 5 and ticket["holder_name"] == "Ada"
        assert ticket["external_id"] == "A-1001"
        assert store.get_ticket(hub_ticket_id(alpha, "#1002 b"), alpha) is not None
        found = store.search_tickets(alpha, None, TicketQuery(text=" a-1001 ")).tickets
        assert [t["id"] for t in found] == [ours]
    assert run(db, *all_files(d)) == 0  # the same files again change nothing
    assert "2 tickets (2 unchanged)" in capsys.readouterr().out
    excel(d / "tickets.csv", [OWN_IDS[0], ["A-1001", "ev-1", "Ada Okafor"], OWN_IDS[2]])
    assert run(db, d / "tickets.csv") == 0
    assert capsys.readouterr().out == "imported 2 tickets (1 updated, 1 unchanged)\n"
    assert counts(db) == (1, 2, 2)
    with opened(db) as (store, alpha):
        assert store.get_ticket(ours, alpha)["holder_name"] == "Ada Okafor"
    # another tenant's "A-1001" is its own ticket, never alpha's
    with opened(db, "bravo") as (store, bravo):
        events = [[c.replace("{venue}", store.list_venues(bravo)[0]["id"]) for c in row]
                  for row in EVENTS]  # fmt: skip
    events[1][0], events[1][8] = "ev-b", ""
    excel(d / "events.csv", events)
    excel(d / "tickets.csv", [OWN_IDS[0], ["A-1001", "ev-b", "Bea"]])
    assert run(db, d / "events.csv", d / "tickets.csv", tenant="bravo") == 0
    theirs = hub_ticket_id(bravo, "A-1001")
    assert theirs != ours and counts(db) == (2, 2, 3)
    with opened(db, "bravo") as (store, _):
        assert store.get_ticket(theirs, bravo)["holder_name"] == "Bea"
        assert store.get_ticket(ours, bravo) is None


async def test_a_ticket_imported_with_its_own_id_gets_a_code_a_gate_admits(
    hub: Hub, tmp_path: Path
) -> None:
    """Through the real hub: the admin API answers for the hub's id with the id as given, the
    ticket gets a native credential, and an online check admits it."""
    now = hub.clock()
    gate = hub.store.create_gate(
        hub.a.id, NewGate(hub.a.venue_id, "North", "entry", ["GA"]), "t", now
    )
    start, end = (now - 3_600_000, now + 3_600_000)
    events = [["event_id", "venue_id", "name", "timezone", "start", "end"],
              ["ev-own", hub.a.venue_id, "Own ids", "UTC", str(start), str(end)]]  # fmt: skip
    tickets = [["ticket_id", "event_id", "zone"], ["A-1001", "ev-own", "GA"]]
    paths = [excel(tmp_path / "events.csv", events), excel(tmp_path / "tickets.csv", tickets)]
    import_files(hub.store, hub.a.id, paths, "test", now)
    ticket_id = hub_ticket_id(hub.a.id, "A-1001")
    resp = await hub.client.get(
        f"/api/admin/tickets/{ticket_id}", headers=hub.auth(hub.a.admin_token)
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["id"], resp.json()["external_id"]) == (ticket_id, "A-1001")
    code = await credential_text(hub, ticket_id)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=gate["id"])
    body = {"event_id": "ev-own", "payload": code, "seq": 1}
    answer = await device.send("POST", "/api/device/check", body)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["verdict"], answer.json()["ticket_id"]) == ("admit", ticket_id)
