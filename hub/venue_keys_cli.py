"""`gate-hub venue-keys set|list|rotate|activate|retire`: a venue's TicketToken keys, which its
gates need to scan TicketToken's codes (formats A, B and C) offline, rotated as `gate-hub key`
rotates the hub's own.

A key is read from a file, or from standard input when given as `-`, so it stays out of the
shell's history and the process list; it is sealed at once (hub/secret_box.py) and never
printed: listings show each key's fingerprint, its state and its times.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.cli_commands import CommandContext
from hub.secret_box import SecretBox
from hub.venue_keys import (
    CURRENT,
    DEFAULTS,
    FORMATS,
    NEXT,
    TIMES,
    NewKeys,
    VenueKeysRefused,
    key_set_view,
    option,
)

ACTOR = "cli"


def add_parsers(sub: Any, db_option: Callable[[argparse.ArgumentParser], None]) -> None:
    keys = sub.add_parser(
        "venue-keys",
        help="a venue's TicketToken keys (its QR formats A, B, C): set, list, rotate, activate,"
        " retire",
    ).add_subparsers(dest="action", required=True)
    for action, text in (
        ("set", "the venue's first keys, in use at once (TicketToken issues with them now)"),
        ("list", "the venue's key sets: state, fingerprints, times (never a key)"),
        ("rotate", "announce new keys as `next`: gates trust them from their next sync"),
        (
            "activate",
            "make the next keys current (TicketToken issues with them now); the"
            " current ones are retired, still trusted",
        ),
        (
            "retire",
            "remove a retired (or a never activated next) key set: gates stop trusting"
            " it after their next sync",
        ),
    ):
        command = keys.add_parser(action, help=text)
        command.add_argument("--tenant", required=True, help="tenant id or name")
        command.add_argument("--venue", required=True, help="venue id or name (within the tenant)")
        if action in ("set", "rotate"):
            for fmt, name in FORMATS.items():
                what = "HMAC secret, as hex" if fmt == "C" else "AES key (its text)"
                command.add_argument(
                    option(name),
                    metavar="FILE",
                    help=f"a file holding the format {fmt} {what}; - reads it from standard input",
                )
            intervals = ("format A codes' rotation", "format C codes' validity")
            for name, text in zip(TIMES, intervals, strict=True):
                command.add_argument(
                    option(name),
                    type=int,
                    metavar="MS",
                    help=f"{text} (default {getattr(DEFAULTS, name)})",
                )
        if action == "retire":
            command.add_argument(
                "--key-set", dest="key_set", type=int, required=True, help="the set to remove"
            )
        if action == "list":
            command.add_argument("--json", action="store_true", help="print JSON")
        db_option(command)


def _read(args: argparse.Namespace, name: str) -> str | None:
    """The text of a key option's file (or of standard input for -), without the line break
    that ends it; a hex secret without any surrounding space."""
    given = getattr(args, name)
    if given is None:
        return None
    where = "standard input" if given == "-" else f"file {given}"
    try:
        raw = sys.stdin.read() if given == "-" else Path(given).read_text(encoding="utf-8")
    except OSError as exc:
        raise VenueKeysRefused(f"cannot read {option(name)} {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise VenueKeysRefused(f"{option(name)} {where} is not UTF-8 text") from None
    text = raw.strip() if name == FORMATS["C"] else raw.removesuffix("\n").removesuffix("\r")
    if not text:
        raise VenueKeysRefused(f"{option(name)} {where} is empty")
    return text


def _keys(args: argparse.Namespace) -> NewKeys:
    """The new set's secrets and times, all checked before anything is changed."""
    if [getattr(args, name) for name in FORMATS.values()].count("-") > 1:
        raise VenueKeysRefused(
            "only one key can come from standard input (-): give the others as files"
        )
    return NewKeys.checked(
        (_read(args, name) for name in FORMATS.values()),
        (getattr(args, name) for name in TIMES),
        cli=True,
    )


def run(args: argparse.Namespace, ctx: CommandContext) -> int:
    store, tenant, venue_of, now_ms = ctx.store, ctx.tenant, ctx.venue_of, ctx.now_ms
    local, print_rows = ctx.local, ctx.print_rows
    venue = venue_of(args.venue)
    if args.action == "list":
        views = [key_set_view(r) for r in store.venue_key_sets(venue["id"])]
        if args.json:
            print(json.dumps(views, indent=2))
            return 0
        for view in views:
            view["fingerprints"] = " ".join(f"{f}:{p}" for f, p in view["fingerprints"].items())
            for at in ("created", "activated", "retired"):
                view[at] = local(view[f"{at}_ms"])
        columns = ("key_set", "state", "fingerprints", *TIMES, "created", "activated", "retired")
        return print_rows(views, columns, False)
    if args.action in ("set", "rotate"):
        box = SecretBox.for_database(store.path)
        keys = _keys(args).kept(box, venue["id"], CURRENT if args.action == "set" else NEXT)
        row = store.add_venue_key_set(tenant["id"], keys, ACTOR, now_ms)
        print(json.dumps(key_set_view(row), indent=2))
        return 0
    if args.action == "activate":
        rows = store.activate_venue_key_set(tenant["id"], venue["id"], ACTOR, now_ms)
        print(json.dumps([key_set_view(r) for r in rows], indent=2))
        return 0
    row = store.remove_venue_key_set(tenant["id"], venue["id"], args.key_set, ACTOR, now_ms)
    print(json.dumps(key_set_view(row), indent=2))
    return 0
