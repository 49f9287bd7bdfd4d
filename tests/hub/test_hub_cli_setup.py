"""`gate-hub zone|gate create`, `enrollment create` and `ticket code`: what a venue manager
sets up from the shell, and each refusal a sentence with exit 2 that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.keyring import open_keyring
from hub.storage import HubStore
from protocol.signing import parse_enrollment_uri
from tests.hub_cli import riverside_hall, run

TICKET = "9a68f7fe-f094-4146-ae1c-debce5a18c8a"
PLACE = ("--tenant", "Riverside Events", "--venue", "riverside hall")


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A hub with a tenant, a venue in London, one event with a ticket, and its key file
    (as `serve` makes it on first start)."""
    path = riverside_hall(capsys, tmp_path / "hub.db")
    (tmp_path / "events.csv").write_text(
        "event_id,venue_id,name,timezone,start,end\n"
        "gig,Riverside Hall,Gig,Europe/London,2027-07-17T19:30,2027-07-17T23:00\n"
    )
    (tmp_path / "tickets.csv").write_text(f"ticket_id,event_id\n{TICKET},gig\nA-1001,gig\n")
    files = (str(tmp_path / "events.csv"), str(tmp_path / "tickets.csv"))
    assert run(capsys, path, "import", *files, "--tenant", "Riverside Events")[0] == 0
    store = HubStore(str(path))
    open_keyring(store, f"{path}.hubkey", 0, create=True)
    store.close()
    return path


def test_zones_then_a_gate_into_them(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for zone in ("Floor", "Balcony"):
        code, zone_id, _ = run(capsys, db, "zone", "create", zone, *PLACE)
        assert code == 0 and len(zone_id) == 36
    code, gate_id, _ = run(capsys, db, "gate", "create", "North Gate", *PLACE, "--zones", "Floor")
    assert code == 0
    gates = json.loads(run(capsys, db, "gate", "list", *PLACE, "--json")[1])
    assert gates == [
        {"id": gate_id, "name": "North Gate", "direction": "entry", "zones_json": "Floor"}
    ]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("zone", "create", "Floor", *PLACE), "already has a zone named Floor (id "),
        (("zone", "create", "  ", *PLACE), "a zone needs a name"),
        (("gate", "create", "G", *PLACE, "--zones", "Floor,Pit"), "has no zone Pit (its zones: "),
        (("gate", "create", "G", "--tenant", "Riverside Events", "--venue", "Nope"), "no venue"),
    ],
)
def test_place_refusals(
    db: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], words: str
) -> None:
    run(capsys, db, "zone", "create", "Floor", *PLACE)
    before = db.read_bytes()
    code, out, err = run(capsys, db, *argv)
    assert (code, out) == (2, "") and err.startswith("gate-hub: ") and words in err
    assert db.read_bytes() == before


def test_enrollment_prints_what_the_gate_reads(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, db, "gate", "create", "North Gate", *PLACE)
    qr = tmp_path / "enrol.png"
    hub = ("--hub-url", "http://10.0.0.5:8080")
    argv = ("enrollment", "create", *PLACE, "--gate", "north gate", "--name", "North Gate 1")
    code, uri, err = run(capsys, db, *argv, *hub, "--qr", str(qr), "--ttl-s", "60")
    assert code == 0 and qr.read_bytes().startswith(b"\x89PNG")
    parsed = parse_enrollment_uri(uri)
    assert parsed is not None and parsed[0] == "http://10.0.0.5:8080"
    assert f"enrolment code {parsed[1]} for device North Gate 1 at gate North Gate" in err
    assert "(Europe/London)" in err and "http://10.0.0.5:8080" in err
    code, out, _ = run(capsys, db, *argv, *hub, "--json")
    answer = json.loads(out)
    assert code == 0 and answer["timezone"] == "Europe/London"
    assert answer["expires_at"].endswith(("+00:00", "+01:00"))  # London's time, with offset


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--ttl-s", "5"), "--ttl-s must be from 30 to 86400 seconds"),
        (("--gate", "South"), "has no gate South"),
        (("--zone", "Roof"), "has no zone Roof"),
        (("--qr", "-"), "--qr writes an image file"),
        (("--qr", "no/such/dir/q.png"), "there is no directory no/such/dir for --qr"),
        (("--key-file", "missing.hubkey"), "the hub key file missing.hubkey is missing"),
    ],
)
def test_enrollment_refusals(
    db: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], words: str
) -> None:
    code, out, err = run(capsys, db, "enrollment", "create", *PLACE, "--name", "N", *extra)
    assert (code, out) == (2, "") and words in err
    store = HubStore(str(db))
    assert store.db["enrollment_codes"].count == 0
    store.close()


def test_ticket_code_as_the_credential_route_issues_it(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = ("--tenant", "Riverside Events")
    png, svg = tmp_path / "t.png", tmp_path / "t.svg"
    code, text, _ = run(capsys, db, "ticket", "code", TICKET, *tenant, "--png", str(png))
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG")
    again = run(capsys, db, "ticket", "code", TICKET, *tenant, "--svg", str(svg))
    assert again == (0, text, "") and b"<svg" in svg.read_bytes()  # issued once, kept
    code, other, _ = run(capsys, db, "ticket", "code", "A-1001", *tenant)  # id as imported
    assert code == 0 and other not in ("", text)
    code, out, err = run(capsys, db, "ticket", "code", "nope", *tenant)
    assert (code, out) == (2, "") and "tenant Riverside Events has no ticket nope" in err


def test_enrollment_for_a_zone_without_a_gate(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, db, "zone", "create", "Balcony", *PLACE)
    argv = ("enrollment", "create", *PLACE, "--zone", "balcony", "--name", "Usher 1")
    code, _, err = run(capsys, db, *argv, "--hub-url", "http://10.0.0.5:8080")
    assert code == 0 and "for device Usher 1 in zone Balcony" in err
    store = HubStore(str(db))
    (row,) = store.db["enrollment_codes"].rows
    store.close()
    assert (row["zone"], row["gate_id"]) == ("Balcony", None)  # the name the venue gave it
