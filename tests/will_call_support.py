"""Will-call in tests: orders made on a show's tickets, and the QR codes of a tickets PDF read
back as a gate reads them (pages rendered by PDFium, pypdfium2; hardware/camera.py's decoder)
and checked with the gate's own parser against the keys the hub publishes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pypdfium2 as pdfium

from hardware.camera import QrDecoder
from protocol.credential import Credential, ParseContext
from protocol.parse import parse_credential
from tests.device_api import trusted_keys
from tests.hub_fixtures import Hub, Show, Tenant

MM_PER_PT = 25.4 / 72
THERMAL_DPI = 203  # what an 80 mm receipt printer prints at
OFFICE_DPI = 150


def make_order(hub: Hub, tenant: Tenant, ticket_ids: Sequence[str], order_ref: str) -> None:
    """Give the tickets one order reference, as an import or the ticket API would."""
    store, now = hub.store, hub.clock()
    for ticket in store.get_tickets(list(ticket_ids), tenant.id).values():
        store.update_ticket_fields(ticket, tenant.id, {"order_ref": order_ref}, "test", now)


@dataclass(frozen=True)
class PdfPage:
    width_mm: float
    height_mm: float
    codes: tuple[str, ...]  # every QR code the decoder found on the page
    text: str


def read_pdf(data: bytes, dpi: int) -> list[PdfPage]:
    """Every page of the PDF rendered at `dpi` in greyscale, its QR codes decoded."""
    document = pdfium.PdfDocument(data)
    pages = []
    for page in document:
        image = page.render(scale=dpi / 72, grayscale=True).to_numpy()
        found = QrDecoder().decode(image.reshape(image.shape[:2]))
        text = page.get_textpage().get_text_range()
        pages.append(
            PdfPage(
                page.get_width() * MM_PER_PT, page.get_height() * MM_PER_PT, found.payloads, text
            )
        )
    return pages


async def verified(hub: Hub, show: Show, code: str) -> Credential:
    """The code as a gate's parser reads it, with the hub's published keys: a Credential,
    or the test fails with the refusal."""
    ctx = ParseContext(
        now_ms=hub.clock(),
        issuer_keys=await trusted_keys(hub),
        event_codes={show.code: show.event_id},
    )
    result = parse_credential(code, ctx)
    assert isinstance(result, Credential), result
    return result
