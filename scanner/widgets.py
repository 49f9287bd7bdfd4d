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
from manifests.admission_types import DisplayFacts
from protocol.reasons import Verdict

VERDICT_WORDS: dict[Verdict, str] = {
    Verdict.ADMIT: "ADMIT",
    Verdict.DENY: "DENY",
    Verdict.ATTENTION: "CHECK",
    Verdict.EXIT: "EXIT",
}
VERDICT_CLASSES = ("-admit", "-deny", "-attention", "-exit", "-idle", "-fault")


def facts_line(display: DisplayFacts) -> str:
    """Holder, tier, zone, seat and entries today, in one line a worker reads at a glance."""
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
    if display.entries_today:
        parts.append(f"Entries today {display.entries_today}")
    return "  ·  ".join(parts)


def _plain(id_: str) -> Static:
    return Static("", id=id_, markup=False)


def rendered_text(widget: Static) -> str:
    """What a Static shows, as plain text (for tests and the history export)."""
    return str(widget.render())


class VerdictPanel(Vertical):
    """The full-width colour block: verdict word, reason in words, display facts."""

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
    """

    def compose(self) -> ComposeResult:
        yield _plain("verdict-word")
        yield _plain("verdict-message")
        yield _plain("verdict-facts")
        yield _plain("verdict-hint")

    def on_mount(self) -> None:
        self.show_idle()

    def _set(self, css: str, word: str, message: str, facts: str = "", hint: str = "") -> None:
        for name in VERDICT_CLASSES:
            self.set_class(name == css, name)
        self.query_one("#verdict-word", Static).update(" ".join(word))  # spaced: reads from afar
        self.query_one("#verdict-message", Static).update(message)
        self.query_one("#verdict-facts", Static).update(facts)
        self.query_one("#verdict-hint", Static).update(hint)

    def show_idle(self, message: str = "Scan a ticket") -> None:
        self._set("-idle", "READY", message)

    def show_fault(self, message: str, hint: str) -> None:
        """Not a verdict: the gate cannot store scans, so nobody may be waved through. Purple,
        unlike any verdict colour, so it is never read as a deny of one guest."""
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
        css = f"-{verdict.value}"
        self._set(css, word or VERDICT_WORDS[verdict], message, facts_line(display), hint)

    @property
    def word(self) -> str:
        return rendered_text(self.query_one("#verdict-word", Static)).replace(" ", "")

    @property
    def message(self) -> str:
        return rendered_text(self.query_one("#verdict-message", Static))

    @property
    def facts(self) -> str:
        return rendered_text(self.query_one("#verdict-facts", Static))


def _age(ms: int) -> str:
    minutes = max(0, ms) // 60_000
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def link_text(status: dict[str, Any]) -> str:
    """ONLINE / OFFLINE / SYNCING, a small bar while a manifest downloads, and how long ago
    the last good sync was (that is how stale the gate's knowledge of other gates is)."""
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
    last = link.get("last_sync_ms")
    if download and word.startswith("SYNCING"):
        return word  # the bar is what matters now; keep the line inside 80 columns
    if last is not None:
        word += " · synced " + time.strftime("%H:%M:%S", time.localtime(last / 1000))
    elif word == "OFFLINE":
        word += " · never synced"
    return word


class StatusBar(Static):
    """Always visible: where this gate is, what it counted, and how fresh its data is."""

    DEFAULT_CSS = """
    StatusBar { dock: top; height: 2; background: $boost; color: $text; padding: 0 1; }
    StatusBar.-stale { background: #7a4b00; color: #ffffff; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", markup=False, **kwargs)

    def show_status(self, status: dict[str, Any]) -> None:
        gate, manifest, c = status["gate"], status["manifest"], status["counters"]
        if gate is None:
            place = "Gate not set up"
        else:
            zones = ",".join(gate["zones"]) or "all zones"
            place = f"{gate['name']} · {gate['direction'].upper()} · {zones}"
        if manifest is None:
            event, rev = "no ticket list", "Manifest: NONE"
        else:
            event = manifest["event"]
            rev = f"Rev {manifest['revision']} ({_age(manifest['age_ms'])} old)"
            if manifest["expired"]:
                rev += " EXPIRED"
            elif manifest["stale"]:
                rev += " STALE"
        camera = f"{status['camera']} · " if status.get("camera") else ""  # before the event:
        line1 = f"{place} · {camera}{event}"  # a long event name is what gets cut off
        line2 = (
            f"In {c['admitted']}  Denied {c['denied']}  Inside {c['inside_now']} · "
            f"{link_text(status)} · Upload {status['pending_upload']} · {rev}"
        )
        warn = manifest is None or manifest["stale"] or manifest["expired"]
        self.set_class(bool(warn), "-stale")
        width = max(20, self.size.width - 2) if self.size.width else 78
        self.update(f"{line1[:width]}\n{line2[:width]}")

    @property
    def text(self) -> str:
        return rendered_text(self)


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
