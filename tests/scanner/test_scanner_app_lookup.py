"""F2 lookup through the real app at 80x24: a table with headers, a confirm step that shows
the ticket's facts before a manual admit, the engine's refusal kept, and the order index."""

from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from manifests.codec import encode_manifest
from manifests.model import Manifest
from manifests.signing import sign_envelope
from scanner.app import GateApp
from scanner.install import install_manifest
from scanner.screens.lookup import CONFIRM_QUESTION, ConfirmAdmitScreen, LookupScreen
from scanner.screens.verdict import GateScreen
from scanner.widgets import StatusBar, VerdictPanel, rendered_text
from tests.app_pilot import piloted
from tests.scanner_fixtures import (
    ADA,
    ADA_ORDER,
    CAL,
    DOT,
    HUB_KEY_ID,
    HUB_SEED,
    NOW,
    GateUnderTest,
)


def table(app: GateApp) -> DataTable[object]:
    return app.screen.query_one("#lookup-results", DataTable)


def facts(app: GateApp) -> str:
    return rendered_text(app.screen.query_one("#confirm-facts", Static))


async def search(pilot: Pilot[None], text: str) -> None:
    await pilot.press("f2")
    assert isinstance(pilot.app.screen, LookupScreen)
    await pilot.press(*text, "enter")
    await pilot.pause()


async def test_results_have_headers_that_fit_80_columns(gate: GateUnderTest) -> None:
    async with piloted(gate.service) as (app, pilot):
        await search(pilot, ADA_ORDER)
        results = table(app)
        labels = [str(c.label) for c in results.columns.values()]
        assert labels[:4] == ["Ticket", "Order", "Holder", "Tier"] and "Status" in labels
        assert results.show_header and results.row_count == 2  # ADA and DOT share the order
        assert results.virtual_size.width <= results.size.width <= 80  # no sideways scroll
        assert app.screen.region.contains_region(results.region)
        header = results.render_line(0).text.split()
        assert header == ["Ticket", "Order", "Holder", "Tier", "Zone", "Status"]
        cells = [str(c) for c in results.get_row(ADA)]
        assert cells[:3] == [ADA[:8], ADA_ORDER, "named"] and cells[-1] == "active"


async def test_choosing_a_result_asks_first_and_cancel_stores_nothing(gate: GateUnderTest) -> None:
    async with piloted(gate.service) as (app, pilot):
        await search(pilot, ADA_ORDER)
        assert table(app).has_focus
        await pilot.press("enter")  # choose ADA's row (the first)
        assert isinstance(app.screen, ConfirmAdmitScreen)
        shown = facts(app)
        assert ADA in shown and ADA_ORDER in shown
        assert "Holder   named" in shown and "Tier     Weekend" in shown
        assert "Zone     GA" in shown and "Status   active" in shown
        question = rendered_text(app.screen.query_one("#confirm-question", Static))
        assert question == CONFIRM_QUESTION == "Admit this guest?"
        for part in ("#confirm-box", "#confirm-admit", "#confirm-cancel"):
            assert app.screen.region.contains_region(app.screen.query_one(part).region)
        assert gate.store.scans() == []  # nothing stored by choosing

        await pilot.press("n")
        assert isinstance(app.screen, LookupScreen)
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmAdmitScreen)
        await pilot.press("enter")  # Cancel has focus: a stray Enter backs out
        assert isinstance(app.screen, LookupScreen)
        await pilot.press("enter")
        await pilot.click("#confirm-cancel")
        assert isinstance(app.screen, LookupScreen)
        await pilot.press("enter", "escape")
        assert isinstance(app.screen, LookupScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, GateScreen)
        assert app.screen.query_one(VerdictPanel).word == "READY"
        assert "In 0  Denied 0" in app.screen.query_one(StatusBar).text
    assert gate.store.scans() == []


@pytest.mark.parametrize("by", ["key", "button"])
async def test_admit_after_confirm_is_a_stored_counted_manual_scan(
    gate: GateUnderTest, by: str
) -> None:
    async with piloted(gate.service) as (app, pilot):
        await search(pilot, ADA_ORDER)
        await pilot.press("down", "enter")  # DOT, the second row
        assert isinstance(app.screen, ConfirmAdmitScreen)
        assert DOT in facts(app) and "Seat R4-S12" in facts(app)
        if by == "key":
            await pilot.press("y")
        else:
            await pilot.click("#confirm-admit")
        await pilot.pause()
        assert isinstance(app.screen, GateScreen)
        assert app.screen.query_one(VerdictPanel).word == "ADMIT"
        assert "In 1  Denied 0  Inside 1" in app.screen.query_one(StatusBar).text
    record = gate.store.scan(1)
    assert record is not None and record.manual and record.ticket_id == DOT
    assert record.payload == f"manual:{DOT}" and record.verdict.value == "admit"
    assert len(gate.store.scans()) == 1


async def test_a_refunded_ticket_is_still_refused_after_confirm(gate: GateUnderTest) -> None:
    async with piloted(gate.service) as (app, pilot):
        await search(pilot, CAL[:8].upper())  # id prefix, typed in capitals
        assert table(app).row_count == 1
        await pilot.press("enter")
        assert "Status   refunded" in facts(app)
        await pilot.press("y")
        await pilot.pause()
        panel = app.screen.query_one(VerdictPanel)
        assert panel.word == "DENY" and "refunded" in panel.message
        assert "In 0  Denied 1" in app.screen.query_one(StatusBar).text
    record = gate.store.scan(1)
    assert record is not None and record.manual and record.verdict.value == "deny"


async def test_manifest_text_is_shown_as_text_not_markup(gate: GateUnderTest) -> None:
    odd = dataclasses.replace(gate.fx.manifest.tickets[ADA], ticket_type="[b]VIP[/b] [link=x]y")
    header = dataclasses.replace(gate.fx.manifest.header, revision=2)
    manifest = Manifest(header, {**gate.fx.manifest.tickets, ADA: odd})
    install_manifest(
        gate.store, sign_envelope(encode_manifest(manifest), HUB_KEY_ID, HUB_SEED), NOW
    )
    async with piloted(gate.service) as (app, pilot):
        await search(pilot, ADA[:8])
        shown = table(app).render_line(1).text  # the first row as drawn, under the header
        assert "[b]VIP[/b] [li" in shown, shown  # cut to its column, brackets and all
        await pilot.press("enter")
        assert "Tier     [b]VIP[/b] [link=x]y" in facts(app)


# -- the lookup's reads --------------------------------------------------------------------


def ticket_indexes(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'tickets' "
            "AND sql IS NOT NULL"
        ).fetchall()
    return [r[0] for r in rows]


def test_lookup_finds_by_id_prefix_or_order_in_any_case_and_installs_build_no_index(
    gate: GateUnderTest,
) -> None:
    """No secondary index on tickets: an order index doubled a 100k install (1.2 s to 2.4 s
    measured), while reading the table for a lookup costs 11 ms at 100k."""
    store, fx = gate.store, gate.fx
    assert [r.ticket_id for r in store.find_tickets("tt-4100", "tt-4100", 10)] == [ADA, DOT]
    assert [r.ticket_id for r in store.find_tickets(ADA[:6].upper(), "x", 10)] == [ADA]
    assert ticket_indexes(store.path) == []
    header = dataclasses.replace(fx.manifest.header, revision=3)
    envelope = sign_envelope(encode_manifest(Manifest(header, fx.manifest.tickets)), 1, HUB_SEED)
    install_manifest(store, envelope, NOW)  # a full install swaps in a new table
    store.wait_cleaned()
    assert ticket_indexes(store.path) == []
    assert len(store.find_tickets(ADA_ORDER.lower(), ADA_ORDER.lower(), 10)) == 2
