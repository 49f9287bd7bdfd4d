"""A ticket's native credential and its QR code, issued one way for the admin API's credential
route and for `gate-hub ticket code`."""

from __future__ import annotations

import io

import segno

from hub.manifest_build import ManifestBuilder
from hub.store_api import HubStorage
from hub.store_base import Row


class NoNativeCredential(Exception):
    """The ticket's id cannot be carried by a native credential."""


def ticket_credential(
    store: HubStorage,
    builder: ManifestBuilder,
    ticket_id: str,
    tenant_id: str,
    venue_id: str | None,
    now_ms: int,
) -> tuple[Row, str] | None:
    """The ticket (of the tenant, of the venue when given) and its native credential for its
    current generation, issued and stored on first ask (the builder shares this store); None
    when there is no such ticket."""
    ticket = store.get_ticket(ticket_id, tenant_id, venue_id)
    if ticket is None:
        return None
    source = store.manifest_source(ticket["event_id"], with_tickets=False)
    assert source is not None
    try:
        return ticket, builder.credential_for(source, ticket, now_ms)
    except ValueError:
        raise NoNativeCredential(ticket_id) from None


QR_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def _qr(text: str) -> segno.QRCode:
    return segno.make(text, error="m", micro=False)


def qr_image(text: str, kind: str) -> bytes:
    """`text` as a QR code image (`kind` png or svg), sized to print at the box office."""
    out = io.BytesIO()
    _qr(text).save(out, kind=kind, scale=6, border=4)
    return out.getvalue()


def qr_svg_element(text: str) -> str:
    """`text` as a QR code's <svg> element for a page: no fixed size (it fills its box),
    dark on white whatever the page's colours, so a camera reads it off a screen."""
    return str(_qr(text).svg_inline(border=4, omitsize=True, dark="#000", light="#fff"))
