"""`python -m protocol` as an integrator runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode

from protocol.cli import build_parser
from protocol.native import STATIC_CHARS, public_key
from protocol.vectors import run_vectors
from tests.cli_help import undocumented
from tests.factories import ISSUER_SEED
from tests.paths import ROOT, VECTORS

VECTORS = VECTORS / "tickettoken-legacy.json"


def proto(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protocol", *args], capture_output=True, text=True, timeout=60
    )


def test_every_legacy_vector_through_the_public_parser() -> None:
    outcomes = run_vectors(json.loads(VECTORS.read_text()))
    assert len(outcomes) == 24
    assert [o for o in outcomes if not o.ok] == []


def test_check_vectors_command_passes_and_fails_honestly(tmp_path: Path) -> None:
    done = proto("check-vectors", str(VECTORS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "24 passed, 0 failed"
    doc = json.loads(VECTORS.read_text())
    doc["vectors"][0]["expect"] = "malformed"
    doc["format_b_key_utf8"] = "X" * 32  # wrong venue key: all four B codes fail
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    done = proto("check-vectors", str(bad))
    assert done.returncode == 1
    assert done.stdout.strip().splitlines()[-1] == "19 passed, 5 failed"
    assert "vector 0: expected malformed, got valid" in done.stdout


def test_issue_demo_prints_only_the_credential_and_draws_a_scannable_qr(tmp_path: Path) -> None:
    png = tmp_path / "ticket.png"
    done = proto("issue", "--demo", "--png", str(png))
    assert done.returncode == 0, done.stderr
    code = done.stdout.strip()
    assert len(code) == STATIC_CHARS and "\n" not in code
    found = zbar_decode(cv2.imread(str(png), cv2.IMREAD_GRAYSCALE), symbols=[ZBarSymbol.QRCODE])
    assert [f.data.decode() for f in found] == [code]


def test_issue_then_inspect_with_the_public_key(tmp_path: Path) -> None:
    key = tmp_path / "issuer.key"
    key.write_text(ISSUER_SEED.hex())
    tid = "0b9f6a52-8c1e-4f7d-9a3b-2c4d5e6f7a8b"
    done = proto(
        "issue",
        "--key-file",
        str(key),
        "--ticket-id",
        tid,
        "--valid-from",
        "2026-06-12T10:00:00+00:00",
        "--valid-until",
        "2026-06-15T02:00:00+00:00",
        "--day-mask",
        "0b111",
        "--comp",
    )
    assert done.returncode == 0, done.stderr
    code = done.stdout.strip()
    pub = public_key(ISSUER_SEED).hex()
    shown = proto("inspect", code, "--key", f"1:{pub}")
    fields = json.loads(shown.stdout)
    assert shown.returncode == 0
    assert (fields["result"], fields["ticket_id"], fields["comp"]) == ("credential", tid, True)
    assert fields["day_mask"] == 7
    refused = proto("inspect", code)  # no trusted key given
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["reason"] == "unknown_key"


def refused_in(folder: Path, *args: str) -> str:
    """`gate-proto` run in `folder`: exit 2, one sentence, no traceback, nothing written."""
    done = subprocess.run(
        [sys.executable, "-m", "protocol", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("gate-proto: ") and done.stderr.count("\n") == 1
    return done.stderr


def test_bad_input_is_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "issuer.key").write_text(ISSUER_SEED.hex())
    (tmp_path / "short.key").write_text("abcd")
    window = ("--valid-from", "2026-06-12T10:00:00+00:00", "--valid-until", "2026-06-13")
    tid = ("--ticket-id", "0b9f6a52-8c1e-4f7d-9a3b-2c4d5e6f7a8b")
    before = sorted(tmp_path.iterdir())
    assert "--valid-from yesterday is not an ISO date and time" in refused_in(
        tmp_path, "issue", "--demo", "--valid-from", "yesterday"
    )
    assert "cannot read --key-file missing.key" in refused_in(
        tmp_path, "issue", "--key-file", "missing.key", *tid, *window
    )
    assert "must hold a 32-byte Ed25519 seed" in refused_in(
        tmp_path, "issue", "--key-file", "short.key", *tid, *window
    )
    assert "--ticket-id must be a UUID" in refused_in(
        tmp_path, "issue", "--key-file", "issuer.key", "--ticket-id", "x", *window
    )
    assert "--ticket-type and --zone from 0 to 255" in refused_in(
        tmp_path, "issue", "--demo", "--zone", "999"
    )
    assert "--png out/t.png: there is no such directory" in refused_in(
        tmp_path, "issue", "--demo", "--png", "out/t.png"
    )
    bad_key = refused_in(tmp_path, "inspect", "x", "--key", "1:zz")
    assert "--key 1:zz must be KID:HEXPUBKEY" in bad_key
    assert "--now soon is not an ISO date" in refused_in(tmp_path, "inspect", "x", "--now", "soon")
    assert "cannot read none.json" in refused_in(tmp_path, "check-vectors", "none.json")
    assert sorted(tmp_path.iterdir()) == before


def test_every_option_has_help_text() -> None:
    assert undocumented(build_parser()) == []
