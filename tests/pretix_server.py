"""A real pretix server for the tests, started and stopped as a process (an outage is a stop).

`make pretix` installs pretix in its own venv (build/pretix-venv) and migrates a template
SQLite database once; a PretixServer copies that file into its scratch directory, so a session
is ready in seconds. Everything a test needs is made through pretix itself: its REST API with a
team token, and, for the few things the API cannot do (organizers, teams and tokens, payment
and ticket-secret settings, bulk orders), a Django script run by `python -m pretix shell` over
pretix's own models.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx

from demo.local_hub import free_port, until
from tests.paths import ROOT

PRETIX_VENV = ROOT / "build" / "pretix-venv"
TEMPLATE_DB = ROOT / "build" / "pretix-template" / "db.sqlite3"
MAKE_TARGET = "pretix"
DEFAULT_ORGANIZER = "venue"
SecretGenerator = Literal["random", "pretix_sig1"]

_RESULT = "PRETIX-HARNESS-RESULT "
# pretix.settings hard-codes the SMTP backend; nothing in a test may try to send mail.
_SETTINGS_MODULE = "pretix_harness_settings"
_SETTINGS = """\
from pretix.settings import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
"""


class PretixMissing(RuntimeError):
    """The pretix venv or its template database is not there: `make pretix` makes them."""


def missing_pretix() -> str | None:
    """Why a PretixServer cannot start here, or None when it can."""
    for needed in (PRETIX_VENV / "bin" / "gunicorn", TEMPLATE_DB):
        if not needed.exists():
            return f"{needed} is missing: run `make {MAKE_TARGET}` (pretix's venv and database)"
    return None


@dataclass(frozen=True)
class Organizer:
    slug: str
    api_token: str  # a team token with every permission on this organizer ("Token ...")


@dataclass(frozen=True)
class Event:
    organizer: str
    slug: str
    items: dict[str, int]  # item name -> pretix item id
    checkin_list: int  # the "Entry" list, all products

    @property
    def path(self) -> str:
        return f"organizers/{self.organizer}/events/{self.slug}"


@dataclass(frozen=True)
class Position:
    id: int
    secret: str
    attendee_name: str | None
    item: int
    order: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Position:
        return cls(row["id"], row["secret"], row["attendee_name"], row["item"], row["order"])


@dataclass(frozen=True)
class Order:
    code: str
    status: str  # "n" pending, "p" paid, "e" expired, "c" canceled
    positions: list[Position]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Order:
        return cls(row["code"], row["status"], [Position.of(p) for p in row["positions"]])


@dataclass(frozen=True)
class Device:
    device_id: int
    unique_serial: str
    initialization_token: str  # for POST /api/v1/device/initialize, once


class PretixServer:
    """pretix under gunicorn on 127.0.0.1, its config, database and log in `directory`.

    stop() and kill() leave the database; start() again serves it on the same port and URL.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api/v1/"
        self.db = directory / "db.sqlite3"
        self.log_path = directory / "pretix.log"
        self.organizers: dict[str, Organizer] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._secret_key = secrets.token_urlsafe(40)

    # -- the process ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 60) -> None:
        """Serve pretix; the first start copies the template database and makes the default
        organizer (DEFAULT_ORGANIZER, whose token is `api_token`)."""
        if self.running:
            return
        problem = missing_pretix()
        if problem:
            raise PretixMissing(problem)
        first = not self.db.exists()
        if first:
            (self.directory / "data").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(TEMPLATE_DB, self.db)
            self._write_config()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(PRETIX_VENV / "bin" / "gunicorn"),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    "1",  # SQLite: one writer; pretix's own docs say no more on it
                    "--timeout",
                    "300",  # a 500-position order takes ~5 s on this machine
                    "--graceful-timeout",
                    "10",
                    "--no-control-socket",  # else every gunicorn shares ~/.gunicorn/gunicorn.ctl
                    "pretix.wsgi",
                ],
                cwd=self.directory,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # kill() takes the worker too, which holds the port
            )
        try:
            until(self._answers, timeout_s, f"pretix at {self.url} to answer; log: {self.log_path}")
        except BaseException:
            self.kill()
            raise
        if first:
            self.create_organizer(DEFAULT_ORGANIZER, "Venue Gate tests")

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM, as systemd stops it: gunicorn finishes the request in hand and exits."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill_group(proc)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL to gunicorn and its worker at once: a crash, nothing finished."""
        proc = self._proc
        if proc is None:
            return
        self._kill_group(proc)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _kill_group(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def _answers(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"pretix exited ({self._proc.returncode}); see {self.log_path}")
        try:
            # Any answer will do (401 without a token): the worker has loaded Django.
            httpx.get(self.api_url + "version", timeout=2)
        except httpx.HTTPError:
            return False
        return True

    def _write_config(self) -> None:
        (self.directory / "pretix.cfg").write_text(
            textwrap.dedent(f"""\
                [pretix]
                instance_name=venue-gate tests
                url={self.url}
                datadir={self.directory / "data"}
                currency=EUR
                ecb_rates=off
                [django]
                debug=off
                secret={self._secret_key}
                [database]
                backend=sqlite3
                name={self.db}
                [locale]
                timezone=UTC
                [mail]
                from=pretix@127.0.0.1
                """)
        )
        (self.directory / f"{_SETTINGS_MODULE}.py").write_text(_SETTINGS)

    def _env(self) -> dict[str, str]:
        # Not PYTEST_CURRENT_TEST: pretix takes it for its own test suite (order code then walks
        # the stack on every save, shell scripts run 2x slower, some checks are skipped).
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PYTEST_")
        }
        env["PRETIX_CONFIG_FILE"] = str(self.directory / "pretix.cfg")
        env["DJANGO_SETTINGS_MODULE"] = _SETTINGS_MODULE
        env["PYTHONPATH"] = str(self.directory)
        return env

    # -- Django, for what the REST API cannot do -------------------------------------------------

    def shell(self, script: str, timeout_s: float = 600, **params: Any) -> Any:
        """Run `script` in `python -m pretix shell` (Django ORM, scopes off) beside the server;
        it reads PARAMS and hands back one JSON value with result(value)."""
        program = "\n".join(
            [
                "import json",
                "from django_scopes import scopes_disabled",
                f"PARAMS = json.loads({json.dumps(json.dumps(params))})",
                f"def result(value): print({_RESULT!r} + json.dumps(value), flush=True)",
                "with scopes_disabled():",
                textwrap.indent(textwrap.dedent(script), "    "),
            ]
        )
        done = subprocess.run(
            [str(PRETIX_VENV / "bin" / "python"), "-m", "pretix", "shell"],
            input=program,
            capture_output=True,
            text=True,
            cwd=self.directory,
            env=self._env(),
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pretix shell failed ({done.returncode}):\n{done.stderr}")
        for line in done.stdout.splitlines():
            if line.startswith(_RESULT):
                return json.loads(line[len(_RESULT) :])
        return None

    def create_organizer(self, slug: str, name: str | None = None) -> Organizer:
        """An organizer, as pretix's control panel makes one (an all-permission team), with a
        team API token; manual payment on for its events, so paid orders and `live` work."""
        token = self.shell(
            """
            from pretix.base.models import Organizer, Team
            org = Organizer.objects.create(slug=PARAMS["slug"], name=PARAMS["name"])
            org.settings.payment_manual__enabled = True
            team = Team.objects.create(
                organizer=org, name="Venue Gate tests", all_events=True,
                all_event_permissions=True, all_organizer_permissions=True,
            )
            result(team.tokens.create(name="venue-gate tests").token)
            """,
            slug=slug,
            name=name or slug,
        )
        organizer = Organizer(slug, token)
        self.organizers[slug] = organizer
        return organizer

    @property
    def organizer(self) -> Organizer:
        return self.organizers[DEFAULT_ORGANIZER]

    @property
    def api_token(self) -> str:
        """The default organizer's team token (`Authorization: Token ...`)."""
        return self.organizer.api_token

    # -- HTTP ---------------------------------------------------------------------------------

    def client(self, organizer: str | None = None, timeout_s: float = 300) -> httpx.Client:
        """An httpx client on /api/v1/ with the organizer's team token (default organizer)."""
        token = self.organizers[organizer or DEFAULT_ORGANIZER].api_token
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Token {token}"}, timeout=timeout_s
        )

    def request(
        self, method: str, path: str, organizer: str | None = None, **kw: Any
    ) -> httpx.Response:
        with self.client(organizer) as c:
            return c.request(method, path, **kw)

    def call(
        self, method: str, path: str, organizer: str | None = None, expect: int = 200, **kw: Any
    ) -> Any:
        """The JSON of a request that must answer `expect` (else AssertionError with its body)."""
        resp = self.request(method, path, organizer, **kw)
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def paged(
        self, path: str, organizer: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every result of a paginated list, following `next`."""
        with self.client(organizer) as c:
            page = c.get(path, params={"page_size": 50, **(params or {})})  # pretix's maximum
            while True:
                assert page.status_code == 200, f"GET {path}: {page.status_code} {page.text}"
                body = page.json()
                yield from body["results"]
                if not body["next"]:
                    return
                page = c.get(body["next"])

    # -- events ---------------------------------------------------------------------------------

    def create_event(
        self,
        slug: str,
        name: str | None = None,
        *,
        organizer: str | None = None,
        items: Sequence[str] = ("Standing", "Balcony"),
        price: str = "30.00",
        date_from: datetime | None = None,
        date_to: datetime | None = None,
        secret_generator: SecretGenerator = "random",
        live: bool = True,
    ) -> Event:
        """An event (tomorrow evening unless told), tax-free items at `price` in one unlimited
        quota, an "Entry" check-in list for all of them, the ticket secret generator, live."""
        org = organizer or DEFAULT_ORGANIZER
        start = date_from or (datetime.now(UTC) + timedelta(days=1)).replace(
            hour=18, minute=0, second=0, microsecond=0
        )
        end = date_to or start + timedelta(hours=5)
        base = f"organizers/{org}/events/"
        self.call(
            "POST",
            base,
            org,
            201,
            json={
                "name": {"en": name or slug},
                "slug": slug,
                "date_from": start.isoformat(),
                "date_to": end.isoformat(),
                "currency": "EUR",
                "live": False,  # pretix refuses live before there is a quota
                "timezone": "UTC",
            },
        )
        made = {}
        for item_name in items:
            item = self.call(
                "POST",
                f"{base}{slug}/items/",
                org,
                201,
                json={
                    "name": {"en": item_name},
                    "default_price": price,
                    "tax_rule": None,
                    "admission": True,
                    "active": True,
                },
            )
            made[item_name] = int(item["id"])
        self.call(
            "POST",
            f"{base}{slug}/quotas/",
            org,
            201,
            json={"name": "All", "size": None, "items": list(made.values())},
        )
        checkin_list = self.create_checkin_list(Event(org, slug, made, 0), "Entry")
        event = Event(org, slug, made, checkin_list)
        if secret_generator != "random":
            self.set_secret_generator(event, secret_generator)
        if live:
            self.call("PATCH", f"{event.path}/", org, json={"live": True})
        return event

    def create_checkin_list(
        self, event: Event, name: str, items: Sequence[int] | None = None, **fields: Any
    ) -> int:
        """A check-in list of `event` for `items` (all products when None); its id."""
        body = {"name": name, "all_products": items is None, "limit_products": list(items or ())}
        made = self.call(
            "POST", f"{event.path}/checkinlists/", event.organizer, 201, json={**body, **fields}
        )
        return int(made["id"])

    def set_secret_generator(self, event: Event, generator: SecretGenerator) -> None:
        """The event's ticket secret generator. Its settings API answers 200 to a PATCH of
        `ticket_secret_generator` but ignores the key, so this goes through the shell."""
        self.shell(
            """
            from pretix.base.models import Event
            event = Event.objects.get(organizer__slug=PARAMS["org"], slug=PARAMS["event"])
            event.settings.ticket_secret_generator = PARAMS["generator"]
            """,
            org=event.organizer,
            event=event.slug,
            generator=generator,
        )

    def event_json(self, event: Event) -> dict[str, Any]:
        return dict(self.call("GET", f"{event.path}/", event.organizer))

    def valid_keys(self, event: Event) -> dict[str, list[str]]:
        """The event's `valid_keys`: {"pretix_sig1": [key, ...]}, each key the base64 of an
        Ed25519 public key in PEM (SubjectPublicKeyInfo). pretix makes the key pair with the
        first signed secret, so the list is empty until the event has a pretix_sig1 ticket."""
        return dict(self.event_json(event)["valid_keys"])

    # -- orders -----------------------------------------------------------------------------------

    def create_order(
        self,
        event: Event,
        attendees: Sequence[str | None],
        *,
        item: int | None = None,
        status: Literal["p", "n"] = "p",
        email: str | None = None,
    ) -> Order:
        """One order through the API, a position per attendee (pretix takes at most 500),
        paid ("p", manual payment confirmed) or pending ("n"); no mail is sent."""
        item_id = item or next(iter(event.items.values()))
        body = {
            "status": status,
            "payment_provider": "manual",  # pretix refuses a paid order without one
            "email": email,
            "send_email": False,
            "simulate": False,
            "positions": [{"item": item_id, "attendee_name": name} for name in attendees],
        }
        return Order.of(self.call("POST", f"{event.path}/orders/", event.organizer, 201, json=body))

    def order(self, event: Event, code: str) -> Order:
        return Order.of(self.call("GET", f"{event.path}/orders/{code}/", event.organizer))

    def bulk_paid_positions(
        self, event: Event, n: int, *, item: int | None = None, per_order: int = 500
    ) -> list[Position]:
        """`n` paid positions (attendees "Guest 0".."Guest n-1"), `per_order` to an order, made
        by pretix's models in one shell run and transaction: about 2 ms a position here, where
        the API (500-position orders) takes about 10 ms: 10,000 in ~20 s instead of ~100 s.
        Secrets come from the event's own generator, as through the API."""
        rows = self.shell(
            """
            from django.db import transaction
            from django.utils.timezone import now
            from pretix.base.models import Event, Order, OrderPayment, OrderPosition
            event = Event.objects.get(organizer__slug=PARAMS["org"], slug=PARAMS["event"])
            item = event.items.get(pk=PARAMS["item"])
            web = event.organizer.sales_channels.get(identifier="web")
            n, per_order, made = PARAMS["n"], PARAMS["per_order"], []
            with transaction.atomic():
                for start in range(0, n, per_order):
                    count = min(per_order, n - start)
                    order = Order(
                        event=event, status=Order.STATUS_PAID, sales_channel=web,
                        total=item.default_price * count, locale="en",
                    )
                    order.save()
                    for i in range(count):
                        name = f"Guest {start + i}"
                        pos = OrderPosition(
                            order=order, positionid=i + 1, item=item,
                            price=item.default_price, attendee_name_parts={"_legacy": name},
                        )
                        pos.save()
                        made.append([pos.pk, pos.secret, name, item.pk, order.code])
                    order.payments.create(
                        amount=order.total, provider="manual", payment_date=now(),
                        state=OrderPayment.PAYMENT_STATE_CONFIRMED,
                    )
                    order.create_transactions(is_new=True)
                    order.log_action("pretix.event.order.placed", data={"harness": "bulk"})
            result(made)
            """,
            org=event.organizer,
            event=event.slug,
            item=item or next(iter(event.items.values())),
            n=n,
            per_order=per_order,
        )
        return [Position(*row) for row in rows]

    def cancel_order(self, event: Event, code: str) -> Order:
        """Cancel through the API (no mail). pretix_sig1 puts its secrets on the revocation list."""
        return Order.of(
            self.call(
                "POST",
                f"{event.path}/orders/{code}/mark_canceled/",
                event.organizer,
                json={"send_email": False},
            )
        )

    def regenerate_order_secrets(self, event: Event, code: str) -> Order:
        """New secrets for every position of the order. pretix records the old ones in
        revokedsecrets only under pretix_sig1 (random secrets are checked online)."""
        return Order.of(
            self.call("POST", f"{event.path}/orders/{code}/regenerate_secrets/", event.organizer)
        )

    def regenerate_position_secret(self, event: Event, position_id: int) -> Position:
        path = f"{event.path}/orderpositions/{position_id}/regenerate_secrets/"
        return Position.of(self.call("POST", path, event.organizer))

    def block_position(self, event: Event, position_id: int, name: str = "admin") -> Position:
        """Block a ticket (`blocked` gets `name`; redeem answers reason "blocked"); pretix
        lists its secret in blockedsecrets, whatever the secret generator."""
        path = f"{event.path}/orderpositions/{position_id}/add_block/"
        return Position.of(self.call("POST", path, event.organizer, json={"name": name}))

    def unblock_position(self, event: Event, position_id: int, name: str = "admin") -> Position:
        path = f"{event.path}/orderpositions/{position_id}/remove_block/"
        return Position.of(self.call("POST", path, event.organizer, json={"name": name}))

    def position(self, event: Event, position_id: int) -> dict[str, Any]:
        """The position as the API shows it, with its `checkins` (successful ones)."""
        return dict(
            self.call("GET", f"{event.path}/orderpositions/{position_id}/", event.organizer)
        )

    def revoked_secrets(self, event: Event) -> list[str]:
        return [r["secret"] for r in self.paged(f"{event.path}/revokedsecrets/", event.organizer)]

    def blocked_secrets(self, event: Event) -> list[str]:
        """Secrets pretix lists as blocked now (an unblocked one stays, with blocked false)."""
        rows = self.paged(f"{event.path}/blockedsecrets/", event.organizer)
        return [r["secret"] for r in rows if r["blocked"]]

    # -- devices and check-ins -----------------------------------------------------------------

    def create_device(
        self, organizer: str | None = None, name: str = "Venue Gate hub", **fields: Any
    ) -> Device:
        """A device for all the organizer's events, not yet initialised."""
        org = organizer or DEFAULT_ORGANIZER
        body = {"name": name, "all_events": True, "limit_events": [], "security_profile": "full"}
        made = self.call("POST", f"organizers/{org}/devices/", org, 201, json={**body, **fields})
        return Device(made["device_id"], made["unique_serial"], made["initialization_token"])

    def checkins(
        self, event: Event, *, successful: bool | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """The event's check-in records, failed ones too (`successful` false with an
        `error_reason`: invalid, unpaid, already_redeemed, revoked, blocked, ...), oldest first;
        filters such as list, position, device as the API takes them."""
        params = dict(filters)
        if successful is not None:
            params["successful"] = "true" if successful else "false"
        return list(self.paged(f"{event.path}/checkins/", event.organizer, params))
