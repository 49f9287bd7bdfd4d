"""pretix as a backend: its REST API as pretixSCAN's libpretixsync uses it.

Authentication is a pretix device (initialised once with a token pretix shows when a device
is added; then `Authorization: Device <api token>`), or a team API token. A pull reads, per
event the device may see: the event (its time zone, dates and pretix_sig1 public keys), its
products (admission products become ticket types), its check-in lists (the one scans go to),
and its orders with every position, canceled ones included, changed since the last pull
(`modified_since`, from the `X-Page-Generated` time pretix stamps on the first page, as
libpretixsync does, so a change made while the pull runs is read again next time); then the
revoked and blocked secrets. A push redeems each entry or exit through
`checkinrpc/redeem/` with a nonce stable per scan (pretix ignores a nonce it has seen, so a
retry is never a second check-in), `force` for scans a gate decided offline, and the scan's
own time; a denied scan goes to the list's failed check-ins.

Every URL pretix gives back (the next page) must be on the configured origin: the token is
never sent anywhere else.
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from hub.backends.kinds import PRETIX as KIND
from hub.backends.seam import (
    BackendError,
    OwedScan,
    Pull,
    PushOutcome,
    RetiredCode,
    UpstreamEvent,
    UpstreamTicket,
    UpstreamTicketType,
)
from manifests.model import TicketStatus
from protocol import __version__
from protocol.backend_codes import pretix_public_key
from protocol.reasons import Reason

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
PAGE_SIZE = 50  # pretix's maximum
PUSH_CONCURRENCY = 4
DEFAULT_EVENT_LENGTH = timedelta(hours=12)  # an event pretix gives no end for
FULL_PASS_EVERY_MS = 6 * 3600 * 1000  # a complete re-read now and then: nothing drifts

# The order fields a pull reads (pretix's `include`, nested ones as positions.<field>).
ORDER_FIELDS = (
    "code",
    "status",
    "valid_if_pending",
    *(
        f"positions.{name}"
        for name in ("id", "item", "secret", "attendee_name", "canceled", "blocked")
    ),
)

# Our reasons for a denial, as pretix's failed check-in reasons (Checkin.REASONS).
FAILED_REASONS: Mapping[str, str] = {
    Reason.ALREADY_ADMITTED: "already_redeemed",
    Reason.REENTRY_COOLDOWN: "already_redeemed",
    Reason.REENTRY_LIMIT: "already_redeemed",
    Reason.CANCELLED: "canceled",
    Reason.REFUNDED: "canceled",
    Reason.REVOKED: "canceled",
    Reason.SUPERSEDED: "revoked",
    Reason.LOCKED: "blocked",
    Reason.TOO_EARLY: "invalid_time",
    Reason.TOO_LATE: "invalid_time",
    Reason.EXPIRED: "invalid_time",
    Reason.NOT_VALID_TODAY: "invalid_time",
    Reason.ZONE_DENIED: "product",
    Reason.BAD_STATUS: "unpaid",
    Reason.WRONG_EVENT: "invalid",
    Reason.UNKNOWN_TICKET: "invalid",
}


def _text(value: Any) -> str:
    """pretix's multilingual strings: English if there, else the first language."""
    if isinstance(value, dict):
        return str(value.get("en") or next(iter(value.values()), ""))
    return str(value or "")


def _ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def ticket_status(
    order_status: str, position_canceled: bool, include_pending: bool
) -> TicketStatus:
    """pretix's order state (n pending, p paid, e expired, c canceled) and a position's own
    cancellation, as the hub's ticket status."""
    if position_canceled or order_status == "c":
        return TicketStatus.CANCELLED
    if order_status == "p" or (order_status == "n" and include_pending):
        return TicketStatus.ACTIVE
    if order_status == "e":
        return TicketStatus.EXPIRED
    return TicketStatus.RESERVED  # pending, not admitted by the list: unpaid


async def initialize_device(url: str, init_token: str, *, transport: Any = None) -> dict[str, Any]:
    """Trade a pretix device initialisation token for the device's API token, as
    pretixSCAN does; the answer names the organizer. Raises BackendError with a sentence."""
    body = {
        "token": init_token,
        "hardware_brand": "venue-gate",
        "hardware_model": "hub",
        "os_name": "Linux",
        "os_version": platform.release() or "unknown",
        "software_brand": "venue-gate hub",
        "software_version": __version__,
        "info": {},
    }
    async with httpx.AsyncClient(timeout=TIMEOUT, transport=transport) as client:
        try:
            answer = await client.post(f"{url.rstrip('/')}/api/v1/device/initialize", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"pretix at {url} is not reachable ({type(exc).__name__})") from None
    if answer.status_code == 400:
        found = answer.json() if _is_json(answer) else {}
        said = found.get("token") if isinstance(found, dict) else None
        words = " ".join(str(w) for w in said) if isinstance(said, list) else "refused"
        raise BackendError(f"pretix refused the initialisation token: {words}")
    if answer.status_code != 200 or not _is_json(answer):
        raise BackendError(
            f"pretix at {url} answered the device initialisation with HTTP {answer.status_code}"
        )
    data = answer.json()
    if not isinstance(data, dict) or not data.get("api_token") or not data.get("organizer"):
        raise BackendError("pretix's device initialisation answer has no API token or organizer")
    return data


def _is_json(answer: httpx.Response) -> bool:
    return answer.headers.get("content-type", "").startswith("application/json")


class PretixBackend:
    """One pretix organizer, as configured by `gate-hub backend add --kind pretix`."""

    kind = KIND

    def __init__(
        self,
        settings: Mapping[str, Any],
        token: str,
        *,
        transport: Any = None,
        now_ms: Any = None,
    ) -> None:
        self.url = str(settings["url"]).rstrip("/")
        self.organizer = str(settings["organizer"])
        self.events = tuple(settings.get("events") or ())
        self.lists = dict(settings.get("checkin_lists") or {})  # event slug -> list id
        # check-in list id -> venue zone: its products admit to that zone, and scans at a
        # gate of that zone go to that list
        self.list_zones = {str(k): str(v) for k, v in (settings.get("list_zones") or {}).items()}
        scheme = "Device" if settings.get("auth", "device") == "device" else "Token"
        self._origin = urlsplit(self.url)[:2]
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=TIMEOUT,
            headers={"Authorization": f"{scheme} {token}", "Accept": "application/json"},
            transport=transport,
            follow_redirects=False,
        )
        self._now_ms = now_ms

    async def aclose(self) -> None:
        await self._client.aclose()

    # HTTP ---------------------------------------------------------------------------------
    async def _get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            answer = await self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise BackendError(
                f"pretix at {self.url} is not reachable ({type(exc).__name__})"
            ) from None
        if answer.status_code == 401:
            raise BackendError(
                "pretix refused the hub's credentials (HTTP 401): the device was revoked or"
                " the token is wrong; add the backend again with a new token"
            )
        if answer.status_code == 403:
            raise BackendError(
                f"pretix does not let the hub read {path} (HTTP 403): check the organizer"
                f" ({self.organizer}) and the events its device or token may see"
            )
        if answer.status_code == 404:
            raise BackendError(
                f"pretix has no {path} (HTTP 404): check the organizer"
                f" ({self.organizer}) and event slugs"
            )
        if answer.status_code != 200 or not _is_json(answer):
            raise BackendError(f"pretix answered {path} with HTTP {answer.status_code}")
        return answer

    async def _pages(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every result of a paged listing, and the time pretix stamped on its first page."""
        results: list[dict[str, Any]] = []
        answer = await self._get(path, {**(params or {}), "page_size": PAGE_SIZE})
        generated = answer.headers.get("X-Page-Generated")
        while True:
            data = answer.json()
            if not isinstance(data, dict) or not isinstance(data.get("results"), list):
                raise BackendError(f"pretix answered {path} with something that is not a listing")
            results += [r for r in data["results"] if isinstance(r, dict)]
            following = data.get("next")
            if not following:
                return results, generated
            if urlsplit(following)[:2] != self._origin:  # the token goes nowhere else
                raise BackendError(f"pretix's next page is on another host ({following!r})")
            answer = await self._get(following)

    async def check(self) -> None:
        """Whether the credentials reach the organizer: BackendError with a sentence if not."""
        await self._get(f"/api/v1/organizers/{self.organizer}/events/")

    # pull ---------------------------------------------------------------------------------
    async def pull(self, cursor: Mapping[str, Any]) -> Pull:
        now = self._now_ms() if self._now_ms else int(datetime.now(UTC).timestamp() * 1000)
        full = not cursor or now - int(cursor.get("full_ms", 0)) >= FULL_PASS_EVERY_MS
        since: Mapping[str, Any] = {} if full else cursor.get("events", {})
        org = f"/api/v1/organizers/{self.organizer}"
        slugs = self.events
        if not slugs:
            listed, _ = await self._pages(f"{org}/events/")
            slugs = tuple(str(e["slug"]) for e in listed if e.get("slug"))
        events, types, tickets, retired = [], [], [], []
        next_cursor: dict[str, Any] = {}
        for slug in slugs:
            base = f"{org}/events/{slug}"
            event = (await self._get(f"{base}/")).json()
            items, _ = await self._pages(f"{base}/items/")
            lists, _ = await self._pages(f"{base}/checkinlists/")
            chosen = self._list_for(slug, lists)
            admitted_items = {
                int(i["id"])
                for i in items
                if i.get("admission", True)
                and (
                    chosen.get("all_products", True) or i["id"] in chosen.get("limit_products", [])
                )
            }
            include_pending = bool(chosen.get("include_pending", False))
            zoned = self._zoned(lists, admitted_items)
            events.append(self._event(event, chosen, zoned))
            types += [
                UpstreamTicketType(str(i["id"]), slug, _text(i.get("name")) or f"Product {i['id']}")
                for i in items
                if int(i["id"]) in admitted_items
            ]
            mark = since.get(slug, {})
            params: dict[str, Any] = {
                "include_canceled_positions": "true",
                "testmode": "false",
                # only what a pull reads: pretix then serialises nothing else (downloads,
                # answers, check-ins, payments...), which costs it most of its time
                "include": list(ORDER_FIELDS),
            }
            if mark.get("orders"):
                params["modified_since"] = mark["orders"]
            orders, orders_at = await self._pages(f"{base}/orders/", params)
            zone_of = {item: zone for zone, (_, items_) in zoned.items() for item in items_}
            for order in orders:
                tickets += self._tickets(slug, order, admitted_items, include_pending, zone_of)
            revoked_params = {"created_since": mark["revoked"]} if mark.get("revoked") else {}
            revoked, revoked_at = await self._pages(f"{base}/revokedsecrets/", revoked_params)
            retired += [RetiredCode(slug, str(r["secret"]), "superseded") for r in revoked]
            blocked_params = {"updated_since": mark["blocked"]} if mark.get("blocked") else {}
            blocked, blocked_at = await self._pages(f"{base}/blockedsecrets/", blocked_params)
            retired += [
                RetiredCode(slug, str(b["secret"]), "blocked", bool(b.get("blocked")))
                for b in blocked
            ]
            next_cursor[slug] = {
                "orders": orders_at or mark.get("orders"),
                "revoked": revoked_at or mark.get("revoked"),
                "blocked": blocked_at or mark.get("blocked"),
            }
        full_ms = now if full else int(cursor.get("full_ms", now))
        return Pull(
            events=events,
            ticket_types=types,
            tickets=tickets,
            retired_codes=retired,
            cursor={"full_ms": full_ms, "events": next_cursor},
        )

    def _list_for(self, slug: str, lists: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """The check-in list scans of this event go to: the configured one, else the first
        list of all products, else the first list."""
        if not lists:
            raise BackendError(f"pretix event {slug} has no check-in list: add one in pretix")
        wanted = self.lists.get(slug)
        if wanted is not None:
            for found in lists:
                if str(found.get("id")) == str(wanted):
                    return found
            raise BackendError(f"pretix event {slug} has no check-in list {wanted}")
        every = [found for found in lists if found.get("all_products")]
        return (every or list(lists))[0]

    def _zoned(
        self, lists: Sequence[Mapping[str, Any]], admitted: set[int]
    ) -> dict[str, tuple[int, set[int]]]:
        """Zone -> (its check-in list, the products that list admits), for the lists the
        backend maps to zones (the first list named for a zone wins)."""
        zoned: dict[str, tuple[int, set[int]]] = {}
        for found in lists:
            zone = self.list_zones.get(str(found.get("id")))
            if zone is None or zone in zoned:
                continue
            items = (
                set(admitted)
                if found.get("all_products", True)
                else {int(i) for i in found.get("limit_products", [])} & admitted
            )
            zoned[zone] = (int(found["id"]), items)
        return zoned

    def _event(
        self,
        event: Mapping[str, Any],
        chosen: Mapping[str, Any],
        zoned: Mapping[str, tuple[int, set[int]]],
    ) -> UpstreamEvent:
        start = _ms(str(event["date_from"]))
        end = (
            _ms(str(event["date_to"]))
            if event.get("date_to")
            else start + int(DEFAULT_EVENT_LENGTH.total_seconds() * 1000)
        )
        keys = []
        for b64_pem in (event.get("valid_keys") or {}).get("pretix_sig1", []):
            try:
                keys.append(pretix_public_key(str(b64_pem)))
            except ValueError:
                continue  # a key we cannot read verifies nothing; the others still do
        return UpstreamEvent(
            ref=str(event["slug"]),
            name=_text(event.get("name")) or str(event["slug"]),
            timezone=str(event.get("timezone") or "UTC"),
            start_ms=start,
            end_ms=max(end, start),
            signing_keys=tuple(keys),
            detail={
                "checkin_list": int(chosen["id"]),
                "zone_lists": {zone: list_id for zone, (list_id, _) in zoned.items()},
            },
        )

    def _tickets(
        self,
        slug: str,
        order: Mapping[str, Any],
        admitted_items: set[int],
        include_pending: bool,
        zone_of: Mapping[int, str],
    ) -> list[UpstreamTicket]:
        out = []
        status_text = str(order.get("status", ""))
        pending_ok = include_pending or bool(order.get("valid_if_pending"))
        for p in order.get("positions") or []:
            if not isinstance(p, dict) or int(p.get("item", 0)) not in admitted_items:
                continue
            out.append(
                UpstreamTicket(
                    ref=str(p["id"]),
                    event_ref=slug,
                    type_ref=str(p["item"]),
                    status=ticket_status(status_text, bool(p.get("canceled")), pending_ok),
                    code=str(p["secret"]) if p.get("secret") else None,
                    holder_name=(p.get("attendee_name") or None),
                    order_ref=str(order.get("code")) if order.get("code") else None,
                    blocked=bool(p.get("blocked")),
                    zone=zone_of.get(int(p["item"])),
                )
            )
        return out

    # push ---------------------------------------------------------------------------------
    async def push(self, scans: Sequence[OwedScan]) -> list[PushOutcome]:
        gate = asyncio.Semaphore(PUSH_CONCURRENCY)

        async def one(scan: OwedScan) -> PushOutcome:
            async with gate:
                return await self._push_one(scan)

        return list(await asyncio.gather(*(one(s) for s in scans)))

    async def _push_one(self, scan: OwedScan) -> PushOutcome:
        zone_lists = scan.event_detail.get("zone_lists") or {}
        list_id = zone_lists.get(scan.zone) or scan.event_detail.get("checkin_list")
        if list_id is None:
            return PushOutcome(
                scan.scan_id, False, error="no check-in list known for the event yet"
            )
        kind = "exit" if scan.direction == "exit" else "entry"
        if scan.code is None:  # not one of pretix's tickets any more: nothing to redeem
            return PushOutcome(scan.scan_id, True, {"status": "error", "reason": "no_code"})
        if scan.admitted:
            path = f"/api/v1/organizers/{self.organizer}/checkinrpc/redeem/"
            body: dict[str, Any] = {
                "secret": scan.code,
                "source_type": "barcode",
                "lists": [list_id],
                "type": kind,
                "datetime": _iso(scan.at_ms),
                "force": scan.decided_offline,
                "ignore_unpaid": False,
                "nonce": scan.idempotency_key,
                "questions_supported": False,
            }
        else:
            path = (
                f"/api/v1/organizers/{self.organizer}/events/{scan.event_ref}"
                f"/checkinlists/{list_id}/failed_checkins/"
            )
            body = {
                "raw_barcode": scan.code,
                "error_reason": FAILED_REASONS.get(scan.reason, "error"),
                "datetime": _iso(scan.at_ms),
                "type": kind,
                "nonce": scan.idempotency_key,
            }
        try:
            answer = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            return PushOutcome(
                scan.scan_id, False, error=f"pretix is not reachable ({type(exc).__name__})"
            )
        return _outcome(scan.scan_id, answer)


def _outcome(scan_id: int, answer: httpx.Response) -> PushOutcome:
    """pretix's answer to one push. A JSON verdict (ok, or an error such as a duplicate) is
    final: asking again would get the same. Unreachable, overloaded or refusing our
    credentials is not: the scan stays owed."""
    code = answer.status_code
    if code in (401, 403):
        return PushOutcome(
            scan_id, False, error=f"pretix refused the hub's credentials (HTTP {code})"
        )
    if code == 429 or code >= 500:
        return PushOutcome(scan_id, False, error=f"pretix answered HTTP {code}; trying again")
    data = answer.json() if _is_json(answer) else None
    if code in (200, 201) and isinstance(data, dict):
        verdict = {k: data[k] for k in ("status", "reason", "reason_explanation") if k in data}
        return PushOutcome(scan_id, True, verdict or {"status": "ok"})
    if code in (400, 404) and isinstance(data, dict) and "status" in data:
        verdict = {k: data[k] for k in ("status", "reason", "reason_explanation") if k in data}
        return PushOutcome(scan_id, True, verdict)
    return PushOutcome(scan_id, False, error=f"pretix answered HTTP {code} to a push")
