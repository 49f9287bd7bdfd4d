"""`gate-scanner`: the gate appliance from a shell.

`run` starts the Textual app; the other commands serve setup, support and scripts and go
through the same `GateService` as the app, so a verdict printed here is stored exactly like
one shown on screen (`check --dry-run` stores nothing). `check` exits with its verdict (0 admit
or exit, 1 deny, 2 attention). Errors print one line on stderr, or `{"error": {"code",
"message"}}` on stdout under --json and from `stream`, and exit 3 (refused: bad input, nothing
changed), 4-7 (the disk: full, read-only, a damaged database, a failed write or fsync; see
scanner/faults.py) or 8 (a bug); never a traceback, and never a verdict that is not stored.
`sync` adds 9 (the sync did not complete: try again) and 10 (the hub refused this gate).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from manifests.admission_types import Direction, GateContext
from manifests.signing import ManifestRejected, open_envelope
from protocol.reasons import Verdict
from protocol.signing import parse_enrollment_uri
from protocol.wire import SEQ_CONFLICT
from scanner import gate_log
from scanner.clock import Clock, wall_clock_ms
from scanner.faults import (
    EXIT_ATTENTION,
    EXIT_DENY,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REFUSED,
    storage_fault,
)
from scanner.hub_keys import trust_hub_key, trusted_hub_keys
from scanner.install import install_manifest
from scanner.link_reasons import is_refusal, link_reason
from scanner.pin import has_pin, set_pin
from scanner.service import GateService
from scanner.settings import CLOCK_OFFSET, DEVICE_ID, EVENT, LINK, RELAY_PIN, SOUND
from scanner.store import GateStore, StoreError

if TYPE_CHECKING:
    from scanner.sync import SyncReport, SyncWorker

DEFAULT_DB = "gate.db"
DB_HELP = "gate database file (default: $GATE_DB or ./gate.db); before or after the command"
JSON_HELP = "print JSON (errors too) for scripts"
# The commands that may make a new gate database; the others need one to exist.
CREATES_DB = frozenset({"run", "setup", "enroll", "set-pin", "load-manifest"})
# The commands that run a gate, and so write its log (scanner/gate_log.py).
LOGGED_COMMANDS = frozenset({"run", "stream", "check", "enroll", "sync"})
# `sync`'s own exit codes, after check's verdicts (0-2) and the faults (3-8, scanner/faults.py)
EXIT_SYNC_INCOMPLETE = 9  # hub unreachable, a bad answer, a ticket list that did not verify
EXIT_HUB_REFUSED = 10  # the hub refused this gate (deactivated, unknown, key, scans): re-enrol
log = logging.getLogger("scanner.cli")


class CliError(Exception):
    def __init__(self, code: str, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    """Bad arguments are a refusal like any other (exit 3, JSON under --json): argparse's own
    exit 2 would read as an attention verdict to a script calling `check`."""

    def error(self, message: str) -> NoReturn:
        raise CliError("bad_arguments", f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gate-scanner", description="Offline venue gate scanner.")
    p.add_argument(
        "--db",
        default=os.environ.get("GATE_DB", DEFAULT_DB),
        help=DB_HELP,
    )
    p.add_argument(
        "--clock-skew-ms",
        type=int,
        default=0,
        metavar="MS",
        help="for drills and tests: run as if this device's clock were off by MS milliseconds",
    )
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the gate app")
    run.add_argument("--kiosk", action="store_true", help="verdict screen only; PIN to exit")
    run.add_argument("--clear-after", type=float, help="seconds a verdict stays on screen")
    run.add_argument(
        "--camera",
        metavar="SPEC",
        help="camera: device index, /dev/videoN, URL, video file or image folder "
        "(default: the stored `camera` setting; 'none' for the hand scanner only)",
    )
    _sync_options(run)

    check = sub.add_parser("check", help="decide one payload without the UI")
    check.add_argument("payload", help="the scanned text (the QR's content)")
    check.add_argument("--json", action="store_true", help=JSON_HELP)
    check.add_argument("--dry-run", action="store_true", help="decide but store nothing")

    stream = sub.add_parser(
        "stream",
        help="scan one payload per stdin line; prints 'SEQ VERDICT REASON' after each commit",
    )
    stream.add_argument(
        "--sync", action="store_true", help="sync with the enrolled hub while streaming"
    )
    stream.add_argument("--event", metavar="EVENT_ID", help="the event to sync (stored)")

    status = sub.add_parser("status", help="gate, manifest and counters")
    status.add_argument("--json", action="store_true", help=JSON_HELP)

    export = sub.add_parser("export-scans", help="write everything the gate holds as JSON")
    export.add_argument("file", type=Path, help="the JSON file to write; - for stdout")

    load = sub.add_parser("load-manifest", help="verify and install a signed manifest/delta")
    load.add_argument("file", type=Path, help="the signed manifest or delta file")
    load.add_argument(
        "--hub-key",
        action="append",
        default=[],
        metavar="KID:HEX",
        help="trust this hub public key (key id and 32-byte Ed25519 key in hex); repeatable",
    )
    load.add_argument("--json", action="store_true", help=JSON_HELP)

    setup = sub.add_parser("setup", help="set this gate's place")
    setup.add_argument("--gate", required=True, help="gate name shown to staff")
    setup.add_argument("--gate-id", help="stable id (default: from the name)")
    setup.add_argument(
        "--direction",
        choices=[d.value for d in Direction],
        default="entry",
        help="entry or exit gate (default entry)",
    )
    setup.add_argument("--zones", default="", help="comma-separated zones, e.g. GA,VIP")
    setup.add_argument("--venue", required=True, help="venue id")

    enroll = sub.add_parser("enroll", help="enrol this gate with a hub (one-time code)")
    enroll.add_argument("url", nargs="?", help="hub URL, or the whole enrollment QR text")
    enroll.add_argument("code", nargs="?", help="one-time enrollment code")
    enroll.add_argument(
        "--camera",
        metavar="SPEC",
        help="read the enrollment QR with this camera instead (as `run --camera` takes it)",
    )
    enroll.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="with --camera: give up after S seconds without an enrollment QR (default 120)",
    )
    enroll.add_argument(
        "--direction",
        choices=[d.value for d in Direction],
        default="entry",
        help="entry or exit gate (default entry)",
    )
    enroll.add_argument("--hardware-id", help="stable hardware id (default: host, machine id)")
    enroll.add_argument("--json", action="store_true", help=JSON_HELP)

    enroll.add_argument(
        "--no-sync",
        action="store_true",
        help="enrol only; do not pull the first ticket list (run `sync` later)",
    )

    sync = sub.add_parser(
        "sync",
        help="sync with the enrolled hub once (scans up, ticket list down), report and exit",
    )
    sync.add_argument("--event", metavar="EVENT_ID", help="the event to sync (stored)")
    sync.add_argument("--json", action="store_true", help=JSON_HELP)

    pin = sub.add_parser("set-pin", help="set the venue PIN (read from stdin)")
    pin.add_argument("--pin", help="the PIN (default: first line of stdin)")
    for command in sub.choices.values():  # --db after the command too; SUPPRESS keeps
        command.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)  # one before
    return p


def _sync_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--event", metavar="EVENT_ID", help="the event to sync (stored)")
    cmd.add_argument("--offline", action="store_true", help="do not contact the hub")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # `stream` answers machines on stdout, so its faults are JSON too
    want_json = "--json" in words or "stream" in words
    db = DEFAULT_DB
    try:
        args = _parser().parse_args(words)
        want_json = bool(getattr(args, "json", False)) or args.command == "stream"
        db = args.db
        return _dispatch(args)
    except CliError as err:
        return _fail(err.code, err.message, want_json, err.exit_code)
    except ManifestRejected as err:
        return _fail(f"manifest_{err.code}", err.message, want_json, EXIT_REFUSED)
    except StoreError as err:
        return _fail("store_refused", str(err), want_json, EXIT_REFUSED)
    except Exception as exc:  # a fault is an answer, not a traceback
        fault = storage_fault(exc, db)
        if fault is not None:
            _log_fault(fault.code, fault.message, want_json)
            return _fail(fault.code, fault.message, want_json, fault.exit_code)
        message = f"internal error, nothing more was done: {type(exc).__name__}: {exc}"
        _log_fault("internal_error", message, want_json, exc)  # the traceback: in the log only
        return _fail("internal_error", message, want_json, EXIT_INTERNAL)
    finally:
        gate_log.shutdown()


def _log_fault(code: str, message: str, want_json: bool, exc: Exception | None = None) -> None:
    """Into the gate's log, when this command keeps one; not again on stderr, where the CLI
    already printed it (unless that went to stdout as JSON)."""
    if gate_log.configured():
        extra = {} if want_json else {gate_log.PRINTED: True}
        log.error("fault (%s): %s", code, message, exc_info=exc, extra=extra)


def _fail(code: str, message: str, want_json: bool, exit_code: int) -> int:
    if want_json:
        print(json.dumps({"error": {"code": code, "message": message}}), flush=True)
    else:
        print(f"gate-scanner: {message}", file=sys.stderr)
    return exit_code


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; a database (and log) it made for nothing is removed if it fails."""
    db = Path(args.db)
    if args.command != "run" and not db.parent.exists():
        raise CliError("bad_db_path", f"no such directory for the database: {args.db}")
    if db.exists():
        return _command(args)
    if args.command not in CREATES_DB:
        raise CliError(
            "no_database",
            f"there is no gate database {args.db}: give --db the gate's database (or set "
            "GATE_DB), or make one with `gate-scanner enroll` or `gate-scanner setup`",
        )
    made = [db.with_name(db.name + tail) for tail in ("", "-wal", "-shm", "-journal")]
    made = [p for p in [*made, *_log_files(db)] if not p.exists()]
    try:
        return _command(args)
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        raise


def _log_files(db: Path) -> list[Path]:
    log_file = gate_log.log_path(db)
    return [log_file, log_file.with_name(log_file.name + ".lock")]


def _command(args: argparse.Namespace) -> int:
    if args.command in LOGGED_COMMANDS:
        gate_log.configure(
            args.db,
            console=args.command != "run",  # the app draws on stderr
            link_to_stderr=args.command == "stream" and bool(args.sync),
        )
    if args.command == "run":
        return _run(args)
    with GateStore(args.db) as store:
        handler = {
            "check": _check,
            "stream": _stream,
            "status": _status,
            "export-scans": _export,
            "load-manifest": _load,
            "setup": _setup,
            "set-pin": _set_pin,
            "enroll": _enroll,
            "sync": _sync,
        }[args.command]
        return handler(store, args)


def _run(args: argparse.Namespace) -> int:
    from hardware.feedback import Feedback, Relay, Sounds
    from scanner.app import GateApp  # Textual only for the app itself: keeps `check` fast

    with GateStore(args.db) as store:
        if args.kiosk and not has_pin(store):
            raise CliError("no_pin", "kiosk mode needs a venue PIN first: run `set-pin`")
        if store.setting(SOUND):
            sounds = Sounds()
        else:  # sound off in settings: neither tones nor the bell
            sounds = Sounds(detect_player=False, bell=lambda times: None)
        feedback = Feedback(sounds, Relay(store.setting(RELAY_PIN)))
        clock = _device_clock(args)
        sync, live = (None, None) if args.offline else _hub_link(store, args.event, clock)
        log.info(
            "app started%s%s",
            " in kiosk mode" if args.kiosk else "",
            "" if sync is not None else " without a hub link",
        )
        app = GateApp(
            GateService(store, feedback=feedback, clock=clock),
            kiosk=args.kiosk,
            clear_after_s=args.clear_after,
            camera=args.camera,
            sync=sync,
            live=live,
        )
        if store.setting(SOUND):
            sounds.bell = lambda times: app.bell()  # the terminal's bell, not raw stdout
        try:
            app.run()
        finally:
            app.stop_camera()
            feedback.relay.close()
    return 0


def _device_clock(args: argparse.Namespace) -> Clock:
    """The device's wall clock, shifted by --clock-skew-ms: a drill for a gate whose clock is
    hours wrong (the hub orders its scans by the offset it measures, not by its clock)."""
    skew = int(args.clock_skew_ms)
    if skew == 0:
        return wall_clock_ms
    return lambda: wall_clock_ms() + skew


def _hub_link(
    store: GateStore, event_id: str | None, clock: Clock = wall_clock_ms
) -> tuple[Any, Any]:
    """The sync worker and live channel of an enrolled gate (not started); (None, None) for a
    gate that has no hub. `event_id` is remembered for the next start."""
    if event_id is not None:
        if not event_id.strip():
            raise CliError("bad_event", "--event must not be empty")
        store.set_setting(EVENT, event_id.strip())
    from scanner.hub_link import hub_link  # httpx only for a gate that syncs: `check` stays fast

    link = hub_link(store, clock)
    if link is None:
        if event_id is not None:
            raise CliError("not_enrolled", "--event needs an enrolled gate: run `enroll` first")
        return None, None
    return link


def _check(store: GateStore, args: argparse.Namespace) -> int:
    service = GateService(store, clock=_device_clock(args))
    if args.dry_run:
        decision = service.preview(args.payload)
        result: dict[str, Any] = {"seq": None, "dry_run": True, **decision.to_json()}
    else:
        outcome = service.scan(args.payload)
        assert outcome is not None  # a fresh process has no earlier read to dedupe against
        result = {"dry_run": False, **outcome.to_json()}
    if args.json:
        print(json.dumps(result))
    else:
        seq = "-" if result["seq"] is None else result["seq"]
        print(f"#{seq} {str(result['verdict']).upper()} ({result['reason']}): {result['message']}")
    return _VERDICT_EXIT[Verdict(result["verdict"])]


_VERDICT_EXIT = {
    Verdict.ADMIT: EXIT_OK,
    Verdict.EXIT: EXIT_OK,  # an exit gate recorded the guest leaving
    Verdict.DENY: EXIT_DENY,
    Verdict.ATTENTION: EXIT_ATTENTION,
}


def _stream(store: GateStore, args: argparse.Namespace) -> int:
    """For wedge/serial pipes and crash tests: a line is printed only after its commit, so
    anything printed is on disk. With --sync the enrolled hub is synced in the background
    (each commit wakes an upload; other gates' entries arrive live). Scans still pending at
    the end of input stay queued for the next start."""
    clock = _device_clock(args)
    service = GateService(store, clock=clock)
    sync, live = _hub_link(store, args.event, clock) if args.sync else (None, None)
    if args.sync and sync is None:
        raise CliError("not_enrolled", "--sync needs an enrolled gate: run `enroll` first")
    log.info("stream started%s", " with sync" if sync is not None else "")
    if sync is not None:
        service.on_commit = sync.wake
        sync.start()
        if live is not None:
            live.start()
    stored = 0
    try:
        for line in sys.stdin:
            payload = line.rstrip("\r\n")
            if not payload:
                continue
            outcome = service.scan(payload)
            if outcome is None:
                print("- duplicate", flush=True)
            else:
                stored += 1
                d = outcome.decision
                print(f"{outcome.seq} {d.verdict} {d.reason}", flush=True)
    finally:
        if live is not None:
            live.stop()
        if sync is not None:
            sync.stop()
        log.info("stream ended: %d scans stored", stored)
    return 0


def _status(store: GateStore, args: argparse.Namespace) -> int:
    status = GateService(store).status()
    link = _last_link(store)
    if args.json:
        print(json.dumps({**status, "last_link": link}))
        return 0
    gate, manifest, c = status["gate"], status["manifest"], status["counters"]
    if gate is None:
        print("gate: not set up (run `gate-scanner setup`)")
    else:
        zones = ",".join(gate["zones"]) or "any"
        print(f"gate: {gate['name']} ({gate['direction']}, zones {zones}) venue {gate['venue_id']}")
    if manifest is None:
        print("manifest: none installed")
    else:
        age_min = manifest["age_ms"] // 60_000
        flags = " STALE" if manifest["stale"] else ""
        flags += " EXPIRED" if manifest["expired"] else ""
        print(
            f"manifest: revision {manifest['revision']} for {manifest['event']}, "
            f"{manifest['tickets']} tickets, {age_min} min old{flags}"
        )
    print(
        f"admitted {c['admitted']}  denied {c['denied']}  exited {c['exited']}  "
        f"inside {c['inside_now']}  attention pending {c['attention_pending']}"
    )
    print(f"connection: {status['connection']}  waiting to upload: {status['pending_upload']}")
    print(_link_line(link))
    return 0


def _last_link(store: GateStore) -> dict[str, Any] | None:
    """The link as the gate's sync worker last kept it (scanner/settings.py LINK), with the
    reason in words; None for a gate that never ran one."""
    kept = store.setting(LINK)
    if kept is None:
        return None
    reason = link_reason(kept.get("last_error"), store.setting(CLOCK_OFFSET))
    return {
        **kept,
        "reason": None if reason is None else reason.words,
        "advice": None if reason is None else reason.advice,
    }


def _utc(ms: object) -> str:
    if not isinstance(ms, int):
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def _link_line(link: dict[str, Any] | None) -> str:
    if link is None:
        return "last link: none (this gate has not synced with a hub)"
    state = str(link.get("state", "offline"))
    words = f" · {link['reason']}" if link.get("reason") else ""
    line = (
        f"last link: {state}{words} since {_utc(link.get('since_ms'))}, "
        f"last good sync {_utc(link.get('last_sync_ms'))}"
    )
    if link.get("advice"):
        line += f"\n  {link['advice']}"
    return line


def _export(store: GateStore, args: argparse.Namespace) -> int:
    if str(args.file) == "-":
        with tempfile.TemporaryDirectory() as folder:  # export_json writes, syncs, renames
            path = Path(folder) / "scans.json"
            store.export_json(path)
            sys.stdout.write(path.read_text(encoding="utf-8") + "\n")
        return 0
    if not args.file.parent.exists():
        raise CliError("bad_path", f"no such directory: {args.file.parent}")
    try:
        store.export_json(args.file)
    except OSError as exc:  # the export's own disk, which may not be the database's
        # export_json writes FILE.tmp, then renames: leave no half export taking the space
        args.file.with_name(args.file.name + ".tmp").unlink(missing_ok=True)
        fault = storage_fault(exc, args.file)
        if fault is None:
            raise
        raise CliError(fault.code, fault.message, fault.exit_code) from None
    print(f"wrote {args.file}")
    return 0


def _parse_hub_key(text: str) -> tuple[int, bytes]:
    kid, sep, hexkey = text.partition(":")
    try:
        if not sep:
            raise ValueError
        key_id, public = int(kid), bytes.fromhex(hexkey)
    except ValueError:
        raise CliError("bad_hub_key", f"--hub-key must be KID:HEX, got {text!r}") from None
    if len(public) != 32:
        raise CliError("bad_hub_key", "a hub key is 32 bytes (64 hex digits)")
    return key_id, public


def _load(store: GateStore, args: argparse.Namespace) -> int:
    given = dict(_parse_hub_key(k) for k in args.hub_key)
    try:
        envelope = args.file.read_bytes()
    except OSError as exc:
        raise CliError("unreadable_file", f"cannot read {args.file}: {exc.strerror}") from None
    service = GateService(store)
    # Verify with the new keys before trusting them, so a bad file changes nothing.
    open_envelope(envelope, {**trusted_hub_keys(store), **given})
    for key_id, public in given.items():
        trust_hub_key(store, key_id, public)
    manifest = install_manifest(store, envelope, service.clock())
    result = {
        "revision": manifest.revision,
        "event": manifest.header.event.name,
        "tickets": len(manifest.tickets),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"installed revision {result['revision']} ({result['tickets']} tickets)")
    return 0


def _setup(store: GateStore, args: argparse.Namespace) -> int:
    name = args.gate.strip()
    if not name or not args.venue.strip():
        raise CliError("bad_setup", "gate name and venue must not be empty")
    zones = tuple(z.strip() for z in args.zones.split(",") if z.strip())
    gate_id = args.gate_id or name.lower().replace(" ", "-")
    if not store.device_id:
        store.set_setting(DEVICE_ID, str(uuid.uuid4()))
    GateService(store).set_gate(
        GateContext(args.venue.strip(), gate_id, name, Direction(args.direction), zones)
    )
    print(f"gate {name} ({args.direction}, zones {','.join(zones) or 'any'}) set")
    return 0


def _enroll(store: GateStore, args: argparse.Namespace) -> int:
    from scanner.enroll import EnrollmentFailed, enroll  # httpx only when enrolling

    url, code = args.url, args.code
    fingerprint: str | None = None  # from a QR: the hub's key must match it
    try:
        if args.camera is not None:
            from scanner.enroll_scan import DEFAULT_TIMEOUT_S, read_enrollment_qr  # OpenCV

            timeout_s = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
            if url is not None or code is not None:
                raise CliError("bad_arguments", "give either the hub URL and code or --camera")
            if not timeout_s > 0:
                raise CliError("bad_timeout", "--timeout must be a positive number of seconds")
            url, code, fingerprint = read_enrollment_qr(
                args.camera,
                timeout_s=timeout_s,
                on_ignored=lambda _: print(
                    "gate-scanner: ignoring a QR that is not an enrollment code", file=sys.stderr
                ),
            )
        elif url is None:
            raise CliError("missing_url", "give the hub URL (or the whole QR text), or --camera")
        elif (from_qr := parse_enrollment_uri(url)) is not None:
            url, qr_code, fingerprint = from_qr
            code = code or qr_code
        if not code:
            raise CliError("missing_code", "give the enrollment code (or the whole QR text)")
        result = enroll(
            GateService(store),
            url,
            code,
            direction=Direction(args.direction),
            expected_fingerprint=fingerprint,
            hardware_id=args.hardware_id,
        )
    except EnrollmentFailed as err:
        extra = {} if args.json else {gate_log.PRINTED: True}
        log.warning("enrolment refused (%s): %s", err.code, err.message, extra=extra)
        raise CliError(err.code, err.message) from None
    log.info(
        "enrolled as device %s (%s) with hub %s, hub key %s",
        result.device_id,
        result.gate.gate_name,
        str(url).split("?", 1)[0],  # never a query that could hold the one-time code
        result.hub_fingerprint,
    )
    out: dict[str, Any] = {
        "device_id": result.device_id,
        "venue_id": result.venue_id,
        "gate": result.gate.gate_name,
        "zones": list(result.gate.zones),
        "hub_key_fingerprint": result.hub_fingerprint,
    }
    if not args.json:
        print(
            f"enrolled as {out['device_id']} ({out['gate']}); hub key {out['hub_key_fingerprint']}",
            flush=True,  # before the first pull's progress on stderr
        )
    if not args.no_sync:
        out["sync"] = _first_pull(store, args)
    if args.json:
        print(json.dumps(out))
    return 0


def _first_pull(store: GateStore, args: argparse.Namespace) -> dict[str, Any]:
    """The first ticket list right after enrolment, by the sync worker's own cycle, so the
    gate can scan at once. The enrolment stands whatever happens here (the code is spent): a
    failure, even of the disk, is a sentence saying to run `gate-scanner sync`, never an error
    exit (which would remove the gate database this command made)."""
    try:
        sync, _ = _hub_link(store, None, _device_clock(args))
        report = _one_cycle(sync, quiet=args.json)
    except (Exception, KeyboardInterrupt) as exc:
        fault = storage_fault(exc, args.db) if isinstance(exc, Exception) else None
        if fault is not None:
            code, words = fault.code, fault.message
        elif isinstance(exc, KeyboardInterrupt):
            code, words = "interrupted", "it was interrupted"
        else:
            code, words = "internal_error", f"internal error: {type(exc).__name__}: {exc}"
        extra = {} if args.json else {gate_log.PRINTED: True}  # printed below
        log.error("first sync failed (%s): %s", code, words, exc_info=fault is None, extra=extra)
        return _first_pull_failed(code, words, args.json)
    if not report.ok:
        assert report.error is not None
        return _first_pull_failed(report.error, str(report.advice), args.json, report)
    if not args.json:
        for line in _report_lines(report):
            print(line)
    return report.to_json()


def _first_pull_failed(
    code: str, words: str, want_json: bool, report: SyncReport | None = None
) -> dict[str, Any]:
    sentence = f"enrolled, but the first sync failed: {words}; run `gate-scanner sync` to retry"
    if not want_json:
        print(f"gate-scanner: {sentence} ({code})", file=sys.stderr)
    error = {"code": code, "message": sentence}
    return {"ok": False, "error": error} if report is None else {**report.to_json(), "error": error}


def _sync(store: GateStore, args: argparse.Namespace) -> int:
    """One cycle of the sync worker the app runs in the background, then a report."""
    sync, _ = _hub_link(store, args.event, _device_clock(args))
    if sync is None:
        raise CliError("not_enrolled", "this gate has no hub: enrol it (`gate-scanner enroll`)")
    report = _one_cycle(sync, quiet=args.json)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        for line in _report_lines(report):
            print(line)
        if not report.ok:
            print(f"gate-scanner: sync failed: {report.advice} ({report.error})", file=sys.stderr)
    if report.ok:
        return EXIT_OK
    if is_refusal(report.error) or report.error == SEQ_CONFLICT:  # re-enrolling is the fix
        return EXIT_HUB_REFUSED
    return EXIT_SYNC_INCOMPLETE


def _one_cycle(sync: SyncWorker, *, quiet: bool) -> SyncReport:
    """`SyncWorker.run_once` in this process, the ticket list's download drawn as a bar on a
    terminal (stderr; never under --json or into a pipe)."""
    bar = None if quiet or not sys.stderr.isatty() else _ProgressBar(sys.stderr, "ticket list")
    sync.on_progress = bar
    try:
        return sync.run_once()
    finally:
        if bar is not None:
            bar.close()
        sync.stop()


def _report_lines(report: SyncReport) -> list[str]:
    if report.manifest_revision is None and report.event_id is None:
        ticket_list = (
            "ticket list: none yet (the hub names no event at this venue now; "
            "`sync --event EVENT_ID` takes one)"
        )
    elif report.manifest_revision is None:
        ticket_list = f"ticket list: none yet for event {report.event_id}"
    else:
        ticket_list = (
            f"ticket list: revision {report.manifest_revision} of event {report.event_id}, "
            f"{report.tickets} tickets{' (new)' if report.manifest_new else ' (up to date)'}"
        )
    lines = [
        f"{'synced with' if report.ok else 'sync failed with'} {report.hub_url}",
        f"  {ticket_list}",
        f"  scans: {report.pushed} pushed, {report.pending} waiting to go up",
    ]
    if report.clock_offset_ms is not None:
        lines.append(f"  clock offset to the hub: {report.clock_offset_ms:+d} ms")
    if report.peers_merged:
        lines.append(f"  other gates: {report.peers_merged} movements merged")
    keys = report.hub_keys
    if keys is not None and (keys.added or keys.dropped or keys.kept):
        lines.append(
            f"  hub keys (version {keys.version}): added {list(keys.added)}, "
            f"dropped {list(keys.dropped)}, kept until the next list {list(keys.kept)}"
        )
    return lines


class _ProgressBar:
    """A download as one line redrawn in place: `ticket list [#####.....]  48%  1.2/2.5 MB`."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream, self.label = stream, label
        self.shown = ""

    def __call__(self, received: int, total: int | None) -> None:
        if total:
            done = min(1.0, received / total)
            filled = round(done * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            text = f"{self.label} [{bar}] {done:4.0%}  {_mb(received)}/{_mb(total)} MB"
        else:
            text = f"{self.label} {_mb(received)} MB"
        if text != self.shown:  # a redraw per visible change, not per chunk
            self.stream.write("\r" + text)
            self.stream.flush()
            self.shown = text

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f}"


def _set_pin(store: GateStore, args: argparse.Namespace) -> int:
    pin = args.pin if args.pin is not None else sys.stdin.readline().strip()
    try:
        set_pin(store, pin)
    except ValueError as exc:
        raise CliError("bad_pin", str(exc)) from None
    print("venue PIN set")
    return 0
