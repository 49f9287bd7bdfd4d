"""/openapi.json describes every request and response body (issue #10, finding 8), and the
field names it documents are exactly the ones each handler accepts, both ways."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.hub_fixtures import Device, Hub, add_show, enroll


async def document(hub: Hub) -> dict[str, Any]:
    return (await hub.client.get("/openapi.json")).json()


def body_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    body = op.get("requestBody")
    return None if body is None else body["content"]["application/json"]["schema"]


async def test_every_operation_documents_its_bodies(hub: Hub) -> None:
    doc = await document(hub)
    with_body = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            success = [s for s in op["responses"] if s[0] in "123"]
            assert success, f"{method} {path}: no success response documented"
            for status in success:
                for content in op["responses"][status].get("content", {}).values():
                    assert "schema" in content, (method, path, status)
            schema = body_schema(op)
            if schema is None:
                continue
            with_body.add((method.upper(), path))
            assert op["requestBody"]["required"] is True
            assert schema["type"] == "object" and schema["additionalProperties"] is False
            assert set(schema.get("required", [])) <= set(schema["properties"])
    # The 18 routes that read a JSON body (each fuzzed in #10; PATCH a ticket since #12;
    # adding a backend since #14; setting and rotating a venue's TicketToken keys since #15;
    # holding an order at will-call and releasing it since #16).
    assert len(with_body) == 20, sorted(with_body)
    assert ("POST", "/api/device/enroll") in with_body
    enroll_body = body_schema(doc["paths"]["/api/device/enroll"]["post"])
    assert enroll_body is not None and {"hardware_id", "public_key"} <= set(enroll_body["required"])
    venue = doc["paths"]["/api/admin/venues"]["post"]["responses"]["201"]
    assert set(venue["content"]["application/json"]["schema"]["required"]) >= {"id", "name"}


class Caller:
    """Sends a body to a route as the caller it needs (admin token, device, nobody)."""

    def __init__(self, hub: Hub, device: Device) -> None:
        self.hub, self.device = hub, device

    async def send(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body).encode()
        if path.startswith("/api/admin/"):
            headers = self.hub.auth(self.hub.a.admin_token)
        elif path == "/api/device/enroll":
            headers = {}
        else:
            headers = self.device.signed(method, path, raw)
        return await self.hub.client.request(method, path, content=raw, headers=headers)


def unknown(resp: httpx.Response) -> bool:
    error = resp.json().get("error", {}) if resp.status_code >= 400 else {}
    return error.get("code") == "unknown_field" or "unknown field" in error.get("message", "")


def junk(schema: dict[str, Any]) -> Any:
    """A value of the field's type (not necessarily valid): the names are under test."""
    kinds = schema.get("type", "string")
    kind = kinds[0] if isinstance(kinds, list) else kinds
    return {"string": "x", "integer": 1, "array": [], "object": {}, "boolean": True}.get(kind, "x")


async def test_documented_field_names_are_exactly_what_each_handler_accepts(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    other = await enroll(hub, hub.a.manager_token, hub.a.venue_id)  # the one deactivated
    ids = {
        "venue_id": hub.a.venue_id,
        "device_id": other.device_id,
        "event_id": show.event_id,
        "ticket_id": show.tickets[0],
        "backend_id": "no-such-backend",
        "topic": "payment-success",
        "order_ref": "NO-SUCH-ORDER",
    }
    caller = Caller(hub, device)
    doc = await document(hub)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method not in ("post", "patch"):
                continue
            real = path.format(**ids)
            schema = body_schema(op)
            if schema is None:  # it reads no body: an odd field changes nothing
                resp = await caller.send(method.upper(), real, {"zz_not_a_field": 1})
                assert not unknown(resp), (method, path, resp.text)
                continue
            names = {n: junk(s) for n, s in schema["properties"].items()}
            resp = await caller.send(method.upper(), real, names)
            assert not unknown(resp), (method, path, resp.text)
            resp = await caller.send(method.upper(), real, {**names, "zz_not_a_field": 1})
            assert resp.status_code == 400 and unknown(resp), (method, path, resp.text)
    scan_schema = body_schema(doc["paths"]["/api/device/scans"]["post"])
    assert scan_schema is not None
    item = scan_schema["properties"]["scans"]["items"]
    scan = {n: junk(s) for n, s in item["properties"].items()}
    for extra, refused in (({}, False), ({"zz_not_a_field": 1}, True)):
        resp = await caller.send("POST", "/api/device/scans", {"scans": [{**scan, **extra}]})
        assert unknown(resp) is refused, resp.text
