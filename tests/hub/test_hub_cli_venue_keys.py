"""`gate-hub venue-keys`: keys come from files or standard input and never show in what the
command prints; each refusal is a `gate-hub:` sentence with exit 2 that changes nothing. What
the keys do at a gate: tests/hub/test_venue_keys.py."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from tests.hub.test_hub_cli_backend import run
from tests.legacy_codes import A_KEY, B_KEY, C_SECRET

PLACE = ("--tenant", "Riverside Events", "--venue", "Riverside Hall")
SECRETS = (A_KEY, B_KEY, C_SECRET.hex())


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "hub.db"
    assert run(capsys, path, "tenant", "create", "Riverside Events")[0] == 0
    venue = ("venue", "create", "Riverside Hall", "--tenant", "Riverside Events")
    assert run(capsys, path, *venue, "--timezone", "Europe/London")[0] == 0
    (tmp_path / "a.key").write_text(A_KEY + "\n")
    (tmp_path / "b.key").write_text(B_KEY)
    (tmp_path / "c.hex").write_text(f"  {C_SECRET.hex()}\r\n")
    (tmp_path / "short.key").write_text("too short\n")
    (tmp_path / "odd.hex").write_text("abc")
    return path


def keys(
    monkeypatch: pytest.MonkeyPatch, db: Path, action: str, *options: str, stdin: str = ""
) -> tuple[str, ...]:
    """`venue-keys ACTION` with key options naming files beside the database."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    named = [str(db.parent / o) if o.endswith((".key", ".hex")) else o for o in options]
    return ("venue-keys", action, *PLACE, *named)


def listed(capsys: pytest.CaptureFixture[str], db: Path) -> list[dict[str, object]]:
    code, out, _ = run(capsys, db, "venue-keys", "list", *PLACE, "--json")
    assert code == 0
    views: list[dict[str, object]] = json.loads(out)
    return views


def test_keys_from_files_and_stdin_are_kept_sealed_and_shown_by_fingerprint(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = keys(
        monkeypatch, db, "set", "--format-a-key", "a.key", "--format-c-secret-hex", "-",
        stdin=C_SECRET.hex() + "\n",
    )  # fmt: skip
    code, out, err = run(capsys, db, *argv)
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert (shown["key_set"], shown["state"], shown["formats"]) == (1, "current", ["A", "C"])
    assert (
        shown["fingerprints"]
        == {
            "A": hashlib.sha256(A_KEY.encode()).hexdigest()[:8],  # the file's line break is not key
            "C": hashlib.sha256(C_SECRET).hexdigest()[:8],
        }
    )
    argv = keys(monkeypatch, db, "rotate", "--format-b-key", "-", stdin=B_KEY)
    assert run(capsys, db, *argv, "--rotation-interval-ms", "60000")[0] == 0
    code, table, _ = run(capsys, db, "venue-keys", "list", *PLACE)
    assert code == 0
    prints = {**shown["fingerprints"], "B": hashlib.sha256(B_KEY.encode()).hexdigest()[:8]}
    rows = [line.split()[:5] for line in table.splitlines()]
    assert rows == [
        ["key_set", "state", "fingerprints", "rotation_interval_ms", "format_c_validity_ms"],
        ["1", "current", f"A:{prints['A']}", f"C:{prints['C']}", "30000"],
        ["2", "next", f"B:{prints['B']}", "60000", "30000"],
    ]
    assert run(capsys, db, *keys(monkeypatch, db, "activate"))[0] == 0
    states = [(v["key_set"], v["state"]) for v in listed(capsys, db)]
    assert states == [(2, "current"), (1, "retired")]
    assert run(capsys, db, *keys(monkeypatch, db, "retire", "--key-set", "1"))[0] == 0
    assert [(v["key_set"], v["state"]) for v in listed(capsys, db)] == [(2, "current")]
    on_disk = b"".join(p.read_bytes() for p in db.parent.glob("hub.db*"))
    for secret in (*SECRETS, C_SECRET.hex().upper()):
        assert secret.encode() not in on_disk
    assert C_SECRET not in on_disk


A_FILE, B_FILE = ("--format-a-key", "a.key"), ("--format-b-key", "b.key")


@pytest.mark.parametrize(
    ("action", "options", "stdin", "words"),
    [
        ("set", (), "", "give at least one key: --format-a-key, --format-b-key, --format-c-"),
        ("set", ("--format-a-key", "short.key"), "", "--format-a-key is 9 characters"),
        ("set", ("--format-c-secret-hex", "odd.hex"), "", "must be the HMAC secret as hex"),
        ("set", (*A_FILE[:1], "-", *B_FILE[:1], "-"), A_KEY, "from standard input (-)"),
        ("set", (*A_FILE[:1], "-"), "\n", "--format-a-key standard input is empty"),
        ("set", (*A_FILE[:1], "gone.key"), "", "cannot read --format-a-key file"),
        ("set", (*A_FILE, "--rotation-interval-ms", "999"), "", "must be from 1000 to 3600000"),
        ("set", B_FILE, "", "this venue's keys are set already (key set 1 is current)"),
        ("activate", (), "", "this venue has no announced key set to activate"),
        ("retire", ("--key-set", "1"), "", "key set 1 is current"),
        ("retire", ("--key-set", "7"), "", "this venue has no key set 7 in use"),
    ],
)
def test_refusals_are_sentences_that_change_nothing(
    db: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    options: tuple[str, ...],
    stdin: str,
    words: str,
) -> None:
    assert run(capsys, db, *keys(monkeypatch, db, "set", "--format-a-key", "a.key"))[0] == 0
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    code, out, err = run(capsys, db, *keys(monkeypatch, db, action, *options, stdin=stdin))
    assert (code, out) == (2, "")
    assert err.startswith("gate-hub: ") and words in err and "\n" not in err, err
    assert not [s for s in SECRETS if s in err]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_a_venue_or_tenant_it_does_not_know_is_refused(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("venue-keys", "list", "--tenant", "Riverside Events", "--venue", "Nope")
    code, _, err = run(capsys, db, *argv)
    assert code == 2 and err.startswith("gate-hub: tenant Riverside Events has no venue Nope")
    assert not (db.parent / "hub.db-secrets.key").exists()
