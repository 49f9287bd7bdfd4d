"""Online check: a gate with a link asks the hub, which decides with the same admission
engine the gates use, over every gate's stored scans of the ticket, and stores the scan in
the same transaction. Two gates checking one ticket at once are serialised (one writer thread
runs every check in turn, and BEGIN IMMEDIATE in the store keeps other hub processes out),
so exactly one of them admits. Checks arriving together share one transaction (group
commit), so a durable commit per check does not cap the hub at a few hundred checks a
second; the credential is verified on that thread too, off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from hub.auth import authenticate_device
from hub.errors import ApiError, Fields, parse_json_object
from hub.keys import CLOCK, STORE
from hub.manifest_routes import MANIFESTS, device_event
from hub.metrics import METRICS
from hub.storage import HubStore
from hub.store_manifests import CheckOutcome, PendingCheck
from hub.thread_owned import ThreadOwned
from manifests.admission import decide, parse_context
from manifests.admission_types import Decision, Direction, GateContext, ScanFact
from manifests.model import Scope, TicketRow
from protocol.credential import ParseResult
from protocol.parse import parse_credential
from protocol.reasons import Verdict

routes = web.RouteTableDef()


class CheckBatcher:
    """Group commit: checks that arrive together are judged and stored in one transaction,
    so one fsync makes a whole batch durable instead of one per check. A check arriving when
    the writer is idle goes at the next turn of the loop (with whatever came in that turn);
    waiting for company measured slower (A/B: a 1 ms wait gave 7 % fewer checks a second, 3 ms
    fewer still). An answer is only sent after its batch committed.

    The transaction runs on one writer thread with its own connection, so the event loop
    keeps reading and verifying requests while a batch waits for its fsync (sqlite releases
    the GIL); checks arriving meanwhile form the next batch. One writer thread keeps batches
    in order; BEGIN IMMEDIATE keeps exactly-one-admit across hub processes too."""

    def __init__(self, store: HubStore) -> None:
        self.store = store
        self._pending: list[tuple[PendingCheck, asyncio.Future[CheckOutcome]]] = []
        self._busy = False
        self._writer = ThreadOwned("hub-check-writer", self._open_writer, HubStore.close)

    def _open_writer(self) -> HubStore:
        writer = HubStore(self.store.path, migrate=False)
        writer.leave_checkpoints_to_background()
        return writer

    async def submit(self, check: PendingCheck) -> CheckOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CheckOutcome] = loop.create_future()
        self._pending.append((check, future))
        if not self._busy:
            self._busy = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        checks = [check for check, _ in batch]
        done = self._writer.run(lambda writer: writer.check_and_record_quietly(checks))
        done.add_done_callback(lambda result: self._finish(batch, result))

    def _finish(
        self,
        batch: list[tuple[PendingCheck, asyncio.Future[CheckOutcome]]],
        result: asyncio.Future[tuple[list[CheckOutcome], list[tuple[str, dict[str, Any]]]]],
    ) -> None:
        exc = result.exception()
        if exc is not None:  # every waiting check gets the failure (a 500), none stored
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            outcomes, fresh = result.result()
            for device_id, row in fresh:
                self.store.scans_committed(device_id, [row])
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
        if self._pending:
            self._flush()
        else:
            self._busy = False

    def close(self) -> None:
        self._writer.close()


CHECKS = web.AppKey("checks", CheckBatcher)


def ticket_row(row: Mapping[str, Any], type_names: Mapping[str, str]) -> TicketRow:
    return TicketRow(
        ticket_id=row["id"],
        status=row["status"],
        generation=row["generation"],
        ticket_type=type_names.get(row["ticket_type_id"] or ""),
        zone=row["zone"],
        seat=row["seat"],
        valid_days=tuple(json.loads(row["valid_days_json"])),
        lock_reason=row["lock_reason"],
        comp_reason=row["comp_reason"],
    )


def scan_fact(row: Mapping[str, Any]) -> ScanFact:
    return ScanFact(
        ticket_id=row["ticket_id"],
        at_ms=row["scanned_ms"],
        direction=Direction(row["direction"]),
        counted=bool(row["counted"]),
        gate_name=row["gate_name"] or "",
        device_id=row["device_id"],
    )


def _gate(request: web.Request, device: dict[str, Any], direction: str | None) -> GateContext:
    """The device's gate; its zones are the gate's (else the device's own zone)."""
    if device["gate_id"] is None:
        raise ApiError(409, "no_gate", "This device has no gate assigned; assign one first.")
    gate = request.app[STORE].get_gate(device["gate_id"], device["venue_id"])
    if gate is None:
        raise ApiError(409, "no_gate", "This device's gate no longer exists.")
    zones = tuple(json.loads(gate["zones_json"])) or ((device["zone"],) if device["zone"] else ())
    return GateContext(
        venue_id=device["venue_id"],
        gate_id=gate["id"],
        gate_name=gate["name"],
        direction=Direction(direction or gate["direction"]),
        zones=zones,
    )


@routes.post("/api/device/check")
async def check(request: web.Request) -> web.Response:
    """Body: `{"event_id", "payload", "seq", "direction"?}`; `seq` is the device's scan-log
    sequence number, so a retried check returns the stored decision and stores nothing."""
    device, raw = await authenticate_device(request)
    f = Fields(parse_json_object(raw), {"event_id", "payload", "seq", "direction"})
    event_id = f.text("event_id", max_len=64) or ""
    payload = f.text("payload", max_len=4096) or ""
    seq = f.integer("seq", low=1) or 0
    direction = f.text("direction", required=False, max_len=10)
    if direction is not None and direction not in {d.value for d in Direction}:
        raise ApiError(400, "invalid_field", "Field direction must be entry or exit.")
    event = device_event(request, device, event_id)
    gate = _gate(request, device, direction)
    now_ms = request.app[CLOCK]()
    scope = Scope(device["venue_id"], gate.gate_id, gate.zones)
    current = request.app[MANIFESTS].current_header(event["id"], scope, now_ms)
    assert current is not None
    source, header = current
    context = parse_context(header, now_ms)
    type_names = {t["id"]: t["name"] for t in source.ticket_types}
    parsed: list[ParseResult] = []  # set by identify(), on the writer thread, before judge()

    def identify(issued: Callable[[str, int], str | None]) -> str | None:
        parsed.append(parse_credential(payload, replace(context, issued=issued)))
        return parsed[0].ticket_id

    def judge(
        ticket: dict[str, Any] | None, scans: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        credential = parsed[0]
        row = None
        if ticket is not None and ticket["event_id"] == event["id"]:
            row = ticket_row(ticket, type_names)
        holder = ticket["holder_name"] if row is not None and ticket else None
        decision: Decision = decide(
            credential, header, row, [scan_fact(s) for s in scans], gate, now_ms, holder
        )
        counted = decision.verdict in (Verdict.ADMIT, Verdict.EXIT)
        as_json = decision.to_json()
        detail = {"decision": as_json, "gate": gate.gate_name, "online": True, "payload": payload}
        stored = {
            "event_id": event["id"],
            "ticket_id": credential.ticket_id,
            "raw_hash": hashlib.sha256(payload.encode()).hexdigest(),
            "verdict": str(decision.verdict),
            "reason": str(decision.reason),
            "direction": str(gate.direction),
            "gate_id": gate.gate_id,
            "zone": device["zone"],
            "scanned_ms": now_ms,
            "manifest_revision": source.revision,
            "counted": int(counted),
            "detail_json": json.dumps(detail),
        }
        return as_json, stored

    pending = PendingCheck(device["id"], seq, identify, judge, now_ms)
    outcome = await request.app[CHECKS].submit(pending)
    if not outcome.repeated:
        request.app[METRICS].checks[outcome.decision.get("verdict", "?")] += 1
    return web.json_response(
        {
            **outcome.decision,
            "scan_id": outcome.scan_id,
            "seq": seq,
            "repeated": outcome.repeated,
            "revision": source.revision,
            "hub_time_ms": now_ms,
        }
    )
