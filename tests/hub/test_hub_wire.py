"""The hub speaks protocol/wire.py: /openapi.json shows the Structs' own schemas for the device
messages, each malformed body is refused with the code and path the hub always answered, and
the upload today's gates send is stored as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub.app import create_app
from hub.device_routes import read_body
from hub.errors import ApiError, Body, Fields, text
from hub.openapi import document
from hub.storage import HubStore
from protocol import wire
from protocol.signing import b64encode
from tests.hub_fixtures import HUB_SEED, Device, Hub, add_show, enroll

SCAN: dict[str, Any] = {  # as today's gate sends it (ScanRecord.to_json)
    "seq": 1,
    "at_ms": 1_790_000_000_000,
    "payload": "NV1:abc",
    "ticket_id": None,
    "verdict": "admit",
    "reason": "admitted",
    "message": "Welcome in.",
    "direction": "entry",
    "gate": "North 1",
    "manual": False,
    "confirmed": None,
    "uploaded": False,
}


def resolved(schema: Any, defs: dict[str, Any]) -> Any:
    """msgspec's schema with its `$defs` references written out."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return resolved(defs[schema["$ref"].removeprefix("#/$defs/")], defs)
        return {k: resolved(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [resolved(v, defs) for v in schema]
    return schema


def struct_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    schema = msgspec.json.schema(struct)
    defs = schema.pop("$defs")
    out: dict[str, Any] = resolved(schema, defs)
    return out


def openapi_json(tmp_path: Path) -> dict[str, Any]:
    """The hub's OpenAPI document in plain JSON types (tuples are lists, as msgspec's schemas
    have them), from an app over a store of its own."""
    store = HubStore(tmp_path / "doc.sqlite")
    try:
        doc: dict[str, Any] = json.loads(
            json.dumps(document(create_app(store, HUB_SEED, expiry_interval_s=None)))
        )
    finally:
        store.close()
    return doc


def test_openapi_shows_the_structs_schemas(tmp_path: Path) -> None:
    doc = openapi_json(tmp_path)
    for path, request, answer in (
        ("/api/device/scans", wire.ScanBatch, wire.ScanBatchAnswer),
        ("/api/device/heartbeat", wire.Heartbeat, wire.HeartbeatAnswer),
        ("/api/device/check", wire.Check, wire.CheckAnswer),
    ):
        op = doc["paths"][path]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body == struct_schema(request), path
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == struct_schema(answer), path
    assert doc["components"]["schemas"]["Error"] == struct_schema(wire.ErrorBody)
    scan = doc["paths"]["/api/device/scans"]["post"]["requestBody"]["content"]
    item = scan["application/json"]["schema"]["properties"]["scans"]["items"]
    assert item["additionalProperties"] is False and set(item["required"]) == {
        "seq",
        "at_ms",
        "payload",
        "verdict",
        "reason",
        "direction",
    }


def batch(*scans: dict[str, Any], **beside: Any) -> bytes:
    return json.dumps({"scans": list(scans), **beside}).encode()


def nth(index: int, **changes: Any) -> list[dict[str, Any]]:
    """Scans 1..index+1 with the last one changed."""
    scans = [{**SCAN, "seq": n + 1} for n in range(index + 1)]
    scans[-1].update(changes)
    return scans


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (batch(*nth(3, seq=0)), "invalid_scan", "scans[3]: seq: expected `int` >= 1"),
        (batch(*nth(3, seq="4")), "invalid_scan", "scans[3]: seq: expected `int`, got `str`"),
        (batch(*nth(2, verdict="maybe")), "invalid_scan", "scans[2]: verdict: invalid enum"),
        (batch(*nth(1, colour="red")), "invalid_scan", "scans[1]: unknown field colour"),
        (batch({"seq": 1}), "invalid_scan", "scans[0]: missing field at_ms"),
        (batch(3), "invalid_scan", "scans[0]: expected `object`, got `int`"),
        (batch(SCAN, {**SCAN, "message": "other"}), "invalid_scan", "needs its own seq"),
        (batch(), "invalid_field", "Field scans: expected `array` of length >= 1"),
        (batch(SCAN, extra=1), "unknown_field", "Unknown field: extra."),
        (batch(SCAN, peer_cursor=-1), "invalid_field", "Field peer_cursor: expected `int` >= 0"),
        (b'{"event_id": "e"}', "missing_field", "Field scans is required."),
        (b"[1]", "expected_object", "Body must be a JSON object."),
        (b"{oops", "malformed_json", "not valid JSON"),
        (batch({**SCAN, "payload": "a\\udc00b"}).replace(b"\\\\", b"\\"), "malformed_json", "lone"),
    ],
)
def test_a_malformed_upload_gets_the_hubs_code_and_words(raw: bytes, code: str, words: str) -> None:
    from hub.scan_upload import parse_upload

    device = {"gate_id": None, "zone": None}
    with pytest.raises(ApiError) as refused:
        parse_upload(read_body(raw, wire.ScanBatch), device)
    assert (refused.value.status, refused.value.code) == (400, code)
    assert words in refused.value.message, refused.value.message


@pytest.mark.parametrize(
    ("into", "body", "code", "words"),
    [
        (wire.Heartbeat, {"battery": 50}, "unknown_field", "Unknown field: battery."),
        (wire.Heartbeat, {"pending_uploads": -1}, "invalid_field", "Field pending_uploads:"),
        (wire.Heartbeat, {"manifest_revisions": {"e": "x"}}, "invalid_field", "revisions"),
        (wire.Check, {"event_id": "e"}, "missing_field", "Field payload is required."),
        (
            wire.Check,
            {"event_id": "e", "payload": "p", "seq": 1, "direction": "up"},
            "invalid_field",
            "Field direction: invalid enum value 'up'.",
        ),
    ],
)
def test_a_malformed_request_gets_the_hubs_code_and_words(
    into: type[msgspec.Struct], body: dict[str, Any], code: str, words: str
) -> None:
    with pytest.raises(ApiError) as refused:
        read_body(json.dumps(body).encode(), into)
    assert (refused.value.status, refused.value.code) == (400, code)
    assert words in refused.value.message, refused.value.message


async def test_todays_gate_upload_is_stored_and_answered_as_before(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    gate = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    scans = [
        {**SCAN, "ticket_id": show.tickets[0]},
        {**SCAN, "seq": 2.0, "verdict": "attention", "confirmed": True, "clock_offset_ms": None},
    ]
    body = {
        "scans": scans,
        "event_id": show.event_id,
        "manifest_revision": None,
        "clock_offset_ms": 1500,
        "peer_cursor": 0,
    }
    resp = await gate.send("POST", "/api/device/scans", body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["acked"] == [1, 2] and "refused" not in answer
    assert set(answer) == {"acked", "revision", "peer_scans", "peer_cursor", "peer_more"}
    assert answer["peer_scans"] == [] and answer["peer_more"] is False
    rows = hub.store.scans_of_device(gate.device_id)
    assert [(r["device_seq"], r["clock_offset_ms"], r["counted"]) for r in rows] == [
        (1, 1500, 1),
        (2, 0, 1),  # its own null offset: none measured, as before
    ]
    # a scan at another gate comes back as a peer entry, in the shape gates read
    other = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    resp = await other.send("POST", "/api/device/scans", {**body, "scans": [SCAN]})
    (peer,) = resp.json()["peer_scans"]
    assert list(peer) == [
        "ticket_id",
        "at_ms",
        "direction",
        "gate_name",
        "device_id",
        "seq",
        "verdict",
    ]
    assert (peer["device_id"], peer["seq"], peer["at_ms"]) == (
        gate.device_id,
        1,
        SCAN["at_ms"] + 1500,
    )
    assert wire.decode(resp.content, wire.ScanBatchAnswer).peer_scans == [wire.PeerEntry(**peer)]


async def test_a_bad_scan_deep_in_a_batch_is_named_and_nothing_stored(hub: Hub) -> None:
    gate = await enroll(hub, hub.a.manager_token, hub.a.venue_id)
    resp = await gate.send("POST", "/api/device/scans", {"scans": nth(3, at_ms=10**30)})
    assert resp.status_code == 400
    error = wire.decode(resp.content, wire.ErrorBody).error
    assert error.code == "invalid_scan" and error.message.startswith("scans[3]: at_ms: "), error
    assert hub.store.scans_of_device(gate.device_id) == []


# -- enrolment: wire.Enroll in, wire.OwnDevice out --------------------------------------------

# hub/device_routes.py's enrolment body before the Struct, and the order its handler read it:
# read_enroll must refuse every body with the same code and the same words.
OLD_ENROLL = Body(
    one_of=("code", "sealed_code"),
    code=text(100, required=False),
    sealed_code=text(2000, required=False),
    hardware_id=text(128),
    public_key=text(100, pattern=r"^[A-Za-z0-9_-]{43}$", code="invalid_public_key"),
    app_version=text(50, required=False),
)
KEY = "A" * 43


def old_refusal(body: dict[str, Any]) -> tuple[str, str] | None:
    try:
        f = Fields(body, OLD_ENROLL)
        if f.text("sealed_code") is None:
            f.need_text("code")
        f.text("hardware_id")
        f.text("public_key")
        f.text("app_version")
    except ApiError as exc:
        return exc.code, exc.message
    return None


def new_refusal(body: dict[str, Any]) -> tuple[str, str] | None:
    try:
        wire.read_enroll(body)
    except wire.WireError as exc:
        return exc.code, exc.detail
    return None


GOOD_ENROL = {"code": "c", "hardware_id": "hw", "public_key": KEY}


@pytest.mark.parametrize(
    "body",
    [
        GOOD_ENROL,
        {"sealed_code": "s" * 2000, "hardware_id": " hw ", "public_key": KEY, "app_version": "1"},
        {**GOOD_ENROL, "sealed_code": None, "app_version": None},
        {"hardware_id": "hw", "public_key": "AAAA"},  # neither: before the key's format
        {**GOOD_ENROL, "sealed_code": "s"},  # both
        {"code": None, "sealed_code": None, "hardware_id": "hw", "public_key": KEY},
        {**GOOD_ENROL, "zeta": 1, "alpha": 2},  # two unknown: the first by name
        {**GOOD_ENROL, "hardware_id": 7},
        {**GOOD_ENROL, "hardware_id": None},
        {"code": "c", "public_key": KEY},
        {**GOOD_ENROL, "hardware_id": ""},
        {**GOOD_ENROL, "hardware_id": " \t"},
        {**GOOD_ENROL, "hardware_id": "h" * 129},
        {**GOOD_ENROL, "hardware_id": "h" * 128},
        {**GOOD_ENROL, "code": "   "},
        {**GOOD_ENROL, "code": "c" * 101},
        {**GOOD_ENROL, "code": 5},
        {**GOOD_ENROL, "code": ["c"]},
        {**GOOD_ENROL, "sealed_code": "s", "code": None, "public_key": "not base64!"},
        {**GOOD_ENROL, "public_key": "AAAA"},
        {**GOOD_ENROL, "public_key": KEY + "\n"},  # Python's $ would take it; the hub never did
        {**GOOD_ENROL, "public_key": ""},
        {**GOOD_ENROL, "public_key": "k" * 101},
        {**GOOD_ENROL, "public_key": True},
        {"code": "c", "hardware_id": "hw"},
        {**GOOD_ENROL, "app_version": "v" * 51},
        {**GOOD_ENROL, "app_version": 2},
        {**GOOD_ENROL, "code": "", "hardware_id": None},  # the first fault in the old order
        {"code": "c", "hardware_id": 1, "public_key": 2, "app_version": 3},
    ],
)
def test_an_enrolment_body_is_refused_with_the_codes_and_words_it_always_was(
    body: dict[str, Any],
) -> None:
    assert new_refusal(body) == old_refusal(body)


async def test_the_enrol_route_answers_the_refusal_and_the_own_device(hub: Hub) -> None:
    from protocol.native import public_key

    for body, code, words in (
        ({"hardware_id": "hw", "public_key": "AAAA"}, "missing_field", "Send exactly one of"),
        ({**GOOD_ENROL, "hardware_id": 7}, "invalid_field", "Field hardware_id must be a string."),
        ({**GOOD_ENROL, "public_key": "AAAA"}, "invalid_public_key", "not in its format"),
        ({**GOOD_ENROL, "extra": 1}, "unknown_field", "Unknown field: extra."),
    ):
        resp = await hub.client.post("/api/device/enroll", json=body)
        error = wire.decode(resp.content, wire.ErrorBody).error
        assert (resp.status_code, error.code) == (400, code) and words in error.message, error
    resp = await hub.client.post("/api/device/enroll", content=b"[1]")
    assert wire.decode(resp.content, wire.ErrorBody).error.code == "expected_object"
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "Gate 1 scanner"},
        headers=hub.auth(hub.a.manager_token),
    )
    seed = bytes(range(100, 132))
    body = {
        "code": f" {made.json()['code']} ",
        "hardware_id": "  hw-7 ",
        "public_key": b64encode(public_key(seed)),
        "app_version": " 2.0 ",
    }
    resp = await hub.client.post("/api/device/enroll", json=body)
    assert resp.status_code == 201, resp.text
    own = wire.decode(resp.content, wire.OwnDevice)
    assert list(resp.json()) == OWN_DEVICE_KEYS  # the keys and order it always answered
    assert own.hardware_id == "hw-7" and own.active and own.gate_id is None
    assert own.hub_public_key == b64encode(public_key(HUB_SEED))
    (row,) = hub.store.list_devices(hub.a.id)
    assert row["app_version"] == "2.0"  # stored stripped, as before
    device = Device(hub, seed)
    device.device_id = own.device_id
    me = await device.send("GET", "/api/device/me")
    assert me.status_code == 200 and list(me.json()) == OWN_DEVICE_KEYS
    assert wire.decode(me.content, wire.OwnDevice) == own


OWN_DEVICE_KEYS = [
    "device_id",
    "venue_id",
    "hardware_id",
    "name",
    "gate_id",
    "zone",
    "active",
    "hub_public_key",
    "hub_key_fingerprint",
    "manifest_key_id",
]


def test_openapi_shows_the_enrolment_structs(tmp_path: Path) -> None:
    doc = openapi_json(tmp_path)
    op = doc["paths"]["/api/device/enroll"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    one_of = body.pop("oneOf")
    assert body == struct_schema(wire.Enroll)
    assert one_of == [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
        for name in ("code", "sealed_code")
    ]
    assert body["required"] == ["hardware_id", "public_key"]
    assert body["additionalProperties"] is False
    own = struct_schema(wire.OwnDevice)
    assert op["responses"]["201"]["content"]["application/json"]["schema"] == own
    me = doc["paths"]["/api/device/me"]["get"]["responses"]["200"]
    assert me["content"]["application/json"]["schema"] == own
    assert own["required"] == OWN_DEVICE_KEYS
