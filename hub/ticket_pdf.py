"""Tickets as a PDF for the box office to hand over (will-call, hub/will_call.py): one ticket
a page, its QR code (the ticket's native credential as the hub issues it, drawn as
hub/credentials.qr_image draws it for the credential route) large enough for a gate's camera
from paper, in two layouts: `a4` for an office printer and `80mm` for a thermal
receipt printer (72 mm printable, 203 dpi: a QR module is several dots wide).

Pure: tickets in, bytes out, no database. Text is set in DejaVu Sans (Debian's
fonts-dejavu-core, which `make` installs) so any holder's name prints as written; without it,
in the PDF's core Helvetica, where a letter it lacks prints as its base letter or "?".
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF

from hub.credentials import qr_image

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = "DejaVuSans"
A4, THERMAL = "a4", "80mm"
LAYOUTS = (A4, THERMAL)


@dataclass(frozen=True, slots=True)
class PrintedTicket:
    """What one page shows: the code and the words a fan and a steward read beside it, set
    already (the caller formats times in the event's zone)."""

    credential: str
    event_name: str
    venue_name: str
    starts: str  # "2027-07-17 19:30"
    ticket_id: str
    holder_name: str | None = None
    ticket_type: str | None = None
    zone: str | None = None
    seat: str | None = None
    order_ref: str | None = None
    doors: str | None = None


@dataclass(frozen=True, slots=True)
class _Layout:
    width: float  # mm
    height: float | None  # mm; None: as tall as the ticket needs (a receipt roll)
    margin: float
    qr: float  # the code's side, quiet zone included
    title: float  # pt
    text: float
    small: float


_LAYOUTS = {
    A4: _Layout(210, 297, 20, 110, 24, 14, 9),
    THERMAL: _Layout(80, None, 4, 64, 13, 10, 7),
}
_GAP = 4  # mm between the text and the code
_NOTE = "Show this code at the entrance. Keep it private: each copy is the same ticket."


def tickets_pdf(
    tickets: Sequence[PrintedTicket], layout: str, *, font_dir: Path = FONT_DIR
) -> bytes:
    """The tickets, one a page, in `layout` (a4 or 80mm); ValueError for another layout."""
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
    shape = _LAYOUTS[layout]
    pdf = _document(shape, font_dir)
    pdf.set_title("Tickets")
    # A receipt is as long as its text and code: measured on a scratch page first.
    scratch = _document(shape, font_dir) if shape.height is None else None
    if scratch is not None:
        scratch.add_page()
    for number, ticket in enumerate(tickets, 1):
        blocks = _blocks(shape, ticket, f"Ticket {number} of {len(tickets)}")
        height = shape.height
        if scratch is not None:
            text = sum(
                _write(scratch, shape, block, measure=True) for group in blocks for block in group
            )
            height = 2 * shape.margin + text + shape.qr + 3 * _GAP
        assert height is not None
        pdf.add_page(format=(shape.width, height))
        _page(pdf, shape, height, blocks, ticket.credential)
    return bytes(pdf.output())


def _document(shape: _Layout, font_dir: Path) -> FPDF:
    pdf = FPDF(unit="mm", format=(shape.width, shape.height or shape.width))
    pdf.set_auto_page_break(False)
    pdf.set_margins(shape.margin, shape.margin)
    regular, bold = font_dir / f"{FONT}.ttf", font_dir / f"{FONT}-Bold.ttf"
    if regular.is_file() and bold.is_file():  # else the core Helvetica (_printable)
        pdf.add_font(FONT, "", str(regular))
        pdf.add_font(FONT, "B", str(bold))
    return pdf


Block = tuple[str, float, str]  # style ("" or "B"), size in pt, text


def _blocks(
    shape: _Layout, ticket: PrintedTicket, of: str
) -> tuple[list[Block], list[Block], list[Block]]:
    """The text above the code (the event), below it (the holder, what the ticket is, the
    order) and at the foot (the note, the ticket's id)."""
    above = [
        ("B", shape.title, ticket.event_name),
        ("", shape.text, ticket.venue_name),
        ("", shape.text, f"Starts {ticket.starts}"),
    ]
    if ticket.doors:
        above.append(("", shape.text, f"Doors {ticket.doors}"))
    kind = (ticket.ticket_type, _labelled("Zone", ticket.zone), _labelled("Seat", ticket.seat))
    below = [
        ("B", shape.text, ticket.holder_name or ""),
        ("", shape.text, " · ".join(p for p in kind if p)),
        ("", shape.text, " · ".join(p for p in (_labelled("Order", ticket.order_ref), of) if p)),
    ]
    foot = [("", shape.small, _NOTE), ("", shape.small, ticket.ticket_id)]
    return above, [b for b in below if b[2]], foot


def _labelled(label: str, value: str | None) -> str | None:
    return f"{label} {value}" if value else None


def _page(
    pdf: FPDF,
    shape: _Layout,
    height: float,
    blocks: tuple[list[Block], list[Block], list[Block]],
    credential: str,
) -> None:
    above, below, foot = blocks
    pdf.set_xy(shape.margin, shape.margin)
    for block in above:
        _write(pdf, shape, block)
    top = pdf.get_y() + _GAP
    pdf.image(
        io.BytesIO(qr_image(credential, "png")), x=(shape.width - shape.qr) / 2, y=top, w=shape.qr
    )
    pdf.set_y(top + shape.qr + _GAP)
    for block in below:
        _write(pdf, shape, block)
    if shape.height is not None:  # a sheet: the note at its foot
        foot_h = sum(_write(pdf, shape, block, measure=True) for block in foot)
        pdf.set_y(max(pdf.get_y(), height - shape.margin - foot_h))
    else:
        pdf.set_y(pdf.get_y() + _GAP)
    for block in foot:
        _write(pdf, shape, block)


def _write(pdf: FPDF, shape: _Layout, block: Block, *, measure: bool = False) -> float:
    """Set one block centred across the page (or only measure it); its height in mm."""
    style, size, text = block
    family = FONT if FONT.lower() in pdf.fonts else "Helvetica"
    pdf.set_font(family, style, size)
    pdf.set_x(pdf.l_margin)
    width, line = shape.width - 2 * shape.margin, size * 0.45
    lines = pdf.multi_cell(
        width,
        line,
        _printable(text, family),
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
        dry_run=measure,
        output="LINES",
    )
    assert isinstance(lines, list)
    return len(lines) * line


def _printable(text: str, family: str) -> str:
    """Text the font can set: all of it in DejaVu; in Helvetica (Latin-1) a letter it lacks
    becomes its base letter (ő becomes o, Ł becomes ?)."""
    if family == FONT:
        return text
    out = []
    for char in text:
        try:
            char.encode("latin-1")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode()
            out.append(base[:1] or "?")
    return "".join(out)
