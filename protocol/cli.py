"""`gate-proto` / `python -m protocol`: issue, inspect and check codes by hand."""

from __future__ import annotations

import argparse
import json
import os
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


def _ms(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _seed(args: argparse.Namespace) -> bytes:
    if args.key_file:
        return bytes.fromhex(Path(args.key_file).read_text().strip())
    if os.environ.get("GATE_ISSUER_SEED"):
        return bytes.fromhex(os.environ["GATE_ISSUER_SEED"])
    if args.demo:
        return os.urandom(32)
    sys.exit("issue: give --key-file (hex Ed25519 seed) or GATE_ISSUER_SEED, or use --demo")


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
        sys.exit("issue: --ticket-id, --valid-from and --valid-until are required (or --demo)")
    code = issue_credential(
        signing_key=seed,
        key_id=args.key_id,
        event_code=args.event_code,
        ticket_id=args.ticket_id,
        generation=args.generation,
        ticket_type=args.ticket_type,
        zone=args.zone,
        valid_from_ms=_ms(args.valid_from),
        valid_until_ms=_ms(args.valid_until),
        day_mask=args.day_mask,
        comp=args.comp,
        attention=args.attention,
        rotating=args.rotating,
    )
    print(code)
    if args.png:
        import segno

        segno.make_qr(code, error="m").save(args.png, scale=8, border=4)
    if not args.demo:
        print(f"public key {args.key_id}: {public_key(seed).hex()}", file=sys.stderr)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    keys = {}
    for item in args.key:
        kid, _, hexkey = item.partition(":")
        keys[int(kid)] = bytes.fromhex(hexkey)
    legacy = LegacyKeys(
        format_a_key=args.legacy_a.encode() if args.legacy_a else None,
        format_b_key=args.legacy_b.encode() if args.legacy_b else None,
        format_c_secret=bytes.fromhex(args.legacy_c) if args.legacy_c else None,
    )
    codes = {args.event_code: args.event_id} if args.event_id else {}
    now = _ms(args.now) if args.now else int(datetime.now(UTC).timestamp() * 1000)
    ctx = ParseContext(
        now_ms=now, issuer_keys=keys, event_id=args.event_id, event_codes=codes, legacy=legacy
    )
    result = parse_credential(args.payload, ctx)
    out = {"result": "credential" if isinstance(result, Credential) else "refusal"}
    out.update({k: (v.hex() if isinstance(v, bytes) else v) for k, v in asdict(result).items()})
    print(json.dumps(out, indent=2, default=str))
    return 0 if isinstance(result, Credential) else 1


def cmd_check_vectors(args: argparse.Namespace) -> int:
    doc = json.loads(Path(args.file).read_text())
    outcomes = run_vectors(doc)
    for o in outcomes:
        if not o.ok:
            print(f"vector {o.index}: expected {o.expect}, got {o.got} ({o.note})")
    failed = sum(not o.ok for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gate-proto", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    issue = sub.add_parser("issue", help="make and print a signed native credential")
    issue.add_argument("--demo", action="store_true", help="a realistic multi-day pass")
    issue.add_argument("--key-file", help="file holding the hex Ed25519 seed")
    issue.add_argument("--key-id", type=int, default=1)
    issue.add_argument("--event-code", type=int, default=DEMO_EVENT_CODE)
    issue.add_argument("--ticket-id")
    issue.add_argument("--generation", type=int, default=0)
    issue.add_argument("--ticket-type", type=int, default=0)
    issue.add_argument("--zone", type=int, default=0)
    issue.add_argument("--valid-from", help="ISO instant")
    issue.add_argument("--valid-until", help="ISO instant")
    issue.add_argument("--day-mask", type=lambda s: int(s, 0), default=0)
    issue.add_argument("--comp", action="store_true")
    issue.add_argument("--attention", action="store_true")
    issue.add_argument("--rotating", action="store_true")
    issue.add_argument("--png", help="also draw the QR code to this PNG file")
    issue.set_defaults(func=cmd_issue)
    inspect = sub.add_parser("inspect", help="parse a payload and print fields or refusal")
    inspect.add_argument("payload")
    inspect.add_argument("--key", action="append", default=[], help="KID:HEXPUBKEY")
    inspect.add_argument("--event-id")
    inspect.add_argument("--event-code", type=int, default=DEMO_EVENT_CODE)
    inspect.add_argument("--legacy-a", help="format A key (UTF-8)")
    inspect.add_argument("--legacy-b", help="format B key (UTF-8)")
    inspect.add_argument("--legacy-c", help="format C HMAC secret (hex)")
    inspect.add_argument("--now", help="ISO instant to check against (default: now)")
    inspect.set_defaults(func=cmd_inspect)
    vectors = sub.add_parser("check-vectors", help="run a vectors file, print N passed, M failed")
    vectors.add_argument("file")
    vectors.set_defaults(func=cmd_check_vectors)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
