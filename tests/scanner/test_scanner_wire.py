"""The gate speaks protocol/wire.py: its heartbeat, upload and enrolment are built from the wire
Structs (the same JSON as before), and every hub answer it reads is decoded by its Struct. A hub
answer that is not what the wire says (a wrong type, an acknowledgement of a seq never sent,
a peer movement or live entry with a direction that is none) fails the exchange or is
ignored, logged: the gate never crashes, and a scan is marked uploaded only when the hub's
answer lists its seq for the batch it was sent in.

The hub here is httpx's MockTransport answering whatever the test says (the real hub's side
is tests/hub/test_hub_wire.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from manifests.admission_types import Decision, Direction
from protocol import wire
from protocol.native import public_key
from protocol.reasons import Reason, Verdict
from protocol.signing import b64encode, key_fingerprint
from scanner.connection import ConnectionMonitor, LinkPolicy
from scanner.enroll import Enrollment, EnrollmentFailed, enroll
from scanner.hub_client import HubClient, hub_error
from scanner.hub_keys import trusted_hub_keys
from scanner.live import LiveChannel, entry_facts, live_message
from scanner.service import GateService
from scanner.settings import DEVICE_ID, DEVICE_SEED_KEY, HUB_KEYS_VERSION, peer_cursor
from scanner.store import GateStore
from scanner.sync import SyncWorker
from tests.gate_scans import record_admits

NOW = 1_790_000_000_000
POLICY = LinkPolicy(fail_after=3, recover_after=1, poll_s=0.05)
EVENT_ID = "ev-1"
Answer = Callable[[httpx.Request], httpx.Response]


class FakeHub:
    """Answers the heartbeat well, the manifest with 304, and each upload with the next of
    `uploads` (then 503). Keeps every request's path and body."""

    def __init__(self, *uploads: Any, beat: Any = None) -> None:
        self.uploads = list(uploads)
        self.beat = (
            beat
            if beat is not None
            else {
                "ok": True,
                "hub_time_ms": NOW,
                "hub_keys_version": 1,
                "event_id": None,
            }
        )
        self.sent: list[tuple[str, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.sent.append((request.url.path, body))
        if request.url.path == "/api/device/heartbeat":
            return answer(self.beat)
        if request.url.path == "/api/device/scans":
            if not self.uploads:
                return httpx.Response(503, json={"error": {"code": "busy", "message": "later"}})
            return answer(self.uploads.pop(0))
        if request.url.path.endswith("/manifest"):
            return httpx.Response(304)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "No."}})

    def bodies(self, path: str) -> list[bytes]:
        return [body for sent, body in self.sent if sent == path]


def answer(value: Any) -> httpx.Response:
    """Raw bytes as they are; anything else as JSON."""
    if isinstance(value, bytes):
        return httpx.Response(200, content=value, headers={"Content-Type": "application/json"})
    return httpx.Response(200, json=value)


def gate(tmp_path: Path, scans: int) -> GateStore:
    store = GateStore(tmp_path / "gate.db")
    store.set_setting(DEVICE_ID, "gate-1")
    store.set_key(DEVICE_SEED_KEY, bytes(32))
    store.set_setting(HUB_KEYS_VERSION, 1)  # as the fake hub announces: no key-set fetch
    record_admits(store, [(f"sha256:{i:064x}", f"ticket-{i}") for i in range(scans)], NOW - 60_000)
    return store


def worker(store: GateStore, hub: FakeHub, **kwargs: Any) -> SyncWorker:
    http = httpx.Client(transport=httpx.MockTransport(hub))
    return SyncWorker(
        HubClient(store, "http://hub.test", lambda: NOW, http),
        monitor=ConnectionMonitor(POLICY),
        **kwargs,
    )


def pending(store: GateStore) -> list[int]:
    return [r.seq for r in store.pending_uploads()]


PEER = {
    "ticket_id": "ticket-77",
    "at_ms": NOW - 5_000,
    "direction": "entry",
    "gate_name": "South",
    "device_id": "gate-2",
    "seq": 9,
    "verdict": "admit",
}


def test_an_answer_acknowledging_seqs_never_sent_marks_only_the_batch_sent(
    tmp_path: Path,
) -> None:
    with gate(tmp_path, 4) as store:
        # batches of two: the first answer also "acknowledges" 3 and 4 (not sent yet) and a
        # seq the gate never had; the second upload is refused (503)
        hub = FakeHub({"acked": [1, 2, 3, 4, 99]})
        sync = worker(store, hub, batch_size=2)
        try:
            assert not sync.sync_once()
        finally:
            sync.stop()
        assert pending(store) == [3, 4]
        sent = [wire.decode(b, wire.ScanBatch) for b in hub.bodies("/api/device/scans")]
        assert [[s.seq for s in batch.scans] for batch in sent] == [[1, 2], [3, 4]]


def test_a_seq_the_hub_leaves_out_stays_pending(tmp_path: Path) -> None:
    with gate(tmp_path, 3) as store:
        hub = FakeHub({"acked": [1, 3]})
        sync = worker(store, hub)
        try:
            assert sync.sync_once()  # the hub kept less than was sent: the rest next cycle
        finally:
            sync.stop()
        assert pending(store) == [2]


BAD_PEER = {**PEER, "direction": "sideways"}


@pytest.mark.parametrize(
    "reply",
    [
        {"acked": 3},  # the highest seq as a number: no hub ever answered so
        {"acked": ["1", "2"]},
        {"acked": [1, True]},
        {"acked": None},
        {"peer_cursor": 4},  # no acked at all
        {"acked": [1], "refused": [{"seq": "2", "code": wire.SEQ_CONFLICT, "message": ""}]},
        {"acked": [1, 2], "peer_scans": [BAD_PEER], "peer_cursor": 5},
        {"acked": [1, 2], "peer_scans": [{**PEER, "at_ms": "soon"}], "peer_cursor": 5},
        {"acked": [1, 2], "peer_scans": [PEER], "peer_cursor": "next"},
        [1, 2],
        b"<html>proxy</html>",
        b"",
    ],
)
def test_a_malformed_upload_answer_fails_the_cycle_and_marks_nothing(
    tmp_path: Path, reply: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with gate(tmp_path, 2) as store:
        hub = FakeHub(reply)
        sync = worker(store, hub, event_id=EVENT_ID)
        try:
            with caplog.at_level(logging.WARNING, "scanner.sync"):
                assert not sync.sync_once()
        finally:
            sync.stop()
        assert sync.snapshot().last_error == "bad_hub_response"
        assert pending(store) == [1, 2]
        assert store.history_for("ticket-77") == []
        assert store.setting(peer_cursor(EVENT_ID)) == 0
        assert "bad_hub_response" in caplog.text and "upload answer" in caplog.text


def test_peer_movements_in_the_answer_become_facts_on_the_gate_clock(tmp_path: Path) -> None:
    exit_peer = {**PEER, "ticket_id": "ticket-78", "direction": "exit", "gate_name": ""}
    with gate(tmp_path, 1) as store:
        hub = FakeHub({"acked": [1], "peer_scans": [PEER, exit_peer], "peer_cursor": 12})
        hub.beat = {**hub.beat, "hub_time_ms": NOW + 3_000}  # the hub runs 3 s ahead
        sync = worker(store, hub, event_id=EVENT_ID)
        try:
            assert sync.sync_once()
            offset = sync.hub.offset
        finally:
            sync.stop()
        assert offset == 3_000
        (fact,) = store.history_for("ticket-77")
        assert (fact.at_ms, fact.direction, fact.gate_name, fact.device_id) == (
            NOW - 5_000 - 3_000,
            Direction.ENTRY,
            "South",
            "gate-2",
        )
        (other,) = store.history_for("ticket-78")
        assert other.direction == Direction.EXIT and other.counted
        assert store.setting(peer_cursor(EVENT_ID)) == 12
        assert pending(store) == []


def test_a_refused_seq_stays_pending_and_says_why(tmp_path: Path) -> None:
    refused = {"seq": 2, "code": wire.SEQ_CONFLICT, "message": wire.SEQ_CONFLICT_MESSAGE}
    other = {"seq": 3, "code": "something_new", "message": "?"}  # another code: ignored
    with gate(tmp_path, 3) as store:
        sync = worker(store, FakeHub({"acked": [1], "refused": [refused, other]}))
        try:
            assert not sync.sync_once()
        finally:
            sync.stop()
        assert sync.snapshot().last_error == wire.SEQ_CONFLICT
        assert pending(store) == [2, 3]


@pytest.mark.parametrize(
    "beat",
    [
        {"ok": True, "hub_time_ms": "now", "hub_keys_version": 1, "event_id": None},
        {"ok": True, "hub_time_ms": NOW, "hub_keys_version": 1, "event_id": 7},
        {"ok": True, "hub_keys_version": 1, "event_id": None},
        {"ok": True, "hub_time_ms": NOW, "hub_keys_version": True, "event_id": None},
        b"[]",
    ],
)
def test_a_malformed_heartbeat_answer_fails_the_cycle_before_any_upload(
    tmp_path: Path, beat: Any
) -> None:
    with gate(tmp_path, 1) as store:
        hub = FakeHub({"acked": [1]}, beat=beat)
        sync = worker(store, hub)
        try:
            assert not sync.sync_once()
        finally:
            sync.stop()
        assert sync.snapshot().last_error == "bad_hub_response"
        assert hub.bodies("/api/device/scans") == [] and pending(store) == [1]
        assert sync.hub.offset is None


def test_the_gates_requests_are_the_wire_structs_json_as_before(tmp_path: Path) -> None:
    with gate(tmp_path, 2) as store:
        hub = FakeHub({"acked": [1, 2]}, {"acked": []})
        sync = worker(store, hub, event_id=EVENT_ID)
        try:
            assert sync.sync_once()
            store.record_scan(
                "sha256:" + "f" * 64,
                Decision(Verdict.ADMIT, Reason.ADMITTED, "Welcome in.", "ticket-x"),
                at_ms=NOW,
                direction=Direction.EXIT,
                gate="North 1",
            )
            assert sync.sync_once()
        finally:
            sync.stop()
        beats = hub.bodies("/api/device/heartbeat")
        # what it sent before the Structs: only what it knows, in this order, compact
        assert list(json.loads(beats[0])) == ["app_version", "pending_uploads", "hub_keys_version"]
        assert json.loads(beats[0])["pending_uploads"] == 2
        for beat in beats:
            wire.decode(beat, wire.Heartbeat)
        uploads = hub.bodies("/api/device/scans")
        first_upload = json.loads(uploads[0])
        # the offset the heartbeat measured goes up with the batch; no revision installed yet
        assert list(first_upload) == ["scans", "event_id", "clock_offset_ms", "peer_cursor"]
        assert first_upload["peer_cursor"] == 0 and first_upload["event_id"] == EVENT_ID
        assert uploads[0] == json.dumps(first_upload, separators=(",", ":")).encode()
        assert [s["seq"] for s in first_upload["scans"]] == [1, 2]
        assert json.loads(uploads[1])["scans"][0]["direction"] == "exit"
        for body in uploads:
            wire.decode(body, wire.ScanBatch)


def test_hub_error_bodies_are_read_by_the_wire_struct() -> None:
    refused = hub_error(401, b'{"error": {"code": "bad_signature", "message": "No."}}')
    assert (refused.code, refused.message, refused.status) == ("bad_signature", "No.", 401)
    for body in (
        b"<html>Bad gateway</html>",
        b'{"error": {"code": 5, "message": "No."}}',
        b'{"error": "bad_signature"}',
        b'{"error": {"code": "", "message": ""}}',
        b"[]",
    ):
        error = hub_error(502, body)
        assert (error.code, error.message) == ("http_502", "the hub answered HTTP 502"), body


ENTRY = {
    "type": "entry_state",
    "ticket_id": "ticket-5",
    "event_id": EVENT_ID,
    "at_ms": NOW,
    "direction": "exit",
    "gate_name": "South",
    "device_id": "gate-2",
    "seq": 4,
    "verdict": "exit",
    "counted": True,
}


@pytest.mark.parametrize(
    ("message", "logged"),
    [
        ({**ENTRY, "direction": "sideways"}, "direction"),
        ({**ENTRY, "at_ms": "now"}, "at_ms"),
        ({**ENTRY, "counted": "yes"}, "counted"),
        ({k: v for k, v in ENTRY.items() if k != "device_id"}, "device_id"),
        ([ENTRY], "expected `object`"),
        ({**ENTRY, "type": "hello"}, None),  # a hello with entry fields: no movement
        ({"type": "fireworks"}, None),  # a future message type: ignored quietly
    ],
)
def test_a_bad_live_message_is_ignored_and_logged_never_merged(
    tmp_path: Path, message: Any, logged: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with gate(tmp_path, 0) as store:
        channel = LiveChannel(store, "http://hub.test", clock=lambda: NOW)
        with caplog.at_level(logging.WARNING, "scanner.live"):
            channel._receive(json.dumps(message))
        assert store.history_for("ticket-5") == [] and channel.received == 0
        if logged is None:
            assert caplog.text == ""
        else:
            assert "malformed" in caplog.text and logged in caplog.text, caplog.text
        channel._receive(json.dumps(ENTRY))  # the good one after it still merges
        (fact,) = store.history_for("ticket-5")
        assert (fact.direction, fact.device_id, fact.at_ms) == (Direction.EXIT, "gate-2", NOW)
        assert channel.received == 1


def test_an_entries_message_merges_every_other_gates_entry_at_once(tmp_path: Path) -> None:
    """A batch from the hub (wire.Entries) is merged whole, in one commit, skipping the
    gate's own scans and what it knew; the listener hears just the new ones."""
    heard: list[list[Any]] = []
    with gate(tmp_path, 0) as store:
        channel = LiveChannel(store, "http://hub.test", clock=lambda: NOW, on_merge=heard.append)
        own = {**ENTRY, "ticket_id": "ticket-7", "device_id": store.device_id}
        other = {**ENTRY, "ticket_id": "ticket-6", "at_ms": NOW + 5_000}
        channel._receive(json.dumps(ENTRY))  # known before the batch
        batch = {"type": "entries", "entries": [ENTRY, other, own]}
        channel._receive(json.dumps(batch))
        assert [f.ticket_id for f in heard[-1]] == ["ticket-6"]
        assert channel.received == 2
        assert [f.device_id for f in store.history_for("ticket-6")] == ["gate-2"]
        assert store.history_for("ticket-7") == []
        assert len(store.history_for("ticket-5")) == 1
        assert "batch=1" in channel.path()  # it asks the hub for batches


def test_live_messages_decode_as_their_structs() -> None:
    hello = live_message(b'{"type": "hello", "device_id": "gate-1", "event_id": "ev-1"}')
    assert hello == wire.Hello("gate-1", "ev-1")
    entry = live_message(json.dumps({**ENTRY, "zone": "GA"}))  # a newer hub's extra field
    assert isinstance(entry, wire.EntryState) and entry.seq == 4
    (uncounted,) = entry_facts({**ENTRY, "counted": False}, offset_ms=1_000)
    assert not uncounted.counted and uncounted.at_ms == NOW - 1_000
    assert entry_facts(b"{not json", 0) == []


# -- enrolment: the body is wire.Enroll, the answer is decoded as wire.OwnDevice ---------------

HUB_SEED = bytes(range(32))


class EnrolHub:
    """GET /api/hub shows HUB_SEED's key; POST /api/device/enroll answers `answer`."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/hub":
            return httpx.Response(200, json={"public_key": b64encode(public_key(HUB_SEED))})
        self.bodies.append(request.read())
        if isinstance(self.answer, bytes):
            return httpx.Response(201, content=self.answer)
        return httpx.Response(201, json=self.answer)


def own_device(**changes: Any) -> dict[str, Any]:
    key = public_key(HUB_SEED)
    return {
        "device_id": "dev-9",
        "venue_id": "venue-1",
        "hardware_id": "hw-1",
        "name": "North 1 scanner",
        "gate_id": "gate-north",
        "zone": "GA",
        "active": True,
        "hub_public_key": b64encode(key),
        "hub_key_fingerprint": key_fingerprint(key),
        "manifest_key_id": 3,
        **changes,
    }


def enrol_through(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub: EnrolHub
) -> tuple[GateStore, Callable[[], Enrollment]]:
    import scanner.enroll

    class Client(HubClient):
        def __init__(self, store: GateStore, base: str, clock: Any, *, timeout_s: float) -> None:
            http = httpx.Client(transport=httpx.MockTransport(hub))
            super().__init__(store, base, clock, http, timeout_s=timeout_s)

    monkeypatch.setattr(scanner.enroll, "HubClient", Client)
    store = GateStore(tmp_path / "gate.db")
    service = GateService(store, clock=lambda: NOW)
    return store, lambda: enroll(service, "http://hub.test", "CODE-1", hardware_id="hw-1")


def test_enrolment_sends_the_wire_body_and_takes_the_decoded_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub = EnrolHub(own_device(zone=None, gate_id=None, newer_field="ignored"))
    store, run = enrol_through(monkeypatch, tmp_path, hub)
    with store:
        enrolled = run()
        assert (enrolled.device_id, enrolled.venue_id) == ("dev-9", "venue-1")
        assert enrolled.gate.gate_id == "dev-9" and enrolled.gate.zones == ()  # none given
        assert trusted_hub_keys(store) == {3: public_key(HUB_SEED)}
    (sent,) = hub.bodies
    body = wire.decode(sent, wire.Enroll)
    assert body.code is None and body.sealed_code and body.hardware_id == "hw-1"
    # as the gate always sent it: no code in clear, these keys in this order
    assert list(json.loads(sent)) == ["sealed_code", "hardware_id", "public_key", "app_version"]


@pytest.mark.parametrize(
    "answer",
    [
        own_device(manifest_key_id="3"),
        own_device(device_id=None),
        own_device(active="yes"),
        {k: v for k, v in own_device().items() if k != "venue_id"},
        own_device(hub_public_key="not base64!"),
        [own_device()],
        b"<html>welcome</html>",
    ],
)
def test_a_malformed_enrolment_answer_enrols_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: Any
) -> None:
    store, run = enrol_through(monkeypatch, tmp_path, EnrolHub(answer))
    with store:
        with pytest.raises(EnrollmentFailed) as failed:
            run()
        assert failed.value.code == "bad_hub_response", failed.value.message
        assert not store.device_id and store.key(DEVICE_SEED_KEY) is None
        assert trusted_hub_keys(store) == {} and store.gate() is None
