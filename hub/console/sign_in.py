"""Signing in and out of the console, and choosing the venue a page is about.

Failed sign-ins are limited per username and per address (a sliding window): after too many,
the form answers 429 with how long to wait, without checking the password at all, so guessing
costs the attacker time while a real person locked out knows what to do.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import defaultdict, deque
from typing import Any

from aiohttp import web

from hub.console.render import render
from hub.console.session import (
    SESSION_COOKIE,
    SESSION_TTL_MS,
    SIGN_IN_PATH,
    VENUE_COOKIE,
    ConsoleRefused,
    console_user,
    current_session,
    local_target,
    new_secret,
    set_cookie,
)
from hub.keys import CLOCK, DB
from hub.staff_accounts import password_matches
from hub.store_base import secret_hash

routes = web.RouteTableDef()

SIGN_IN_COOKIE = "gate_console_sign_in"  # the sign-in form's own CSRF token (double submit)
WINDOW_S = 15 * 60
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
HOME = "/doors"
WRONG = "The username or the password is wrong."


class SignInLimiter:
    """Failed attempts in the last WINDOW_S seconds, per username and per address."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def wait_s(self, username: str, address: str) -> int:
        """Seconds until another attempt may be checked; 0: now."""
        now = self._clock()
        waits = [
            self._wait(f"user:{username}", MAX_FAILURES_PER_USER, now),
            self._wait(f"addr:{address}", MAX_FAILURES_PER_ADDRESS, now),
        ]
        return max(waits)

    def _wait(self, key: str, limit: int, now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if len(times) < limit:
            return 0
        return int(times[0] + WINDOW_S - now) + 1

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        self._failures[f"user:{username}"].append(now)
        self._failures[f"addr:{address}"].append(now)

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"user:{username}", None)


LIMITER: web.AppKey[SignInLimiter] = web.AppKey("console_sign_in_limiter", SignInLimiter)


def setup_sign_in(app: web.Application) -> None:
    app[LIMITER] = SignInLimiter()


def _form(
    request: web.Request, message: str | None, status: int, username: str = ""
) -> web.Response:
    token = request.cookies.get(SIGN_IN_COOKIE) or new_secret()
    response = render(
        request,
        "sign_in.html",
        {
            "title": "Sign in",
            "message": message,
            "username": username,
            "sign_in_token": token,
            "next": local_target(request.query.get("next"), HOME),
        },
        status=status,
    )
    set_cookie(response, SIGN_IN_COOKIE, token, None)
    return response


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(HOME)


@routes.get(SIGN_IN_PATH)
async def sign_in_form(request: web.Request) -> web.Response:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(local_target(request.query.get("next"), HOME))
    return _form(request, None, 200)


@routes.post(SIGN_IN_PATH)
async def sign_in(request: web.Request) -> web.Response:
    form = await request.post()
    token, cookie = str(form.get("sign_in_token", "")), request.cookies.get(SIGN_IN_COOKIE, "")
    if not token or not hmac.compare_digest(token.encode(), cookie.encode()):
        raise ConsoleRefused(403, "This sign-in form has expired: reload the page and try again.")
    username = str(form.get("username", "")).strip().lower()[:64]
    password = str(form.get("password", ""))
    address = request.remote or "unknown"
    limiter = request.app[LIMITER]
    wait = limiter.wait_s(username, address)
    if wait:
        minutes = -(-wait // 60)
        return _form(
            request,
            f"Too many failed sign-ins. Try again in {minutes} minute{'s' * (minutes != 1)},"
            " or ask a venue manager to check the account.",
            429,
            username,
        )
    user = await request.app[DB].run(lambda store: store.staff_user_named(username))
    digest = None if user is None else user["password_hash"]
    matches = await asyncio.get_running_loop().run_in_executor(
        None, password_matches, digest, password
    )
    if user is None or not matches:
        limiter.failed(username, address)
        return _form(request, WRONG, 401, username)
    if user["disabled_ms"] is not None:
        return _form(request, "This account is disabled. Ask a venue manager.", 403, username)
    limiter.succeeded(username)
    session, csrf, now = new_secret(), new_secret(), request.app[CLOCK]()
    await request.app[DB].run(
        lambda store: store.start_staff_session(
            user, secret_hash(session), csrf, now, now + SESSION_TTL_MS
        )
    )
    response = web.HTTPSeeOther(local_target(str(form.get("next", "")), HOME))
    set_cookie(response, SESSION_COOKIE, session, SESSION_TTL_MS // 1000)
    response.del_cookie(SIGN_IN_COOKIE, path="/")
    raise response


@routes.post("/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    session = await current_session(request)
    if session is not None:
        digest = session["session_hash"]
        await request.app[DB].run(lambda store: store.end_staff_session(digest))
    response = web.HTTPSeeOther(SIGN_IN_PATH)
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@routes.get("/account")
async def account(request: web.Request) -> web.Response:
    """Who is signed in, with which role and over which venues."""
    principal, page = await console_user(request, "venue.read")
    scope = "every venue of the tenant" if principal.venue_id is None else "one venue"
    return render(request, "account.html", page | {"title": "Your account", "scope": scope})


@routes.post("/venue")
async def choose_venue(request: web.Request) -> web.Response:
    """Remember the venue a tenant-wide user works on (checked against their scope on every
    page, so a forged cookie only falls back to their first venue)."""
    _, page = await console_user(request, "venue.read")
    form = await request.post()
    wanted = str(form.get("venue", ""))
    if wanted not in {v["id"] for v in page["venues"]}:
        raise ConsoleRefused(404, "There is no such venue.")
    response = web.HTTPSeeOther(local_target(str(form.get("next", "")), HOME))
    set_cookie(response, VENUE_COOKIE, wanted, 30 * 86_400)
    raise response
