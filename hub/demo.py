"""`gate-hub demo-data`: a ready-to-scan venue, event and N tickets for trying the system."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from hub.progress import Progress
from hub.store_api import CatalogueImport, HubStorage, NewGate
from hub.store_base import new_id
from manifests.model import TicketStatus
from manifests.policy import GA, HOUR_MS, TEMPLATES, VIP

DEMO_TENANT = "demo"
_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas")
_LAST = ("Okafor", "Schmidt", "Nakamura", "Rossi", "Silva", "Dubois", "Kowalski", "Haddad")


DEMO_ENTRY_GATES = ("North 1", "North 2")


def make_demo(
    store: HubStorage, tickets: int, now_ms: int, seed: int = 7, progress: Progress | None = None
) -> dict[str, Any]:
    """A fresh demo venue (each run adds one) with an event starting in two hours; `progress`
    hears the tickets made (hub/progress.py)."""
    rng = random.Random(seed)
    tenant = store.find_tenant(DEMO_TENANT) or store.create_tenant(DEMO_TENANT, now_ms)
    n = len(store.list_venues(tenant["id"])) + 1
    venue = store.create_venue(tenant["id"], f"Demo Arena {n}", "UTC", "demo", now_ms)
    for zone in (GA, VIP):
        store.create_zone(tenant["id"], venue["id"], zone, "demo", now_ms)
    for gate in DEMO_ENTRY_GATES:  # two doors: a refusal names the door of the first entry
        store.create_gate(
            tenant["id"], NewGate(venue["id"], gate, "entry", [GA, VIP]), "demo", now_ms
        )
    store.create_gate(tenant["id"], NewGate(venue["id"], "Exit", "exit", []), "demo", now_ms)
    start = now_ms + 2 * HOUR_MS
    codes = store.event_codes()
    code = next(c for c in iter(lambda: rng.randrange(1, 2**32), None) if c not in codes)
    event = {
        "id": new_id(),
        "venue_id": venue["id"],
        "code": code,
        "name": "Demo Night",
        "timezone": "UTC",
        "start_ms": start,
        "end_ms": start + 4 * HOUR_MS,
        "doors_ms": start - HOUR_MS,
        "days_json": json.dumps([datetime.fromtimestamp(start / 1000, UTC).date().isoformat()]),
        "policy_json": json.dumps(TEMPLATES["concert"].to_json()),
        "comp_limit": 50,
    }
    types = [
        {
            "id": new_id(),
            "event_id": event["id"],
            "code": 1,
            "name": "General Admission",
            "zone": GA,
        },
        {"id": new_id(), "event_id": event["id"], "code": 2, "name": "VIP", "zone": VIP},
    ]
    rows = []
    for i in range(tickets):
        if progress is not None and i % 2000 == 0:
            progress("making tickets", i, tickets)
        kind = types[1] if i % 10 == 0 else types[0]
        rows.append(
            {
                "id": new_id(),
                "event_id": event["id"],
                "ticket_type_id": kind["id"],
                "status": str(TicketStatus.ACTIVE),
                "generation": 0,
                "zone": kind["zone"],
                "seat": None,
                "holder_name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                "valid_days_json": "[]",
            }
        )
    if progress is not None:
        progress("making tickets", tickets, tickets)
        progress("storing", 0, None)
    store.import_catalogue(
        tenant["id"],
        CatalogueImport(events=[event], ticket_types=types, tickets=rows),
        "demo",
        now_ms,
    )
    _, token = store.create_token(tenant["id"], None, "admin", "demo", now_ms)
    return {
        "tenant_id": tenant["id"],
        "venue_id": venue["id"],
        "event_id": event["id"],
        "event_code": code,
        "tickets": tickets,
        "admin_token": token,
    }
