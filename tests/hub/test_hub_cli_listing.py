"""`gate-hub event|device|ticket list` (issue 13) over a real SQLite file: filters, names or
ids for tenants, venues, events and gates, pages, and refusals as sentences (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.cli import main
from hub.storage import HubStore
from hub.store_api import CatalogueImport, DeviceEnrollment, NewEnrollment, NewGate
from hub.store_search import STATUSES
from manifests.policy import HOUR_MS
from tests.paths import ROOT

START = 1_790_000_000_000  # 2026-09-21 14:13:20 UTC


@dataclass
class Made:
    db: str
    tickets: dict[str, str]  # label -> ticket id
    gala_ids: list[str]


def _event(venue_id: str, name: str, code: int, start_ms: int, zone: str) -> dict[str, object]:
    event = {"id": str(uuid.uuid4()), "venue_id": venue_id, "code": code, "name": name}
    return {**event, "timezone": zone, "start_ms": start_ms, "end_ms": start_ms + HOUR_MS}


@pytest.fixture
def made(tmp_path: Path) -> Made:
    """Acme with venues Riverside Park (gate North, a device there and one elsewhere) and
    Annex; events Opening (code 7), and Gala at each venue; tickets; tenant Other too."""
    db = str(tmp_path / "hub.db")
    store = HubStore(db)
    try:
        acme = store.create_tenant("Acme", 0)["id"]
        park = store.create_venue(acme, "Riverside Park", "Europe/Paris", "t", 0)["id"]
        annex = store.create_venue(acme, "Annex", "UTC", "t", 0)["id"]
        north = store.create_gate(acme, NewGate(park, "North", "entry", []), "t", 0)["id"]
        for name, gate in (("Scanner N", north), ("Scanner loose", None)):
            _, code = store.create_enrollment(
                acme, NewEnrollment(venue_id=park, gate_id=gate, name=name, ttl_ms=10**15), "t", 0
            )
            store.enroll_device(
                DeviceEnrollment(
                    code=code,
                    hardware_id=name,
                    public_key=uuid.uuid4().bytes * 2,
                    app_version="1.0",
                ),
                START,
            )
        opening = _event(park, "Opening", 7, START, "Europe/Paris")
        galas = [_event(park, "Gala", 8, START + HOUR_MS, "UTC")]
        galas.append(_event(annex, "Gala", 9, START + 2 * HOUR_MS, "UTC"))
        specs = {
            "zoe": (opening, "ACTIVE", "Zoë Müller", "ORD-1"),
            "ann": (opening, "USED", "[VIP] Ann Lee", "ORD-2"),
            "bob": (galas[0], "ACTIVE", "Bob Stone", None),
            "cy": (galas[1], "CANCELLED", "Cy Annex", None),
        }
        tickets = {label: str(uuid.uuid4()) for label in specs}
        store.import_catalogue(
            acme,
            CatalogueImport(
                events=[opening, *galas],
                tickets=[
                    {
                        "id": tickets[label],
                        "event_id": event["id"],
                        "status": status,
                        "holder_name": holder,
                        "order_ref": order,
                    }
                    for label, (event, status, holder, order) in specs.items()
                ],
            ),
            "t",
            0,
        )
        other = store.create_tenant("Other", 0)["id"]
        elsewhere = store.create_venue(other, "Elsewhere", "UTC", "t", 0)["id"]
        theirs = _event(elsewhere, "Opening", 11, START, "UTC")
        store.import_catalogue(
            other,
            CatalogueImport(
                events=[theirs],
                tickets=[{"id": "their-ticket", "event_id": theirs["id"], "status": "ACTIVE"}],
            ),
            "t",
            0,
        )
        return Made(db, tickets, [str(g["id"]) for g in galas])
    finally:
        store.close()


def run(made: Made, line: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*line.split("|"), "--db", made.db])
    out, err = capsys.readouterr()
    return code, out, err


def listed(made: Made, line: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, err = run(made, line + "|--json", capsys)
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def refusal(made: Made, line: str, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    code, out, err = run(made, line, capsys)
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("gate-hub: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_event_list_per_tenant_and_venue_by_name(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    events = listed(made, "event|list|--tenant|Acme", capsys)
    assert [(e["name"], e["code"]) for e in events] == [("Opening", 7), ("Gala", 8), ("Gala", 9)]
    assert events[0]["start"] == "2026-09-21T16:13:20+02:00"  # in the event's own time zone
    annex = listed(made, "event|list|--tenant|Acme|--venue|ANNEX", capsys)
    assert [e["code"] for e in annex] == [9]
    code, out, _ = run(made, "event|list|--tenant|Acme|--venue|Annex", capsys)
    assert code == 0
    assert out.splitlines()[0].split() == ["id", "code", "name", "start", "timezone"]
    assert "Gala" in out.splitlines()[1] and len(out.splitlines()) == 2
    refusal(
        made,
        "event|list|--tenant|Acme|--venue|Nowhere",
        capsys,
        "tenant Acme has no venue Nowhere (its venues: Annex, Riverside Park)",
        "gate-hub venue list --tenant Acme",
    )


def test_device_list_by_venue_and_gate_name(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    devices = listed(made, "device|list|--tenant|Acme", capsys)
    assert {(d["name"], d["gate"]) for d in devices} == {
        ("Scanner N", "North"),
        ("Scanner loose", None),
    }
    for device in devices:  # last seen at enrolment, in this machine's time zone
        assert device["active"] is True and str(device["last_seen"]).startswith("2026-09-2")
    at_north = listed(made, "device|list|--tenant|Acme|--gate|north", capsys)
    assert [d["name"] for d in at_north] == ["Scanner N"]
    assert listed(made, "device|list|--tenant|Acme|--venue|Annex", capsys) == []
    assert listed(made, "device|list|--tenant|Other", capsys) == []
    refusal(
        made,
        "device|list|--tenant|Acme|--venue|Annex|--gate|North",
        capsys,
        "venue Annex has no gate North (its gates: none yet)",
        "gate-hub gate list --tenant Acme --venue Annex",
    )


def test_ticket_list_finds_by_each_key_within_the_tenant(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    t = made.tickets

    def ids(line: str) -> set[object]:
        return {row["id"] for row in listed(made, "ticket|list|--tenant|Acme" + line, capsys)}

    assert ids("") == set(t.values())
    assert ids("|--search|müller") == {t["zoe"]}  # part of the holder's name, any case
    assert ids("|--search|ord-2") == {t["ann"]}  # the whole order reference
    assert ids(f"|--search|{t['bob']}") == {t["bob"]}
    assert ids("|--search|their-ticket") == set()  # tenant Other's: never found
    assert ids("|--status|active") == {t["zoe"], t["bob"]}
    assert ids("|--event|7") == {t["zoe"], t["ann"]}  # an event by its code,
    assert ids("|--event|opening|--status|Used") == {t["ann"]}  # by its name in any case,
    assert ids(f"|--event|{made.gala_ids[1]}") == {t["cy"]}  # by its id
    assert ids("|--venue|Annex|--event|Gala") == {t["cy"]}  # one Gala at the Annex
    assert ids("|--venue|riverside park") == {t["zoe"], t["ann"], t["bob"]}
    code, out, _ = run(made, "ticket|list|--tenant|Acme|--search|lee", capsys)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == [
        "id",
        "external_id",
        "event",
        "status",
        "holder_name",
        "order_ref",
        "zone",
        "seat",
    ]
    assert row.split()[:7] == [t["ann"], "-", "Opening", "USED", "[VIP]", "Ann", "Lee"]


def test_ticket_list_refuses_in_sentences(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    err = refusal(made, "ticket|list|--tenant|Acme|--event|Gala", capsys, "event Gala could be")
    assert all(g in err for g in made.gala_ids) and "give the event's id" in err
    refusal(
        made,
        "ticket|list|--tenant|Acme|--event|Closing",
        capsys,
        "tenant Acme has no event Closing (its events: Opening, Gala)",
        "gate-hub event list --tenant Acme",
    )
    err = refusal(made, "ticket|list|--tenant|Acme|--status|gone", capsys, "--status")
    assert all(s in err for s in STATUSES)
    refusal(made, "ticket|list|--tenant|Acme|--limit|0", capsys, "--limit must be from 1 to 500")
    refusal(made, "ticket|list|--tenant|Acme|--cursor|abc", capsys, "--cursor abc is not one")
    refusal(made, "ticket|list|--tenant|Nobody", capsys, "no tenant Nobody")


def test_ticket_pages_say_how_to_get_the_next(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    line = "ticket|list|--tenant|Acme|--limit|3|--json"
    while True:
        code, out, err = run(made, line, capsys)
        assert code == 0, err
        seen += [str(row["id"]) for row in json.loads(out)]
        if not err:
            break
        assert err.startswith("gate-hub: more tickets match"), err
        line = "ticket|list|--tenant|Acme|--limit|3|--json|--cursor|" + err.split()[-1]
    assert seen == sorted(made.tickets.values())


def test_a_real_process_lists_and_refuses(made: Made) -> None:
    def gate_hub(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub", *words, "--db", made.db],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    found = gate_hub("ticket", "list", "--tenant", "Acme", "--search", "ZOË")
    assert found.returncode == 0, found.stderr
    assert made.tickets["zoe"] in found.stdout and "Zoë Müller" in found.stdout
    unknown = gate_hub("ticket", "list", "--tenant", "Acme", "--event", "Closing")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("gate-hub: tenant Acme has no event Closing")
    assert "Traceback" not in unknown.stderr


def test_a_tenant_is_named_in_any_case(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(made, "ticket|list|--tenant|aCME|--search|lee", capsys)
    assert code == 0, err
    assert made.tickets["ann"] in out
    code, out, err = run(made, "ticket|list|--tenant|Acmee", capsys)
    assert code == 2 and "no tenant Acmee on this hub" in err
