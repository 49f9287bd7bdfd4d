"""The last scans at this gate, newest first, with verdicts and reasons in words."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from manifests.admission import venue_clock
from protocol.reasons import Verdict
from scanner.scanlog import ScanRecord

if TYPE_CHECKING:
    from scanner.app import GateApp

SHOWN = 100


def verdict_label(record: ScanRecord) -> str:
    if record.verdict is Verdict.ATTENTION:
        return {True: "CHECK+", False: "CHECK-", None: "CHECK?"}[record.confirmed]
    return record.verdict.value.upper()


def history_line(record: ScanRecord, timezone: str | None) -> str:
    """One scan; its time on the venue's clock, the one its verdict's words were written on."""
    when = venue_clock(record.at_ms, timezone)
    ticket = (record.ticket_id or "-")[:8]
    manual = "M" if record.manual else " "
    label = verdict_label(record)
    return f"#{record.seq:<5} {when} {label:<7}{manual} {ticket:<8} {record.message}"


class HistoryScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = "HistoryScreen #history-list { height: auto; padding: 0 1; }"

    def compose(self) -> ComposeResult:
        yield Static(
            f"Last {SHOWN} scans (CHECK+ admitted after check, CHECK- turned away, M manual)",
            classes="title",
        )
        with VerticalScroll(id="history-scroll"):
            yield Static("", id="history-list", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        service = cast("GateApp", self.app).service
        records, timezone = service.recent_scans(SHOWN), service.venue_timezone()
        text = "\n".join(history_line(r, timezone) for r in records) or "No scans yet."
        self.query_one("#history-list", Static).update(text)
        self.query_one("#history-scroll").focus()
