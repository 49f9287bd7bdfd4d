"""Keyboard-wedge scanners: a USB scanner that "types" the code, usually ending with Enter or Tab,
sometimes with nothing at all. Pure logic fed with (key, time) events, so it is tested exactly
and the Textual app only forwards key presses and calls `poll` from a timer.

A scanner types a whole code in a burst (a few ms per character); a person types ~10x slower.
A burst with no terminator is complete once the keys stop for `idle_gap_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TERMINATORS = frozenset({"\r", "\n", "\t", "enter", "tab"})
DEFAULT_IDLE_GAP_MS = 80


@dataclass(slots=True)
class WedgeAssembler:
    idle_gap_ms: int = DEFAULT_IDLE_GAP_MS
    min_length: int = 4  # shorter bursts are stray key presses, not codes
    _buffer: list[str] = field(default_factory=list)
    _last_ms: int | None = None

    def feed(self, key: str, t_ms: int) -> list[str]:
        """One key event (a character, or a key name for Enter/Tab). Returns the payloads it
        completed: the pending burst when the gap before this key was long, and/or the current
        line when this key is a terminator."""
        done: list[str] = []
        if self._idle(t_ms):
            done.extend(self._flush())
        self._last_ms = t_ms
        if key in TERMINATORS:
            done.extend(self._flush())
        elif len(key) == 1 and key.isprintable():
            self._buffer.append(key)
        return done

    def feed_text(self, text: str, t_ms: int, per_char_ms: int = 0) -> list[str]:
        """Several characters at once (a paste, or a scanner driver that delivers a line)."""
        done: list[str] = []
        for i, char in enumerate(text):
            done.extend(self.feed(char, t_ms + i * per_char_ms))
        return done

    def poll(self, now_ms: int) -> list[str]:
        """Call from a timer: completes a burst that ended without a terminator."""
        return self._flush() if self._idle(now_ms) else []

    @property
    def pending(self) -> str:
        return "".join(self._buffer)

    def _idle(self, now_ms: int) -> bool:
        return (
            bool(self._buffer)
            and self._last_ms is not None
            and now_ms - self._last_ms >= self.idle_gap_ms
        )

    def _flush(self) -> list[str]:
        # Not stripped: base45 codes may start or end with a space; protocol/normalize.py
        # owns cleaning scanner input.
        text = "".join(self._buffer)
        self._buffer.clear()
        return [text] if len(text) >= self.min_length else []
