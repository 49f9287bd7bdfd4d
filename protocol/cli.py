"""`gate-proto` / `python -m protocol`: issue, inspect and check codes by hand."""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from protocol.credential import Credential, LegacyKeys, ParseContext
from protocol.native import issue_credential, public_key
from protocol.parse import parse_credential
from protocol.vectors import run_vectors

DEMO_EVENT_CODE = 0x1A2B3C4D


class Refused(Exception):
    """Input the command cannot use; the message says what to give instead."""


def _ms(text: str, option: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(
            f"{option} {text} is not an ISO date and time: give e.g. 2026-06-12T10:00:00+02:00 "
            "(without an offset it is UTC)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _seed(args: argparse.Namespace) -> bytes:
    if args.key_file:
        try:
            text = Path(args.key_file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise Refused(f"cannot read --key-file {args.key_file}: {reason}") from None
        return _hex_seed(text, f"--key-file {args.key_file}")
    if os.environ.get("GATE_ISSUER_SEED"):
        return _hex_seed(os.environ["GATE_ISSUER_SEED"], "GATE_ISSUER_SEED")
    if args.demo:
        return os.urandom(32)
    raise Refused("issue: give --key-file (hex Ed25519 seed) or GATE_ISSUER_SEED, or use --demo")


def _hex_seed(text: str, source: str) -> bytes:
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise Refused(f"{source} must hold a 32-byte Ed25519 seed as 64 hex digits")
    return seed


def cmd_issue(args: argparse.Namespace) -> int:
    seed = _seed(args)
    if args.demo:  # a realistic 3-day festival pass valid Friday and Sunday
        first = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        args.ticket_id = args.ticket_id or str(uuid.uuid4())
        args.valid_from = args.valid_from or first.isoformat()
        args.valid_until = args.valid_until or (first + timedelta(days=3)).isoformat()
        args.day_mask = args.day_mask or 0b101
        args.ticket_type, args.zone = args.ticket_type or 1, args.zone or 1
    if not (args.ticket_id and args.valid_from and args.valid_until):
        raise Refused("issue: --ticket-id, --valid-from and --valid-until are required (or --demo)")
    if args.png and not Path(args.png).resolve().parent.is_dir():
        raise Refused(f"--png {args.png}: there is no such directory")
    try:
        code = _issue(args, seed)
    except (ValueError, struct.error) as exc:
        raise Refused(
            f"issue: cannot make this credential ({exc}): --ticket-id must be a UUID, "
            "--ticket-type and --zone from 0 to 255"
        ) from None
    print(code)
    if args.png:
        import segno

        segno.make_qr(code, error="m").save(args.png, scale=8, border=4)
    if not args.demo:
        print(f"public key {args.key_id}: {public_key(seed).hex()}", file=sys.stderr)
    return 0


def _issue(args: argparse.Namespace, seed: bytes) -> str:
    return issue_credential(
        signing_key=seed,
        key_id=args.key_id,
        event_code=args.event_code,
        ticket_id=args.ticket_id,
        generation=args.generation,
        ticket_type=args.ticket_type,
        zone=args.zone,
        valid_from_ms=_ms(args.valid_from, "--valid-from"),
        valid_until_ms=_ms(args.valid_until, "--valid-until"),
        day_mask=args.day_mask,
        comp=args.comp,
        attention=args.attention,
        rotating=args.rotating,
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    keys = {}
    for item in args.key:
        kid, _, hexkey = item.partition(":")
        try:
            keys[int(kid)] = bytes.fromhex(hexkey)
        except ValueError:
            raise Refused(f"--key {item} must be KID:HEXPUBKEY, e.g. 1:<64 hex digits>") from None
    legacy = LegacyKeys(
        format_a_keys=(args.legacy_a.encode(),) if args.legacy_a else (),
        format_b_keys=(args.legacy_b.encode(),) if args.legacy_b else (),
        format_c_secrets=(_hex(args.legacy_c, "--legacy-c"),) if args.legacy_c else (),
    )
    codes = {args.event_code: args.event_id} if args.event_id else {}
    now = _ms(args.now, "--now") if args.now else int(datetime.now(UTC).timestamp() * 1000)
    ctx = ParseContext(
        now_ms=now, issuer_keys=keys, event_id=args.event_id, event_codes=codes, legacy=legacy
    )
    result = parse_credential(args.payload, ctx)
    out = {"result": "credential" if isinstance(result, Credential) else "refusal"}
    out.update({k: (v.hex() if isinstance(v, bytes) else v) for k, v in asdict(result).items()})
    print(json.dumps(out, indent=2, default=str))
    return 0 if isinstance(result, Credential) else 1


def _hex(text: str, option: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise Refused(f"{option} must be hex digits") from None


def cmd_check_vectors(args: argparse.Namespace) -> int:
    try:
        doc = json.loads(Path(args.file).read_text())
    except OSError as exc:
        raise Refused(f"cannot read {args.file}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(f"{args.file} is not a JSON vectors file") from None
    outcomes = run_vectors(doc)
    for o in outcomes:
        if not o.ok:
            print(f"vector {o.index}: expected {o.expect}, got {o.got} ({o.note})")
    failed = sum(not o.ok for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


INSTANT_HELP = "ISO date and time, e.g. 2026-06-12T10:00:00+02:00 (no offset: UTC)"
EVENT_CODE_HELP = "the event's 32-bit code (default: the demo event's)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gate-proto", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    issue = sub.add_parser("issue", help="make and print a signed native credential")
    issue.add_argument("--demo", action="store_true", help="a realistic multi-day pass")
    issue.add_argument("--key-file", help="file holding the hex Ed25519 seed")
    issue.add_argument("--key-id", type=int, default=1, help="the signing key's id (default 1)")
    issue.add_argument("--event-code", type=int, default=DEMO_EVENT_CODE, help=EVENT_CODE_HELP)
    issue.add_argument("--ticket-id", help="the ticket's id (a UUID)")
    issue.add_argument("--generation", type=int, default=0, help="reissue count (default 0)")
    issue.add_argument("--ticket-type", type=int, default=0, help="ticket type code")
    issue.add_argument("--zone", type=int, default=0, help="zone code")
    issue.add_argument("--valid-from", help=INSTANT_HELP)
    issue.add_argument("--valid-until", help=INSTANT_HELP)
    issue.add_argument(
        "--day-mask",
        type=lambda s: int(s, 0),
        default=0,
        help="days valid, bit 0 the first day (e.g. 0b101); 0 every day",
    )
    issue.add_argument("--comp", action="store_true", help="a complimentary ticket")
    issue.add_argument("--attention", action="store_true", help="staff must look at the guest")
    issue.add_argument("--rotating", action="store_true", help="a rotating (time-based) code")
    issue.add_argument("--png", help="also draw the QR code to this PNG file")
    issue.set_defaults(func=cmd_issue)
    inspect = sub.add_parser("inspect", help="parse a payload and print fields or refusal")
    inspect.add_argument("payload", help="the scanned text")
    inspect.add_argument("--key", action="append", default=[], help="KID:HEXPUBKEY")
    inspect.add_argument("--event-id", help="the event the gate is at")
    inspect.add_argument("--event-code", type=int, default=DEMO_EVENT_CODE, help=EVENT_CODE_HELP)
    inspect.add_argument("--legacy-a", help="format A key (UTF-8)")
    inspect.add_argument("--legacy-b", help="format B key (UTF-8)")
    inspect.add_argument("--legacy-c", help="format C HMAC secret (hex)")
    inspect.add_argument("--now", help=INSTANT_HELP + "; check as of then (default: now)")
    inspect.set_defaults(func=cmd_inspect)
    vectors = sub.add_parser("check-vectors", help="run a vectors file, print N passed, M failed")
    vectors.add_argument("file", help="the vectors JSON file")
    vectors.set_defaults(func=cmd_check_vectors)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Refused as exc:
        print(f"gate-proto: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
