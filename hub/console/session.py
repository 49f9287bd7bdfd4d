"""Who is using the console: a staff session from its cookie, the CSRF check every state
change passes, the venue a page is about, and one-time flash messages.

A page handler starts with `principal, page = await console_user(request, "ticket.read")`:
the principal is the same `hub.auth.Principal` the admin API builds from a token (kind
"user"), so pages call the same store methods with the same tenant and venue scoping, and the
same `PERMISSIONS` decide. The cookie holds a random value the hub stores only hashed;
`Secure`, `HttpOnly`, `SameSite=Strict`.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from hub.auth import PERMISSIONS, ROLES, Principal
from hub.keys import CLOCK, DB
from hub.store_base import Row, secret_hash

SESSION_COOKIE = "gate_console"
VENUE_COOKIE = "gate_console_venue"  # the venue a tenant-wide user last chose; checked each time
SESSION_TTL_MS = 12 * 3_600_000  # a long shift; then sign in again
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD, CSRF_HEADER = "csrf", "X-CSRF-Token"
SIGN_IN_PATH = "/sign-in"

ROLE_LABELS = {
    "admin": "Admin",
    "venue_manager": "Venue manager",
    "box_office": "Box office",
    "venue_staff": "Venue staff",
}
assert set(ROLE_LABELS) == set(ROLES)

# Not the console's: the machine APIs answer JSON errors of their own.
_NOT_CONSOLE = ("/api/", "/health", "/metrics", "/openapi.json")
# the request's session row, looked up once
_SESSION_KEY: web.RequestKey[Row | None] = web.RequestKey("console_session")
_FLASHES: web.AppKey[dict[str, str]] = web.AppKey("console_flashes", dict)


class ConsoleRefused(Exception):
    """A console request refused with a page that says why (status, sentence)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_console_path(path: str) -> bool:
    return not path.startswith(_NOT_CONSOLE)


def setup_sessions(app: web.Application) -> None:
    app[_FLASHES] = {}


async def current_session(request: web.Request) -> Row | None:
    """The signed-in session of this request, or None (no cookie, expired, user disabled)."""
    if _SESSION_KEY in request:
        return request[_SESSION_KEY]
    cookie = request.cookies.get(SESSION_COOKIE, "")
    row = None
    if 20 <= len(cookie) <= 200:
        digest, now = secret_hash(cookie), request.app[CLOCK]()
        row = await request.app[DB].run(lambda store: store.staff_session(digest, now))
    request[_SESSION_KEY] = row
    return row


def principal_of(session: Row) -> Principal:
    return Principal(
        session["username"], session["tenant_id"], session["venue_id"], session["role"], "user"
    )


async def console_user(request: web.Request, permission: str) -> tuple[Principal, dict[str, Any]]:
    """The signed-in principal allowed `permission`, and the context base.html needs.
    Not signed in: a redirect to the sign-in page, back here afterwards."""
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther(f"{SIGN_IN_PATH}?next={quote(request.path_qs, safe='')}")
    principal = principal_of(session)
    if principal.role not in PERMISSIONS[permission]:
        raise ConsoleRefused(
            403, f"Your role ({ROLE_LABELS[principal.role]}) may not do this. Ask a venue manager."
        )
    venues = await request.app[DB].run(
        lambda store: store.list_venues(principal.tenant_id, principal.venue_id)
    )
    wanted = request.query.get("venue") or request.cookies.get(VENUE_COOKIE)
    venue = next((v for v in venues if v["id"] == wanted), venues[0] if venues else None)
    page = {
        "user": {
            "username": principal.token_id,
            "role": principal.role,
            "role_label": ROLE_LABELS[principal.role],
        },
        "can": {name: principal.role in roles for name, roles in PERMISSIONS.items()},
        "venues": venues,
        "venue": venue,
        "csrf_token": session["csrf_token"],
        "flash": request.app[_FLASHES].pop(session["session_hash"], None),
        "path": request.path,
    }
    return principal, page


def flash(request: web.Request, message: str) -> None:
    """A sentence the next page of this session shows once (after a POST's redirect)."""
    session = request.get(_SESSION_KEY)
    if session is not None:
        request.app[_FLASHES][session["session_hash"]] = message


def local_target(target: str | None, default: str = "/") -> str:
    """A path on this hub to go back to; anything else (another host, //host) is dropped."""
    if not target or not target.startswith("/"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return default
    return target


def same_origin(request: web.Request) -> bool:
    """The browser says the request comes from a page of this hub (Origin, else Referer)."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == request.host


async def check_csrf(request: web.Request) -> None:
    """Refuse a state change that is not from this hub's own page of this session: same
    origin, and the session's token in the form or the X-CSRF-Token header."""
    if not same_origin(request):
        raise ConsoleRefused(403, "This request did not come from a page of this hub.")
    if request.path == SIGN_IN_PATH:
        return  # no session yet: the sign-in form carries its own token (hub/console/sign_in.py)
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther(SIGN_IN_PATH)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        given = str((await request.post()).get(CSRF_FIELD, ""))
    if not given or not hmac.compare_digest(given.encode(), session["csrf_token"].encode()):
        raise ConsoleRefused(
            403, "This form has expired or did not come from this console: reload and try again."
        )


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def set_cookie(response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="Strict",
    )
