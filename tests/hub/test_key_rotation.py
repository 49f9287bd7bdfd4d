"""Hub key rotation end to end: the real hub on 127.0.0.1 following its keyring file, the
`gate-hub key` commands changing it, and a real gate store synced by SyncWorker. The gate
learns a new key while the old one still signs, takes manifests and credentials signed by
the new one after `activate`, and refuses the old key's once it is removed; a forged or
replayed key set changes nothing. Also: a big manifest is built off the event loop."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from hub.cli import main as hub_cli
from hub.keyring import KeyringWatch, load_keyring
from hub.manifest_build import HubKeys, ManifestBuilder
from hub.manifest_routes import BUILDS
from hub.storage import HubStore
from manifests.delta import verify_manifest
from manifests.keyset import KeySet, sign_key_set
from manifests.model import Scope
from manifests.signing import ManifestRejected, open_envelope
from protocol.native import public_key
from protocol.reasons import Reason, Verdict
from protocol.signing import b64encode, key_fingerprint
from scanner.enroll import enroll
from scanner.hub_client import HubClient
from scanner.hub_keys import apply_hub_key_set, trusted_hub_keys
from scanner.install import install_manifest
from scanner.service import GateService
from scanner.settings import HUB_KEYS_VERSION
from scanner.store import GateStore
from scanner.sync import SyncWorker
from tests.hub_fixtures import HUB_SEED, Hub, Show, add_show, start_hub, stop_hub
from tests.hub_fixtures import enroll as enroll_device

KEY_1 = public_key(HUB_SEED)


@dataclass
class Rig:
    hub: Hub
    runner: web.AppRunner
    db: Path
    key_file: Path

    def key(self, *args: str) -> int:
        """`gate-hub key ...` against this hub's database and keyring."""
        return hub_cli(["key", *args, "--db", str(self.db), "--key-file", str(self.key_file)])

    def seed(self, key_id: int) -> bytes:
        return next(k.seed for k in load_keyring(self.key_file).keys if k.key_id == key_id)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    key_file = tmp_path / "hub.sqlite.hubkey"
    key_file.write_text(HUB_SEED.hex() + "\n")  # an older hub's key file: key 1, current
    key_file.chmod(0o600)
    hub, runner = await start_hub(tmp_path, expiry_interval_s=None, hub_keys=KeyringWatch(key_file))
    yield Rig(hub, runner, tmp_path / "hub.sqlite", key_file)
    await stop_hub(hub, runner)


@dataclass
class Gate:
    store: GateStore
    service: GateService
    worker: SyncWorker
    http: httpx.Client
    manifest_keys: list[int]  # key id of every manifest the hub sent, in order

    async def sync(self) -> None:
        assert await asyncio.to_thread(self.worker.sync_once), self.worker.snapshot()

    def close(self) -> None:
        self.worker.stop()
        self.http.close()
        self.store.close()


async def enrolled_gate(rig: Rig, show: Show, tmp_path: Path) -> Gate:
    hub = rig.hub
    made = await hub.client.post(
        f"/api/admin/venues/{hub.a.venue_id}/enrollments",
        json={"name": "North 1 scanner", "gate_id": show.north},
        headers=hub.auth(hub.a.manager_token),
    )
    assert made.status_code == 201, made.text
    store = GateStore(tmp_path / "gate.db")
    service = GateService(store, clock=hub.clock)
    await asyncio.to_thread(enroll, service, hub.url, made.json()["code"], hardware_id="hw-1")
    keys: list[int] = []

    def seen(resp: httpx.Response) -> None:
        if resp.request.url.path.endswith("/manifest") and resp.status_code == 200:
            keys.append(int(resp.headers["X-Manifest-Key-Id"]))

    http = httpx.Client(timeout=10, event_hooks={"response": [seen]})
    worker = SyncWorker(HubClient(store, hub.url, hub.clock, http), event_id=show.event_id)
    return Gate(store, service, worker, http, keys)


async def credential(hub: Hub, ticket_id: str) -> str:
    resp = await hub.client.get(
        f"/api/admin/tickets/{ticket_id}/credential", headers=hub.auth(hub.a.box_office_token)
    )
    assert resp.status_code == 200, resp.text
    return resp.text


def key_1_manifest(rig: Rig, show: Show) -> bytes:
    """The event's manifest for the north gate as the hub would sign it with key 1 alone."""
    served = ManifestBuilder(rig.hub.store, HubKeys.single(HUB_SEED, 1)).serve(
        show.event_id, Scope(rig.hub.a.venue_id, show.north, ("GA",)), None, rig.hub.clock()
    )
    assert served is not None
    return served.envelope


async def test_rotate_activate_retire_moves_the_gate_from_key_1_to_key_2(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = rig.hub
    show = add_show(hub, hub.a, n_tickets=9)
    gate = await enrolled_gate(rig, show, tmp_path)

    def behind() -> list[str]:
        capsys.readouterr()
        assert rig.key("list") == 0
        return [d["id"] for d in json.loads(capsys.readouterr().out)["devices_behind"]]

    try:
        await gate.sync()
        assert trusted_hub_keys(gate.store) == {1: KEY_1}
        assert gate.store.setting(HUB_KEYS_VERSION) == 1
        old_code = await credential(hub, show.tickets[0])
        assert gate.service.preview(old_code).verdict == Verdict.ADMIT

        # rotate: key 2 is announced and trusted, key 1 still signs
        assert rig.key("rotate") == 0
        assert behind() == [gate.store.device_id]  # `key list` names who is not ready yet
        await gate.sync()
        key_2 = public_key(rig.seed(2))
        assert trusted_hub_keys(gate.store) == {1: KEY_1, 2: key_2}
        await gate.sync()  # its next heartbeat reports the key set it took
        assert behind() == []
        assert gate.manifest_keys == [1, 1]  # the full one, then the delta the rotation made
        header = gate.service.header()
        assert header is not None and dict(header.issuer_keys) == {1: KEY_1, 2: key_2}
        identity = (await hub.client.get("/api/hub")).json()
        assert identity["key_id"] == 1 and set(identity["trusted_keys"]) == {"1", "2"}

        # activate: key 2 signs manifests and new credentials; key 1's still verify
        assert rig.key("activate") == 0
        await gate.sync()
        assert gate.manifest_keys[-1] == 2
        new_code = await credential(hub, show.tickets[1])
        assert gate.service.preview(new_code).verdict == Verdict.ADMIT
        assert gate.service.preview(old_code).verdict == Verdict.ADMIT
        assert await credential(hub, show.tickets[0]) == old_code  # issued once, kept
        open_envelope(key_1_manifest(rig, show), trusted_hub_keys(gate.store))  # still trusted

        # retire 1: after the next sync the gate refuses key 1's manifests and credentials
        assert rig.key("retire", "--key-id", "1") == 0
        await gate.sync()
        assert trusted_hub_keys(gate.store) == {2: key_2}
        refused = gate.service.preview(old_code)
        assert (refused.verdict, refused.reason) == (Verdict.DENY, Reason.UNKNOWN_KEY)
        assert gate.service.preview(new_code).verdict == Verdict.ADMIT
        # a newer revision, so only the signature can refuse it
        await hub.lock([show.tickets[2]], "fraud_investigation")
        with pytest.raises(ManifestRejected) as exc:
            install_manifest(gate.store, key_1_manifest(rig, show), hub.clock())
        assert exc.value.code == "unknown_key"
        await gate.sync()  # the real hub's manifest (key 2) goes in
        assert gate.manifest_keys[-1] == 2 and gate.service.header() is not None
    finally:
        gate.close()


async def test_a_forged_or_replayed_key_set_is_refused_and_changes_nothing(
    rig: Rig, tmp_path: Path
) -> None:
    hub = rig.hub
    show = add_show(hub, hub.a)
    gate = await enrolled_gate(rig, show, tmp_path)
    try:
        await gate.sync()
        before = (trusted_hub_keys(gate.store), gate.store.setting(HUB_KEYS_VERSION))
        evil_seed = secrets.token_bytes(32)
        evil = public_key(evil_seed)
        now = hub.clock()
        forged = [
            # an unknown key id
            sign_key_set(KeySet(99, 9, {9: evil}, now), evil_seed),
            # claims to be key 1, signed by someone else
            sign_key_set(KeySet(99, 1, {1: evil}, now), evil_seed),
        ]
        codes = []
        for doc in forged:
            with pytest.raises(ManifestRejected) as exc:
                apply_hub_key_set(gate.store, doc)
            codes.append(exc.value.code)
        assert codes == ["unknown_key", "bad_signature"]
        assert (trusted_hub_keys(gate.store), gate.store.setting(HUB_KEYS_VERSION)) == before

        # A genuine but old document (replayed after a newer one) brings nothing back.
        assert rig.key("rotate") == 0
        replay = HubKeys.single(HUB_SEED).key_set(now)  # version 1: only key 1
        await gate.sync()
        assert set(trusted_hub_keys(gate.store)) == {1, 2}
        assert rig.key("activate") == 0 and rig.key("retire", "--key-id", "1") == 0
        await gate.sync()
        assert set(trusted_hub_keys(gate.store)) == {2}
        current = HubKeys(2, rig.seed(2), {2: public_key(rig.seed(2))}, 3).key_set(now)
        with pytest.raises(ManifestRejected) as exc:
            apply_hub_key_set(gate.store, current)
        assert exc.value.code == "stale_keys"
        with pytest.raises(ManifestRejected):
            apply_hub_key_set(gate.store, replay)  # signed by key 1, no longer trusted
        assert set(trusted_hub_keys(gate.store)) == {2}

        # Through the sync cycle: a refused key set is reported, and scans and manifests
        # still flow (here the gate has taken a newer set than the hub now announces).
        gate.store.set_setting(HUB_KEYS_VERSION, 99)
        await hub.lock([show.tickets[0]], "fraud_investigation")
        revision = gate.store.manifest_revision()
        assert not await asyncio.to_thread(gate.worker.sync_once)
        snapshot = gate.worker.snapshot()
        assert snapshot.last_error == "hub_keys_stale_keys" and snapshot.failures == 0
        assert gate.store.manifest_revision() > revision  # type: ignore[operator]
        assert set(trusted_hub_keys(gate.store)) == {2}

        # The hub's own route answers only signed device requests.
        unsigned = await hub.client.get("/api/device/hub-keys")
        assert unsigned.status_code == 401
    finally:
        gate.close()


async def test_a_dropped_key_that_signed_the_installed_manifest_stays_until_a_newer_one(
    rig: Rig, tmp_path: Path
) -> None:
    """A gate offline from before `activate` until after `retire`: its installed manifest is
    still signed by key 1, so key 1 stays until the next manifest is in."""
    hub = rig.hub
    show = add_show(hub, hub.a)
    gate = await enrolled_gate(rig, show, tmp_path)
    try:
        await gate.sync()
        assert rig.key("rotate") == 0
        await gate.sync()  # trusts key 2; installed: the delta body the rotation brought
        envelope = key_1_manifest(rig, show)  # as a gate that last pulled a full manifest
        gate.store.replace_manifest(verify_manifest(envelope, {1: KEY_1}), envelope, hub.clock())
        assert rig.key("activate") == 0 and rig.key("retire", "--key-id", "1") == 0
        key_2 = public_key(rig.seed(2))
        doc = HubKeys(2, rig.seed(2), {2: key_2}, 4).key_set(hub.clock())
        update = apply_hub_key_set(gate.store, doc)
        assert (update.added, update.dropped, update.kept) == ((), (), (1,))
        assert trusted_hub_keys(gate.store) == {1: KEY_1, 2: key_2}
        assert gate.service.header() is not None  # the installed manifest still verifies
        assert gate.store.setting(HUB_KEYS_VERSION) == 2  # not taken in full yet
        await gate.sync()  # the newer manifest (a delta signed by key 2) goes in
        await gate.sync()  # and now key 1 goes
        assert trusted_hub_keys(gate.store) == {2: key_2}
        assert gate.store.setting(HUB_KEYS_VERSION) == 4
        assert gate.service.header() is not None
    finally:
        gate.close()


def test_key_commands_list_rotate_activate_retire_never_print_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, key_file = tmp_path / "hub.sqlite", tmp_path / "hub.key"
    key_file.write_text(HUB_SEED.hex())  # an older hub's key file
    HubStore(db).close()  # its database (key commands never make one)
    seeds = {HUB_SEED.hex()}

    def run(*args: str) -> tuple[int, Any]:
        code = hub_cli(["key", *args, "--db", str(db), "--key-file", str(key_file)])
        out, err = capsys.readouterr()
        if code == 0:
            seeds.update(k.seed.hex() for k in load_keyring(key_file).keys)
        assert not any(seed in out + err for seed in seeds)
        return code, (json.loads(out) if code == 0 else err)

    def states(listed: Any) -> list[tuple[int, str]]:
        return [(k["key_id"], k["state"]) for k in listed["keys"]]

    code, listed = run("list")
    assert code == 0 and listed["version"] == 1 and states(listed) == [(1, "current")]
    assert listed["keys"][0]["public_key"] == b64encode(KEY_1)
    assert listed["keys"][0]["fingerprint"] == key_fingerprint(KEY_1)
    assert run("activate") == (
        2,
        "gate-hub: there is no next key: run `gate-hub key rotate` first\n",
    )
    code, rotated = run("rotate")
    assert code == 0 and states(rotated) == [(1, "current"), (2, "next")]
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run("rotate")[0] == 2  # one next key at a time
    assert run("retire", "--key-id", "1")[0] == 2  # the current key cannot go
    assert run("retire", "--key-id", "7")[0] == 2
    code, active = run("activate")
    assert code == 0 and states(active) == [(1, "retired"), (2, "current")]
    code, retired = run("retire", "--key-id", "1")
    assert code == 0 and states(retired) == [(2, "current")] and retired["version"] == 4
    code, rotated = run("rotate")
    assert states(rotated) == [(2, "current"), (3, "next")]  # key ids are never reused
    assert len(seeds) == 3 and load_keyring(key_file).version == 5

    watch = KeyringWatch(key_file)  # as a running hub follows the file
    in_use = watch()
    assert (in_use.key_id, sorted(in_use.trusted), in_use.version) == (2, [2, 3], 5)
    key_file.write_text("{not json")
    code, err = run("list")
    assert code == 2 and "not valid JSON" in err
    assert watch() is in_use  # a file that does not load keeps the keys in use


@pytest.mark.slow
async def test_health_answers_while_a_big_manifest_is_built_and_one_build_is_shared(
    tmp_path: Path,
) -> None:
    hub, runner = await start_hub(tmp_path, expiry_interval_s=None)
    try:
        show = add_show(hub, hub.a, n_tickets=10_000)
        device = await enroll_device(hub, hub.a.manager_token, hub.a.venue_id, gate_id=show.north)
        builds = runner.app[BUILDS]
        path = f"/api/device/events/{show.event_id}/manifest"
        first = asyncio.create_task(device.send("GET", path))
        second = asyncio.create_task(device.send("GET", path))
        for _ in range(10_000):  # until the build is under way on the worker thread
            if builds._building:
                break
            await asyncio.sleep(0.001)
        else:
            pytest.fail("no manifest build was seen in flight")
        health = await hub.client.get("/health")
        assert health.status_code == 200
        assert not first.done() and not second.done()  # the manifest is still being built
        a, b = await first, await second
        assert a.status_code == b.status_code == 200
        assert a.content == b.content and builds.builds == 1
        assert open_envelope(a.content, {1: KEY_1})
    finally:
        await stop_hub(hub, runner)
