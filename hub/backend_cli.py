"""`gate-hub backend add|list|status|remove|pull`: the upstream ticketing systems a tenant
(or one venue) sells with.

A token is read from standard input when given as `-`, so it stays out of the shell's
history and the process list; it is sealed in the hub database at once (hub/secret_box.py)
and never printed again: listings and status show where a backend is, never how it signs in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hub.backends.connect import BadBackend, NewBackend, connect
from hub.backends.kinds import PRETIX
from hub.backends.runner import open_backend
from hub.backends.seam import BackendError
from hub.cli_commands import CommandContext
from hub.schema import BACKEND_KINDS
from hub.secret_box import SecretBox, SecretUnreadable
from hub.storage import HubStore, Row
from hub.store_api import ConnectedBackend
from hub.store_backends import backend_view

ACTIONS = ("add", "list", "status", "remove", "pull")


class BackendRefused(Exception):
    """A backend command that cannot do what was asked; the message says what to do."""


def add_parsers(sub: Any, db_option: Callable[[argparse.ArgumentParser], None]) -> None:
    backend = sub.add_parser(
        "backend", help="the ticketing systems the hub fronts (pretix...)"
    ).add_subparsers(dest="action", required=True)
    add = backend.add_parser("add", help="connect a ticketing system (pretix) to the hub")
    add.add_argument("name", help="a name for it, unique within the tenant")
    add.add_argument("--tenant", required=True, help="tenant id or name")
    add.add_argument("--venue", required=True, help="the venue its events take place at")
    add.add_argument("--kind", choices=BACKEND_KINDS, default=PRETIX, help="default pretix")
    add.add_argument(
        "--url",
        required=True,
        help="pretix: its address (https://pretix.example); tickettoken: its database"
        " (postgresql://ROLE@HOST:PORT/tickettoken_db, the password apart)",
    )
    how = add.add_mutually_exclusive_group()
    how.add_argument(
        "--init-token",
        help="a pretix device initialisation token (Organizer → Devices → Connect a device);"
        " - reads it from standard input",
    )
    how.add_argument(
        "--api-token",
        help="a pretix team API token instead of a device; - reads it from standard input",
    )
    add.add_argument("--organizer", help="pretix organizer slug (a device's comes with it)")
    add.add_argument(
        "--event",
        action="append",
        default=[],
        help="a pretix event slug to front (repeat for several; default: every event the "
        "device or token can see)",
    )
    add.add_argument(
        "--checkin-list",
        action="append",
        default=[],
        metavar="EVENT=LIST_ID",
        help="the pretix check-in list an event's scans go to (default: its first list of "
        "all products)",
    )
    add.add_argument("--tt-tenant", help="tickettoken: the tenant's uuid (row-level security)")
    add.add_argument("--tt-venue", help="tickettoken: only this venue's events (its uuid)")
    add.add_argument(
        "--db-password", help="tickettoken: the database role's password; - reads it from stdin"
    )
    add.add_argument(
        "--webhook-secret",
        help="tickettoken: the secret payment-service signs webhooks with; - reads it from"
        " stdin (after the password when both are -)",
    )
    add.add_argument(
        "--webhook-separator",
        choices=(".", ":"),
        default=".",
        help="tickettoken: what its sender puts between timestamp, nonce and body (default .)",
    )
    add.add_argument("--amqp-url", help="tickettoken: its RabbitMQ (amqp://...), to hear changes")
    add.add_argument(
        "--queue", default="ticket.events", help="tickettoken: the queue it publishes to"
    )
    add.add_argument(
        "--list-zone",
        action="append",
        default=[],
        metavar="LIST_ID=ZONE",
        help="a pretix check-in list whose products admit to a venue zone (its tickets get "
        "that zone; scans at that zone's gates go to that list); repeat for several",
    )
    db_option(add)
    listing = backend.add_parser("list", help="list the backends of a tenant")
    listing.add_argument("--tenant", required=True, help="tenant id or name")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    db_option(listing)
    for action, text in (
        ("status", "what a backend last did: pull, push backlog, errors"),
        ("remove", "stop fronting a backend (its tickets stay, as the hub's own)"),
        ("pull", "pull from a backend now, once, and say what changed"),
    ):
        command = backend.add_parser(action, help=text)
        command.add_argument("name", help="the backend's name or id")
        command.add_argument("--tenant", required=True, help="tenant id or name")
        if action == "status":
            command.add_argument("--json", action="store_true", help="print JSON")
        db_option(command)


def _token(given: str) -> str:
    text = sys.stdin.readline().strip() if given == "-" else given.strip()
    if not text:
        raise BackendRefused("the token is empty: give it after the option, or - and on stdin")
    return text


def _checkin_lists(pairs: Sequence[str]) -> dict[str, int]:
    lists = {}
    for pair in pairs:
        event, _, list_id = pair.partition("=")
        if not event or not list_id.isdigit():
            raise BackendRefused(
                f"--checkin-list {pair} is not EVENT=LIST_ID (an event slug and a number)"
            )
        lists[event] = int(list_id)
    return lists


def _list_zones(pairs: Sequence[str]) -> dict[str, str]:
    zones = {}
    for pair in pairs:
        list_id, _, zone = pair.partition("=")
        if not list_id.isdigit() or not zone.strip():
            raise BackendRefused(f"--list-zone {pair} is not LIST_ID=ZONE (a number and a zone)")
        zones[list_id] = zone.strip()
    return zones


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _new_backend(args: argparse.Namespace) -> NewBackend:
    """What the options ask for; tokens read from stdin where given as -, in option order."""

    def secret(given: str | None) -> str | None:
        return None if given is None else _token(given)

    return NewBackend(
        kind=args.kind,
        url=args.url,
        events=tuple(args.event),
        init_token=secret(args.init_token),
        api_token=secret(args.api_token),
        organizer=args.organizer,
        checkin_lists=_checkin_lists(args.checkin_list),
        list_zones=_list_zones(args.list_zone),
        tt_tenant=args.tt_tenant,
        tt_venue=args.tt_venue,
        db_password=secret(args.db_password),
        webhook_secret=secret(args.webhook_secret),
        webhook_separator=args.webhook_separator,
        amqp_url=args.amqp_url,
        queue=args.queue,
    )


def run(args: argparse.Namespace, ctx: CommandContext) -> int:
    store, tenant, venue_of, now_ms = ctx.store, ctx.tenant, ctx.venue_of, ctx.now_ms
    local, print_rows = ctx.local, ctx.print_rows
    box = SecretBox.for_database(store.path)
    if args.action == "add":
        venue = venue_of(args.venue)
        zones = {z["name"] for z in store.list_zones(venue["id"])}
        for pair in args.list_zone:
            zone = pair.partition("=")[2].strip()
            if zone and zone not in zones:
                raise BackendRefused(
                    f"--list-zone {pair}: venue {venue['name']} has no zone {zone} (its zones:"
                    f" {', '.join(sorted(zones)) or 'none yet'}); `gate-hub zone create` makes one"
                )
        if store.find_backend(tenant["id"], args.name) is not None:
            raise BackendRefused(
                f"tenant {tenant['name']} already has a backend {args.name}: choose another"
                " name, or `gate-hub backend remove` it first"
            )
        try:
            settings, token = asyncio.run(connect(_new_backend(args), venue["timezone"], _option))
        except BadBackend as exc:
            raise BackendRefused(str(exc)) from None
        except BackendError as exc:
            raise BackendRefused(f"{exc}; nothing was added") from None
        backend = ConnectedBackend(
            venue["id"],
            args.kind,
            args.name,
            settings,
            lambda backend_id: box.seal(token, backend_id),
        )
        try:
            row = store.create_backend(tenant["id"], backend, "cli", now_ms)
        except sqlite3.IntegrityError:
            raise BackendRefused(f"a backend {args.name} exists already") from None
        print(json.dumps(backend_view(row), indent=2))
        return 0
    if args.action == "list":
        rows = store.list_backends(tenant["id"])
        shown = []
        for row in rows:
            state = store.outbox_state(row["id"])
            shown.append(
                {
                    **backend_view(row),
                    "last_pull": local(row["last_pull_ok_ms"]),
                    "owed_scans": state.owed,
                    "error": row["last_pull_error"] or row["last_push_error"],
                }
            )
        columns = ("name", "kind", "organizer", "url", "last_pull", "owed_scans", "error")
        return print_rows(shown, columns if not args.json else (*columns, "id"), args.json)
    found = store.find_backend(tenant["id"], args.name)
    if found is None:
        names = ", ".join(r["name"] for r in store.list_backends(tenant["id"])) or "none yet"
        raise BackendRefused(
            f"tenant {tenant['name']} has no backend {args.name} (its backends: {names})"
        )
    row = found
    if args.action == "remove":
        done = store.remove_backend(row, "cli", now_ms)
        print(
            f"removed backend {row['name']}: its {done['tickets_kept']} tickets stay as the"
            f" hub's own; {done['dropped_owed_scans']} scans it was still owed will not be"
            " sent"
        )
        return 0
    if args.action == "pull":
        return _pull_now(store, row, box, now_ms)
    return _status(store, row, local, args.json)


def _pull_now(store: HubStore, row: Row, box: SecretBox, now_ms: int) -> int:
    try:
        adapter = open_backend(row, store.backend_secret(row["id"]), box)
    except SecretUnreadable as exc:
        raise BackendRefused(f"{exc}: add the backend again") from None

    async def once() -> Any:
        try:
            return await adapter.pull(store.backend_cursor(row["id"]))
        finally:
            await adapter.aclose()

    try:
        pulled = asyncio.run(once())
    except BackendError as exc:
        store.record_pull_failure(row["id"], str(exc), now_ms)
        raise BackendRefused(f"pull from {row['name']} failed: {exc}") from None
    summary = store.apply_pull(row, pulled, now_ms)
    print(json.dumps(summary.as_dict(), indent=2))
    return 0


def _status(
    store: HubStore, row: Row, local: Callable[[int | None], str | None], as_json: bool
) -> int:
    state = store.outbox_state(row["id"])
    status = {
        **backend_view(row),
        "last_pull_attempt": local(row["last_pull_ms"]),
        "last_pull_ok": local(row["last_pull_ok_ms"]),
        "last_pull_error": row["last_pull_error"],
        "owed_scans": state.owed,
        "oldest_owed_scan": local(state.oldest_owed_ms),
        "owed_scans_failing": state.failing,
        "pushed_scans": state.pushed,
        "last_push_ok": local(row["last_push_ok_ms"]),
        "last_push_error": state.last_error,
    }
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        width = max(len(k) for k in status)
        for key, value in status.items():
            print(f"{key.ljust(width)}  {'-' if value is None else value}")
    return 0
