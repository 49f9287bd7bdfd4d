"""The OpenAPI document matches the router both ways; /metrics speaks the Prometheus text
format and counts what happened."""

from __future__ import annotations

import re
from pathlib import Path

from hub.app import create_app
from hub.console.session import is_console_path
from hub.storage import HubStore
from tests.device_api import get_manifest, samples, upload
from tests.hub_fixtures import HUB_SEED, Hub, add_show, enroll


def router_operations(tmp_path: Path) -> set[tuple[str, str]]:
    store = HubStore(tmp_path / "router.sqlite")
    try:
        app = create_app(store, HUB_SEED, expiry_interval_s=None)
        return {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD"
            and route.resource is not None
            and not is_console_path(route.resource.canonical)  # pages for people, not API
        }
    finally:
        store.close()


async def test_document_lists_exactly_the_routes_the_hub_serves(hub: Hub, tmp_path: Path) -> None:
    doc = (await hub.client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = router_operations(tmp_path)
    assert served - documented == set(), "routes missing from the OpenAPI document"
    assert documented - served == set(), "documented routes the hub does not serve"
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (method, path)
            schema = op["responses"]["default"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path))


async def test_metrics_count_scans_manifest_bytes_and_latency(hub: Hub) -> None:
    show = add_show(hub, hub.a)
    device = await enroll(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
    before = samples((await hub.client.get("/metrics")).text)
    assert before["hub_scans_stored_total"] == 0
    body = upload(show.event_id, "t", 1, 1_790_000_000_000)
    resp = await device.send("POST", "/api/device/scans", body)
    assert resp.status_code == 200
    manifest = await get_manifest(device, show.event_id)
    scrape = await hub.client.get("/metrics")
    assert scrape.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    after = samples(scrape.text)
    assert after["hub_scans_stored_total"] == 1
    assert after['hub_manifest_bytes_served_total{kind="full"}'] == len(manifest.content)
    assert after["hub_conflicts"] == 0
    route = "/api/device/scans"
    buckets = [
        (k, v)
        for k, v in after.items()
        if k.startswith(f'hub_request_duration_seconds_bucket{{route="{route}"')
    ]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0].endswith('le="+Inf"}')
    assert counts[-1] == after[f'hub_request_duration_seconds_count{{route="{route}"}}'] == 1
    assert after[f'hub_request_duration_seconds_sum{{route="{route}"}}'] > 0
