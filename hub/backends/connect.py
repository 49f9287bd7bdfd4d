"""Connecting a new backend, for the CLI and the admin API alike: its settings checked, its
token obtained or checked against the real system, before anything is stored.

A refusal (BadBackend) names the offending input the way the caller's user gave it: the CLI
passes option names (`--tt-tenant`), the API its field names (`tt_tenant`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hub.backends.kinds import PRETIX
from hub.backends.pretix import PretixBackend, initialize_device


class BadBackend(ValueError):
    """What was given cannot make a backend; the message says what to change."""


@dataclass(frozen=True)
class NewBackend:
    kind: str
    url: str
    events: Sequence[str] = ()
    # pretix
    init_token: str | None = None
    api_token: str | None = None
    organizer: str | None = None
    checkin_lists: Mapping[str, int] = field(default_factory=dict)  # event slug -> list id
    list_zones: Mapping[str, str] = field(default_factory=dict)  # list id -> zone
    # tickettoken
    tt_tenant: str | None = None
    tt_venue: str | None = None
    db_password: str | None = None
    webhook_secret: str | None = None
    webhook_separator: str = "."
    amqp_url: str | None = None
    queue: str = "ticket.events"


Named = Callable[[str], str]  # a field as the caller's user knows it


async def connect(new: NewBackend, venue_timezone: str, named: Named) -> tuple[dict[str, Any], str]:
    """The settings (nothing secret) and the secret to seal. Raises BadBackend, or
    BackendError when the system itself refuses or cannot be reached."""
    if new.kind == PRETIX:
        return await _pretix(new, named)
    return await _tickettoken(new, venue_timezone, named)


async def _pretix(new: NewBackend, named: Named) -> tuple[dict[str, Any], str]:
    """A device is initialised here (its token works once); a team token is checked by
    reading the events it sees."""
    if not new.url.startswith(("http://", "https://")) or len(new.url) > 300:
        raise BadBackend(f"{named('url')} {new.url} is not an http:// or https:// address")
    url = new.url.rstrip("/")
    settings: dict[str, Any] = {
        "url": url,
        "events": list(new.events),
        "checkin_lists": dict(new.checkin_lists),
        "list_zones": dict(new.list_zones),
    }
    if new.init_token is None and new.api_token is None:
        raise BadBackend(f"a pretix backend needs {named('init_token')} or {named('api_token')}")
    if new.init_token is not None:
        device = await initialize_device(url, new.init_token)
        if new.organizer and new.organizer != device["organizer"]:
            raise BadBackend(
                f"that device belongs to pretix organizer {device['organizer']}, not"
                f" {new.organizer}: leave {named('organizer')} out or use a device of"
                f" {new.organizer}"
            )
        settings |= {"organizer": device["organizer"], "auth": "device"}
        settings["device_id"] = device.get("device_id")
        return settings, str(device["api_token"])
    if not new.organizer:
        raise BadBackend(
            f"{named('api_token')} needs {named('organizer')} (the pretix organizer's slug)"
        )
    assert new.api_token is not None
    settings |= {"organizer": new.organizer, "auth": "token"}
    adapter = PretixBackend(settings, new.api_token)
    try:
        await adapter.check()
    finally:
        await adapter.aclose()
    return settings, new.api_token


async def _tickettoken(
    new: NewBackend, venue_timezone: str, named: Named
) -> tuple[dict[str, Any], str]:
    """Checked by reading the tenant's events through row-level security, as pulls will."""
    if not new.url.startswith(("postgresql://", "postgres://")):
        raise BadBackend(
            f"{named('url')} {new.url} is not a postgresql:// address of TicketToken's database"
        )
    if urlsplit(new.url).password:
        raise BadBackend(
            f"{named('url')} holds a password: leave it out of the address and give it with"
            f" {named('db_password')}, so it is sealed and never shown"
        )
    if not new.tt_tenant:
        raise BadBackend(f"a tickettoken backend needs {named('tt_tenant')} (the tenant's uuid)")
    for name, value in (("tt_tenant", new.tt_tenant), ("tt_venue", new.tt_venue)):
        try:
            if value is not None:
                uuid.UUID(value)
        except ValueError:
            raise BadBackend(f"{named(name)} {value} is not a uuid") from None
    if new.webhook_separator not in (".", ":"):
        raise BadBackend(f"{named('webhook_separator')} must be . or :")
    settings: dict[str, Any] = {
        "dsn": new.url,
        "url": new.url.split("@")[-1],  # where it is, without the role
        "tenant_id": new.tt_tenant,
        "venue_id": new.tt_venue,
        "events": list(new.events),
        "timezone": venue_timezone,
        "webhook_separator": new.webhook_separator,
        "amqp_url": new.amqp_url,
        "queue": new.queue,
    }
    secret = json.dumps({"password": new.db_password, "webhook_secret": new.webhook_secret})
    from hub.backends.tickettoken import TicketTokenBackend  # its drivers only when asked for

    adapter = TicketTokenBackend(settings, secret)
    try:
        await adapter.check()
    finally:
        await adapter.aclose()
    return settings, secret
