"""Rebuild pretix_sig1.json: pretix_sig1 ticket codes made by pretix's own generator
(pretix/base/secrets.py Sig1TicketSecretGenerator), for tests/protocol/test_backend_codes.py.

    python -m venv build/pretix-venv && build/pretix-venv/bin/pip install pretix==2026.8.0
    build/pretix-venv/bin/python tests/vectors/make_pretix_sig1.py

Runs in pretix's virtualenv, not ours (Django, pretix). The generator is given a stand-in
event whose settings start empty, so it makes the event's key pair as pretix does and stores
the public key in pretix's own form (base64 of a PEM SubjectPublicKeyInfo). Each code is read
back with pretix's own parser, and those fields are what the file expects. Seeds and keys are
random: a rebuilt file differs from the committed one in them only.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

OUT = Path(__file__).resolve().parent / "pretix_sig1.json"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pretix.settings")
    os.environ.setdefault("PRETIX_DATA_DIR", tempfile.mkdtemp())
    import django

    django.setup()
    import pretix
    from pretix.base.secrets import Sig1TicketSecretGenerator

    settings = SimpleNamespace(
        ticket_secrets_pretix_sig1_privkey=None, ticket_secrets_pretix_sig1_pubkey=None
    )
    generator = Sig1TicketSecretGenerator(SimpleNamespace(settings=settings))

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    cases: list[tuple[str, dict[str, Any]]] = [
        (
            "a day's window around 2026-09-21T14:13:20Z (the gate tests' now), with variation",
            {
                "item": 4711,
                "variation": 12,
                "valid_from": at("2026-09-21T12:00:00"),
                "valid_until": at("2026-09-22T12:00:00"),
            },
        ),
        ("no window, no variation", {"item": 4711}),
        (
            "an event series date (subevent), large ids, valid only from 2026-10-01",
            {
                "item": 2_000_123,
                "variation": 1_999_999,
                "subevent": 7_654_321,
                "valid_from": at("2026-10-01T00:00:00"),
            },
        ),
        ("valid until 2026-09-01 only", {"item": 5, "valid_until": at("2026-09-01T00:00:00")}),
    ]
    codes = []
    for note, case in cases:
        secret = generator.generate_secret(
            item=SimpleNamespace(pk=case["item"]),
            variation=SimpleNamespace(pk=case["variation"]) if "variation" in case else None,
            subevent=SimpleNamespace(pk=case["subevent"]) if "subevent" in case else None,
            valid_from=case.get("valid_from"),
            valid_until=case.get("valid_until"),
        )
        ticket = generator._parse(secret)  # pretix's own reading of its code
        assert ticket is not None
        codes.append(
            {
                "note": note,
                "secret": secret,
                "seed": ticket.seed,
                "item": ticket.item,
                "variation": ticket.variation,
                "subevent": ticket.subevent,
                "valid_from_unix": ticket.validFromUnixTime,
                "valid_until_unix": ticket.validUntilUnixTime,
            }
        )
    doc = {
        "made_by": f"pretix {pretix.__version__} Sig1TicketSecretGenerator (make_pretix_sig1.py)",
        "pubkey": settings.ticket_secrets_pretix_sig1_pubkey,
        "codes": codes,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
