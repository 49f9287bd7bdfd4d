"""`make demo`: a gate's first minute, with a hub and a second gate, all on this machine.

It starts a real hub (`python -m hub serve` on loopback, an SQLite database in a temporary
directory, `gate-hub demo-data` for a venue, an event and a few tickets), enrolls the demo gate
with it the way `gate-scanner enroll` does, and starts a second, headless gate process
(`python -m scanner stream --sync`). The second gate admits one guest; the hub pushes that
entry live, so when the same code reaches the demo gate it is refused as already admitted,
naming the other gate; the last guest's ticket carries a note for staff (an attention check).
A short video of guests holding up their codes (rendered with tilt, blur, noise and glare) is
the demo gate's camera; the gate app reads it, so verdicts appear within seconds. `--no-ui`
prints the same verdict stream. Ctrl-C stops the hub and the second gate; the temporary
directory is removed at exit. The hub's URL, its admin token and the sample codes are kept in a
file beside it (`/tmp/gate-demo-XXXX.txt`), printed before the app opens and after it closes.
"""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx
import numpy as np

from demo.frames import TYPICAL, render_frame, write_video
from demo.local_hub import (
    demo_enrollment_code,
    event_ticket_ids,
    free_port,
    hub_cli,
    serve_hub,
    stop_process,
    streaming_gate,
    until,
    until_serving,
)
from demo.sample import ATTENTION_NOTES
from hardware.camera import CameraReader, QrDecoder, open_source
from manifests.admission_types import GateContext
from protocol.reasons import Verdict
from scanner.clock import wall_clock_ms
from scanner.enroll import enroll
from scanner.hub_client import HubClient
from scanner.live import LiveChannel
from scanner.service import GateService, ScanOutcome
from scanner.settings import EVENT, SOUND
from scanner.store import GateStore
from scanner.sync import SyncWorker

if TYPE_CHECKING:
    from scanner.app import GateApp

ROOT = Path(__file__).resolve().parent.parent
VIDEO_SIZE = (1280, 720)
VIDEO_FPS = 10.0
SHOW_S = 1.5  # how long a guest holds the phone up
GAP_S = 1.0  # the next guest steps up: no code in view
LEAD_IN_S = 1.0
POSES = 5  # distinct renderings per code (the phone moves), cycled while it is held up
DEMO_TICKETS = 12
DEMO_GATE = "North 1"  # the enrolment names: a refusal names the gate of the first entry
OTHER_GATE = "North 2"
STARTUP_S = 30.0  # for the hub to listen, a gate to load its manifest, an entry to arrive
NOTE = ATTENTION_NOTES[2]  # the last guest's ticket: staff check, then admit or turn away

COLOURS = {
    Verdict.ADMIT: "\033[42;30m",
    Verdict.DENY: "\033[41;97m",
    Verdict.ATTENTION: "\033[43;30m",
    Verdict.EXIT: "\033[44;97m",
}
RESET = "\033[0m"


class DemoError(Exception):
    """A demo part did not start; the message says which."""


@dataclass(frozen=True)
class Guest:
    label: str  # who and what, for the codes file
    expect: str  # what the gate should say, in words
    ticket_id: str
    code: str


@dataclass
class Processes:
    """What the demo started, so that every exit stops all of it."""

    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, 10)
            if proc.stdout is not None:
                proc.stdout.close()
        for log in self.logs:
            log.close()
        self.procs.clear()
        self.logs.clear()


@dataclass(frozen=True)
class Demo:
    folder: Path
    db: Path
    video: Path
    codes_file: Path  # hub URL, admin token and the sample codes; kept after the demo ends
    hub_url: str
    admin_token: str
    event_id: str
    event_name: str
    gate: GateContext
    stream: tuple[Guest, ...]


# -- the hub and the other gate -----------------------------------------------------------


def start_hub(folder: Path, running: Processes) -> tuple[str, dict[str, Any]]:
    """`gate-hub demo-data` then `gate-hub serve` on a free loopback port."""
    db = folder / "hub.sqlite"
    demo = json.loads(
        hub_cli(
            "demo-data",
            "--db",
            str(db),
            "--tickets",
            str(DEMO_TICKETS),
            timeout_s=60,
            error=DemoError,
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "hub.log", "ab")  # noqa: SIM115 (closed by Processes.stop)
    running.logs.append(log)
    proc = serve_hub(db, port, log)
    running.procs.append(proc)
    until_serving(proc, url, STARTUP_S, folder / "hub.log", DemoError)
    return url, demo


class Admin:
    """The hub's admin API with the demo's admin token."""

    def __init__(self, url: str, demo: dict[str, Any]) -> None:
        self.url, self.demo = url, demo
        self.auth = {"Authorization": f"Bearer {demo['admin_token']}"}

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = httpx.request(method, self.url + path, headers=self.auth, timeout=30, **kw)
        if resp.status_code >= 400:
            raise DemoError(f"{method} {path}: HTTP {resp.status_code} {resp.text}")
        return resp

    def enrollment_code(self, name: str) -> str:
        return demo_enrollment_code(self.url, self.demo, name, error=DemoError)

    def credential(self, ticket_id: str) -> str:
        """The ticket's native code, as the box office prints it."""
        path = f"/api/admin/tickets/{ticket_id}/credential"
        return self.call("GET", path, params={"format": "text"}).text.strip()

    def event(self, event_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/admin/events/{event_id}").json())


def enrolled_gate(db: Path, hub_url: str, admin: Admin, name: str, event_id: str) -> None:
    """A gate database enrolled as `gate-scanner enroll` does it, syncing the demo event."""
    with GateStore(db) as store:
        enroll(GateService(store), hub_url, admin.enrollment_code(name), hardware_id=f"demo-{name}")
        store.set_setting(EVENT, event_id)
        store.set_setting(SOUND, False)


def start_other_gate(db: Path, running: Processes) -> subprocess.Popen[str]:
    """The second gate, headless: `gate-scanner stream --sync`, one payload a line."""
    proc = streaming_gate(db, "stream", "--sync")
    running.procs.append(proc)
    return proc


def scan_at(proc: subprocess.Popen[str], payload: str) -> list[str]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(payload + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise DemoError("the second gate stopped")
    return line.split()


def manifest_installed(db: Path) -> bool:
    with GateStore(db) as store:
        return store.manifest_revision() is not None


# -- the scene ----------------------------------------------------------------------------


def kept_file(folder: Path) -> Path:
    """Where the demo keeps its hub URL, admin token and codes: beside its data directory,
    which is removed at exit, so the file outlives it (/tmp/gate-demo-XXXX.txt)."""
    return folder.with_name(f"{folder.name}.txt")


def write_codes(path: Path, hub_url: str, token: str, event: str, stream: Sequence[Guest]) -> None:
    """The codes file: `#` lines say what the hub is and what each code shows; every other
    line is a code, ready for `grep -v '^#' FILE | gate-scanner --db GATE.db stream`. It holds
    the demo hub's admin token, so only its owner may read it."""
    head = [
        f"# Venue Gate demo: {event}. The hub below runs while the demo does.",
        f"# hub URL     : {hub_url}  (API {hub_url}/api, OpenAPI {hub_url}/openapi.json)",
        f"# admin token : {token}  (Authorization: Bearer; tenant demo, role admin)",
        "# sample codes: each code below the line that says who shows it and the verdict",
    ]
    codes = [f"# {g.label} -> {g.expect}\n{g.code}\n" for g in stream]
    path.touch(mode=0o600)
    path.write_text("\n".join(head) + "\n" + "".join(codes), encoding="utf-8")


def build(folder: Path, running: Processes, kept: Path | None = None) -> Demo:
    """Hub, both gates, the other gate's admit, codes file and camera video, under `folder`
    (the codes file at `kept` if given). When it returns, the demo gate has the manifest and
    already knows the other gate's entry."""
    hub_url, demo = start_hub(folder, running)
    admin = Admin(hub_url, demo)
    event_id = demo["event_id"]
    db, other_db = folder / "gate.db", folder / "gate-2.db"
    enrolled_gate(db, hub_url, admin, DEMO_GATE, event_id)
    enrolled_gate(other_db, hub_url, admin, OTHER_GATE, event_id)
    ids = event_ticket_ids(folder / "hub.sqlite", event_id)
    codes = {tid: admin.credential(tid) for tid in ids[:7]}
    old_code = codes[ids[4]]
    lock = {"ticket_ids": [ids[3]], "reason": "chargeback_pending"}
    admin.call("POST", "/api/admin/tickets/lock", json=lock)
    admin.call("POST", f"/api/admin/tickets/{ids[4]}/reissue")
    admin.call("PATCH", f"/api/admin/tickets/{ids[6]}", json={"attention": NOTE})
    stream = (
        Guest("Guest A", "ADMIT", ids[1], codes[ids[1]]),
        Guest("Guest B", "ADMIT", ids[2], codes[ids[2]]),
        Guest(
            f"Guest C: let in at {OTHER_GATE} just now, then passed the code on",
            f"DENY already admitted (at {OTHER_GATE})",
            ids[0],
            codes[ids[0]],
        ),
        Guest("Guest A's code again: a screenshot", "DENY already admitted", ids[1], codes[ids[1]]),
        Guest("Guest D, ticket locked (chargeback)", "DENY locked", ids[3], codes[ids[3]]),
        Guest("Guest E's old code (ticket reissued)", "DENY superseded", ids[4], old_code),
        Guest("Guest F", "ADMIT", ids[5], codes[ids[5]]),
        # last: in the app, an attention check waits for staff before the next scan
        Guest("Guest G, a note on the ticket", f"ATTENTION {NOTE}", ids[6], codes[ids[6]]),
    )
    # The demo gate loads the manifest and listens live; then the other gate admits guest C.
    with GateStore(db) as store:
        hub = HubClient(store, hub_url)  # one client, one clock offset, as hub_link builds
        worker = SyncWorker(hub, event_id=event_id)
        live = LiveChannel(store, hub_url, event_id=event_id, hub=hub)
        try:
            if not worker.sync_once() or store.manifest_revision() is None:
                raise DemoError(f"the demo gate could not sync: {worker.snapshot().last_error}")
            live.start()
            until(live.connected.is_set, STARTUP_S, "the demo gate's live link", DemoError)
            other = start_other_gate(other_db, running)
            until(
                lambda: manifest_installed(other_db),
                STARTUP_S,
                "the second gate's manifest",
                DemoError,
            )
            _, verdict, reason = scan_at(other, codes[ids[0]])
            if (verdict, reason) != ("admit", "admitted"):
                raise DemoError(f"the second gate said {verdict} {reason}")
            until(
                lambda: store.history_for(ids[0]),
                STARTUP_S,
                f"{OTHER_GATE}'s entry at the demo gate",
                DemoError,
            )
        finally:
            live.stop()
            worker.stop()
        gate = store.gate()
    assert gate is not None
    name = str(admin.event(event_id).get("name", "Demo Night"))
    codes_file = folder / "sample-codes.txt" if kept is None else kept
    write_codes(codes_file, hub_url, demo["admin_token"], f"{name} (event {event_id})", stream)
    video = folder / "gate-camera.avi"
    write_video(video, video_frames([g.code for g in stream]), fps=VIDEO_FPS)
    token = demo["admin_token"]
    return Demo(folder, db, video, codes_file, hub_url, token, event_id, name, gate, stream)


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


def demo_app(demo: Demo, store: GateStore) -> GateApp:
    """The gate app on the demo video, syncing with the demo hub (live link included)."""
    from scanner.app import GateApp  # Textual only when there is a screen to use

    hub = HubClient(store, demo.hub_url)
    return GateApp(
        GateService(store),
        camera=str(demo.video),
        clear_after_s=30.0,
        sync=SyncWorker(hub, event_id=demo.event_id),
        live=LiveChannel(store, demo.hub_url, event_id=demo.event_id, hub=hub),
    )


def run_app(demo: Demo) -> int:
    with GateStore(demo.db) as store:
        app = demo_app(demo, store)
        try:
            app.run()
        finally:
            app.stop_camera()
    print("Gate app closed.")
    return 0


def intro(demo: Demo, ui: bool) -> str:
    lines = [
        f"\n{demo.event_name}: {demo.gate.gate_name} (entry), a gate's first minute.",
        f"  hub API       : {demo.hub_url}/api  (OpenAPI: {demo.hub_url}/openapi.json)",
        f"  admin token   : {demo.admin_token}  (Authorization: Bearer; while the demo runs)",
        f"  second gate   : {OTHER_GATE}, headless (`gate-scanner stream --sync`), admitted"
        " one guest",
        f"  gate database : {demo.db}",
        f"  kept in       : {demo.codes_file}  (hub URL, token, sample codes; stays after exit)",
        f"  camera video  : {demo.video}  ({len(demo.stream)} guests, 1280x720 MJPG)",
    ]
    if ui:
        lines += [
            "  stop          : Ctrl+Q (or Ctrl-C). Hub and second gate stop; the temp directory"
            " is removed.",
            "  on screen     : admits, denies, a code already used at the other gate, and last"
            " a ticket with a note for staff (check it, then Y admit or N turn away).",
            "  also          : F2 lookup, F3 history, F4 settings; type a code + Enter too.",
        ]
    else:
        lines.append(
            "  stop          : Ctrl-C. Hub and second gate stop; the temp directory is removed."
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument(
        "--no-ui", action="store_true", help="print the verdict stream instead of the app"
    )
    parser.add_argument(
        "--pause", type=float, default=3.0, help="seconds to read the intro before the app"
    )
    args = parser.parse_args(argv)
    running = Processes()
    kept: Path | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="gate-demo-") as tmp:
            try:
                print("Preparing: hub, two gates, the camera video…", flush=True)
                kept = kept_file(Path(tmp))
                demo = build(Path(tmp), running, kept)
                print(intro(demo, ui=not args.no_ui), flush=True)
                if args.no_ui:
                    code = run_text(demo)
                else:
                    time.sleep(max(0.0, args.pause))
                    code = run_app(demo)
            finally:
                running.stop()  # before the directory goes: the hub holds its database
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        print_kept(kept, sys.stderr)
        return 130
    except DemoError as exc:
        print(f"The demo could not start: {exc}", file=sys.stderr)
        return 1
    print(f"Stopped the hub and the second gate; removed {tmp}.")
    print_kept(kept, sys.stdout)
    return code


def print_kept(kept: Path | None, to: IO[str]) -> None:
    if kept is not None and kept.exists():
        print(f"Kept {kept}: the hub URL and admin token it used, the sample codes.", file=to)


if __name__ == "__main__":
    sys.exit(main())
