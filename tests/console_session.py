"""A signed-in venue console session against the real hub, for console tests: a staff user
made in the hub's store, signed in through the real sign-in form.

The session cookie is Secure, so an http client's cookie jar would never send it back over
plain http to 127.0.0.1; the client here carries it (and the same-origin Origin header and the
CSRF token a page would send) itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from hub.console.session import CSRF_FIELD, SESSION_COOKIE
from hub.console.sign_in import SIGN_IN_COOKIE
from hub.staff_accounts import hash_password
from hub.store_api import NewStaffUser
from tests.hub_fixtures import Hub

PASSWORD = "correct horse battery staple"
_TOKEN_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
_SIGN_IN_TOKEN = re.compile(r'name="sign_in_token" value="([^"]+)"')


@dataclass
class ConsoleClient:
    """Pages of the console as one signed-in person sees them."""

    hub: Hub
    username: str
    cookie: str
    csrf: str
    cookies: dict[str, str] = field(default_factory=dict)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        jar = {SESSION_COOKIE: self.cookie, **self.cookies}
        return {
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
            "Origin": self.hub.url,
            **(extra or {}),
        }

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.hub.client.get(path, headers=self._headers(), **kwargs)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """A form post as the page would send it; csrf=False leaves the token out."""
        form = dict(data or {})
        if csrf:
            form.setdefault(CSRF_FIELD, self.csrf)
        return await self.hub.client.post(path, data=form, headers=self._headers(), **kwargs)


def make_user(
    hub: Hub,
    tenant: str = "a",
    role: str = "venue_manager",
    *,
    username: str | None = None,
    venue_wide: bool = False,
) -> str:
    """A staff user of tenant a or b: of its one venue, like the tenants' API tokens; an
    admin, or venue_wide=True, works at every venue of the tenant."""
    t = hub.a if tenant == "a" else hub.b
    name = username or f"{role.replace('_', '-')}.{tenant}"
    venue = None if role == "admin" or venue_wide else t.venue_id
    hub.store.create_staff_user(
        t.id, NewStaffUser(venue, name, role, hash_password(PASSWORD)), "test", hub.clock()
    )
    return name


async def sign_in_as(hub: Hub, username: str, password: str = PASSWORD) -> httpx.Response:
    """Post the real sign-in form (with its token) and return the hub's answer."""
    form = await hub.client.get("/sign-in")
    token = _SIGN_IN_TOKEN.search(form.text)
    assert token, form.text
    return await hub.client.post(
        "/sign-in",
        data={"username": username, "password": password, "sign_in_token": token.group(1)},
        headers={"Cookie": f"{SIGN_IN_COOKIE}={token.group(1)}", "Origin": hub.url},
    )


async def sign_in(
    hub: Hub, tenant: str = "a", role: str = "venue_manager", **options: Any
) -> ConsoleClient:
    """A new staff user of `role`, signed in; the client's pages carry its session."""
    username = make_user(hub, tenant, role, **options)
    answer = await sign_in_as(hub, username)
    assert answer.status_code == 303, answer.text
    cookie = answer.cookies.get(SESSION_COOKIE) or _set_cookie(answer, SESSION_COOKIE)
    client = ConsoleClient(hub, username, cookie, "")
    page = await client.get("/sign-in", follow_redirects=False)
    assert page.status_code == 303  # signed in: the form sends you on
    account = await client.get("/account")
    found = _TOKEN_META.search(account.text)
    assert found, account.text
    client.csrf = found.group(1)
    return client


def _set_cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie in {response.headers}")
