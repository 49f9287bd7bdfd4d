"""hub/ticket_pdf.py: the tickets PDF in both layouts, rendered to images (pypdfium2) and read
back with the gate's own decoder; every code is the ticket's credential as the hub issues it,
and the gate's parser accepts it with the keys the hub publishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.ticket_pdf import A4, LAYOUTS, THERMAL, PrintedTicket, tickets_pdf
from tests.hub_fixtures import Hub, add_show, credential_text
from tests.will_call_support import OFFICE_DPI, THERMAL_DPI, read_pdf, verified

HOLDERS = ["Łukasz Żółć", "Amara Okafor", "Sophie Martin"]


def printed(code: str, ticket_id: str, holder: str, event: str = "Show") -> PrintedTicket:
    return PrintedTicket(
        credential=code,
        event_name=event,
        venue_name="alpha Arena",
        starts="2027-07-17 19:30",
        ticket_id=ticket_id,
        holder_name=holder,
        ticket_type="Standing",
        zone="GA",
        seat=None,
        order_ref="ORD-7",
        doors="2027-07-17 18:30",
    )


@pytest.mark.parametrize(("layout", "dpi"), [(A4, OFFICE_DPI), (THERMAL, THERMAL_DPI)])
async def test_every_page_carries_its_tickets_working_code(hub: Hub, layout: str, dpi: int) -> None:
    show = add_show(hub, hub.a, n_tickets=3)
    codes = [await credential_text(hub, t) for t in show.tickets]
    tickets = [
        printed(code, tid, holder, "A concert whose name is long enough to wrap on a receipt")
        for code, tid, holder in zip(codes, show.tickets, HOLDERS, strict=True)
    ]
    pages = read_pdf(tickets_pdf(tickets, layout), dpi)
    assert len(pages) == 3
    for page, ticket_id, code, holder in zip(pages, show.tickets, codes, HOLDERS, strict=True):
        assert page.codes == (code,)  # one code a page, the hub's credential for this ticket
        credential = await verified(hub, show, page.codes[0])
        assert (credential.ticket_id, credential.generation) == (ticket_id, 0)
        assert holder in page.text and "Ticket" in page.text
    if layout == A4:
        assert all(abs(p.width_mm - 210) < 0.5 and abs(p.height_mm - 297) < 0.5 for p in pages)
    else:  # 80 mm wide, as long as the ticket needs: a receipt
        assert all(abs(p.width_mm - 80) < 0.5 and 100 < p.height_mm < 200 for p in pages)


async def test_without_the_unicode_font_names_fold_and_codes_still_read(
    hub: Hub, tmp_path: Path
) -> None:
    show = add_show(hub, hub.a, n_tickets=1)
    code = await credential_text(hub, show.tickets[0])
    pdf = tickets_pdf([printed(code, show.tickets[0], "Łukasz Żółć")], A4, font_dir=tmp_path)
    (page,) = read_pdf(pdf, OFFICE_DPI)
    assert page.codes == (code,)
    assert "?ukasz Zó?c" in page.text  # Latin-1 only: Ż and ć lose their marks, Ł and ł are ?


def test_an_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="a4, 80mm"):
        tickets_pdf([], "letter")
    assert LAYOUTS == ("a4", "80mm")
