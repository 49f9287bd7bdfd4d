"""The API contract fuzzer of issue #10: schemathesis over /openapi.json against a live hub on
127.0.0.1, as an admin (bearer token) and as an enrolled device (every request Ed25519-signed
with a fresh nonce). It must find no server error, no answer the document does not describe,
no schema-valid request refused and no schema-invalid one accepted."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth

from hub.openapi import ADMIN, DEVICE, OPERATIONS
from hub.store_api import ConnectedBackend, WillCallStep
from protocol.signing import HEADER_SIGNATURE, sign_request
from tests.hub_fixtures import Device, Hub, Show, add_show, enroll, start_hub, stop_hub

pytestmark = pytest.mark.slow
T = TypeVar("T")
EXAMPLES = 50
PENDING = "sign-me"  # the auth provider's mark; the session signs the request as sent
CALLS: Counter[str] = Counter()
FUZZ_ORDER = "fuzz-order"


@dataclass
class LiveHub:
    hub: Hub
    show: Show
    device: Device  # the fuzzer's own identity, at the North gate
    spare: Device  # the one admin operations may rename, move or deactivate
    backend_id: str  # a pretix backend at an address where nothing listens

    @property
    def ids(self) -> dict[str, str]:
        return {
            "venue_id": self.hub.a.venue_id,
            "device_id": self.spare.device_id,
            "event_id": self.show.event_id,
            "ticket_id": self.show.tickets[0],
            "backend_id": self.backend_id,
            "topic": "payment-success",
            "key_set": "1",  # the venue's first TicketToken key set, once the fuzzer set one
            "order_ref": FUZZ_ORDER,  # the show's order held at will-call (its first ticket)
        }


class Loop:
    """The hub's event loop on a thread of its own: schemathesis calls it synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    loop = Loop()
    hub, runner = loop.run(start_hub(tmp_path_factory.mktemp("fuzz"), expiry_interval_s=None))

    async def seed() -> LiveHub:
        show = add_show(hub, hub.a)
        device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
        spare = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
        store, now = hub.store, hub.clock()
        ticket = store.get_ticket(show.tickets[0], hub.a.id)
        assert ticket is not None
        store.update_ticket_fields(ticket, hub.a.id, {"order_ref": FUZZ_ORDER}, "test", now)
        event = store.get_event(show.event_id, hub.a.id)
        assert event is not None
        store.hold_will_call(WillCallStep(event, hub.a.id, FUZZ_ORDER, "test", now), "Fuzz Holder")
        backend = hub.store.create_backend(
            hub.a.id,
            ConnectedBackend(
                venue_id=hub.a.venue_id,
                kind="pretix",
                name="box office pretix",
                settings={"url": "http://127.0.0.1:9", "organizer": "o", "auth": "token"},
            ),
            "test",
            hub.clock(),
        )
        return LiveHub(hub, show, device, spare, backend["id"])

    try:
        yield loop.run(seed())
    finally:
        loop.run(stop_hub(hub, runner))
        loop.close()


class Signer(requests.auth.AuthBase):
    """Signs a device request over the exact bytes requests sends (path, query and body)."""

    def __init__(self, live: LiveHub) -> None:
        self.live = live

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if r.headers.get(HEADER_SIGNATURE) != PENDING:
            return r  # no credentials, or ones schemathesis made up: sent as they are
        body = r.body or b""
        device = self.live.device
        r.headers.update(
            sign_request(
                device_id=device.device_id,
                seed=device.seed,
                method=r.method or "GET",
                path=r.path_url,
                body=body.encode() if isinstance(body, str) else body,
                now_ms=self.live.hub.clock(),
            )
        )
        return r


@pytest.fixture(scope="module")
def session(live: LiveHub) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.auth = Signer(live)
        yield s


@pytest.fixture(scope="module")
def hub_schema(live: LiveHub) -> Any:
    return schemathesis.openapi.from_url(f"{live.hub.url}/openapi.json")


# Every documented operation but the WebSocket (not a request/response), both ways.
FUZZED = [op for op in sorted(OPERATIONS) if op != ("GET", "/api/device/live")]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def authorise(case: Any, live: LiveHub, auth: str) -> None:
    """The caller the operation documents: the admin token, or the device (signed later)."""
    if auth == ADMIN:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {live.hub.a.admin_token}"}
    elif auth == DEVICE:
        case.headers = {**(case.headers or {}), HEADER_SIGNATURE: PENDING}


def real_ids(case: Any, live: LiveHub, mode: GenerationMode) -> None:
    """Half of the valid cases name the venue's real event, ticket, venue and spare device
    (chosen from the case itself, so a run repeats), so handlers get past "not found"."""
    if not case.path_parameters or mode is not GenerationMode.POSITIVE:
        return
    if zlib.crc32(repr(sorted(case.path_parameters.items())).encode()) % 2:
        return
    for name in case.path_parameters:
        case.path_parameters[name] = live.ids[name]


def repeats_a_seq(case: Any) -> bool:
    """The one rule of the document JSON Schema cannot state (see the scans' description)."""
    scans = case.body.get("scans") if isinstance(case.body, dict) else None
    if not isinstance(scans, list) or not all(isinstance(s, dict) for s in scans):
        return False
    seqs = [s.get("seq") for s in scans]
    seqs = [int(q) if isinstance(q, float) and q.is_integer() else q for q in seqs]  # 3.0 is 3
    return len({repr(q) for q in seqs}) != len(seqs)


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("operation", FUZZED, ids=" ".join)
def test_hub_honours_its_openapi_document(
    operation: tuple[str, str],
    mode: GenerationMode,
    live: LiveHub,
    hub_schema: Any,
    session: requests.Session,
) -> None:
    method, path = operation
    auth = OPERATIONS[operation][1]
    api_operation = hub_schema[path][method]
    raw = api_operation.definition.raw
    if mode is GenerationMode.NEGATIVE and not (raw.get("parameters") or raw.get("requestBody")):
        pytest.skip("no parameter and no body: nothing to make invalid")
    strategy = api_operation.as_strategy(generation_mode=mode)
    # Negative cases carry the credentials set here, which ignored_auth takes for generated
    # ones; refusing missing or wrong credentials is checked on the valid cases.
    excluded = [ignored_auth] if mode is GenerationMode.NEGATIVE else []
    calls = []

    @given(strategy)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        assume(not repeats_a_seq(case))
        real_ids(case, live, mode)
        authorise(case, live, auth)
        calls.append(1)
        case.call_and_validate(session=session, excluded_checks=excluded)

    run()
    CALLS[f"{method} {path} {mode}"] = len(calls)
