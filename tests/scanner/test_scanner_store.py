"""The gate's SQLite store, on real files: durability basics, append-only log, atomic manifests."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.sample import sample_manifest
from manifests.admission_types import Decision, Direction, GateContext, ScanFact
from manifests.codec import encode_manifest
from manifests.model import Manifest, ManifestDelta, TicketRow
from protocol.reasons import Reason, Verdict, default_message
from scanner.store import GateStore, StoreError


def decision(verdict: Verdict, reason: Reason, ticket_id: str | None = "T1") -> Decision:
    return Decision(verdict, reason, default_message(reason), ticket_id)


ADMIT = decision(Verdict.ADMIT, Reason.ADMITTED)
DENY = decision(Verdict.DENY, Reason.ALREADY_ADMITTED)
ATTENTION = decision(Verdict.ATTENTION, Reason.ATTENTION_REQUIRED)
EXIT = decision(Verdict.EXIT, Reason.EXITED)


def scan(store: GateStore, d: Decision, at_ms: int, **kw: object) -> int:
    direction = Direction.EXIT if d.verdict is Verdict.EXIT else Direction.ENTRY
    return store.record_scan("PAYLOAD", d, at_ms=at_ms, direction=direction, gate="North 1", **kw)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GateStore]:
    s = GateStore(tmp_path / "gate.db")
    yield s
    s.close()


def test_durable_settings(tmp_path: Path) -> None:
    path = tmp_path / "gate.db"
    with GateStore(path) as store:
        assert store._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_scans_survive_reopen_with_gapless_seq(tmp_path: Path) -> None:
    path = tmp_path / "gate.db"
    with GateStore(path) as store:
        seqs = [scan(store, d, 1000 + i) for i, d in enumerate([ADMIT, DENY, EXIT])]
    assert seqs == [1, 2, 3]
    # A second process opening the same file sees every committed scan.
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT seq, verdict FROM scans ORDER BY seq").fetchall() == [
        (1, "admit"),
        (2, "deny"),
        (3, "exit"),
    ]
    raw.close()
    with GateStore(path) as store:
        assert scan(store, ADMIT, 2000) == 4
        records = store.scans()
        assert [r.seq for r in records] == [1, 2, 3, 4]
        assert records[1].reason == Reason.ALREADY_ADMITTED
        assert records[1].message == default_message(Reason.ALREADY_ADMITTED)
        assert records[0].gate == "North 1" and not records[0].manual


def test_two_writers_on_one_file_share_one_gapless_sequence(tmp_path: Path) -> None:
    path = tmp_path / "gate.db"
    stores = [GateStore(path), GateStore(path)]  # e.g. the app and a sync process
    results: list[list[int]] = [[], []]

    def write(i: int) -> None:
        for n in range(40):
            results[i].append(scan(stores[i], ADMIT, n))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results[0] + results[1]) == list(range(1, 81))
    assert [r.seq for r in stores[0].scans()] == list(range(1, 81))
    for s in stores:
        s.close()


def test_scan_log_is_append_only(store: GateStore) -> None:
    scan(store, ADMIT, 1)
    raw = sqlite3.connect(store.path)  # the schema refuses it, whoever writes
    for sql in (
        "DELETE FROM scans",
        "UPDATE scans SET verdict = 'deny'",
        "UPDATE scans SET payload = 'x'",
        "UPDATE scans SET seq = 9",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(sql)
    raw.close()
    assert [(r.seq, r.verdict) for r in store.scans()] == [(1, Verdict.ADMIT)]


def test_uploading_marks_never_deletes(store: GateStore) -> None:
    for i in range(5):
        scan(store, ADMIT if i % 2 else DENY, i)
    assert [r.seq for r in store.pending_uploads(limit=3)] == [1, 2, 3]
    assert store.mark_uploaded([1, 2, 3]) == 3
    assert store.mark_uploaded([1, 2]) == 0  # idempotent
    assert [r.seq for r in store.pending_uploads()] == [4, 5]
    assert len(store.scans()) == 5
    assert store.counters().pending_upload == 2
    raw = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE scans SET uploaded = 0 WHERE seq = 1")
    raw.close()


def test_attention_confirmation_counts_and_requeues(store: GateStore) -> None:
    seq = scan(store, ATTENTION, 10)
    store.mark_uploaded([seq])
    assert store.history_for("T1")[0].counted is False
    assert store.counters().attention_pending == 1
    store.confirm_attention(seq, admitted=True)
    record = store.scan(seq)
    assert record is not None and record.confirmed is True and not record.uploaded
    assert store.history_for("T1")[0].counted is True
    assert store.counters().admitted == 1
    with pytest.raises(StoreError):
        store.confirm_attention(seq, admitted=False)  # only once
    admit_seq = scan(store, ADMIT, 11)
    with pytest.raises(StoreError):
        store.confirm_attention(admit_seq, admitted=True)  # only attention scans
    with pytest.raises(StoreError):
        store.confirm_attention(999, admitted=True)


def test_history_merges_own_and_peer_movements(store: GateStore) -> None:
    store.set_config("device_id", "dev-north-1")
    scan(store, ADMIT, 100)
    scan(store, DENY, 150)  # refusals are not movements
    scan(store, EXIT, 300)
    scan(store, decision(Verdict.ADMIT, Reason.ADMITTED, "OTHER"), 120)
    peer = ScanFact("T1", 200, Direction.ENTRY, True, "South 2", "dev-south-2")
    assert store.merge_peer_scans([peer, peer]) == 1
    assert store.merge_peer_scans([peer]) == 0
    history = store.history_for("T1")
    assert [(f.at_ms, f.direction, f.counted, f.device_id) for f in history] == [
        (100, Direction.ENTRY, True, "dev-north-1"),
        (200, Direction.ENTRY, True, "dev-south-2"),
        (300, Direction.EXIT, True, "dev-north-1"),
    ]
    assert store.history_for("NOBODY") == []


def test_counters(store: GateStore) -> None:
    for d in (ADMIT, ADMIT, DENY, EXIT, ATTENTION):
        scan(store, d, 1)
    c = store.counters()
    assert (c.admitted, c.denied, c.exited, c.attention_pending) == (2, 1, 1, 1)
    assert c.inside_now == 1 and c.pending_upload == 5


def test_nonce_is_stored_with_its_scan(store: GateStore) -> None:
    assert "n-1" not in store.nonces
    scan(store, ADMIT, 1000, nonce="n-1")
    assert "n-1" in store.nonces and "n-2" not in store.nonces and 5 not in store.nonces
    assert store.forget_nonces_before(1001) == 1
    assert "n-1" not in store.nonces


def test_config_keys_and_gate(store: GateStore) -> None:
    gate = GateContext("venue-1", "north-1", "North 1", Direction.EXIT, ("GA", "VIP"))
    store.set_gate(gate)
    store.set_config("hub_url", "http://127.0.0.1:8080")
    store.set_key("device_seed", b"\x01" * 32)
    assert store.gate() == gate
    assert store.config("hub_url") == "http://127.0.0.1:8080"
    assert store.config("missing", 5) == 5
    assert store.key("device_seed") == b"\x01" * 32 and store.key("nope") is None


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return sample_manifest(300, seed=4)


def test_manifest_install_and_lookup(tmp_path: Path, manifest: Manifest) -> None:
    path = tmp_path / "gate.db"
    encoded = encode_manifest(manifest)
    with GateStore(path) as store:
        assert store.manifest_revision() is None
        store.replace_manifest(manifest, encoded, now_ms=5)
    with GateStore(path) as store:
        assert store.manifest_revision() == manifest.revision
        assert store.manifest_encoded() == encoded
        assert store.ticket_count() == len(manifest.tickets)
        for ticket_id, row in list(manifest.tickets.items())[:50]:
            assert store.ticket(ticket_id) == row
        assert store.ticket("not-a-ticket") is None


def test_failing_replacement_leaves_old_revision(store: GateStore, manifest: Manifest) -> None:
    store.replace_manifest(manifest, b"rev1", now_ms=1)
    rows = dict(manifest.tickets)
    good = next(iter(rows.values()))
    rows["mis-keyed"] = dataclasses.replace(good, ticket_id="something-else")  # last row bad
    broken = Manifest(dataclasses.replace(manifest.header, revision=2), rows)
    with pytest.raises(StoreError):
        store.replace_manifest(broken, b"rev2", now_ms=2)
    assert store.manifest_revision() == manifest.revision
    assert store.manifest_encoded() == b"rev1"
    assert store.ticket_count() == len(manifest.tickets)
    assert store.ticket(good.ticket_id) == good


def test_older_revision_is_refused(store: GateStore, manifest: Manifest) -> None:
    newer = Manifest(dataclasses.replace(manifest.header, revision=5), manifest.tickets)
    store.replace_manifest(newer, b"rev5", now_ms=1)
    with pytest.raises(StoreError, match="older"):
        store.replace_manifest(manifest, b"rev1", now_ms=2)
    assert store.manifest_revision() == 5


def test_delta_applies_only_on_its_base(store: GateStore, manifest: Manifest) -> None:
    store.replace_manifest(manifest, b"rev1", now_ms=1)
    first, second = list(manifest.tickets)[:2]
    header2 = dataclasses.replace(manifest.header, revision=manifest.revision + 1)
    changed = dataclasses.replace(manifest.tickets[first], status="REFUNDED")
    added = TicketRow("brand-new", generation=0)
    delta = ManifestDelta(header2, manifest.revision, (changed, added), (second,))
    store.apply_delta(delta, b"rev2", now_ms=2)
    assert store.manifest_revision() == header2.revision
    assert store.ticket(first) == changed and store.ticket("brand-new") == added
    assert store.ticket(second) is None
    assert store.ticket_count() == len(manifest.tickets)
    with pytest.raises(StoreError, match="delta is from revision"):
        store.apply_delta(delta, b"again", now_ms=3)
    assert store.manifest_encoded() == b"rev2"


def test_export_everything_but_key_material(tmp_path: Path, store: GateStore) -> None:
    store.set_config("device_id", "dev-1")
    store.set_key("device_seed", b"\x07" * 32)
    store.replace_manifest(sample_manifest(10, seed=2), b"manifest-bytes", now_ms=1)
    scan(store, ADMIT, 1, nonce="nn")
    out = tmp_path / "export.json"
    store.export_json(out)
    data = json.loads(out.read_text())
    assert data["config"] == {"device_id": "dev-1"}
    assert data["keys"] == ["device_seed"]
    assert "07070707" not in out.read_text()
    assert data["manifest"]["tickets"] == 10 and data["manifest"]["bytes"] == 14
    assert [s["seq"] for s in data["scans"]] == [1]
    assert data["scans"][0]["verdict"] == "admit"
    assert data["nonces"] == [{"nonce": "nn", "seen_at_ms": 1}]
    assert data["counters"]["admitted"] == 1
