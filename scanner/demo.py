"""`make demo`: a gate's first minute, through the real camera path and the real gate app.

It builds what a newcomer would otherwise need a hub for: a temporary gate database with a
small festival's manifest (signed with a fresh hub key and installed the way a hub's would
be), a set-up gate, and a short video of guests holding up their codes, rendered with
realistic tilt, blur, noise and glare. The gate app then reads that video as its camera, so
admits and denies appear on screen within seconds. `--no-ui` prints the same verdict stream.
Everything lives in a temporary directory that is removed at exit.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.camera import CameraReader, QrDecoder, open_source
from hardware.frames import TYPICAL, render_frame, write_video
from manifests.admission import parse_context
from manifests.admission_types import Direction, GateContext
from manifests.codec import encode_manifest
from manifests.model import EventFacts, Manifest, ManifestHeader, Scope, TicketRow, TicketStatus
from manifests.policy import BACKSTAGE, GA, HOUR_MS, TEMPLATES, VIP
from manifests.sealing import seal_holder
from manifests.signing import sign_envelope
from protocol.credential import Credential
from protocol.native import issue_credential, public_key
from protocol.parse import parse_credential
from protocol.reasons import Verdict
from scanner.service import GateService, ScanOutcome, install_manifest, trust_hub_key, wall_clock_ms
from scanner.store import GateStore

HUB_KEY_ID = 1
ISSUER_KEY_ID = 1
VIDEO_SIZE = (1280, 720)
VIDEO_FPS = 10.0
SHOW_S = 1.5  # how long a guest holds the phone up
GAP_S = 1.0  # the next guest steps up: no code in view
LEAD_IN_S = 1.0
POSES = 5  # distinct renderings per code (the phone moves), cycled while it is held up
CAMPING = "CAMPING"  # a zone of its own: a camping-only pass opens no festival gate
NEXT_ISSUE = (
    "The hub and a second gate (a duplicate caught live across gates) come in a later issue."
)

COLOURS = {
    Verdict.ADMIT: "\033[42;30m",
    Verdict.DENY: "\033[41;97m",
    Verdict.ATTENTION: "\033[43;30m",
    Verdict.EXIT: "\033[44;97m",
}
RESET = "\033[0m"


@dataclass(frozen=True)
class Guest:
    label: str  # who and what, for the codes file
    expect: str  # what the gate should say, in words
    row: TicketRow
    code: str


@dataclass(frozen=True)
class Demo:
    folder: Path
    db: Path
    video: Path
    codes_file: Path
    event_name: str
    gate: GateContext
    stream: tuple[Guest, ...]


# -- the event ---------------------------------------------------------------------------


def _event(now_ms: int) -> EventFacts:
    start = now_ms - HOUR_MS  # doors opened an hour ago
    return EventFacts(
        id=str(uuid.uuid4()),
        code=0x00C0FFEE,
        name="Riverside Sound Festival",
        venue_id="riverside",
        venue_name="Riverside Park",
        timezone="Europe/Berlin",
        start_ms=start,
        end_ms=start + 12 * HOUR_MS,
        days=(),
        ticket_types=("Weekend Pass", "Day Pass", "VIP Weekend", "Student", "Camping"),
        zones=(GA, VIP, BACKSTAGE, CAMPING),
    )


def build_guests(now_ms: int, issuer_seed: bytes) -> tuple[ManifestHeader, list[Guest]]:
    """The manifest header and the guests in the order they walk up to the North Gate."""
    event = _event(now_ms)
    header = ManifestHeader(
        event=event,
        scope=Scope(venue_id=event.venue_id, gate_id="north", zones=(GA,)),
        revision=1,
        issued_at_ms=now_ms - 5 * 60_000,
        expires_at_ms=now_ms + 24 * HOUR_MS,
        issuer_keys={ISSUER_KEY_ID: public_key(issuer_seed)},
        policy=TEMPLATES["concert"],
    )

    def guest(label: str, expect: str, name: str, *, code_generation: int = 0,
              zone: str = GA, **row: object) -> Guest:  # fmt: skip
        tid = str(uuid.uuid4())
        code = issue_credential(
            signing_key=issuer_seed,
            key_id=ISSUER_KEY_ID,
            event_code=event.code,
            ticket_id=tid,
            generation=code_generation,
            ticket_type=1,
            zone=event.zones.index(zone) + 1,  # zone codes count from 1; 0 is "none"
            valid_from_ms=now_ms - 4 * HOUR_MS,
            valid_until_ms=event.end_ms + 2 * HOUR_MS,
        )
        parsed = parse_credential(code, parse_context(header, now_ms))
        assert isinstance(parsed, Credential) and parsed.signature
        fields: dict[str, object] = {"ticket_type": "Weekend Pass", "zone": zone, **row}
        sealed = seal_holder(name, parsed.signature, tid)
        return Guest(label, expect, TicketRow(tid, holder_sealed=sealed, **fields), code)  # type: ignore[arg-type]

    ada = guest("Ada Lovelace, weekend pass", "ADMIT", "Ada Lovelace", order_ref="RSF-4101")
    guests = [
        ada,
        guest("Ben Okafor, day pass", "ADMIT", "Ben Okafor", ticket_type="Day Pass"),
        guest(
            "Chloe Martin, camping-only pass",
            "DENY zone",
            "Chloe Martin",
            zone=CAMPING,
            ticket_type="Camping",
        ),
        guest("Grace Hopper, weekend pass", "ADMIT", "Grace Hopper"),
        Guest(
            "Ada again: her screenshot, passed to a friend",
            "DENY already admitted",
            ada.row,
            ada.code,
        ),
        guest(
            "Alan Turing, refunded last week",
            "DENY refunded",
            "Alan Turing",
            status=TicketStatus.REFUNDED,
        ),
        guest(
            "Resold ticket, the seller's old code",
            "DENY superseded",
            "Old Holder",
            status=TicketStatus.TRANSFERRED,
            generation=1,
        ),
        guest("Dev Patel, weekend pass", "ADMIT", "Dev Patel", order_ref="RSF-4117"),
        guest(
            "Katherine Johnson, student ticket",
            "CHECK (press Y or N)",
            "Katherine Johnson",
            ticket_type="Student",
            attention="Check student ID",
        ),
    ]
    return header, guests


def build(folder: Path, now_ms: int | None = None) -> Demo:
    """Database, manifest, gate, codes file and camera video, all under `folder`."""
    now_ms = wall_clock_ms() if now_ms is None else now_ms
    hub_seed, issuer_seed = os.urandom(32), os.urandom(32)
    header, stream = build_guests(now_ms, issuer_seed)
    tickets = {g.row.ticket_id: g.row for g in stream}
    envelope = sign_envelope(encode_manifest(Manifest(header, tickets)), HUB_KEY_ID, hub_seed)
    db = folder / "gate.db"
    gate = GateContext("riverside", "north", "North Gate", Direction.ENTRY, (GA,))
    with GateStore(db) as store:
        trust_hub_key(store, HUB_KEY_ID, public_key(hub_seed))
        install_manifest(store, envelope, now_ms)
        store.set_config("device_id", str(uuid.uuid4()))
        store.set_config("sound", False)
        GateService(store).set_gate(gate)
    codes_file = folder / "sample-codes.txt"
    codes_file.write_text(
        "".join(f"# {g.label} -> {g.expect}\n{g.code}\n" for g in stream), encoding="utf-8"
    )
    video = folder / "gate-camera.avi"
    write_video(video, video_frames([g.code for g in stream]), fps=VIDEO_FPS)
    return Demo(folder, db, video, codes_file, header.event.name, gate, tuple(stream))


def video_frames(codes: Sequence[str]) -> Iterator[np.ndarray]:
    """A lead-in, then each guest's code held up for SHOW_S with GAP_S of no code between;
    a few poses per code (tilt, glare, noise change as the phone moves)."""
    show, gap = round(SHOW_S * VIDEO_FPS), round(GAP_S * VIDEO_FPS)
    seed = 0

    def frames(payload: str | None, n: int) -> Iterator[np.ndarray]:
        nonlocal seed
        poses = []
        for _ in range(min(n, POSES)):
            seed += 1
            poses.append(render_frame(payload, VIDEO_SIZE, seed=seed, perturbation=TYPICAL))
        for i in range(n):
            yield poses[i % len(poses)]

    yield from frames(None, round(LEAD_IN_S * VIDEO_FPS))
    for code in codes:
        yield from frames(code, show)
        yield from frames(None, gap)


# -- the two ways to watch it ------------------------------------------------------------


def verdict_line(outcome: ScanOutcome, at_s: float, label: str, colour: bool = False) -> str:
    d = outcome.decision
    word = f" {d.verdict.upper():^9} "
    if colour:
        word = f"{COLOURS[d.verdict]}{word}{RESET}"
    return f"{at_s:5.1f} s  {word} {d.reason:<18} {d.message}\n{'':>8}  {label}"


def run_text(demo: Demo, out: Callable[[str], None] = print) -> int:
    """The camera path without a screen: the video decoded by a `CameraReader` thread, each
    new read scanned by `GateService` here, one printed line per committed verdict. Video
    time is the clock, so the run is as fast as decoding and the same on every machine."""
    labels: dict[str, list[str]] = {}
    for g in demo.stream:  # the same code twice (the duplicate): one label per showing
        labels.setdefault(g.code, []).append(g.label)
    colour = sys.stdout.isatty()
    started = wall_clock_ms()
    reader: CameraReader

    def reader_ms() -> int:
        return int(reader.frames_read * 1000 / VIDEO_FPS)

    reader = CameraReader(open_source(demo.video), QrDecoder(), clock_ms=reader_ms)
    with GateStore(demo.db) as store:
        service = GateService(store, clock=lambda: started + reader_ms())
        if not reader.start():
            out(f"cannot read the demo video {demo.video}")
            return 1
        try:
            while reader.running or not reader.payloads.empty():
                try:
                    payload = reader.payloads.get(timeout=0.1)
                except queue.Empty:
                    continue
                outcome = service.scan(payload)
                if outcome is not None:
                    shown = labels.get(payload) or ["(not a demo code)"]
                    label = shown.pop(0) if len(shown) > 1 else shown[0]
                    out(verdict_line(outcome, reader_ms() / 1000, label, colour))
        finally:
            reader.stop()
        c = store.counters()
        out(
            f"\nadmitted {c.admitted}, denied {c.denied}, waiting for a check {c.attention_pending}"
        )
    return 0


def run_app(demo: Demo) -> int:
    from scanner.app import GateApp  # Textual only when there is a screen to use

    with GateStore(demo.db) as store:
        app = GateApp(GateService(store), camera=str(demo.video), clear_after_s=30.0)
        try:
            app.run()
        finally:
            app.stop_camera()
    print("Gate app closed.")
    return 0


def intro(demo: Demo, ui: bool) -> str:
    lines = [
        f"\n{demo.event_name}: {demo.gate.gate_name} (entry, zone GA), a gate's first minute.",
        f"  gate database : {demo.db}",
        f"  sample codes  : {demo.codes_file}  (labels + the codes, one per line)",
        f"  camera video  : {demo.video}  ({len(demo.stream)} guests, 1280x720 MJPG)",
    ]
    if ui:
        lines += [
            "  stop          : Ctrl+Q (or Ctrl-C). The temp directory is removed at exit.",
            "  on screen     : admits, denies and a student-ID check (press Y or N).",
            "  also          : F2 lookup, F3 history, F4 settings; type a code + Enter too.",
        ]
    else:
        lines.append("  stop          : Ctrl-C. The temp directory is removed at exit.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scanner.demo", description=__doc__)
    parser.add_argument(
        "--no-ui", action="store_true", help="print the verdict stream instead of the app"
    )
    parser.add_argument(
        "--pause", type=float, default=3.0, help="seconds to read the intro before the app"
    )
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="gate-demo-") as tmp:
            print("Preparing: signing a manifest, rendering the camera video…", flush=True)
            demo = build(Path(tmp))
            print(intro(demo, ui=not args.no_ui), flush=True)
            if args.no_ui:
                code = run_text(demo)
            else:
                time.sleep(max(0.0, args.pause))
                code = run_app(demo)
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return 130
    print(f"Removed {tmp}.\n{NEXT_ISSUE}")
    return code


if __name__ == "__main__":
    sys.exit(main())
