"""`gate-hub backend`: each refusal is a sentence with exit 2 that adds nothing and makes no
file; a token never shows in what the command prints. Against a live pretix:
tests/hub/backends/."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from hub.secret_box import SecretBox, key_path_for
from hub.storage import HubStore
from hub.store_api import ConnectedBackend
from tests.hub_cli import riverside_hall, run

PLACE = ("--tenant", "Riverside Events")
TOKEN = "tok-0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    return riverside_hall(capsys, tmp_path / "hub.db")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


ADD = ("backend", "add", "shop", *PLACE, "--venue", "Riverside Hall")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (
            (*ADD, "--url", "http://127.0.0.1:9", "--api-token", TOKEN, "--organizer", "river"),
            "pretix at http://127.0.0.1:9 is not reachable (ConnectError); nothing was added",
        ),
        (
            (*ADD, "--url", "http://127.0.0.1:9", "--init-token", "abc"),
            "pretix at http://127.0.0.1:9 is not reachable (ConnectError); nothing was added",
        ),
        (
            (*ADD, "--url", "http://127.0.0.1:9", "--api-token", TOKEN),
            "--api-token needs --organizer",
        ),
        (
            (*ADD, "--kind", "tickettoken", "--url", f"postgresql://hub:{TOKEN}@127.0.0.1:9/tt"),
            "--url holds a password",
        ),
        (
            (*ADD, "--kind", "tickettoken", "--url", "postgresql://hub@127.0.0.1:9/tt"),
            "needs --tt-tenant",
        ),
        (
            (
                *ADD,
                "--kind",
                "tickettoken",
                "--url",
                "postgresql://hub@127.0.0.1:9/tt",
                "--tt-tenant",
                "8c0c1f8e-0d7e-4f59-9a0b-6d8f1b2a3c4d",
            ),
            "TicketToken's database is not reachable",
        ),
        (
            (*ADD, "--url", "http://127.0.0.1:9"),
            "a pretix backend needs --init-token or --api-token",
        ),
        (
            (*ADD, "--url", "ftp://pretix", "--api-token", TOKEN, "--organizer", "river"),
            "--url ftp://pretix is not an http:// or https:// address",
        ),
        (
            (
                *ADD,
                "--url",
                "http://127.0.0.1:9",
                "--init-token",
                "abc",
                "--checkin-list",
                "fest",
            ),
            "--checkin-list fest is not EVENT=LIST_ID",
        ),
        (
            (*ADD, "--kind", "tickettoken", "--url", "http://x", "--api-token", TOKEN),
            "--url http://x is not a postgresql:// address of TicketToken's database",
        ),
        (
            (
                "backend",
                "add",
                "shop",
                *PLACE,
                "--venue",
                "Nowhere",
                "--url",
                "http://x",
                "--api-token",
                TOKEN,
                "--organizer",
                "o",
            ),
            "has no venue Nowhere",
        ),
        (("backend", "status", "shop", *PLACE), "has no backend shop (its backends: none yet)"),
        (("backend", "remove", "shop", *PLACE), "has no backend shop"),
        (("backend", "pull", "shop", *PLACE), "has no backend shop"),
    ],
)
def test_refusals_are_sentences_that_change_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], words: str
) -> None:
    before = _digest(db)
    code, out, err = run(capsys, db, *argv)
    assert code == 2 and out == "", (out, err)
    assert err.startswith("gate-hub: ") and words in err, err
    assert "Traceback" not in err and TOKEN not in err
    assert _digest(db) == before
    assert not key_path_for(db).exists()


def test_a_token_is_read_from_stdin_and_never_printed(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-` reads the token from standard input (out of shell history and ps); the add fails
    here (nothing listens), and the token is in no message."""
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    argv = (*ADD, "--url", "http://127.0.0.1:9", "--api-token", "-", "--organizer", "river")
    code, out, err = run(capsys, db, *argv)
    assert code == 2 and "not reachable" in err and TOKEN not in out + err
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    code, _, err = run(capsys, db, *argv)
    assert code == 2 and "the token is empty" in err


def test_list_and_status_show_where_a_backend_is_never_its_token(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = HubStore(str(db))
    box = SecretBox.for_database(db)
    tenant = store.find_tenant("Riverside Events")
    assert tenant is not None
    store.create_backend(
        tenant["id"],
        ConnectedBackend(
            venue_id=None,
            kind="pretix",
            name="shop",
            settings={"url": "http://127.0.0.1:9", "organizer": "river", "auth": "token"},
            seal=lambda backend_id: box.seal(TOKEN, backend_id),
        ),
        "t",
        0,
    )
    store.record_pull_failure(store.list_backends()[0]["id"], "pretix at x is not reachable", 5)
    store.close()
    code, out, _ = run(capsys, db, "backend", "list", *PLACE)
    assert code == 0 and "shop" in out and "river" in out and "not reachable" in out
    code, status, _ = run(capsys, db, "backend", "status", "shop", *PLACE)
    assert code == 0 and "owed_scans" in status and "not reachable" in status
    code, out, err = run(capsys, db, "backend", "pull", "shop", *PLACE)
    assert (
        code == 2 and "pull from shop failed: pretix at http://127.0.0.1:9 is not reachable" in err
    )
    for text in (out, status, err):
        assert TOKEN not in text
    code, out, _ = run(capsys, db, "backend", "remove", "shop", *PLACE)
    assert code == 0 and "removed backend shop" in out
    assert run(capsys, db, "backend", "list", *PLACE)[1] == "(none)"
