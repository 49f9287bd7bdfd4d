"""HubStore's reads for the venue console's ticket pages and reports (hub/console/): a
ticket's scans across its venue's gates, an event's ticket counts and comps, the reconciled
scans that did not simply succeed, and the tickets a pasted list names (bulk lock).

Reads only: every change the console makes goes through the same TicketStore methods as the
admin API, so its audit is the API's. The caller has scoped the event or ticket already
(get_event, get_ticket with the principal's tenant and venue), except `tickets_for_lines`,
which scopes in its own SQL as every admin search does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.paging import Key, Keyset, Kind, Page, PageAsk
from hub.schema import SCAN_GATE_NAME, SCAN_HUB_MS
from hub.store_base import Row, StoreBase
from hub.store_tickets import _TICKET_SCOPE
from manifests.model import ADMITTING_STATUSES

MAX_TICKET_SCANS = 200  # a ticket's page shows its latest scans; more is a fault to look into
MAX_LINE = 512  # a pasted line: as long as the longest code a backend prints
# Reconciled scans, newest first (the cursor's tag "o": a page of outcomes).
OUTCOMES = Keyset("o", (Key("o.scan_id", "scan_id", Kind.INT),), descending=True)
_ADMITTING = ", ".join(f"'{s}'" for s in sorted(ADMITTING_STATUSES))
_LINES_A_QUERY = 100  # 5 lists of them: 500 bound values, under old SQLite's 999


class ConsoleReportStore(StoreBase):
    def ticket_scans(
        self, ticket_id: str, venue_id: str, limit: int = MAX_TICKET_SCANS
    ) -> list[Row]:
        """The ticket's scans at its venue's gates, newest first (hub time): where, which way,
        what the gate said and why, and what reconciliation made of it. Scans by another
        venue's devices (a code shown at the wrong venue) are that venue's, not listed here;
        a deactivated device's scans are listed, marked, as they are kept for audit."""
        return list(
            self.db.query(
                f"SELECT s.id, {SCAN_HUB_MS} AS hub_ms, {SCAN_GATE_NAME} AS gate_name, s.zone,"
                " s.direction, s.verdict, s.reason, s.counted, s.device_deactivated,"
                " json_extract(s.detail_json, '$.message') AS message,"
                " json_extract(s.detail_json, '$.manual') AS manual,"
                " json_extract(s.detail_json, '$.confirmed') AS confirmed,"
                " d.name AS device_name, o.outcome, o.reason AS outcome_reason"
                " FROM scans s JOIN devices d ON d.id = s.device_id"
                " LEFT JOIN gates g ON g.id = s.gate_id"
                " LEFT JOIN scan_outcomes o ON o.scan_id = s.id"
                " WHERE s.ticket_id = ? AND d.venue_id = ?"
                " ORDER BY hub_ms DESC, s.id DESC LIMIT ?",
                [ticket_id, venue_id, limit],
            )
        )

    def event_ticket_counts(self, event_id: str) -> list[Row]:
        """The event's tickets by type (None: none) and status, with how many are locked
        and how many are comps, by type name then status."""
        return list(
            self.db.query(
                "SELECT tt.name AS ticket_type, t.status, count(*) AS tickets,"
                " count(t.lock_reason) AS locked, count(t.comp_reason) AS comps"
                " FROM tickets t LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id"
                " WHERE t.event_id = ? GROUP BY tt.name, t.status ORDER BY tt.name, t.status",
                [event_id],
            )
        )

    def comp_counts(self, event_id: str) -> list[Row]:
        """The event's comps by reason and issuer (the actor who issued them), with how many
        of them still admit; every comp counts against the event's comp limit, as
        issue_comp counts, whatever became of it since. By reason, then issuer."""
        return list(
            self.db.query(
                "SELECT comp_reason AS reason, comp_issuer AS issuer, count(*) AS comps,"
                f" sum(status IN ({_ADMITTING})) AS admitting"
                " FROM tickets WHERE event_id = ? AND comp_reason IS NOT NULL"
                " GROUP BY comp_reason, comp_issuer ORDER BY comp_reason, comp_issuer",
                [event_id],
            )
        )

    def scan_outcome_page(
        self, event_id: str, outcomes: Sequence[str], ask: PageAsk | None
    ) -> Page:
        """The event's reconciled scans with one of `outcomes`, newest first: each with its
        gate, device, ticket, what the gate said and what the merged history made of it.
        Raises BadCursor for a cursor not of OUTCOMES."""
        marks = ",".join("?" * len(outcomes))
        sql = (
            f"SELECT o.scan_id, o.ticket_id, o.outcome, o.reason, o.message, o.corrected_ms,"
            f" {SCAN_GATE_NAME} AS gate_name, s.device_id, s.device_seq, s.verdict,"
            " s.reason AS gate_reason, s.direction, d.name AS device_name"
            " FROM scan_outcomes o JOIN scans s ON s.id = o.scan_id"
            " LEFT JOIN devices d ON d.id = s.device_id LEFT JOIN gates g ON g.id = s.gate_id"
            f" WHERE o.event_id = ? AND o.outcome IN ({marks})"
        )
        sql, params = OUTCOMES.paged(sql, [event_id, *outcomes], ask)
        return OUTCOMES.page(list(self.db.query(sql, params)), ask)

    def tickets_for_lines(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, lines: Sequence[str]
    ) -> dict[str, list[Row]]:
        """What each pasted line names among the venue's tickets (of the tenant, and of the
        scoped venue): a ticket id, an import's external id or an order reference (any case),
        a code the hub issued (any generation) or one a ticketing backend printed (exactly).
        Every line is a key; a line naming nothing maps to []. Tickets in id order."""
        found: dict[str, dict[str, Row]] = {line: {} for line in lines}
        distinct = list(found)
        for start in range(0, len(distinct), _LINES_A_QUERY):
            chunk = distinct[start : start + _LINES_A_QUERY]
            folded = [line.lower() for line in chunk]
            marks = ",".join("?" * len(chunk))
            issued = {  # credential -> ticket id
                r["credential"]: r["ticket_id"]
                for r in self.db.query(
                    "SELECT ticket_id, credential FROM ticket_credentials"
                    f" WHERE credential IN ({marks})",
                    chunk,
                )
            }
            by_code = sorted(set(issued.values()))
            sql = (
                _TICKET_SCOPE + " AND e.venue_id = ?"
                f" AND (t.id IN ({marks}) OR lower(t.external_id) IN ({marks})"
                f" OR lower(t.order_ref) IN ({marks}) OR t.backend_code IN ({marks})"
                f" OR t.id IN ({','.join('?' * len(by_code)) or 'NULL'}))"
            )
            params: list[Any] = [tenant_id, venue_id, *chunk, *folded, *folded, *chunk, *by_code]
            if scope_venue is not None:
                sql += " AND e.venue_id = ?"
                params.append(scope_venue)
            for ticket in self.db.query(sql + " ORDER BY t.id", params):
                for line in chunk:
                    if _names(line, ticket, issued):
                        found[line][ticket["id"]] = ticket
        return {line: list(tickets.values()) for line, tickets in found.items()}


def _names(line: str, ticket: Row, issued: dict[str, str]) -> bool:
    """Whether a pasted line names the ticket (as tickets_for_lines' query matched it)."""
    folded = line.lower()
    return (
        line in (ticket["id"], ticket["backend_code"])
        or issued.get(line) == ticket["id"]
        or any(
            ticket[column] is not None and ticket[column].lower() == folded
            for column in ("external_id", "order_ref")
        )
    )
