"""The gate's building blocks: the verdict block, the status bar and the wedge catcher.

Everything shown comes from stored data or the engine's words and is rendered with markup
OFF: a scanned payload or a ticket note must never be able to restyle the screen.
"""

from __future__ import annotations

import time
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from hardware.wedge import DEFAULT_IDLE_GAP_MS, WedgeAssembler
from manifests.admission import venue_clock
from manifests.admission_types import DisplayFacts
from protocol.reasons import Verdict
from scanner.link_reasons import MAX_WORDS

VERDICT_WORDS: dict[Verdict, str] = {
    Verdict.ADMIT: "ADMIT",
    Verdict.DENY: "DENY",
    Verdict.ATTENTION: "CHECK",
    Verdict.EXIT: "EXIT",
}
VERDICT_CLASSES = ("-admit", "-deny", "-attention", "-exit", "-idle", "-fault", "-unready")
SEP = " · "
STALE_SYNC_MS = 12 * 60 * 60_000  # a last sync older than this shows its age, not a time
STATUS_WIDTH = 78  # an 80-column console less the bar's padding, until the bar has a size


def facts_line(display: DisplayFacts, *, pending: bool = False) -> str:
    """Holder, tier, zone, seat and entries today, in one line a worker reads at a glance.
    `pending`: an attention verdict not yet decided, whose entry has not happened."""
    parts = []
    if display.holder:
        parts.append(display.holder)
    if display.tier:
        parts.append(display.tier + (" (comp)" if display.comp else ""))
    elif display.comp:
        parts.append("Comp")
    if display.zone:
        parts.append(f"Zone {display.zone}")
    if display.seat:
        parts.append(f"Seat {display.seat}")
    if pending and display.entries_today:
        parts.append(f"Entry {display.entries_today} today if admitted")
    elif display.entries_today:
        parts.append(f"Entries today {display.entries_today}")
    return "  ·  ".join(parts)


def resting_state(status: dict[str, Any]) -> tuple[str, str, str, str]:
    """What the screen shows between verdicts: (css class, word, message, hint). READY only
    when the gate can check a ticket; a gate without a ticket list (or with an expired one)
    must never look ready, so it gets its own colour and says what to do."""
    manifest = status.get("manifest")
    if status.get("gate") is None:
        return (
            "-unready",
            "NOT SET UP",
            "This gate is not set up: it cannot check tickets.",
            "Ask a supervisor to enrol it with the hub or run gate-scanner setup.",
        )
    if manifest is None:
        if str(status.get("connection")) == "syncing":
            hint = "Downloading the ticket list from the hub: wait for it."
        else:
            hint = "Sync with the hub (check the network), or load one: gate-scanner load-manifest."
        return (
            "-unready",
            "NO TICKET LIST",
            "No ticket list on this gate: scans are refused.",
            hint,
        )
    if manifest.get("expired"):
        return (
            "-unready",
            "LIST EXPIRED",
            f"The ticket list (Rev {manifest['revision']}) has expired: scans are refused.",
            "Sync with the hub, or load a new manifest.",
        )
    return ("-idle", "READY", "Scan a ticket", "")


def _plain(id_: str) -> Static:
    return Static("", id=id_, markup=False)


def rendered_text(widget: Static) -> str:
    """What a Static shows, as plain text (for tests and the history export)."""
    return str(widget.render())


_TEXT_IDS = ("verdict-word", "verdict-message", "verdict-facts", "verdict-hint")


class VerdictPanel(Vertical):
    """The full-width colour block: verdict word, reason in words, display facts. Between
    verdicts it rests on READY, or on a non-verdict state when the gate cannot check."""

    DEFAULT_CSS = """
    VerdictPanel { height: 1fr; align: center middle; padding: 1 2; }
    VerdictPanel > Static { width: 100%; content-align: center middle; text-align: center; }
    VerdictPanel #verdict-word { text-style: bold; height: 3; content-align: center middle; }
    VerdictPanel #verdict-message { height: auto; margin-top: 1; text-style: bold; }
    VerdictPanel #verdict-facts { height: auto; margin-top: 1; }
    VerdictPanel #verdict-hint { height: auto; margin-top: 1; text-style: italic; }
    VerdictPanel.-idle { background: $panel; color: $text; }
    VerdictPanel.-admit { background: #1e8c34; color: #ffffff; }
    VerdictPanel.-deny { background: #c0262d; color: #ffffff; }
    VerdictPanel.-attention { background: #f0a500; color: #000000; }
    VerdictPanel.-exit { background: #1f5fbf; color: #ffffff; }
    VerdictPanel.-fault { background: #6a1b9a; color: #ffffff; }
    VerdictPanel.-unready { background: #5d4037; color: #ffffff; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resting = True  # showing READY (or why not ready), not a verdict or a fault
        self._texts = ("", "", "", "")

    def compose(self) -> ComposeResult:
        for name in _TEXT_IDS:
            yield _plain(name)

    def _set(self, css: str, word: str, message: str, facts: str = "", hint: str = "") -> None:
        for name in VERDICT_CLASSES:
            self.set_class(name == css, name)
        self._texts = (" ".join(word), message, facts, hint)  # the word spaced: reads from afar
        if self.query("#verdict-word"):
            self._show_texts()
        # else: a screen that shows a verdict as it mounts can be quicker than this panel's
        # compose on a loaded machine; on_mount shows it then.

    def _show_texts(self) -> None:
        for name, text in zip(_TEXT_IDS, self._texts, strict=True):
            self.query_one(f"#{name}", Static).update(text)

    def on_mount(self) -> None:
        self._show_texts()

    def show_idle(self, status: dict[str, Any], message: str | None = None) -> None:
        """READY, or the state that keeps the gate from being ready (see `resting_state`);
        `message` replaces "Scan a ticket" on a ready gate."""
        css, word, default, hint = resting_state(status)
        self.resting = True
        self._set(css, word, message if message and css == "-idle" else default, "", hint)

    def show_fault(self, message: str, hint: str) -> None:
        """Not a verdict: the gate cannot store scans, so nobody may be waved through. Purple,
        unlike any verdict colour, so it is never read as a deny of one guest."""
        self.resting = False
        self._set("-fault", "STORAGE FAULT", f"STORAGE FAULT — do not admit. {message}", "", hint)

    def show(
        self,
        verdict: Verdict,
        message: str,
        display: DisplayFacts,
        *,
        word: str | None = None,
        hint: str = "",
    ) -> None:
        self.resting = False
        css = f"-{verdict.value}"
        facts = facts_line(display, pending=verdict is Verdict.ATTENTION)
        self._set(css, word or VERDICT_WORDS[verdict], message, facts, hint)

    @property
    def word(self) -> str:
        return rendered_text(self.query_one("#verdict-word", Static)).replace(" ", "")

    @property
    def message(self) -> str:
        return rendered_text(self.query_one("#verdict-message", Static))

    @property
    def facts(self) -> str:
        return rendered_text(self.query_one("#verdict-facts", Static))

    @property
    def hint(self) -> str:
        return rendered_text(self.query_one("#verdict-hint", Static))


def _age(ms: int, *, short: bool = False) -> str:
    minutes = max(0, ms) // 60_000
    if minutes < 120:
        return f"{minutes}m" if short else f"{minutes} min"
    if minutes < 72 * 60:
        return f"{minutes // 60}h" if short else f"{minutes // 60} h"
    return f"{minutes // 1440}d" if short else f"{minutes // 1440} d"


def link_text(status: dict[str, Any], level: int = 0) -> str:
    """ONLINE / OFFLINE / SYNCING, a small bar while a manifest downloads, and how long ago
    the last good sync was on the venue's clock (that is how stale the gate's knowledge of
    other gates is). Offline with a reason from the sync worker: the reason instead, so a
    revoked gate does not read like a dead network. `level` 1 and 2 are shorter forms for a
    narrow status bar (seconds dropped; the word alone)."""
    word = str(status["connection"]).upper()
    link = status.get("sync")
    if not link:
        return word
    download = link.get("download")
    if word == "SYNCING" and download:
        received, total = download
        if total:
            filled = min(8, received * 8 // total)
            word += f" [{'#' * filled}{'.' * (8 - filled)}] {received * 100 // total}%"
        else:
            word += f" {received // 1024} kB"
        return word  # the bar is what matters now; keep the line inside 80 columns
    if level >= 2:
        return word
    reason = link.get("reason")
    last = link.get("last_sync_ms")
    if word == "OFFLINE" and reason:
        return f"{word}{SEP}{str(reason)[:MAX_WORDS]}"
    if last is not None:
        now = status.get("now_ms")
        if now is not None and now - last >= STALE_SYNC_MS:  # kept across a restart: a bare
            return f"{word}{SEP}synced {_age(now - last)} ago"  # time would read as today
        when = venue_clock(int(last), status.get("timezone"))
        if level == 1:  # HH:MM, and the UTC mark if any
            when = when[:5] + when[8:]
        return f"{word}{SEP}synced {when}"
    if word == "OFFLINE":
        return f"{word}{SEP}never synced"
    return word


def fit(parts: list[list[str]], steps: list[int], width: int, tail: str = "") -> str:
    """One status line inside `width` columns. Each part lists its forms, longest first ("" as
    the last form: it may go). `steps` shrinks parts one form at a time, least important
    first. A part is never cut (a number is never halved): if the shortest forms still do not
    fit, whole parts go from the end. `tail` (the event name) gets what room is left, cut
    with an ellipsis, or goes."""
    return _fit(parts, steps, width, tail)[0]


def _fit(parts: list[list[str]], steps: list[int], width: int, tail: str = "") -> tuple[str, bool]:
    """`fit`, and whether every part kept a form (False: some went for want of room)."""
    forms = [[*p, ""] for p in parts]  # the extra "": a part that had to go
    level = [0] * len(parts)

    def line() -> str:
        return SEP.join(p[i] for p, i in zip(forms, level, strict=True) if p[i])

    for step in steps:
        if len(line()) <= width:
            break
        level[step] = min(level[step] + 1, len(parts[step]) - 1)
    text, whole = line(), True
    while len(text) > width and any(p[i] for p, i in zip(forms, level, strict=True)):
        last = max(n for n, (p, i) in enumerate(zip(forms, level, strict=True)) if p[i])
        level[last], whole = len(forms[last]) - 1, False
        text = line()
    room = width - len(text) - (len(SEP) if text else 0)
    if tail and room >= min(len(tail), 6):
        shown = tail if len(tail) <= room else tail[: room - 1].rstrip() + "…"
        text = f"{text}{SEP}{shown}" if text else shown
    return text, whole


def _short_camera(note: str) -> str:
    """ "Camera /dev/video0: permission denied" -> "Camera: permission denied"."""
    head, sep, why = note.partition(": ")
    return f"Camera: {why}" if sep and head.startswith("Camera ") else note


class StatusBar(Static):
    """Always visible: where this gate is, what it counted, and how fresh its data is. Both
    lines fit the console (80 columns) with every vital fact: wording shortens and the least
    important parts go first; the event name is cut last."""

    DEFAULT_CSS = """
    StatusBar { dock: top; height: 2; background: $boost; color: $text; padding: 0 1; }
    StatusBar.-stale { background: #7a4b00; color: #ffffff; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)
        self._status: dict[str, Any] | None = None

    def on_resize(self, event: events.Resize) -> None:
        """Fitted to the width it has: first shown before layout, and consoles get resized."""
        if self._status is not None:
            self.show_status(self._status)

    def show_status(self, status: dict[str, Any]) -> None:
        self._status = status
        width = self.size.width or STATUS_WIDTH
        first, second = status_lines(status, width)
        manifest = status["manifest"]
        warn = manifest is None or manifest["stale"] or manifest["expired"]
        self.set_class(bool(warn), "-stale")
        self.update(f"{first}\n{second}")

    @property
    def text(self) -> str:
        return rendered_text(self)


def status_lines(status: dict[str, Any], width: int) -> tuple[str, str]:
    """The status bar's two lines at `width` columns: place, camera, event; then counters,
    link, uploads pending, manifest revision and age. Should the second line not hold all of
    these even in its shortest words, the revision moves up and the event name makes room."""
    gate, manifest, c = status["gate"], status["manifest"], status["counters"]
    if gate is None:
        place = [["Gate not set up"]]
    else:
        zones = ",".join(gate["zones"]) or "all zones"
        count = f"{len(gate['zones'])} zones" if len(gate["zones"]) > 1 else zones
        place = [[gate["name"]], [gate["direction"].upper()], [zones, count]]
    camera = status.get("camera")
    camera_forms = [camera, _short_camera(camera)] if camera else [""]
    event = "no ticket list" if manifest is None else str(manifest["event"])

    admitted, denied = c["admitted"], c["denied"]
    counters = [
        f"In {admitted}  Denied {denied}  Inside {c['inside_now']}",
        f"In {admitted}  Denied {denied}",
        f"In {admitted} Denied {denied}",
    ]
    link = [link_text(status, level) for level in range(3)]
    upload = [f"Upload {status['pending_upload']}", f"Up {status['pending_upload']}"]
    if manifest is None:
        rev = ["Manifest: NONE", "No list"]
    else:
        flag = " EXPIRED" if manifest["expired"] else " STALE" if manifest["stale"] else ""
        r, age = manifest["revision"], manifest["age_ms"]
        rev = [
            f"Rev {r} ({_age(age)} old){flag}",
            f"Rev {r} ({_age(age)}){flag}",
            f"Rev {r} {_age(age, short=True)}{flag}",
        ]
    # least important first: Inside, the word "old", "Upload", seconds, spaces
    second, whole = _fit([counters, link, upload, rev], [0, 3, 2, 1, 0, 3], width)
    line1, steps = [*place, camera_forms], [len(place), len(place) - 1]
    if not whole:  # then the offline reason or sync time, and the revision goes up a line
        second = fit([counters, link, upload], [0, 2, 1, 0, 1], width)
        n = len(place)
        line1, steps = [*place, rev, camera_forms], [n + 1, n, n, n - 1]
    return fit(line1, steps, width, event), second


class ScanCatcher(Static, can_focus=True):
    """Holds focus on the verdict screen and assembles keyboard-wedge bursts into payloads
    (hardware/wedge.py decides where a code ends: Enter, Tab, or a pause)."""

    DEFAULT_CSS = """
    ScanCatcher { height: 1; padding: 0 1; background: $surface; color: $text-muted; }
    ScanCatcher:focus { color: $text; }
    """

    class Scanned(Message):
        def __init__(self, payload: str) -> None:
            super().__init__()
            self.payload = payload

    def __init__(self, idle_gap_ms: int = DEFAULT_IDLE_GAP_MS, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)
        self.wedge = WedgeAssembler(idle_gap_ms=idle_gap_ms)

    def on_mount(self) -> None:
        self._shown = ""
        self._show()
        self.set_interval(0.05, self._poll)

    @staticmethod
    def _now_ms() -> int:
        return time.monotonic_ns() // 1_000_000

    def on_key(self, event: events.Key) -> None:
        if event.key in ("enter", "tab"):
            key = event.key
        elif event.character and len(event.character) == 1 and event.character.isprintable():
            key = event.character
        else:
            return  # function keys and shortcuts go on to the bindings
        event.stop()
        event.prevent_default()
        self._emit(self.wedge.feed(key, self._now_ms()))

    def _poll(self) -> None:
        if self.wedge.pending:  # idle otherwise: no work between scans
            self._emit(self.wedge.poll(self._now_ms()))

    def _emit(self, payloads: list[str]) -> None:
        for payload in payloads:
            self.post_message(self.Scanned(payload))
        self._show()

    def note(self, text: str) -> None:
        """A short remark about the last read, shown until the next one starts."""
        self._show(text)

    def _show(self, note: str = "") -> None:
        pending = len(self.wedge.pending)
        text = f"Reading… {pending} characters" if pending else (note or "Scanner ready ▸")
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
