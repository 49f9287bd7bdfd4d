"""Manual lookup: find a ticket without its code (phone dead, code unreadable) and admit it
through the same rules, recorded as a manual scan."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from manifests.model import TicketRow

if TYPE_CHECKING:
    from scanner.app import GateApp

SEALED_NOTE = (
    "Search by ticket id (first 4+ characters) or order reference. Holder names are sealed "
    "inside each ticket's own code, so names cannot be searched offline."
)


def row_line(row: TicketRow) -> str:
    parts = [row.ticket_id[:8], row.order_ref or "-", row.ticket_type or "-", row.zone or "-"]
    return f"{parts[0]}  {parts[1]:<12} {parts[2][:16]:<16} {parts[3]:<9} {row.status}"


def row_detail(row: TicketRow) -> str:
    extra = []
    if row.seat:
        extra.append(f"seat {row.seat}")
    if row.attention:
        extra.append(f"note: {row.attention}")
    if row.lock_reason:
        extra.append(f"locked: {row.lock_reason.replace('_', ' ')}")
    if row.comp_reason:
        extra.append(f"comp: {row.comp_reason.replace('_', ' ')}")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"{row.ticket_id}{tail}\nEnter = admit this ticket (manual scan)"


class LookupScreen(Screen[str | None]):
    """Dismisses with the ticket id to admit, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]
    DEFAULT_CSS = """
    LookupScreen #lookup-note { height: auto; color: $text-muted; padding: 0 1; }
    LookupScreen #lookup-results { height: 1fr; }
    LookupScreen #lookup-detail { height: 3; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, TicketRow] = {}

    def compose(self) -> ComposeResult:
        yield Static("Manual lookup", classes="title")
        yield Input(placeholder="ticket id or order ref, then Enter", id="lookup-query")
        yield Static(SEALED_NOTE, id="lookup-note", markup=False)
        yield OptionList(id="lookup-results")
        yield Static("", id="lookup-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#lookup-query", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        rows = cast("GateApp", self.app).service.lookup(event.value)
        self.rows = {r.ticket_id: r for r in rows}
        results = self.query_one(OptionList)
        results.clear_options()
        results.add_options([Option(row_line(r), id=r.ticket_id) for r in rows])
        detail = self.query_one("#lookup-detail", Static)
        if not rows:
            detail.update("No ticket found (at least 4 characters of an id or an order ref).")
            return
        results.highlighted = 0
        results.focus()
        detail.update(row_detail(rows[0]))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        row = self.rows.get(event.option.id or "")
        if row is not None:
            self.query_one("#lookup-detail", Static).update(row_detail(row))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_back(self) -> None:
        self.dismiss(None)
