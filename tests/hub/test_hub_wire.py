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
from hub.errors import ApiError
from hub.openapi import document
from hub.storage import HubStore
from protocol import wire
from tests.hub_fixtures import HUB_SEED, Hub, add_show, enroll

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


def test_openapi_shows_the_structs_schemas(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "doc.sqlite")
    try:
        doc = json.loads(json.dumps(document(create_app(store, HUB_SEED, expiry_interval_s=None))))
    finally:
        store.close()
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
