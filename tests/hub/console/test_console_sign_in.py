"""The console's door: staff sign-in, sessions, CSRF, rate limits, scopes (real hub)."""

from __future__ import annotations

import re

import pytest

from hub.console.session import SESSION_COOKIE
from hub.store_base import secret_hash
from tests.console_session import PASSWORD, make_user, sign_in, sign_in_as
from tests.hub_fixtures import Hub


async def test_sign_in_sets_a_strict_cookie_and_shows_the_account(hub: Hub) -> None:
    name = make_user(hub, "a", "box_office")
    answer = await sign_in_as(hub, name)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/doors"
    cookie = next(
        h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
    value = cookie.split(";")[0].split("=", 1)[1]
    stored = hub.store.db.execute("SELECT session_hash FROM staff_sessions").fetchall()
    assert stored == [(secret_hash(value),)]  # only its hash is kept
    client = await sign_in(hub, "a", "venue_manager")
    page = await client.get("/account")
    assert page.status_code == 200
    assert "venue-manager.a" in page.text and "Venue manager" in page.text
    assert "Content-Security-Policy" in page.headers
    assert page.headers["Cache-Control"] == "no-store"


async def test_wrong_password_and_unknown_user_get_the_same_answer(hub: Hub) -> None:
    name = make_user(hub, "a", "box_office")
    wrong = await sign_in_as(hub, name, "not the password at all")
    nobody = await sign_in_as(hub, "nobody.here", PASSWORD)
    assert wrong.status_code == nobody.status_code == 401
    for answer in (wrong, nobody):
        assert "The username or the password is wrong." in answer.text
        assert SESSION_COOKIE + "=" not in answer.headers.get("set-cookie", "")
    assert hub.store.db.execute("SELECT count(*) FROM staff_sessions").fetchone() == (0,)


async def test_failed_sign_ins_are_limited_per_username(hub: Hub) -> None:
    name = make_user(hub, "a", "box_office")
    for _ in range(5):
        assert (await sign_in_as(hub, name, "wrong password here")).status_code == 401
    locked = await sign_in_as(hub, name, PASSWORD)  # even the right password now waits
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.text
    other = make_user(hub, "a", "venue_staff")
    assert (await sign_in_as(hub, other)).status_code == 303  # another person is not locked


async def test_a_sign_in_without_its_form_token_or_from_elsewhere_is_refused(hub: Hub) -> None:
    name = make_user(hub, "a", "box_office")
    forged = await hub.client.post(
        "/sign-in",
        data={"username": name, "password": PASSWORD, "sign_in_token": "x" * 43},
        headers={"Origin": hub.url},
    )
    assert forged.status_code == 403
    elsewhere = await hub.client.post(
        "/sign-in",
        data={"username": name, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert "did not come from a page of this hub" in elsewhere.text
    assert hub.store.db.execute("SELECT count(*) FROM staff_sessions").fetchone() == (0,)


async def test_pages_send_strangers_to_sign_in(hub: Hub) -> None:
    answer = await hub.client.get("/account", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] in ("/sign-in?next=%2Faccount", "/sign-in?next=/account")
    forged = await hub.client.get(
        "/account", headers={"Cookie": f"{SESSION_COOKIE}={'a' * 43}"}, follow_redirects=False
    )
    assert forged.status_code == 303


async def test_a_state_change_needs_the_session_csrf_token(hub: Hub) -> None:
    client = await sign_in(hub, "a", "admin")
    other = await sign_in(hub, "b", "admin")
    missing = await client.post("/sign-out", csrf=False)
    assert missing.status_code == 403
    assert "This form has expired" in missing.text
    stolen = await client.post("/sign-out", {"csrf": other.csrf})  # another session's token
    assert stolen.status_code == 403
    assert (await client.get("/account")).status_code == 200  # still signed in
    done = await client.post("/sign-out")
    assert done.status_code == 303
    assert (await client.get("/account", follow_redirects=False)).status_code == 303


async def test_disabling_a_user_ends_their_sessions(hub: Hub) -> None:
    client = await sign_in(hub, "a", "venue_manager")
    user = hub.store.staff_user_named(client.username)
    assert user is not None
    hub.store.disable_staff_user(user["id"], "test", hub.clock())
    assert (await client.get("/account", follow_redirects=False)).status_code == 303
    again = await sign_in_as(hub, client.username)
    assert again.status_code == 403
    assert "disabled" in again.text
    audit = [r["action"] for r in hub.store.audit_entries(hub.a.id)]
    assert audit.count("user.sign_in") == 1 and "user.disable" in audit


async def test_a_disabled_user_is_refused_even_with_a_session_left(hub: Hub) -> None:
    """Sessions end when a user is disabled; one left behind (a copy of the database, a
    write from an older release) still opens nothing."""
    client = await sign_in(hub, "a", "venue_manager")
    hub.store.db.execute(
        "UPDATE staff_users SET disabled_ms = 1 WHERE username = ?", [client.username]
    )
    hub.store.db.conn.commit()
    assert (await client.get("/account", follow_redirects=False)).status_code == 303


async def test_a_session_ends_after_its_shift(hub: Hub) -> None:
    client = await sign_in(hub, "a", "venue_staff")
    hub.clock.offset_ms += 12 * 3_600_000 + 1
    assert (await client.get("/account", follow_redirects=False)).status_code == 303


async def test_venue_choice_stays_within_the_users_scope(hub: Hub) -> None:
    now = hub.clock()
    second = hub.store.create_venue(hub.a.id, "Second Hall", "Europe/Berlin", "test", now)
    admin = await sign_in(hub, "a", "admin")
    page = await admin.get("/account")
    assert "Second Hall" in page.text and "alpha Arena" in page.text
    foreign = await admin.post("/venue", {"venue": hub.b.venue_id, "next": "/account"})
    assert foreign.status_code == 404
    chosen = await admin.post("/venue", {"venue": second["id"], "next": "/account"})
    assert chosen.status_code == 303 and chosen.headers["location"] == "/account"
    scoped = await sign_in(hub, "a", "box_office")
    page = await scoped.get(f"/account?venue={second['id']}")
    assert "Second Hall" not in page.text  # a one-venue user never sees another


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil", "javascript:x", "doors"]
)
async def test_sign_in_only_sends_you_on_within_this_hub(hub: Hub, target: str) -> None:
    name = make_user(hub, "a", "box_office")
    form = await hub.client.get("/sign-in", params={"next": target})
    token = re.search(r'name="sign_in_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = await hub.client.post(
        "/sign-in",
        data={
            "username": name,
            "password": PASSWORD,
            "sign_in_token": token.group(1),
            "next": target,
        },
        headers={"Cookie": f"gate_console_sign_in={token.group(1)}", "Origin": hub.url},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/doors"


async def test_the_api_keeps_its_json_errors(hub: Hub) -> None:
    answer = await hub.client.get("/api/admin/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    page = await hub.client.get("/nothing-here")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
