"""`gate-hub user create|list|disable`: the console's people come from the shell first; the
password only ever from standard input; each refusal a sentence with exit 2 that changes
nothing."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.cli import main
from hub.staff_accounts import password_matches
from hub.storage import HubStore

GOOD = "correct horse battery staple"


@dataclass
class GateHub:
    """`gate-hub ARGS --db DB`; the password line goes to standard input. Answers (exit
    code, stdout, stderr)."""

    db: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*argv, "--db", str(self.db)])
        out, err = self.capsys.readouterr()
        return code, out.strip(), err.strip()


@pytest.fixture
def gate_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> GateHub:
    """A hub with tenant Riverside (venue Hall) and tenant Other."""
    call = GateHub(tmp_path / "hub.db", capsys, monkeypatch)
    for tenant in ("Riverside", "Other"):
        assert call("tenant", "create", tenant)[0] == 0
    hall = ("venue", "create", "Hall", "--tenant", "Riverside", "--timezone", "Europe/London")
    assert call(*hall)[0] == 0
    return call


def test_create_list_disable(gate_hub: GateHub) -> None:
    code, out, err = gate_hub(
        "user", "create", "ana.box", "--tenant", "Riverside", "--role", "box_office",
        "--venue", "Hall", stdin=GOOD + "\n",
    )  # fmt: skip
    assert (code, err) == (0, "")
    store = HubStore(gate_hub.db)
    user = store.staff_user_named("ana.box")
    assert user is not None and user["id"] == out
    assert password_matches(user["password_hash"], GOOD)
    assert GOOD not in gate_hub.db.read_bytes().decode("latin-1")
    code, out, _ = gate_hub("user", "list", "--tenant", "Riverside", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert (row["username"], row["role"], row["venue"], row["disabled"]) == (
        "ana.box", "box_office", "Hall", "",
    )  # fmt: skip
    assert "password" not in out
    assert gate_hub("user", "list", "--tenant", "Other", "--json")[1] == "[]"
    code, out, _ = gate_hub("user", "disable", "ana.box", "--tenant", "Riverside")
    assert code == 0 and "sessions are ended" in out
    actions = [r["action"] for r in store.audit_entries(user["tenant_id"])]
    assert actions[-2:] == ["user.create", "user.disable"]


@pytest.mark.parametrize(
    ("argv", "stdin", "says"),
    [
        (("create", "ana", "--role", "admin"), "short", "12 to 256 characters"),
        (("create", "Ana Box", "--role", "admin"), GOOD, "A username is 2 to 64"),
        (("create", "ana", "--role", "admin", "--venue", "Hall"), GOOD, "leave out --venue"),
        (("create", "ana", "--role", "box_office", "--venue", "Nowhere"), GOOD, "Nowhere"),
        (("create", "taken", "--role", "admin"), GOOD, "username taken is taken"),
        (("disable", "nobody"), "", "has no user nobody"),
        (("disable", "gone"), "", "already disabled"),
        (("disable", "elsewhere"), "", "has no user elsewhere"),
    ],
)
def test_refusals_change_nothing(
    gate_hub: GateHub, argv: tuple[str, ...], stdin: str, says: str
) -> None:
    gate_hub("user", "create", "taken", "--tenant", "Riverside", "--role", "admin", stdin=GOOD)
    gate_hub("user", "create", "gone", "--tenant", "Riverside", "--role", "admin", stdin=GOOD)
    gate_hub("user", "disable", "gone", "--tenant", "Riverside")
    other = ("user", "create", "elsewhere", "--tenant", "Other", "--role", "admin")
    gate_hub(*other, stdin=GOOD)
    before = gate_hub.db.read_bytes()
    command = ("user", argv[0], argv[1], "--tenant", "Riverside", *argv[2:])
    code, out, err = gate_hub(*command, stdin=stdin)
    assert code == 2 and out == ""
    assert err.startswith("gate-hub: ") and says in err and "Traceback" not in err
    assert gate_hub.db.read_bytes() == before
