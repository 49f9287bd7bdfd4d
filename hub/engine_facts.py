"""Stored hub rows as the admission engine's facts: the online check and reconciliation
judge with the same engine, so they read tickets and scans into it the same way."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from manifests.admission_types import ScanFact
from manifests.model import RetiredCode, TicketRow


def ticket_row(
    row: Mapping[str, Any],
    type_names: Mapping[str, str],
    holder_sealed: bytes | None = None,
    code_digest: bytes | None = None,
    retired_codes: tuple[RetiredCode, ...] = (),
) -> TicketRow:
    """A stored ticket as gates hold it: the manifest, the online check and reconciliation
    all build their rows here, so a field the engine reads (attention, max_entries) cannot
    reach one of them and not the others. The manifest adds what only gates need: the
    holder's sealed name, the hashes of the ticket's backend codes."""
    return TicketRow(
        ticket_id=row["id"],
        status=row["status"],
        generation=row["generation"],
        ticket_type=type_names.get(row["ticket_type_id"] or ""),
        zone=row["zone"],
        seat=row["seat"],
        valid_days=tuple(json.loads(row["valid_days_json"])),
        max_entries=row["max_entries"],
        attention=row["attention"],
        lock_reason=row["lock_reason"],
        comp_reason=row["comp_reason"],
        order_ref=row["order_ref"],
        holder_sealed=holder_sealed,
        code_digest=code_digest,
        retired_codes=retired_codes,
    )


def scan_fact(row: Mapping[str, Any]) -> ScanFact:
    """A stored scan row (device time, as the online check judges it) as a history fact."""
    return ScanFact.of(
        row["ticket_id"],
        row["scanned_ms"],
        row["direction"],
        row["counted"],
        row["gate_name"],
        row["device_id"],
    )
