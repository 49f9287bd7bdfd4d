"""`gate-hub` run inside the test's process (hub.cli.main), for the CLI tests that read its
exit code and output without a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli import main

TENANT, VENUE = "Riverside Events", "Riverside Hall"


def run(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, str, str]:
    """`gate-hub ARGV --db DB`: (exit code, stdout, stderr), both stripped."""
    code = main([*argv, "--db", str(db)])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def riverside_hall(capsys: pytest.CaptureFixture[str], db: Path) -> Path:
    """A hub database at `db` with the tenant Riverside Events and its venue Riverside Hall
    (Europe/London), made as an operator makes them."""
    assert run(capsys, db, "tenant", "create", TENANT)[0] == 0
    venue = ("venue", "create", VENUE, "--tenant", TENANT, "--timezone", "Europe/London")
    assert run(capsys, db, *venue)[0] == 0
    return db
