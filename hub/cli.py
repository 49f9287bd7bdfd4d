"""`gate-hub`: run the hub and administer it from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from hub.app import create_app, wall_clock_ms
from hub.auth import ADMIN, ROLES
from hub.config import ConfigError, load_config
from hub.demo import make_demo
from hub.importer import CatalogueError, import_files
from hub.keyring import (
    Keyring,
    KeyringWatch,
    new_identity,
    open_keyring,
    recorded_by,
    write_keyring,
)
from hub.logs import configure_logging
from hub.migrations import SchemaTooNew
from hub.server import serve
from hub.storage import HubStore

log = logging.getLogger("hub")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate-hub", description="Venue gate hub.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub HTTP server")
    serve.add_argument("--config", help="JSON config file (or GATE_HUB_CONFIG)")
    serve.add_argument("--db", help="SQLite database path (or GATE_HUB_DB)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--hub-url", dest="hub_url", help="URL devices use to reach the hub")
    serve.add_argument("--key-file", dest="key_file", help="hub keyring file (<db>.hubkey)")
    serve.add_argument(
        "--access-log",
        dest="access_log",
        action="store_true",
        default=None,
        help="log one line per request (off by default; /metrics counts requests)",
    )

    tenant = sub.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="action", required=True
    )
    tenant_create = tenant.add_parser("create", help="create a tenant, print its id")
    tenant_create.add_argument("name")
    tenant_create.add_argument("--db", required=True)

    venue = sub.add_parser("venue", help="manage venues").add_subparsers(
        dest="action", required=True
    )
    venue_create = venue.add_parser("create", help="create a venue, print its id")
    venue_create.add_argument("name")
    venue_create.add_argument("--tenant", required=True, help="tenant id or name")
    venue_create.add_argument("--timezone", required=True)
    venue_create.add_argument("--db", required=True)

    token = sub.add_parser("token", help="manage admin tokens").add_subparsers(
        dest="action", required=True
    )
    token_create = token.add_parser("create", help="mint an admin token (printed once)")
    token_create.add_argument("--tenant", required=True, help="tenant id or name")
    token_create.add_argument("--role", required=True, choices=ROLES)
    token_create.add_argument("--venue", help="venue id; required for every role but admin")
    token_create.add_argument("--label", default="")
    token_create.add_argument("--db", required=True)

    imp = sub.add_parser("import", help="import events, ticket types, tickets (CSV/JSONL)")
    imp.add_argument("files", nargs="+", type=Path)
    imp.add_argument("--tenant", required=True, help="tenant id or name")
    imp.add_argument("--db", required=True)

    demo = sub.add_parser("demo-data", help="create a demo venue, event and tickets")
    demo.add_argument("--tickets", type=int, default=1000)
    demo.add_argument("--db", required=True)

    expire = sub.add_parser("expire", help="expire tickets 24 h after their event ended")
    expire.add_argument("--db", required=True)

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
        command.add_argument("--db", required=True)
        command.add_argument("--key-file", dest="key_file", help="default: <db>.hubkey")
        if action == "retire":
            command.add_argument("--key-id", dest="key_id", type=int, required=True)
        if action == "new-identity":
            command.add_argument(
                "--confirm", action="store_true", help="yes: every gate is enrolled again"
            )
    return parser


def _fail(message: str) -> int:
    print(f"gate-hub: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    names = ("db", "host", "port", "hub_url", "key_file", "access_log")
    flags = {k: getattr(args, k) for k in names}
    try:
        config = load_config(args.config, os.environ, flags)
    except ConfigError as exc:
        return _fail(str(exc))
    store = HubStore(config.db)
    try:  # the key file must be the one this database recorded (hub/keyring.py)
        path = config.resolved_key_file
        ring = open_keyring(store, path, wall_clock_ms(), create=True)
        keys = KeyringWatch(path, ring=ring, verify=recorded_by(config.db, path))
    except ConfigError as exc:
        store.close()
        return _fail(str(exc))
    configure_logging(config.log_level)
    app = create_app(
        store,
        None,
        hub_keys=keys,
        hub_url=config.resolved_hub_url,
        client_max_size=config.client_max_size,
        enrollment_ttl_s=config.enrollment_ttl_s,
    )

    async def close_store(_: web.Application) -> None:
        store.close()
        log.info("hub stopped")

    app.on_cleanup.append(close_store)
    log.info("hub starting", extra={"host": config.host, "port": config.port, "db": config.db})
    serve(app, config.host, config.port, access_log=config.access_log)
    return 0


def _key(args: argparse.Namespace) -> int:
    """Change the keyring file, then move every manifest revision so gates pull a manifest
    listing the new keys (a running hub reads the file again on its next request)."""
    flags = {"db": args.db, "key_file": args.key_file}
    try:
        path = load_config(None, os.environ, flags).resolved_key_file
    except ConfigError as exc:
        return _fail(str(exc))
    store = HubStore(args.db)
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
    except ConfigError as exc:
        return _fail(str(exc))
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


def _admin(args: argparse.Namespace) -> int:
    store = HubStore(args.db)
    try:
        now = wall_clock_ms()
        if args.command == "tenant":
            if store.find_tenant(args.name) is not None:
                return _fail(f"tenant {args.name} already exists")
            print(store.create_tenant(args.name, now)["id"])
            return 0
        if args.command == "demo-data":
            if not 0 <= args.tickets <= 1_000_000:
                return _fail("--tickets must be from 0 to 1000000")
            print(json.dumps(make_demo(store, args.tickets, now), indent=2))
            return 0
        if args.command == "expire":
            print(f"expired {store.expire_tickets(now)} tickets")
            return 0
        tenant = store.find_tenant(args.tenant)
        if tenant is None:
            return _fail(f"no tenant {args.tenant}")
        if args.command == "import":
            try:
                done = import_files(store, tenant["id"], args.files, "cli", now)
            except CatalogueError as exc:
                return _fail(f"{exc} (nothing imported)")
            counts = (len(done.events), len(done.ticket_types), len(done.tickets))
            print("imported {} events, {} ticket types, {} tickets".format(*counts))
            return 0
        if args.command == "venue":
            row = store.create_venue(tenant["id"], args.name, args.timezone, "cli", now)
            print(row["id"])
            return 0
        if args.venue is None and args.role != ADMIN:
            return _fail(f"role {args.role} needs --venue")
        if args.venue is not None and store.get_venue(args.venue, tenant["id"]) is None:
            return _fail(f"no venue {args.venue} for tenant {args.tenant}")
        _, token = store.create_token(tenant["id"], args.venue, args.role, args.label, now)
        print(token)
        return 0
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "key":
            return _key(args)
        return _admin(args)
    except SchemaTooNew as exc:  # never downgrade: the sentence says what to do instead
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
