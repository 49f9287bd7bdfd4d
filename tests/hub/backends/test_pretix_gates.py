"""A pretix venue with our gates at its doors, all real: pretix (tests/pretix_server.py), the
hub as `gate-hub serve`, gates as `gate-scanner` processes. pretix's own codes (random and
pretix_sig1) scan offline after the first pull; every entry reaches pretix's check-in list
exactly once at the gate's time, also across a SIGKILLed hub and a pretix outage; a
cancellation and a new secret reach an online gate within 10 s; and trouble upstream is said
in `gate-hub backend status` and the hub's log while the gates keep working."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.local_hub import free_port, until
from hub.storage import HubStore
from tests.gate_cli import gate_cli, gate_hub, ok
from tests.pretix_server import Event, Position, PretixServer
from tests.processes import Gate, HubProcess

pytestmark = [pytest.mark.pretix, pytest.mark.slow]

T, V = "Riverside Events", "Riverside Park"


@dataclass
class Site:
    """One pretix event fronted by one hub, and what a test needs to reach both."""

    pretix: PretixServer
    event: Event
    hub: HubProcess
    tmp: Path

    @property
    def db(self) -> Path:
        return self.hub.db

    def status(self) -> dict[str, Any]:
        out = ok(gate_hub(self.db, "backend", "status", "shop", "--tenant", T, "--json"))
        return dict(json.loads(out))

    def event_id(self) -> str:
        events = json.loads(ok(gate_hub(self.db, "event", "list", "--tenant", T, "--json")))
        (event,) = [e for e in events if e["name"] == self.event.slug]
        return str(event["id"])

    def enrol_gate(self, name: str) -> Path:
        uri = ok(
            gate_hub(
                self.db,
                "enrollment",
                "create",
                "--tenant",
                T,
                "--venue",
                V,
                "--name",
                name,
                "--hub-url",
                self.hub.url,
            )
        )
        gate_db = self.tmp / f"{name}.db"
        ok(gate_cli(gate_db, "enroll", uri))
        return gate_db

    def pull_now(self) -> None:
        """A pull that surely comes after what the test just made in pretix (the serving
        hub's own may have run just before): `gate-hub backend pull`, beside the hub."""
        ok(gate_hub(self.db, "backend", "pull", "shop", "--tenant", T))

    def hub_log(self) -> str:
        return Path(self.hub.log.name).read_text(errors="replace")

    def hub_scans(self) -> list[dict[str, Any]]:
        store = HubStore(str(self.db))
        try:
            return list(store.db.query("SELECT * FROM scans ORDER BY id"))
        finally:
            store.close()


def check(gate_db: Path, code: str, *extra: str) -> dict[str, Any]:
    proc = gate_cli(gate_db, "check", code, "--json", *extra)
    assert proc.returncode in (0, 1), (proc.stdout, proc.stderr)
    return dict(json.loads(proc.stdout))


def refused_within_10_s(gate_db: Path, code: str, what: str) -> dict[str, Any]:
    """The gate's dry-run answer to `code` once it refuses it, which must be within 10 s
    (polled for 20 s, so a late refusal fails on its time rather than on the wait)."""
    started = time.monotonic()
    denied = until(
        lambda: (d := check(gate_db, code, "--dry-run"))["verdict"] == "deny" and d, 20, what
    )
    assert time.monotonic() - started < 10, f"{what}: {time.monotonic() - started:.1f} s"
    return dict(denied)


@pytest.fixture
def site(pretix: PretixServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """An event starting in 30 min, a device for the hub, a hub with the backend added and
    serving (pulling every second). pretix is started again if a test stopped it."""
    org = pretix.create_organizer(f"o{uuid.uuid4().hex[:8]}").slug
    start = datetime.now(UTC) + timedelta(minutes=30)
    event = pretix.create_event(
        f"fest{uuid.uuid4().hex[:6]}", organizer=org, date_from=start,
        date_to=start + timedelta(hours=4),
    )  # fmt: skip
    db = tmp_path / "hub.db"
    ok(gate_hub(db, "tenant", "create", T))
    ok(gate_hub(db, "venue", "create", V, "--tenant", T, "--timezone", "Europe/London"))
    device = pretix.create_device(org)
    added = gate_hub(
        db, "backend", "add", "shop", "--tenant", T, "--venue", V, "--url", pretix.url,
        "--init-token", "-", "--event", event.slug, stdin=device.initialization_token + "\n",
    )  # fmt: skip
    ok(added)
    assert device.initialization_token not in added.stdout + added.stderr
    monkeypatch.setenv("GATE_HUB_BACKEND_PULL_INTERVAL_S", "1")
    hub = HubProcess(db, free_port())
    hub.start()
    try:
        yield Site(pretix, event, hub, tmp_path)
    finally:
        hub.stop()
        hub.log.close()
        if not pretix.running:
            pretix.start()


def checked_in(site: Site, positions: list[Position]) -> list[dict[str, Any]]:
    wanted = {p.id for p in positions}
    return [c for c in site.pretix.checkins(site.event, successful=True) if c["position"] in wanted]


def test_pretix_codes_scan_offline_and_each_entry_reaches_pretix_once(site: Site) -> None:
    pretix, event = site.pretix, site.event
    plain = pretix.create_order(event, ["Ada Lovelace", "Alan Turing"]).positions
    pretix.set_secret_generator(event, "pretix_sig1")
    signed = pretix.create_order(event, ["Grace Hopper"]).positions[0]
    assert signed.secret != plain[0].secret and len(signed.secret) > 60
    ok(gate_hub(site.db, "backend", "pull", "shop", "--tenant", T))  # on demand, from the CLI
    gate_db = site.enrol_gate("North 1")  # enrols and pulls its manifest
    site.hub.stop()  # the gate is on its own now

    ada = check(gate_db, plain[0].secret)
    assert (ada["verdict"], ada["reason"]) == ("admit", "admitted"), ada
    assert "Ada Lovelace" in json.dumps(ada)
    grace = check(gate_db, signed.secret)
    assert (grace["verdict"], grace["reason"]) == ("admit", "admitted"), grace
    again = check(gate_db, plain[0].secret)
    assert (again["verdict"], again["reason"]) == ("deny", "already_admitted")
    unknown = check(gate_db, "abcdefghjkmnpqrstuvwxyz23456789")
    assert unknown["verdict"] == "deny"
    disk = b"".join(p.read_bytes() for p in site.tmp.glob("North 1.db*"))
    for secret in (plain[0].secret, plain[1].secret, signed.secret):
        assert secret.encode() not in disk  # only keyed hashes rest on the gate

    site.hub.start()
    synced = gate_cli(gate_db, "sync")
    assert synced.returncode == 0, synced.stderr
    until(lambda: site.status()["owed_scans"] == 0 and site.status()["pushed_scans"] >= 3, 30,
          "the hub to push the gate's scans")  # fmt: skip
    entries = checked_in(site, [plain[0], signed])
    assert sorted(c["position"] for c in entries) == sorted([plain[0].id, signed.id])
    by_ticket = {s["device_seq"]: s for s in site.hub_scans()}
    ada_scan = by_ticket[1]
    ada_entry = next(c for c in entries if c["position"] == plain[0].id)
    at = datetime.fromisoformat(ada_entry["datetime"].replace("Z", "+00:00"))
    assert round(at.timestamp() * 1000) == ada_scan["scanned_ms"] + ada_scan["clock_offset_ms"]
    failed = [c for c in pretix.checkins(event, successful=False) if c["position"] == plain[0].id]
    assert [c["error_reason"] for c in failed] == ["already_redeemed"]  # the second scan


def test_entries_reach_pretix_once_across_an_outage_and_a_killed_hub(site: Site) -> None:
    pretix, event = site.pretix, site.event
    positions = pretix.create_order(event, [f"Guest {i}" for i in range(40)]).positions
    site.pull_now()  # the background pull may have run before the order was made
    gate_db = site.enrol_gate("North 1")
    pretix.stop()  # the ticket shop is down for a while; the doors are not
    gate = Gate(gate_db, site.event_id())
    try:
        verdicts = [gate.scan(p.secret) for p in positions]
        assert all(v[1] == "admit" for v in verdicts), verdicts[:3]
        until(lambda: site.status()["owed_scans"] == 40, 30, "the uploads to reach the hub")
        status = until(lambda: (s := site.status())["last_push_error"] and s, 30, "a failed push")
        assert "not reachable" in status["last_push_error"], status
        assert "not reachable" in (status["last_pull_error"] or ""), status
        assert '"backend push failed"' in site.hub_log() or "backend push failed" in site.hub_log()

        pretix.start()
        until(lambda: len(checked_in(site, positions)) >= 5, 60, "pushes to start")
        site.hub.proc.kill() if site.hub.proc else None  # SIGKILL in the middle of pushing
        site.hub.proc.wait(10) if site.hub.proc else None
        site.hub.proc = None
        site.hub.start()
        until(lambda: site.status()["owed_scans"] == 0, 90, "the outbox to drain")
    finally:
        gate.close()
    entries = checked_in(site, positions)
    assert sorted(c["position"] for c in entries) == sorted(p.id for p in positions)
    assert site.status()["last_push_error"] is None


def test_a_cancellation_and_a_new_secret_reach_an_online_gate_within_10_s(site: Site) -> None:
    pretix, event = site.pretix, site.event
    order = pretix.create_order(event, ["Ada Lovelace", "Alan Turing"])
    ada, alan = order.positions
    site.pull_now()  # the background pull may have run before the order was made
    gate_db = site.enrol_gate("North 1")
    assert check(gate_db, ada.secret, "--dry-run")["verdict"] == "admit"
    gate = Gate(gate_db, site.event_id())  # online: syncing with the hub while it scans
    try:
        pretix.cancel_order(event, order.code)
        denied = refused_within_10_s(gate_db, ada.secret, "the cancellation at the gate")
        assert denied["reason"] == "cancelled" and "cancelled" in denied["message"].lower()

        other = pretix.create_order(event, ["Grace Hopper"]).positions[0]
        until(lambda: check(gate_db, other.secret, "--dry-run")["verdict"] == "admit", 20,
              "the new order at the gate")  # fmt: skip
        fresh = pretix.regenerate_position_secret(event, other.id)
        old = refused_within_10_s(gate_db, other.secret, "the old secret refused at the gate")
        assert old["reason"] == "superseded"
        assert gate.scan(fresh.secret)[1] == "admit"
        assert alan.id  # the whole order was cancelled: Alan too
        assert check(gate_db, alan.secret, "--dry-run")["reason"] == "cancelled"
    finally:
        gate.close()


def test_trouble_upstream_is_said_while_gates_keep_working(site: Site) -> None:
    pretix, event = site.pretix, site.event
    ada = pretix.create_order(event, ["Ada Lovelace"]).positions[0]
    site.pull_now()  # the background pull may have run before the order was made
    site.hub.stop()
    pretix.stop()  # pretix unreachable as the hub starts
    site.hub.start()
    status = until(lambda: (s := site.status())["last_pull_error"] and s, 30, "a failed pull")
    assert "is not reachable" in status["last_pull_error"]
    assert "backend pull failed" in site.hub_log()
    metrics = httpx.get(site.hub.url + "/metrics", timeout=10).text
    failed = re.search(r'hub_backend_errors_total\{backend="shop",kind="pull"\} (\d+)', metrics)
    assert failed is not None and int(failed.group(1)) >= 1, metrics
    gate_db = site.enrol_gate("North 1")  # the hub serves gates from what it has
    assert check(gate_db, ada.secret)["verdict"] == "admit"
    pretix.start()
    until(lambda: site.status()["last_pull_error"] is None, 30, "pulls to work again")
    assert "backend pull works again" in site.hub_log()

    device_id = json.loads(ok(gate_hub(site.db, "backend", "list", "--tenant", T, "--json")))
    assert device_id
    revoke_hub_devices(pretix, event)
    status = until(
        lambda: "credentials" in ((s := site.status())["last_pull_error"] or "") and s,
        30,
        "the revoked device to be reported",
    )
    assert "HTTP 401" in status["last_pull_error"]
    assert check(gate_db, ada.secret, "--dry-run")["reason"] == "already_admitted"
    for text in (json.dumps(status), site.hub_log()):
        assert "Device " not in text  # no token, nor its header, in status or log


def revoke_hub_devices(pretix: PretixServer, event: Event) -> None:
    """pretix revokes the organizer's devices, as an organizer does when a device is lost
    (its API has no call for it: the backend's "Revoke access" button does this)."""
    pretix.shell(
        """
        from pretix.base.models import Device
        Device.objects.filter(organizer__slug=PARAMS["org"]).update(revoked=True)
        """,
        org=event.organizer,
    )
