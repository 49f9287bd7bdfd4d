"""Pages out: templates rendered with the session's context, error pages instead of JSON
for the console's paths, and the headers every console answer carries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from hub.console.session import (
    SAFE_METHODS,
    ConsoleRefused,
    check_csrf,
    is_console_path,
)
from hub.errors import ApiError

# No inline script or style, nothing from elsewhere, never inside another site's frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
    " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none';"
    " object-src 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_STATUS_TITLES = {
    400: "That did not work",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Already changed",
    413: "Too large",
    429: "Too many attempts",
}


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, dict(context), status=status)
    response.headers["Cache-Control"] = "no-store"  # pages hold names and codes
    return response


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    title = _STATUS_TITLES.get(status, "Something went wrong")
    return render(request, "error.html", {"title": title, "message": message}, status=status)


@web.middleware
async def console_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Console paths: every state change passes the CSRF check before its handler runs, and
    errors answer as pages a person can read (the API keeps its JSON errors)."""
    if not is_console_path(request.path):
        return await handler(request)
    try:
        if request.method not in SAFE_METHODS:
            await check_csrf(request)
        response = await handler(request)
    except ConsoleRefused as exc:
        response = error_page(request, exc.status, exc.message)
    except ApiError as exc:
        response = error_page(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            _secure(exc)
            raise
        message = "There is no such page." if exc.status == 404 else exc.reason
        response = error_page(request, exc.status, message)
    _secure(response)
    return response


def _secure(response: web.StreamResponse) -> None:
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)


def local_time(ms: int | None, timezone: str | None = None, *, seconds: bool = False) -> str:
    """Epoch ms as the venue's wall clock, for people (a template filter)."""
    if ms is None:
        return "—"
    zone = ZoneInfo(timezone) if timezone else UTC
    moment = datetime.fromtimestamp(ms / 1000, zone)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
