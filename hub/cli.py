"""`gate-hub`: run the hub and administer it from the shell."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from aiohttp import web

from hub import backend_cli, user_cli, venue_keys_cli
from hub.admin_routes import MAX_ENROLLMENT_TTL_S
from hub.app import create_app, wall_clock_ms
from hub.auth import ADMIN, ROLES
from hub.backend_cli import BackendRefused
from hub.cli_commands import CommandContext
from hub.config import ConfigError, HubConfig, load_config
from hub.credentials import NoNativeCredential, qr_image, ticket_credential
from hub.demo import make_demo
from hub.importer import CatalogueError, hub_ticket_id, import_files
from hub.keyring import (
    Keyring,
    KeyringWatch,
    new_identity,
    open_keyring,
    recorded_by,
    write_keyring,
)
from hub.logs import configure_logging
from hub.manifest_build import HubKeys, ManifestBuilder
from hub.migrations import SchemaTooNew
from hub.progress import on_terminal
from hub.server import hold_serve_lock, hub_url_for, listen, refuse_if_served, serve
from hub.storage import HubStore, Row
from hub.store_api import NewEnrollment, NewGate
from hub.store_search import DEFAULT_PAGE, MAX_PAGE, BadCursor, TicketQuery, ticket_status
from hub.user_cli import UserRefused
from hub.venue_keys import VenueKeysRefused
from manifests.admission_types import Direction
from protocol.signing import enrollment_uri, key_fingerprint

log = logging.getLogger("hub")


DB_HELP = "hub database file (or GATE_HUB_DB); before or after the command"
JSON_HELP = "print JSON instead of a table"
TENANT_HELP = "tenant id or name"
VENUE_HELP = "venue id or name (within the tenant)"
ALL_VENUES = "; default: every venue of the tenant"
KEY_FILE_HELP = "hub keyring file (default <db>.hubkey)"


def _db(command: argparse.ArgumentParser) -> None:
    """--db after the command too; SUPPRESS keeps one given before it."""
    command.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate-hub", description="Venue gate hub.")
    parser.add_argument("--db", help=DB_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub HTTP server")
    serve.add_argument("--config", help="JSON config file (or GATE_HUB_CONFIG)")
    _db(serve)
    serve.add_argument(
        "--host",
        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for gates "
        "on the network)",
    )
    serve.add_argument("--port", type=int, help="TCP port from 1 to 65535 (default 8080)")
    serve.add_argument(
        "--hub-url",
        dest="hub_url",
        help="URL gates reach the hub at, put in enrolment QRs (default http://HOST:PORT; "
        "with --host 0.0.0.0 this machine's outward address)",
    )
    serve.add_argument("--key-file", dest="key_file", help="hub keyring file (<db>.hubkey)")
    serve.add_argument(
        "--access-log",
        dest="access_log",
        action="store_true",
        default=None,
        help="log one line per request (off by default; /metrics counts requests)",
    )

    tenant = sub.add_parser("tenant", help="create and list tenants").add_subparsers(
        dest="action", required=True
    )
    tenant_create = tenant.add_parser("create", help="create a tenant, print its id")
    tenant_create.add_argument("name", help="the tenant's name, unique on this hub")
    _db(tenant_create)
    tenant_list = tenant.add_parser("list", help="list the tenants")
    tenant_list.add_argument("--json", action="store_true", help=JSON_HELP)
    _db(tenant_list)

    venue = sub.add_parser("venue", help="create and list venues").add_subparsers(
        dest="action", required=True
    )
    venue_create = venue.add_parser("create", help="create a venue, print its id")
    venue_create.add_argument("name", help="the venue's name, unique within the tenant")
    venue_create.add_argument("--tenant", required=True, help=TENANT_HELP)
    venue_create.add_argument(
        "--timezone", required=True, help="IANA time zone name, e.g. Europe/Paris or UTC"
    )
    _db(venue_create)
    venue_list = venue.add_parser("list", help="list a tenant's venues")
    venue_list.add_argument("--tenant", required=True, help=TENANT_HELP)
    venue_list.add_argument("--json", action="store_true", help=JSON_HELP)
    _db(venue_list)

    for noun, text in (("gate", "gates"), ("zone", "zones")):
        listing = _noun(sub, noun, f"create and list a venue's {text}")
        _list_command(listing, f"list a venue's {text}", VENUE_HELP, venue_required=True)
        _create_command(listing, noun)
    _list_command(
        _noun(sub, "event", "list a tenant's events"),
        "list a tenant's events, by start",
        VENUE_HELP + ALL_VENUES,
    )
    device_list = _list_command(
        _noun(sub, "device", "list enrolled devices"),
        "list enrolled devices",
        VENUE_HELP + ALL_VENUES,
    )
    device_list.add_argument("--gate", help="only the devices at this gate (id or name)")
    tickets = _noun(sub, "ticket", "find tickets; print a ticket's code")
    ticket_list = _list_command(
        tickets,
        "find tickets by id, order reference, holder name or status, a page at a time",
        VENUE_HELP + ALL_VENUES,
    )
    ticket_list.add_argument(
        "--search",
        metavar="TEXT",
        help="a ticket id or order reference (whole, any case) or part of a holder's name",
    )
    ticket_list.add_argument("--status", help="only tickets of this status (any case: active)")
    ticket_list.add_argument("--event", help="only this event's tickets (id, name or code)")
    ticket_list.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_PAGE,
        help=f"tickets per page, 1 to {MAX_PAGE} (default {DEFAULT_PAGE})",
    )
    ticket_list.add_argument("--cursor", help="the next page, as the previous page said")
    ticket_code = tickets.add_parser(
        "code", help="print a ticket's code (the text its QR holds), optionally as a QR image"
    )
    ticket_code.add_argument(
        "ticket_id", help="the ticket's id, or its id as imported (`ticket list` finds it)"
    )
    ticket_code.add_argument("--tenant", required=True, help=TENANT_HELP)
    ticket_code.add_argument("--png", type=Path, help="also write the QR code to this PNG file")
    ticket_code.add_argument("--svg", type=Path, help="also write the QR code to this SVG file")
    ticket_code.add_argument("--key-file", dest="key_file", help=KEY_FILE_HELP)
    _db(ticket_code)

    enrollments = _noun(sub, "enrollment", "one-time codes that enrol a gate")
    enrol = enrollments.add_parser(
        "create",
        help="make a one-time enrolment code: print the text the gate's camera reads (its QR), "
        "then the code and its expiry",
    )
    enrol.add_argument("--tenant", required=True, help=TENANT_HELP)
    enrol.add_argument("--venue", required=True, help=VENUE_HELP)
    enrol.add_argument("--name", required=True, help="the device's name, e.g. North Gate 1")
    enrol.add_argument("--gate", help="the gate it scans at (id or name); default: none yet")
    enrol.add_argument(
        "--zone", help="the zone it checks, when it has no gate (a zone name of the venue)"
    )
    enrol.add_argument(
        "--ttl-s",
        dest="ttl_s",
        type=int,
        help=f"seconds the code stays valid, 30 to {MAX_ENROLLMENT_TTL_S} (default: the "
        "hub's enrollment_ttl_s, 600)",
    )
    enrol.add_argument(
        "--hub-url",
        dest="hub_url",
        help="URL gates reach the hub at, as given to `serve --hub-url` (default: what "
        "`serve` derives from GATE_HUB_* settings, http://127.0.0.1:8080)",
    )
    enrol.add_argument("--qr", type=Path, help="also write the enrolment QR to this PNG file")
    enrol.add_argument("--json", action="store_true", help="print JSON instead of text")
    enrol.add_argument("--key-file", dest="key_file", help=KEY_FILE_HELP)
    _db(enrol)

    token = sub.add_parser("token", help="manage admin tokens").add_subparsers(
        dest="action", required=True
    )
    token_create = token.add_parser("create", help="mint an admin token (printed once)")
    token_create.add_argument("--tenant", required=True, help=TENANT_HELP)
    token_create.add_argument("--role", required=True, choices=ROLES, help="what it may do")
    token_create.add_argument("--venue", help=VENUE_HELP + "; required for every role but admin")
    token_create.add_argument("--label", default="", help="a note: who or what holds it")
    _db(token_create)

    imp = sub.add_parser("import", help="import events, ticket types, tickets (CSV/JSONL)")
    imp.add_argument("files", nargs="+", type=Path, help="CSV or JSON Lines files, any order")
    imp.add_argument("--tenant", required=True, help=TENANT_HELP)
    imp.add_argument("--dry-run", action="store_true", help="check and count, change nothing")
    _db(imp)

    demo = sub.add_parser("demo-data", help="create a demo venue, event and tickets")
    demo.add_argument("--tickets", type=int, default=1000, help="how many (default 1000)")
    _db(demo)

    expire = sub.add_parser("expire", help="expire tickets 24 h after their event ended")
    _db(expire)

    backend_cli.add_parsers(sub, _db)
    venue_keys_cli.add_parsers(sub, _db)
    user_cli.add_parsers(sub, _db)
    key = sub.add_parser(
        "key", help="the hub's signing keys: list, rotate, activate, retire, new-identity"
    ).add_subparsers(dest="action", required=True)
    for action, text in (
        ("list", "list the keys with their states (never the private seeds)"),
        ("rotate", "make a new key `next`: gates learn it while the current key still signs"),
        ("activate", "make the next key current; the current one is retired (still trusted)"),
        ("retire", "remove a retired key: gates stop trusting it after their next sync"),
        ("new-identity", "replace a lost or altered key file with a new key (re-enrol gates)"),
    ):
        command = key.add_parser(action, help=text)
        _db(command)
        command.add_argument("--key-file", dest="key_file", help="default: <db>.hubkey")
        if action == "retire":
            command.add_argument(
                "--key-id", dest="key_id", type=int, required=True, help="the key to remove"
            )
        if action == "new-identity":
            command.add_argument(
                "--confirm", action="store_true", help="yes: every gate is enrolled again"
            )
    return parser


def _noun(sub: Any, noun: str, text: str) -> Any:
    """`gate-hub NOUN ACTION`: the noun's actions, added by the caller."""
    return sub.add_parser(noun, help=text).add_subparsers(dest="action", required=True)


def _list_command(
    listing: Any, text: str, venue_help: str, *, venue_required: bool = False
) -> argparse.ArgumentParser:
    """`gate-hub NOUN list --tenant T [--venue V] [--json]`, for more options to be added."""
    command: argparse.ArgumentParser = listing.add_parser("list", help=text)
    command.add_argument("--tenant", required=True, help=TENANT_HELP)
    command.add_argument("--venue", required=venue_required, help=venue_help)
    command.add_argument("--json", action="store_true", help=JSON_HELP)
    _db(command)
    return command


def _create_command(listing: Any, noun: str) -> None:
    """`gate-hub zone|gate create NAME --tenant T --venue V` (a gate with its zones)."""
    command = listing.add_parser("create", help=f"create a {noun} at a venue, print its id")
    command.add_argument("name", help=f"the {noun}'s name, unique within the venue")
    command.add_argument("--tenant", required=True, help=TENANT_HELP)
    command.add_argument("--venue", required=True, help=VENUE_HELP)
    if noun == "gate":
        command.add_argument(
            "--zones",
            default="",
            help="the zones it leads into, comma-separated (made with `zone create`); "
            "default: none, the gate admits any zone",
        )
        command.add_argument(
            "--direction",
            choices=[str(d) for d in Direction],
            default=str(Direction.ENTRY),
            help="entry or exit (default entry)",
        )
    _db(command)


# The nouns whose commands live in a module of their own (hub/cli_commands.py).
NOUN_COMMANDS = {"backend": backend_cli, "venue-keys": venue_keys_cli, "user": user_cli}


class Refused(Exception):
    """A command that cannot do what was asked; the message says why and what to do."""


# The commands that may make a new database; every other one needs an existing one.
CREATES_DB = frozenset({("serve", None), ("tenant", "create"), ("demo-data", None)})
SQLITE_HEADER = b"SQLite format 3\x00"


def _check_db_path(db: str, *, create: bool) -> None:
    """Refuse, before anything is created, a database path that cannot be the hub's."""
    path = Path(db)
    if not path.parent.is_dir():
        raise Refused(
            f"there is no directory {path.parent} for the hub database {db}: create it "
            f"(mkdir -p {path.parent}) or give another --db"
        )
    if path.is_dir():
        raise Refused(f"{db} is a directory: give --db the database file, e.g. {path / 'hub.db'}")
    if not path.exists():
        if not create:
            raise Refused(
                f"there is no hub database {db}: give --db the file the hub runs on (a new "
                f"one is made by `gate-hub tenant create NAME --db {db}` or `gate-hub serve`)"
            )
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise Refused(f"cannot read the hub database {db}: {exc.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise Refused(f"{db} is not a hub database (not an SQLite file): check --db")


def _open(db: str, *, create: bool = False) -> HubStore:
    _check_db_path(db, create=create)
    try:
        return HubStore(db)
    except sqlite3.DatabaseError as exc:
        raise Refused(
            f"{db} cannot be opened as a hub database ({exc}): check --db, or restore the "
            "file from a backup"
        ) from None
    except OSError as exc:
        raise Refused(f"cannot open the hub database {db}: {exc.strerror}") from None


def _fail(message: str) -> int:
    print(f"gate-hub: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    names = ("db", "host", "port", "hub_url", "key_file", "access_log")
    flags = {k: getattr(args, k) for k in names}
    config = load_config(args.config, os.environ, flags)
    with contextlib.ExitStack() as held:  # the lock and the socket, until the hub stops
        # Each refusal before anything is made: the path, one hub per database (its lock
        # file made only once the port is ours), the port, an address gates can reach.
        _check_db_path(config.db, create=True)
        refuse_if_served(config.db)
        sock = held.enter_context(listen(config.host, config.port))
        held.enter_context(hold_serve_lock(config.db))
        hub_url = hub_url_for(config)
        store = _open(config.db, create=True)
        try:  # the key file must be the one this database recorded (hub/keyring.py)
            path = config.resolved_key_file
            ring = open_keyring(store, path, wall_clock_ms(), create=True)
            keys = KeyringWatch(path, ring=ring, verify=recorded_by(config.db, path))
        except ConfigError:
            store.close()
            raise
        configure_logging(config.log_level)
        app = create_app(
            store,
            None,
            hub_keys=keys,
            hub_url=hub_url,
            client_max_size=config.client_max_size,
            enrollment_ttl_s=config.enrollment_ttl_s,
            backend_pull_interval_s=config.backend_pull_interval_s,
        )

        async def close_store(_: web.Application) -> None:
            store.close()
            log.info("hub stopped")

        app.on_cleanup.append(close_store)
        where = {"host": config.host, "port": config.port, "db": config.db, "hub_url": hub_url}
        log.info("hub starting", extra=where)
        serve(app, config.host, config.port, access_log=config.access_log, sock=sock)
    return 0


def _key(args: argparse.Namespace) -> int:
    """Change the keyring file, then move every manifest revision so gates pull a manifest
    listing the new keys (a running hub reads the file again on its next request)."""
    flags = {"db": args.db, "key_file": args.key_file}
    path = load_config(None, os.environ, flags).resolved_key_file
    store = _open(args.db)
    try:
        now = wall_clock_ms()
        if args.action == "new-identity":
            return _new_identity(store, path, args.confirm, now)
        ring = open_keyring(store, path, now)  # the recorded keys, or a sentence
        if args.action == "list":
            # Active gates that have not taken the current key set yet: wait for them (or
            # re-enrol them) before `activate`, or they cannot verify the new key.
            behind = store.devices_behind_keys(ring.version)
            print(json.dumps({**_describe(ring), "devices_behind": behind}, indent=2))
            return 0
        if args.action == "rotate":
            changed = ring.rotate(now)
        elif args.action == "activate":
            changed = ring.activate()
        else:
            changed = ring.retire(args.key_id)
        write_keyring(store, path, changed, now)
        store.bump_all_revisions()
    finally:
        store.close()
    print(json.dumps(_describe(changed), indent=2))
    return 0


def _new_identity(store: HubStore, path: str, confirmed: bool, now_ms: int) -> int:
    """The one deliberate way to a new hub key when the old file is lost or altered: asked
    for by name, with --confirm, audited, and saying what it costs."""
    devices = store.db["devices"].count_where("active = 1")
    cost = (
        f"every enrolled gate must be enrolled again ({devices} active now), as gates trust "
        "only the key they pinned; codes issued under the old key stop verifying at gates"
    )
    if not confirmed:
        return _fail(
            f"`key new-identity` replaces the hub's signing key with a new one: {cost}. If "
            f"{path} can be restored from a backup, do that instead; otherwise run it again "
            "with --confirm"
        )
    ring, kept = new_identity(store, path, now_ms)
    store.bump_all_revisions()
    key = ring.current
    print(json.dumps(_describe(ring), indent=2))
    where = f"; the file it replaced is kept as {kept}" if kept is not None else ""
    print(
        f"gate-hub: new hub identity: key {key.key_id}, fingerprint "
        f"{key.describe()['fingerprint']}{where}. {cost[0].upper()}{cost[1:]}.",
        file=sys.stderr,
    )
    return 0


def _describe(ring: Keyring) -> dict[str, object]:
    return {"version": ring.version, "keys": [k.describe() for k in ring.keys]}


def _tenant(store: HubStore, text: str) -> Row:
    """A tenant by id or name: an exact match first, then a name that differs only in case
    (several such are refused with their ids)."""
    tenant = store.find_tenant(text)
    if tenant is None:
        alike = [t for t in _tenants(store) if t["name"].casefold() == text.casefold()]
        if len(alike) > 1:
            ids = ", ".join(f"{t['name']} ({t['id']})" for t in alike)
            raise Refused(f"tenant {text} could be any of {ids}: give the tenant's id")
        tenant = store.find_tenant(alike[0]["id"]) if alike else None
    if tenant is None:
        names = ", ".join(t["name"] for t in _tenants(store)) or "none yet"
        raise Refused(
            f"no tenant {text} on this hub (its tenants: {names}); `gate-hub tenant list` "
            "shows them with their ids"
        )
    return tenant


def _tenants(store: HubStore) -> list[Row]:
    return list(store.db.query("SELECT id, name FROM tenants ORDER BY name"))


def _named(kind: str, rows: list[Row], text: str, owner: str, listing: str) -> Row:
    """A venue, event or gate by id or name (an event also by its code): an exact match
    first, then a name that differs only in case; a name that fits several is refused with
    their ids, an unknown one with the names there are and the command that lists them."""
    found = [r for r in rows if text in (r["id"], r["name"], str(r.get("code", r["id"])))]
    if not found:
        found = [r for r in rows if r["name"].casefold() == text.casefold()]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(f"{r['name']} ({r['id']})" for r in found)
        raise Refused(f"{kind} {text} could be any of {ids}: give the {kind}'s id")
    names = ", ".join(dict.fromkeys(r["name"] for r in rows)) or "none yet"
    raise Refused(
        f"{owner} has no {kind} {text} (its {kind}s: {names}); `gate-hub {kind} list "
        f"{listing}` shows them with their ids"
    )


def _venue(store: HubStore, tenant: Row, text: str) -> Row:
    """A venue of the tenant by id or name."""
    venues = store.list_venues(tenant["id"])
    return _named("venue", venues, text, f"tenant {tenant['name']}", _within(tenant))


def _within(tenant: Row, venue: Row | None = None) -> str:
    """The --tenant (and --venue) options naming where a listing looks."""
    where = f"--tenant {shlex.quote(tenant['name'])}"
    return where if venue is None else f"{where} --venue {shlex.quote(venue['name'])}"


def _owner(tenant: Row, venue: Row | None) -> str:
    return f"tenant {tenant['name']}" if venue is None else f"venue {venue['name']}"


def _event(store: HubStore, tenant: Row, venue: Row | None, text: str) -> Row:
    """An event of the tenant (of the venue, when given) by id, name or code."""
    events = store.list_events(tenant["id"], None, None if venue is None else venue["id"])
    return _named("event", events, text, _owner(tenant, venue), _within(tenant, venue))


def _gates(store: HubStore, tenant: Row, venue: Row | None) -> list[Row]:
    venues = store.list_venues(tenant["id"]) if venue is None else [venue]
    return [g for v in venues for g in store.list_gates(v["id"])]


def _gate(store: HubStore, tenant: Row, venue: Row | None, text: str) -> Row:
    """A gate of the venue (of any venue of the tenant, when none is given) by id or name."""
    gates = _gates(store, tenant, venue)
    where = _within(tenant, venue) if venue is not None else f"{_within(tenant)} --venue V"
    return _named("gate", gates, text, _owner(tenant, venue), where)


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError):
        pass
    near = sorted(z for z in available_timezones() if z.lower().endswith("/" + name.lower()))
    hint = f" (did you mean {' or '.join(near)}?)" if near else ""
    raise Refused(
        f"--timezone {name} is not a time zone name{hint}: give an IANA name such as "
        "Europe/Paris, America/New_York or UTC"
    )


def _create_venue(store: HubStore, tenant: Row, args: argparse.Namespace, now: int) -> int:
    timezone = _timezone(args.timezone)
    return _create_named(
        "venue",
        args.name,
        store.list_venues(tenant["id"]),
        f"tenant {tenant['name']}",
        lambda name: store.create_venue(tenant["id"], name, timezone, "cli", now),
    )


def _create_named(
    kind: str, text: str, rows: list[Row], owner: str, make: Callable[[str], Row]
) -> int:
    """Make a venue, zone or gate named `text` (its owner's names are unique), print its id."""
    name = text.strip()
    if not name:
        raise Refused(f"a {kind} needs a name")
    clash = next((r for r in rows if r["name"] == name), None)
    if clash is None:
        try:
            print(make(name)["id"])
            return 0
        except sqlite3.IntegrityError:  # made by someone else since the look above
            pass
    known = "" if clash is None else f" (id {clash['id']})"
    raise Refused(
        f"{owner} already has a {kind} named {name}{known}: use it, or choose another name"
    )


def _create_place(store: HubStore, tenant: Row, args: argparse.Namespace, now: int) -> int:
    """`zone create` or `gate create`: a gate's zones must be the venue's already."""
    venue = _venue(store, tenant, args.venue)
    owner, zones = f"venue {venue['name']}", store.list_zones(venue["id"])
    if args.command == "zone":

        def make(name: str) -> Row:
            return store.create_zone(tenant["id"], venue["id"], name, "cli", now)

        return _create_named("zone", args.name, zones, owner, make)
    wanted = [z.strip() for z in args.zones.split(",") if z.strip()]
    unknown = [z for z in wanted if z not in {zone["name"] for zone in zones}]
    if unknown:
        names = ", ".join(z["name"] for z in zones) or "none yet"
        raise Refused(
            f"{owner} has no zone {', '.join(unknown)} (its zones: {names}): make it first with "
            f"`gate-hub zone create NAME {_within(tenant, venue)}`"
        )
    gates = store.list_gates(venue["id"])

    def make_gate(name: str) -> Row:
        gate = NewGate(venue["id"], name, args.direction, wanted)
        return store.create_gate(tenant["id"], gate, "cli", now)

    return _create_named("gate", args.name, gates, owner, make_gate)


def _signing(store: HubStore, args: argparse.Namespace, now: int) -> tuple[HubConfig, HubKeys]:
    """The settings `serve` would run with and the keys it signs with (its keyring file)."""
    flags = {"db": args.db, "key_file": args.key_file, "hub_url": getattr(args, "hub_url", None)}
    config = load_config(None, os.environ, flags)
    return config, open_keyring(store, config.resolved_key_file, now).hub_keys()


def _image_paths(*given: tuple[Path | None, str]) -> None:
    """Refuse, before anything is made, an image file that could not be written."""
    for path, option in given:
        if path is None:
            continue
        if str(path) == "-":
            raise Refused(
                f"{option} writes an image file: give a file name, e.g. {option} code.png"
            )
        if not path.parent.is_dir():
            raise Refused(f"there is no directory {path.parent} for {option} {path}: create it")


def _write_image(path: Path, data: bytes, option: str) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise Refused(f"cannot write {path} ({option}): {exc.strerror}") from None


def _zone_name(store: HubStore, tenant: Row, venue: Row, text: str) -> str:
    """A zone of the venue by name (any case), as the gate is told it."""
    zones = store.list_zones(venue["id"])
    where = f"venue {venue['name']}"
    return str(_named("zone", zones, text, where, _within(tenant, venue))["name"])


def _create_enrollment(store: HubStore, tenant: Row, args: argparse.Namespace, now: int) -> int:
    """A one-time code for one device, as `POST /api/admin/venues/{id}/enrollments` makes it:
    the text the gate reads on stdout, the code and its expiry (the venue's time) on stderr."""
    _image_paths((args.qr, "--qr"))
    venue = _venue(store, tenant, args.venue)
    gate = None if args.gate is None else _gate(store, tenant, venue, args.gate)
    zone = None if args.zone is None else _zone_name(store, tenant, venue, args.zone)
    name = args.name.strip()
    if not name:
        raise Refused("--name: the device needs a name, e.g. --name 'North Gate 1'")
    config, keys = _signing(store, args, now)
    ttl_s = config.enrollment_ttl_s if args.ttl_s is None else args.ttl_s
    if not 30 <= ttl_s <= MAX_ENROLLMENT_TTL_S:
        raise Refused(f"--ttl-s must be from 30 to {MAX_ENROLLMENT_TTL_S} seconds (a day)")
    hub_url = hub_url_for(config)
    gate_id = None if gate is None else gate["id"]
    grant = NewEnrollment(venue["id"], name, ttl_s * 1000, gate_id, zone)
    row, code = store.create_enrollment(tenant["id"], grant, "cli", now)
    fingerprint = key_fingerprint(keys.public)
    uri = enrollment_uri(hub_url, code, fingerprint)
    if args.qr is not None:
        _write_image(args.qr, qr_image(uri, "png"), "--qr")
    expires = _local(row["expires_ms"], venue["timezone"])
    if args.json:
        out = {
            "id": row["id"],
            "code": code,
            "uri": uri,
            "expires_ms": row["expires_ms"],
            "expires_at": expires,
            "timezone": venue["timezone"],
            "hub_url": hub_url,
            "hub_key_fingerprint": fingerprint,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(uri)
    at = "" if gate is None else f" at gate {gate['name']}"
    at += "" if zone is None else f" in zone {zone}"
    shown = "" if args.qr is None else f" or show its camera the QR in {args.qr}"
    print(
        f"gate-hub: enrolment code {code} for device {name}{at}, venue {venue['name']}; "
        f"valid once, until {expires} ({venue['timezone']}). On the gate: `gate-scanner enroll "
        f"'URI'` with the line above{shown}; it will reach the hub at {hub_url}",
        file=sys.stderr,
    )
    return 0


def _ticket_code(store: HubStore, tenant: Row, args: argparse.Namespace, now: int) -> int:
    """The ticket's native code, issued as the credential route issues it."""
    _image_paths((args.png, "--png"), (args.svg, "--svg"))
    _, keys = _signing(store, args, now)
    builder = ManifestBuilder(store, keys)
    given = args.ticket_id.strip()

    def issue(ticket_id: str) -> tuple[Row, str] | None:
        return ticket_credential(store, builder, ticket_id, tenant["id"], None, now)

    try:  # the hub's id, or the id as imported when that was not a UUID (external_id)
        found = issue(given) or issue(hub_ticket_id(tenant["id"], given))
    except NoNativeCredential:
        raise Refused(
            f"ticket {args.ticket_id} cannot carry a native code (its id is not a UUID): give "
            "it a UUID id and import it again"
        ) from None
    if found is None:
        raise Refused(
            f"tenant {tenant['name']} has no ticket {args.ticket_id}: `gate-hub ticket list "
            f"{_within(tenant)} --search TEXT` finds tickets by id, order reference or holder"
        )
    text = found[1]
    for path, kind in ((args.png, "png"), (args.svg, "svg")):
        if path is not None:
            _write_image(path, qr_image(text, kind), f"--{kind}")
    print(text)
    return 0


def _print_rows(rows: list[Row], columns: Sequence[str], as_json: bool) -> int:
    """Rows as JSON, or a table with a header line (an empty list says so; no value is -)."""
    picked = [{c: _cell(c, r[c]) for c in columns} for r in rows]
    if as_json:
        print(json.dumps(picked, indent=2))
        return 0
    if not picked:
        print("(none)")
        return 0
    shown = [{c: "-" if r[c] is None else str(r[c]) for c in columns} for r in picked]
    widths = [max(len(c), *(len(r[c]) for r in shown)) for c in columns]
    for line in [dict(zip(columns, columns, strict=True)), *shown]:
        cells = (line[c].ljust(w) for c, w in zip(columns, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _cell(column: str, value: Any) -> Any:
    """A JSON column (zones of a gate) as its list, written as A,B in a table; any other
    value as it is (a holder name may start with "[")."""
    if column.endswith("_json") and isinstance(value, str):
        return ",".join(json.loads(value))
    return value


def _local(ms: int | None, timezone: str | None = None) -> str | None:
    """Epoch milliseconds as a time of day: in `timezone` (an event's own), else this
    machine's local time."""
    if ms is None:
        return None
    zone = ZoneInfo(timezone) if timezone else None
    return datetime.fromtimestamp(ms / 1000, zone).astimezone(zone).isoformat(timespec="seconds")


def _list(store: HubStore, args: argparse.Namespace) -> int:
    if args.command == "tenant":
        return _print_rows(_tenants(store), ("id", "name"), args.json)
    tenant = _tenant(store, args.tenant)
    if args.command == "venue":
        venues = store.list_venues(tenant["id"])
        return _print_rows(venues, ("id", "name", "timezone"), args.json)
    venue = None if args.venue is None else _venue(store, tenant, args.venue)
    if args.command in ("gate", "zone"):
        assert venue is not None  # --venue is required there
        if args.command == "zone":
            return _print_rows(store.list_zones(venue["id"]), ("id", "name"), args.json)
        gates = store.list_gates(venue["id"])
        return _print_rows(gates, ("id", "name", "direction", "zones_json"), args.json)
    venue_id = None if venue is None else venue["id"]
    events = store.list_events(tenant["id"], None, venue_id)
    if args.command == "event":
        for e in events:
            e["start"] = _local(e["start_ms"], e["timezone"])
        return _print_rows(events, ("id", "code", "name", "start", "timezone"), args.json)
    if args.command == "device":
        return _list_devices(store, tenant, venue, args)
    return _list_tickets(store, tenant, venue, events, args)


def _list_devices(store: HubStore, tenant: Row, venue: Row | None, args: argparse.Namespace) -> int:
    devices = store.list_devices(tenant["id"], None if venue is None else venue["id"])
    if args.gate is not None:
        gate_id = _gate(store, tenant, venue, args.gate)["id"]
        devices = [d for d in devices if d["gate_id"] == gate_id]
    gate_names = {g["id"]: g["name"] for g in _gates(store, tenant, venue)}
    for d in devices:
        d["gate"] = gate_names.get(d["gate_id"], d["gate_id"])
        d["active"] = bool(d["active"])
        d["last_seen"] = _local(d["last_seen_ms"])
    columns = ("id", "name", "gate", "zone", "active", "last_seen", "app_version")
    return _print_rows(devices, columns, args.json)


def _list_tickets(
    store: HubStore, tenant: Row, venue: Row | None, events: list[Row], args: argparse.Namespace
) -> int:
    """A page of tickets; when more match, the way to the next page is said on stderr."""
    if not 1 <= args.limit <= MAX_PAGE:
        raise Refused(f"--limit must be from 1 to {MAX_PAGE}")
    try:
        status = None if args.status is None else ticket_status(args.status)
    except ValueError as exc:
        raise Refused(f"--status: {exc}") from None
    event = None if args.event is None else _event(store, tenant, venue, args.event)
    try:
        query = TicketQuery(
            text=args.search,
            status=status,
            event_id=None if event is None else event["id"],
            venue_id=None if venue is None else venue["id"],
            cursor=args.cursor,
            limit=args.limit,
        )
        page = store.search_tickets(tenant["id"], None, query)
    except BadCursor:
        raise Refused(
            f"--cursor {args.cursor} is not one a ticket listing printed: leave it out for "
            "the first page"
        ) from None
    names = {e["id"]: e["name"] for e in events}
    for t in page.tickets:
        t["event"] = names.get(t["event_id"], t["event_id"])
    columns = ("id", "external_id", "event", "status", "holder_name", "order_ref", "zone", "seat")
    _print_rows(page.tickets, columns, args.json)
    if page.next_cursor is not None:
        print(
            f"gate-hub: more tickets match; the next {args.limit}: the same command with "
            f"--cursor {page.next_cursor}",
            file=sys.stderr,
        )
    return 0


def _admin(args: argparse.Namespace) -> int:
    create = (args.command, getattr(args, "action", None)) in CREATES_DB
    store = _open(args.db, create=create)
    try:
        now = wall_clock_ms()
        if args.command in NOUN_COMMANDS:
            tenant = _tenant(store, args.tenant)
            context = CommandContext(
                store, tenant, lambda text: _venue(store, tenant, text), _local, _print_rows, now
            )
            try:
                return NOUN_COMMANDS[args.command].run(args, context)
            except (BackendRefused, VenueKeysRefused, UserRefused) as exc:
                return _fail(str(exc))
        if getattr(args, "action", None) == "list":
            return _list(store, args)
        if args.command == "tenant":
            found = store.find_tenant(args.name)
            if found is not None:
                raise Refused(
                    f"tenant {args.name} already exists (id {found['id']}): use it, or "
                    "choose another name"
                )
            print(store.create_tenant(args.name, now)["id"])
            return 0
        if args.command == "demo-data":
            if not 0 <= args.tickets <= 1_000_000:
                return _fail("--tickets must be from 0 to 1000000")
            line = on_terminal(sys.stderr)
            try:
                made = make_demo(store, args.tickets, now, progress=line)
            finally:
                if line is not None:
                    line.close()
            print(json.dumps(made, indent=2))
            return 0
        if args.command == "expire":
            print(f"expired {store.expire_tickets(now)} tickets")
            return 0
        tenant = _tenant(store, args.tenant)
        if args.command == "import":
            line = on_terminal(sys.stderr)
            try:
                done = import_files(
                    store,
                    tenant["id"],
                    args.files,
                    "cli",
                    now,
                    dry_run=args.dry_run,
                    progress=line,
                )
            except CatalogueError as exc:
                if line is not None:
                    line.close()
                print(exc, file=sys.stderr)
                many = f"{len(exc.problems)} problems" if len(exc.problems) > 1 else "1 problem"
                return _fail(f"{many} in the files: nothing imported; fix and import them again")
            if line is not None:
                line.close()
            for note in done.notes:
                print(f"gate-hub: note: {note}", file=sys.stderr)
            print(f"{'would import' if args.dry_run else 'imported'} {done.summary()}")
            return 0
        if args.command == "venue":
            return _create_venue(store, tenant, args, now)
        if args.command in ("zone", "gate"):
            return _create_place(store, tenant, args, now)
        if args.command == "enrollment":
            return _create_enrollment(store, tenant, args, now)
        if args.command == "ticket":
            return _ticket_code(store, tenant, args, now)
        if args.venue is None and args.role != ADMIN:
            return _fail(f"role {args.role} needs --venue")
        venue_id = None if args.venue is None else _venue(store, tenant, args.venue)["id"]
        _, token = store.create_token(tenant["id"], venue_id, args.role, args.label, now)
        print(token)
        return 0
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        args.db = args.db or os.environ.get("GATE_HUB_DB")
        if not args.db:
            return _fail("give the hub database with --db FILE (or set GATE_HUB_DB)")
        if args.command == "key":
            return _key(args)
        return _admin(args)
    except (Refused, ConfigError) as exc:  # ServeRefused and KeyringError are ConfigErrors
        return _fail(str(exc))
    except SchemaTooNew as exc:  # never downgrade: the sentence says what to do instead
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
