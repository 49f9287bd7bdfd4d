"""`gate-hub user create|list|disable`: the people who sign in to the venue console.

The first admin of a tenant can only come from here (the console has no sign-up). A password
is read from standard input, never from an option, so it stays out of the shell's history and
the process list: typed twice at a terminal, or one line from a pipe.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from hub.auth import ADMIN, ROLES
from hub.cli_commands import CommandContext
from hub.staff_accounts import BadAccount, check_role, check_username, hash_password
from hub.store_api import NewStaffUser

ACTIONS = ("create", "list", "disable")
LIST_COLUMNS = ("username", "role", "venue", "created", "disabled")


class UserRefused(Exception):
    """A user command that cannot do what was asked; the message says what to do."""


def add_parsers(sub: Any, db_option: Callable[[argparse.ArgumentParser], None]) -> None:
    user = sub.add_parser("user", help="people who sign in to the venue console").add_subparsers(
        dest="action", required=True
    )
    create = user.add_parser(
        "create", help="add a person; the password is read from standard input"
    )
    create.add_argument("username", help="what they sign in with (lower case, e.g. ana.box)")
    create.add_argument("--tenant", required=True, help="tenant id or name")
    create.add_argument("--role", required=True, choices=ROLES, help="what they may do")
    create.add_argument(
        "--venue", help="only this venue (id or name); without it: every venue of the tenant"
    )
    listing = user.add_parser("list", help="the tenant's console users")
    listing.add_argument("--tenant", required=True, help="tenant id or name")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    disable = user.add_parser("disable", help="stop a person signing in; ends their sessions")
    disable.add_argument("username", help="the person to disable")
    disable.add_argument("--tenant", required=True, help="tenant id or name")
    for command in (create, listing, disable):
        db_option(command)


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Same password again: ") != first:
            raise UserRefused("the two passwords differ: run the command again")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace, ctx: CommandContext) -> int:
    store, tenant = ctx.store, ctx.tenant
    if args.action == "list":
        rows = []
        for user in store.staff_users(tenant["id"]):
            venue = ctx.venue_of(user["venue_id"])["name"] if user["venue_id"] else "(all)"
            rows.append(
                {
                    **user,
                    "venue": venue,
                    "created": ctx.local(user["created_ms"]),
                    "disabled": ctx.local(user["disabled_ms"]) or "",
                }
            )
        return ctx.print_rows(rows, LIST_COLUMNS, args.json)
    if args.action == "create":
        try:
            username, role = check_username(args.username), check_role(args.role)
        except BadAccount as exc:
            raise UserRefused(str(exc)) from None
        venue_id = ctx.venue_of(args.venue)["id"] if args.venue else None
        if role == ADMIN and venue_id is not None:
            raise UserRefused("an admin works across the tenant: leave out --venue")
        if store.staff_user_named(username) is not None:
            raise UserRefused(f"username {username} is taken: choose another")
        try:
            password_hash = hash_password(_password())
        except BadAccount as exc:
            raise UserRefused(str(exc)) from None
        user = store.create_staff_user(
            tenant["id"], NewStaffUser(venue_id, username, role, password_hash), "cli", ctx.now_ms
        )
        print(user["id"])
        return 0
    found = store.staff_user_named(args.username)
    if found is None or found["tenant_id"] != tenant["id"]:
        raise UserRefused(
            f"tenant {tenant['name']} has no user {args.username}: `gate-hub user list` names them"
        )
    if store.disable_staff_user(found["id"], "cli", ctx.now_ms) is None:
        raise UserRefused(f"user {args.username} is already disabled")
    print(f"disabled {args.username}; their console sessions are ended")
    return 0
