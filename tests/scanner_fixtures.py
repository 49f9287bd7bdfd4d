"""Shared set-up for the gate tests: a signed manifest around "now", real credentials for its
tickets, and a real gate database with that manifest installed the way the CLI installs it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.sample import sample_hub_seed
from manifests.admission import parse_context
from manifests.codec import encode_manifest
from manifests.model import Manifest, TicketRow, TicketStatus
from manifests.policy import HOUR_MS
from manifests.sealing import seal_holder
from manifests.signing import sign_envelope
from protocol.credential import Credential
from protocol.native import public_key
from protocol.parse import parse_credential
from scanner.hub_keys import trust_hub_key
from scanner.install import install_manifest
from scanner.service import GateService
from scanner.store import GateStore
from scanner.sync import SyncWorker
from tests import factories
from tests.hub_fixtures import Show, add_show
from tests.live_hub import LiveHub, enrolled_gate, worker_for

NOW = 1_790_000_000_000  # 2026-09-21 14:13:20 UTC: "now" for the gate fixture of the app tests
HUB_KEY_ID = 1
HUB_SEED = sample_hub_seed()
HUB_PUBLIC = public_key(HUB_SEED)

# Ticket ids are UUIDs: native credentials carry them as 16 bytes.
ADA = "0a000000-0000-4000-8000-00000000000a"  # GA weekend, named
BEN = "0b000000-0000-4000-8000-00000000000b"  # student: staff must check ID
CAL = "0c000000-0000-4000-8000-00000000000c"  # refunded
DOT = "0d000000-0000-4000-8000-00000000000d"  # GA, same order as ADA
ADA_NAME = "Ada Lovelace"
ADA_ORDER = "TT-4100"


@dataclass
class Clock:
    """The gate's clock in tests: fixed, moved by the test."""

    now_ms: int

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class GateFixture:
    manifest: Manifest
    envelope: bytes
    codes: dict[str, str] = field(default_factory=dict)  # ticket id -> credential


def build(now_ms: int, revision: int = 1) -> GateFixture:
    """An event that started an hour ago, a manifest issued 5 minutes ago, four tickets."""
    event = dataclasses.replace(
        factories.EVENT, start_ms=now_ms - HOUR_MS, end_ms=now_ms + 6 * HOUR_MS, days=()
    )
    header = factories.header(
        event=event,
        revision=revision,
        issued_at_ms=now_ms - 5 * 60_000,
        expires_at_ms=now_ms + 48 * HOUR_MS,
    )
    codes = {
        tid: factories.credential(
            tid, valid_from_ms=now_ms - 2 * HOUR_MS, valid_until_ms=now_ms + 8 * HOUR_MS
        )
        for tid in (ADA, BEN, CAL, DOT)
    }
    parsed = parse_credential(codes[ADA], parse_context(header, now_ms))
    assert isinstance(parsed, Credential) and parsed.signature
    rows = [
        factories.row(
            ADA, order_ref=ADA_ORDER, holder_sealed=seal_holder(ADA_NAME, parsed.signature, ADA)
        ),
        factories.row(
            BEN, ticket_type="Student", attention="Check student ID", order_ref="TT-4200"
        ),
        factories.row(CAL, status=TicketStatus.REFUNDED, order_ref="TT-4300"),
        factories.row(DOT, order_ref=ADA_ORDER, seat="R4-S12"),
    ]
    manifest = Manifest(header, {r.ticket_id: r for r in rows})
    envelope = sign_envelope(encode_manifest(manifest), HUB_KEY_ID, HUB_SEED)
    return GateFixture(manifest, envelope, codes)


def install(store: GateStore, fx: GateFixture, now_ms: int) -> None:
    """What `gate-scanner setup` + `load-manifest` do, in-process."""
    store.set_config("device_id", "gate-test-device")
    store.set_gate(factories.gate("North 1"))
    trust_hub_key(store, HUB_KEY_ID, HUB_PUBLIC)
    install_manifest(store, fx.envelope, now_ms)


def open_gate(path: Path, now_ms: int) -> tuple[GateStore, GateFixture]:
    store = GateStore(path)
    fx = build(now_ms)
    install(store, fx, now_ms)
    return store, fx


@dataclass
class GateUnderTest:
    """What a gate test holds: the service, the fixture it was installed from, its clock."""

    service: GateService
    fx: GateFixture
    clock: Clock

    @property
    def codes(self) -> dict[str, str]:
        return self.fx.codes

    @property
    def store(self) -> GateStore:
        return self.service.store


@contextmanager
def opened_gate(path: Path, now_ms: int) -> Iterator[tuple[GateService, GateFixture, Clock]]:
    """A gate service on a fresh database with the fixture's manifest, its clock fixed at
    `now_ms`; the database is closed after the block (the shared body of the gate fixtures)."""
    store, fx = open_gate(path, now_ms)
    clock = Clock(now_ms)
    try:
        yield GateService(store, clock=clock), fx, clock
    finally:
        store.close()


def row_of(fx: GateFixture, ticket_id: str) -> TicketRow:
    return fx.manifest.tickets[ticket_id]


class EnrolledGates:
    """Gate databases enrolled with the live hub, and their sync workers, for one test: after
    it every worker is stopped (off the event loop the hub serves on) and every database is
    closed, whatever the test stopped or closed itself (both are harmless twice)."""

    def __init__(self, live: LiveHub, tmp_path: Path) -> None:
        self.live, self.tmp_path = live, tmp_path
        self.stores: list[GateStore] = []
        self.workers: list[SyncWorker] = []

    async def enrol(self, db: str = "gate.db", **code_fields: Any) -> GateStore:
        """tests.live_hub.enrolled_gate: `db` in tmp_path, enrolled as `gate-scanner enroll`."""
        store = await enrolled_gate(self.live, self.tmp_path, db, **code_fields)
        self.stores.append(store)
        return store

    async def enrol_at_show(self, n_tickets: int = 6) -> tuple[Show, GateStore]:
        """A show on now at the hub (add_show) and a gate enrolled at its north gate."""
        show = add_show(self.live.hub, self.live.hub.a, n_tickets=n_tickets)
        return show, await self.enrol(gate_id=show.north)

    def worker(self, store: GateStore, **kw: Any) -> SyncWorker:
        """tests.live_hub.worker_for: the live hub's URL and the test link policy."""
        return self.adopt(worker_for(self.live, store, **kw))

    def adopt(self, worker: SyncWorker) -> SyncWorker:
        """A worker the test built itself (another URL, another clock): stopped after it too."""
        self.workers.append(worker)
        return worker

    async def close(self) -> None:
        for worker in self.workers:
            await asyncio.to_thread(worker.stop)
        for store in self.stores:
            store.close()
