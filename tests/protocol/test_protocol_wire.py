"""The device <-> hub messages (protocol/wire.py): every one survives its own round trip, the
JSON today's gates and hubs exchange decodes unchanged, what the Structs encode is that same
JSON, every limit refuses with a path, and every scan fact is made by one constructor."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from hub.engine_facts import scan_fact
from hub.reconcile import HubScan, _count
from manifests.admission_types import Direction, ScanFact
from protocol import wire
from protocol.limits import EARLIEST_MS, LATEST_MS, MAX_CLOCK_OFFSET_MS, MAX_SEQ
from protocol.reasons import Reason, Verdict
from scanner.scanlog import ScanRecord, own_fact, peer_fact

AT = 1_790_000_000_000

# The JSON of one scan exactly as the gate's ScanRecord.to_json wrote it before the Structs
# (dataclasses.asdict of the record): field for field, in this order.
OLD_GATE_SCAN: dict[str, Any] = {
    "seq": 7,
    "at_ms": AT,
    "payload": "NV1:abc",
    "ticket_id": "T-1",
    "verdict": "attention",
    "reason": "attention_required",
    "message": "Check before admitting.",
    "direction": "entry",
    "gate": "North 1",
    "manual": False,
    "confirmed": True,
    "uploaded": False,
}
# An upload body as scanner/sync.py builds it: a peer cursor never set is sent as null.
OLD_GATE_UPLOAD = {
    "scans": [OLD_GATE_SCAN],
    "event_id": "ev-1",
    "manifest_revision": 4,
    "clock_offset_ms": -250,
    "peer_cursor": None,
}

SCAN = wire.Scan(
    seq=1,
    at_ms=AT,
    payload="x",
    verdict=Verdict.ADMIT,
    reason=Reason.ADMITTED,
    direction=Direction.ENTRY,
)
PEER = wire.PeerEntry("T-1", AT, Direction.ENTRY, "South", "dev-2", 3, Verdict.ADMIT)
ENTRY = wire.EntryState(
    ticket_id="T-1",
    event_id="ev-1",
    at_ms=AT,
    direction=Direction.EXIT,
    gate_name="South",
    device_id="dev-2",
    seq=3,
    verdict=Verdict.EXIT,
    counted=True,
)
DISPLAY = wire.Display(holder=None, tier="GA", entries_today=1, comp=False)
MESSAGES: list[msgspec.Struct] = [
    SCAN,
    wire.Scan(
        seq=MAX_SEQ,
        at_ms=LATEST_MS - 1,
        payload="",
        ticket_id=None,
        verdict=Verdict.ATTENTION,
        reason=Reason.ATTENTION_REQUIRED,
        message="m",
        direction=Direction.EXIT,
        gate="g",
        manual=True,
        confirmed=False,
        uploaded=True,
        clock_offset_ms=-MAX_CLOCK_OFFSET_MS,
    ),
    wire.ScanBatch([SCAN], "ev-1", 0, MAX_CLOCK_OFFSET_MS, 12),
    wire.ScanBatch([SCAN]),
    wire.ScanBatchAnswer(acked=[1, 2]),
    wire.ScanBatchAnswer(
        acked=[1],
        refused=[wire.RefusedScan(2, wire.SEQ_CONFLICT, wire.SEQ_CONFLICT_MESSAGE)],
        revision=9,
        peer_scans=[PEER],
        peer_cursor=41,
        peer_more=False,
    ),
    PEER,
    wire.Heartbeat("1.2", 3, {"ev-1": 4}, 2),
    wire.Heartbeat(),
    wire.HeartbeatAnswer(True, AT, 2, None),
    wire.Check("ev-1", "NV1:abc", 5, Direction.EXIT),
    wire.CheckAnswer(
        verdict=Verdict.DENY,
        reason=Reason.LOCKED,
        message="Ticket is locked.",
        ticket_id="T-1",
        display=DISPLAY,
        detail="why",
        scan_id=17,
        seq=5,
        repeated=False,
        revision=3,
        hub_time_ms=AT,
    ),
    wire.Hello("dev-1", None),
    ENTRY,
    wire.ErrorBody(wire.ErrorDetail("not_found", "No such event.")),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_its_round_trip(message: msgspec.Struct) -> None:
    encoded = msgspec.json.encode(message)
    assert wire.decode(encoded, type(message)) == message
    assert wire.convert(json.loads(encoded), type(message)) == message


def test_live_messages_are_told_apart_by_their_type() -> None:
    assert msgspec.json.decode(msgspec.json.encode(ENTRY), type=wire.LiveMessage) == ENTRY
    hello = b'{"type": "hello", "device_id": "d", "event_id": "ev"}'
    assert msgspec.json.decode(hello, type=wire.LiveMessage) == wire.Hello("d", "ev")
    with pytest.raises(msgspec.ValidationError):  # a future message type: the gate skips it
        msgspec.json.decode(b'{"type": "news", "x": 1}', type=wire.LiveMessage)


def test_todays_gate_upload_decodes_unchanged() -> None:
    batch = wire.decode(json.dumps(OLD_GATE_UPLOAD).encode(), wire.ScanBatch)
    assert (batch.event_id, batch.manifest_revision, batch.clock_offset_ms) == ("ev-1", 4, -250)
    assert batch.peer_cursor is None
    (scan,) = batch.scans
    assert msgspec.to_builtins(scan) == OLD_GATE_SCAN
    assert scan.clock_offset_ms is msgspec.UNSET  # absent: the batch's offset applies
    # the oldest shape the hub ever took: no message, gate, manual, confirmed or uploaded
    bare = {k: OLD_GATE_SCAN[k] for k in ("seq", "at_ms", "payload", "verdict", "reason")}
    bare["direction"] = "exit"
    scan = wire.decode(json.dumps({"scans": [bare]}).encode(), wire.ScanBatch).scans[0]
    assert (scan.ticket_id, scan.message, scan.gate, scan.manual, scan.confirmed) == (
        None,
        "",
        "",
        False,
        None,
    )


def test_a_scan_record_uploads_as_it_always_did() -> None:
    record = ScanRecord(
        seq=7,
        at_ms=AT,
        payload="NV1:abc",
        ticket_id="T-1",
        verdict=Verdict.ATTENTION,
        reason="attention_required",
        message="Check before admitting.",
        direction=Direction.ENTRY,
        gate="North 1",
        confirmed=True,
    )
    as_json = record.to_json()
    assert as_json == OLD_GATE_SCAN
    assert list(as_json) == list(OLD_GATE_SCAN)  # same order, so the same bytes
    assert json.dumps(as_json) == json.dumps(OLD_GATE_SCAN)
    assert type(as_json["verdict"]) is str and type(as_json["direction"]) is str


def test_todays_hub_answers_decode_for_the_gate() -> None:
    """Byte for byte what the hub sent before the Structs (hub/device_routes.py, hub/live.py),
    and what the Structs encode now."""
    upload_answer = {
        "acked": [1, 2],
        "refused": [{"seq": 3, "code": "seq_conflict", "message": wire.SEQ_CONFLICT_MESSAGE}],
        "revision": 9,
        "peer_scans": [
            {
                "ticket_id": "T-1",
                "at_ms": AT,
                "direction": "entry",
                "gate_name": "South",
                "device_id": "dev-2",
                "seq": 3,
                "verdict": "admit",
            }
        ],
        "peer_cursor": 41,
        "peer_more": False,
    }
    decoded = wire.decode(json.dumps(upload_answer).encode(), wire.ScanBatchAnswer)
    assert msgspec.to_builtins(decoded) == upload_answer
    assert list(msgspec.to_builtins(decoded)) == list(upload_answer)
    assert msgspec.to_builtins(wire.ScanBatchAnswer(acked=[5])) == {"acked": [5]}
    beat = {"ok": True, "hub_time_ms": AT, "hub_keys_version": 2, "event_id": None}
    assert msgspec.to_builtins(wire.decode(json.dumps(beat).encode(), wire.HeartbeatAnswer)) == beat
    entry = {
        "type": "entry_state",
        "ticket_id": "T-1",
        "event_id": "ev-1",
        "at_ms": AT,
        "direction": "exit",
        "gate_name": "South",
        "device_id": "dev-2",
        "seq": 3,
        "verdict": "exit",
        "counted": True,
    }
    assert json.dumps(msgspec.to_builtins(ENTRY)) == json.dumps(entry)
    assert wire.decode(json.dumps(entry).encode(), wire.EntryState) == ENTRY
    # answers take fields a newer hub adds; an older hub's entry without `counted` counts
    newer = {**entry, "zone": "GA"}
    del newer["counted"]
    assert wire.decode(json.dumps(newer).encode(), wire.EntryState) == ENTRY


def scan_with(**changes: Any) -> bytes:
    return json.dumps({"scans": [OLD_GATE_SCAN, {**OLD_GATE_SCAN, "seq": 8, **changes}]}).encode()


@pytest.mark.parametrize(
    ("raw", "code", "path"),
    [
        (scan_with(seq=0), wire.INVALID_FIELD, ("scans", 1, "seq")),
        (scan_with(seq=MAX_SEQ + 1), wire.INVALID_FIELD, ("scans", 1, "seq")),
        (scan_with(seq="8"), wire.INVALID_FIELD, ("scans", 1, "seq")),
        (scan_with(seq=True), wire.INVALID_FIELD, ("scans", 1, "seq")),
        (scan_with(seq=8.5), wire.INVALID_FIELD, ("scans", 1, "seq")),
        (scan_with(at_ms=EARLIEST_MS - 1), wire.INVALID_FIELD, ("scans", 1, "at_ms")),
        (scan_with(at_ms=LATEST_MS), wire.INVALID_FIELD, ("scans", 1, "at_ms")),
        (scan_with(at_ms=10**30), wire.INVALID_FIELD, ("scans", 1, "at_ms")),
        (scan_with(payload="x" * 4097), wire.INVALID_FIELD, ("scans", 1, "payload")),
        (scan_with(ticket_id="t" * 65), wire.INVALID_FIELD, ("scans", 1, "ticket_id")),
        (scan_with(verdict="maybe"), wire.INVALID_FIELD, ("scans", 1, "verdict")),
        (scan_with(reason="because"), wire.INVALID_FIELD, ("scans", 1, "reason")),
        (scan_with(direction="up"), wire.INVALID_FIELD, ("scans", 1, "direction")),
        (scan_with(message="m" * 1001), wire.INVALID_FIELD, ("scans", 1, "message")),
        (scan_with(gate="g" * 201), wire.INVALID_FIELD, ("scans", 1, "gate")),
        (scan_with(manual=1), wire.INVALID_FIELD, ("scans", 1, "manual")),
        (scan_with(confirmed="yes"), wire.INVALID_FIELD, ("scans", 1, "confirmed")),
        (
            scan_with(clock_offset_ms=MAX_CLOCK_OFFSET_MS + 1),
            wire.INVALID_FIELD,
            ("scans", 1, "clock_offset_ms"),
        ),
        (scan_with(colour="red"), wire.UNKNOWN_FIELD, ("scans", 1, "colour")),
        # an unknown field is named before any bad value, wherever they stand
        (scan_with(verdict="maybe", colour="red"), wire.UNKNOWN_FIELD, ("scans", 1, "colour")),
        (b'{"scans": [], "extra": 1}', wire.UNKNOWN_FIELD, ("extra",)),
        (b'{"scans": [{"seq": 1}]}', wire.MISSING_FIELD, ("scans", 0, "at_ms")),
        (b"{}", wire.MISSING_FIELD, ("scans",)),
        (b'{"scans": []}', wire.INVALID_FIELD, ("scans",)),
        (json.dumps({"scans": [OLD_GATE_SCAN] * 501}).encode(), wire.INVALID_FIELD, ("scans",)),
        (b'{"scans": [3]}', wire.INVALID_FIELD, ("scans", 0)),
        (b'{"scans": {}}', wire.INVALID_FIELD, ("scans",)),
        (b"[]", wire.INVALID_FIELD, ()),
        (b'{"scans": [], "event_id": " "}', wire.INVALID_FIELD, ("scans",)),
        (b'{"scans": [], "peer_cursor": -1}', wire.INVALID_FIELD, ("scans",)),
        (b"{oops", wire.MALFORMED, ()),
        (b'{"scans": NaN}', wire.MALFORMED, ()),
    ],
)
def test_each_malformed_upload_is_refused_with_its_path(
    raw: bytes, code: str, path: wire.Path
) -> None:
    with pytest.raises(wire.WireError) as refused:
        wire.decode(raw, wire.ScanBatch)
    assert (refused.value.code, refused.value.path) == (code, path), refused.value
    assert refused.value.detail


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"scans": [OLD_GATE_SCAN], "event_id": " \t"}, ("event_id",)),
        ({"scans": [OLD_GATE_SCAN], "event_id": "e" * 65}, ("event_id",)),
        ({"scans": [OLD_GATE_SCAN], "peer_cursor": -1}, ("peer_cursor",)),
        ({"scans": [OLD_GATE_SCAN], "manifest_revision": 10**30}, ("manifest_revision",)),
        ({"scans": [OLD_GATE_SCAN], "clock_offset_ms": 10**30}, ("clock_offset_ms",)),
    ],
)
def test_a_bad_value_beside_the_scans_is_named(body: dict[str, Any], path: wire.Path) -> None:
    with pytest.raises(wire.WireError) as refused:
        wire.decode(json.dumps(body).encode(), wire.ScanBatch)
    assert (refused.value.code, refused.value.path) == (wire.INVALID_FIELD, path)


@pytest.mark.parametrize(
    ("into", "body", "code", "path"),
    [
        (wire.Heartbeat, {"pending_uploads": -1}, wire.INVALID_FIELD, ("pending_uploads",)),
        (wire.Heartbeat, {"pending_uploads": "many"}, wire.INVALID_FIELD, ("pending_uploads",)),
        (wire.Heartbeat, {"app_version": "  "}, wire.INVALID_FIELD, ("app_version",)),
        (wire.Heartbeat, {"app_version": "v" * 51}, wire.INVALID_FIELD, ("app_version",)),
        (
            wire.Heartbeat,
            {"manifest_revisions": {"ev": "x"}},
            wire.INVALID_FIELD,
            ("manifest_revisions", "..."),
        ),
        (
            wire.Heartbeat,
            {"manifest_revisions": {str(n): 1 for n in range(101)}},
            wire.INVALID_FIELD,
            ("manifest_revisions",),
        ),
        (wire.Heartbeat, {"hub_keys_version": 10**30}, wire.INVALID_FIELD, ("hub_keys_version",)),
        (wire.Heartbeat, {"battery": 50}, wire.UNKNOWN_FIELD, ("battery",)),
        (wire.Check, {"event_id": "ev", "payload": "p"}, wire.MISSING_FIELD, ("seq",)),
        (
            wire.Check,
            {"event_id": "ev", "payload": " ", "seq": 1},
            wire.INVALID_FIELD,
            ("payload",),
        ),
        (
            wire.Check,
            {"event_id": "ev", "payload": "p", "seq": 1, "direction": "sideways"},
            wire.INVALID_FIELD,
            ("direction",),
        ),
        (wire.Check, {"event_id": "ev", "payload": "p", "seq": 0}, wire.INVALID_FIELD, ("seq",)),
    ],
)
def test_each_malformed_request_is_refused_with_its_path(
    into: type[msgspec.Struct], body: dict[str, Any], code: str, path: wire.Path
) -> None:
    with pytest.raises(wire.WireError) as refused:
        wire.decode(json.dumps(body).encode(), into)
    assert (refused.value.code, refused.value.path) == (code, path), refused.value


def test_an_integral_number_is_the_integer_it_is() -> None:
    """5591.0 is an integer to JSON Schema (and so to /openapi.json's readers)."""
    raw = json.dumps({"scans": [{**OLD_GATE_SCAN, "seq": 3.0, "at_ms": float(AT)}]}).encode()
    (scan,) = wire.decode(raw, wire.ScanBatch).scans
    assert (scan.seq, scan.at_ms) == (3, AT) and type(scan.seq) is int
    check = wire.decode(b'{"event_id": "e", "payload": "p", "seq": 2.0}', wire.Check)
    assert check.seq == 2 and type(check.seq) is int


def test_a_scan_offset_absent_or_null_stays_told_apart() -> None:
    """Absent: the batch's offset applies (hub/scan_upload.py); null: the scan has none."""
    null = {**OLD_GATE_SCAN, "clock_offset_ms": None}
    scan = wire.decode(json.dumps({"scans": [null]}).encode(), wire.ScanBatch).scans[0]
    assert scan.clock_offset_ms is None
    assert "clock_offset_ms" not in msgspec.to_builtins(SCAN)


def test_the_not_blank_pattern_is_the_hubs() -> None:
    from hub.errors import NOT_BLANK

    assert wire.NOT_BLANK == NOT_BLANK


def test_one_constructor_makes_every_scan_fact() -> None:
    """The gate's own log row, its peer row, a hub row, a merged scan, a peer entry and a
    pushed entry all become the same fact (the gate's clock is the hub's minus the offset)."""
    want = ScanFact("T-1", AT, Direction.ENTRY, True, "North 1", "dev-1")
    assert own_fact(("T-1", AT, "entry", "attention", 1, "North 1"), "dev-1") == want
    assert own_fact(("T-1", AT, "entry", "attention", None, "North 1"), "dev-1") == ScanFact(
        "T-1", AT, Direction.ENTRY, False, "North 1", "dev-1"
    )
    assert own_fact(("T-1", AT, "entry", "admit", None, "North 1"), "dev-1") == want
    assert peer_fact(("T-1", AT, "entry", 1, "North 1", "dev-1")) == want
    row = {
        "ticket_id": "T-1",
        "scanned_ms": AT,
        "direction": "entry",
        "counted": 1,
        "gate_name": "North 1",
        "device_id": "dev-1",
    }
    assert scan_fact(row) == want
    assert scan_fact({**row, "gate_name": None}).gate_name == ""
    merged: list[ScanFact] = []
    scan = HubScan(
        "dev-1",
        4,
        "North 1",
        Direction.ENTRY,
        "T-1",
        AT - 50,
        50,
        1,
        Verdict.ADMIT,
        Reason.ADMITTED,
    )
    assert _count(merged, scan, None) is scan and merged == [want]
    peer = wire.PeerEntry("T-1", AT + 300, Direction.ENTRY, "North 1", "dev-1", 4, Verdict.ADMIT)
    assert ScanFact.pushed(peer, 300) == want
    pushed = wire.EntryState(
        ticket_id="T-1",
        at_ms=AT + 300,
        direction=Direction.ENTRY,
        gate_name="North 1",
        device_id="dev-1",
        seq=4,
        verdict=Verdict.ADMIT,
    )
    assert ScanFact.pushed(pushed, 300) == want
    with pytest.raises(ValueError):
        ScanFact.of("T-1", AT, "sideways", True, "", "d")


@pytest.mark.parametrize(
    ("verdict", "confirmed", "moved"),
    [
        ("admit", None, True),
        ("exit", None, True),
        ("deny", None, False),
        ("deny", True, False),
        ("attention", None, False),
        ("attention", False, False),
        ("attention", 0, False),
        ("attention", True, True),
        ("attention", 1, True),
    ],
)
def test_a_scan_moved_the_person_only_when_it_counted(
    verdict: str, confirmed: bool | int | None, moved: bool
) -> None:
    assert ScanFact.moved(verdict, confirmed) is moved
    assert ScanFact.moved(Verdict(verdict), confirmed) is moved


# -- requests as the gate builds them; enrolment -------------------------------------------------


def test_the_gates_requests_leave_out_what_it_does_not_know() -> None:
    """The gate always left out a field it had nothing for (never null): the Structs it
    builds its requests from encode the same."""
    bare = msgspec.to_builtins(wire.ScanBatch([SCAN], clock_offset_ms=-250))
    assert list(bare) == ["scans", "clock_offset_ms"]
    full = wire.ScanBatch([SCAN], "ev-1", 4, -250, 0)
    assert list(msgspec.to_builtins(full)) == [
        "scans",
        "event_id",
        "manifest_revision",
        "clock_offset_ms",
        "peer_cursor",
    ]
    assert msgspec.to_builtins(wire.Heartbeat("1.2", 0)) == {
        "app_version": "1.2",
        "pending_uploads": 0,
    }


OLD_GATE_ENROL = {  # scanner/enroll.py's body before the Structs: sealed, never the code
    "sealed_code": "sealed-bytes",
    "hardware_id": "box-1",
    "public_key": "A" * 43,
    "app_version": "1.2",
}
OLD_OWN_DEVICE = {  # hub/device_routes.py own_device_json
    "device_id": "dev-1",
    "venue_id": "venue-1",
    "hardware_id": "box-1",
    "name": "North 1",
    "gate_id": None,
    "zone": "GA",
    "active": True,
    "hub_public_key": "B" * 43,
    "hub_key_fingerprint": "ab:cd",
    "manifest_key_id": 1,
}


def test_the_enrolment_messages_are_todays_json() -> None:
    body = wire.Enroll(
        sealed_code="sealed-bytes", hardware_id="box-1", public_key="A" * 43, app_version="1.2"
    )
    assert json.dumps(msgspec.to_builtins(body)) == json.dumps(OLD_GATE_ENROL)
    assert wire.decode(json.dumps(OLD_GATE_ENROL).encode(), wire.Enroll) == body
    assert wire.read_enroll({**OLD_GATE_ENROL, "code": None}) == body
    own = wire.decode(json.dumps(OLD_OWN_DEVICE).encode(), wire.OwnDevice)
    assert json.dumps(msgspec.to_builtins(own)) == json.dumps(OLD_OWN_DEVICE)
    with pytest.raises(wire.WireError) as missing:
        wire.decode(b'{"device_id": "dev-1"}', wire.OwnDevice)
    assert missing.value.code == wire.MISSING_FIELD


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({"hardware_id": "box", "public_key": "A" * 43}, wire.MISSING_FIELD, ()),
        ({**OLD_GATE_ENROL, "code": "c"}, wire.INVALID_FIELD, ()),
        ({**OLD_GATE_ENROL, "public_key": "A" * 42}, wire.INVALID_PUBLIC_KEY, ("public_key",)),
        ({**OLD_GATE_ENROL, "hardware_id": " "}, wire.INVALID_FIELD, ("hardware_id",)),
        ({**OLD_GATE_ENROL, "b": 1, "a": 2}, wire.UNKNOWN_FIELD, ("a",)),
    ],
)
def test_each_malformed_enrolment_is_refused_with_its_code(
    body: dict[str, Any], code: str, path: wire.Path
) -> None:
    with pytest.raises(wire.WireError) as refused:
        wire.read_enroll(body)
    assert (refused.value.code, refused.value.path) == (code, path)
