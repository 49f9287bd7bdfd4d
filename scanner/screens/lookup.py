"""Manual lookup: find a ticket without its code (phone dead, code unreadable) and admit it
through the same rules, recorded as a manual scan.

Choosing a row admits nothing yet: a confirm step shows the ticket's facts and asks "Admit this
guest?", so a slip of the finger on a list of look-alike rows cannot let someone in. Only
after Admit does the lookup screen hand the ticket id to the verdict screen, which runs it
through `GateService.manual_admit` (the engine decides, the scan is stored before it shows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Static

from manifests.model import TicketRow

if TYPE_CHECKING:
    from scanner.app import GateApp

SEALED_NOTE = (
    "Search by ticket id (first 4+ characters) or order reference. Holder names are sealed "
    "inside each ticket's own code, so names cannot be searched offline."
)
CONFIRM_QUESTION = "Admit this guest?"
CONFIRM_HINT = "Y / Admit: admit (manual scan)    N / Esc / Cancel: back to the list"
# Column header, width: fits 80 columns with DataTable's one-cell padding on each side.
COLUMNS = (
    ("Ticket", 9),
    ("Order", 10),
    ("Holder", 7),
    ("Tier", 14),
    ("Zone", 8),
    ("Status", 10),
)


def holder_fact(row: TicketRow) -> str:
    """What the gate can say about the holder without the ticket's code: whether it is named."""
    if row.holder_sealed:
        return "named (name sealed in the ticket's code: check photo ID)"
    return "no name on this ticket"


def status_word(row: TicketRow) -> str:
    """The ticket's state in staff's words ("checked in", not CHECKED_IN)."""
    return str(row.status).lower().replace("_", " ")


def row_cells(row: TicketRow) -> list[Text]:
    """One table row as plain Text: manifest values are never read as markup."""
    values = (
        row.ticket_id[:8],
        row.order_ref or "-",
        "named" if row.holder_sealed else "-",
        row.ticket_type or "-",
        row.zone or "-",
        status_word(row),
    )
    return [Text(v[:width], no_wrap=True) for v, (_, width) in zip(values, COLUMNS, strict=True)]


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
    return f"{row.ticket_id}{tail}\nEnter = check this ticket before admitting it"


def ticket_facts(row: TicketRow) -> str:
    """The facts staff compare with the guest before a manual admit, one per line."""
    lines = [
        f"Ticket   {row.ticket_id}",
        f"Order    {row.order_ref or '-'}",
        f"Holder   {holder_fact(row)}",
        f"Tier     {row.ticket_type or '-'}",
        f"Zone     {row.zone or '-'}" + (f"    Seat {row.seat}" if row.seat else ""),
        f"Status   {status_word(row)}",
    ]
    if row.attention:
        lines.append(f"Note     {row.attention}")
    if row.lock_reason:
        lines.append(f"Locked   {row.lock_reason.replace('_', ' ')}")
    return "\n".join(lines)


class ConfirmAdmitScreen(ModalScreen[bool]):
    """Dismisses True on Admit (Y or the button), False on Cancel (N, Escape or the button).
    Cancel is focused first, so a stray Enter backs out instead of admitting."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "decide(True)", "Admit"),
        Binding("n", "decide(False)", "Cancel"),
        Binding("escape", "decide(False)", "Cancel", show=False),
    ]
    DEFAULT_CSS = """
    ConfirmAdmitScreen { align: center middle; }
    ConfirmAdmitScreen > #confirm-box { width: 76; height: auto; max-height: 100%;
        border: thick $accent; padding: 0 1; background: $surface; }
    ConfirmAdmitScreen #confirm-facts { height: auto; }
    ConfirmAdmitScreen #confirm-question { text-style: bold; height: auto; margin-top: 1; }
    ConfirmAdmitScreen #confirm-hint { color: $text-muted; height: auto; }
    ConfirmAdmitScreen #confirm-buttons { height: auto; align-horizontal: center; }
    ConfirmAdmitScreen Button { margin: 0 2; }
    """

    def __init__(self, row: TicketRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(ticket_facts(self.row), id="confirm-facts", markup=False)
            yield Static(CONFIRM_QUESTION, id="confirm-question", markup=False)
            yield Static(CONFIRM_HINT, id="confirm-hint", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Admit (Y)", id="confirm-admit", variant="success")
                yield Button("Cancel (N)", id="confirm-cancel", variant="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-admit")

    def action_decide(self, admit: bool) -> None:
        self.dismiss(admit)


class LookupScreen(Screen[str | None]):
    """Dismisses with the ticket id staff confirmed to admit, or None."""

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
        table: DataTable[Text] = DataTable(id="lookup-results", cursor_type="row")
        for label, width in COLUMNS:
            table.add_column(label, width=width, key=label.lower())
        yield table
        yield Static("", id="lookup-detail", markup=False)
        yield Footer()

    @property
    def table(self) -> DataTable[Text]:
        return cast("DataTable[Text]", self.query_one("#lookup-results", DataTable))

    def on_mount(self) -> None:
        self.query_one("#lookup-query", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        rows = cast("GateApp", self.app).service.lookup(event.value)
        self.rows = {r.ticket_id: r for r in rows}
        table = self.table
        table.clear()
        for r in rows:
            table.add_row(*row_cells(r), key=r.ticket_id)
        detail = self.query_one("#lookup-detail", Static)
        if not rows:
            detail.update("No ticket found (at least 4 characters of an id or an order ref).")
            return
        table.move_cursor(row=0)
        table.focus()
        detail.update(row_detail(rows[0]))

    def _row_at(self, key: str | None) -> TicketRow | None:
        return self.rows.get(key or "")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = self._row_at(event.row_key.value)
        if row is not None:
            self.query_one("#lookup-detail", Static).update(row_detail(row))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        row = self._row_at(event.row_key.value)
        if row is None:
            return

        def decided(admit: bool | None) -> None:
            if admit:
                self.dismiss(row.ticket_id)

        self.app.push_screen(ConfirmAdmitScreen(row), decided)

    def action_back(self) -> None:
        self.dismiss(None)
