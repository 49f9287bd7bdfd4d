"""What the gate worker hears and what the turnstile does after a verdict.

Staff look at the guest, not the screen, so each verdict has its own sound: admit a short
rising chirp, deny a long low buzz, attention three mid beeps, exit a soft falling tone. Tones
are generated WAV files played by whatever player the box has; with none, the terminal bell
(rung N times) is the fallback. The relay (door, turnstile) pulses on admit only; without
gpiozero or a GPIO chip it is a no-op that says so once in the log.
"""

from __future__ import annotations

import logging
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from protocol.reasons import Verdict

log = logging.getLogger(__name__)

SAMPLE_RATE = 22_050
Segment = tuple[float, int]  # (frequency Hz, 0 for silence; duration ms)

TONES: dict[Verdict, tuple[Segment, ...]] = {
    Verdict.ADMIT: ((880.0, 90), (0.0, 30), (1320.0, 140)),
    Verdict.DENY: ((220.0, 650),),
    Verdict.ATTENTION: ((660.0, 120), (0.0, 80), (660.0, 120), (0.0, 80), (660.0, 120)),
    Verdict.EXIT: ((660.0, 120), (440.0, 180)),
}
BELLS: dict[Verdict, int] = {
    Verdict.ADMIT: 1,
    Verdict.EXIT: 1,
    Verdict.ATTENTION: 2,
    Verdict.DENY: 3,
}
PLAYERS: tuple[tuple[str, ...], ...] = (("aplay", "-q"), ("paplay",), ("pw-play",), ("afplay",))


def tone_samples(segments: Sequence[Segment], volume: float = 0.5) -> bytes:
    """16-bit mono PCM; each tone fades in and out over 5 ms so it does not click."""
    out = bytearray()
    fade = int(SAMPLE_RATE * 0.005)
    for freq, ms in segments:
        n = SAMPLE_RATE * ms // 1000
        for i in range(n):
            if freq <= 0:
                value = 0.0
            else:
                envelope = min(1.0, i / fade, (n - 1 - i) / fade) if fade else 1.0
                value = volume * envelope * math.sin(2 * math.pi * freq * i / SAMPLE_RATE)
            out += struct.pack("<h", int(value * 32767))
    return bytes(out)


def write_tone_wav(path: Path, segments: Sequence[Segment]) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(tone_samples(segments))
    return path


def find_player() -> list[str] | None:
    for command in PLAYERS:
        exe = shutil.which(command[0])
        if exe:
            return [exe, *command[1:]]
    return None


def terminal_bell(times: int) -> None:
    sys.stdout.write("\a" * times)
    sys.stdout.flush()


class Sounds:
    """Plays a verdict's tone without waiting for it (the next guest is already scanning)."""

    def __init__(
        self,
        sound_dir: Path | None = None,
        player: Sequence[str] | None = None,
        bell: Callable[[int], None] = terminal_bell,
        detect_player: bool = True,
    ) -> None:
        self.bell = bell
        self.player = list(player) if player else (find_player() if detect_player else None)
        self.sound_dir = sound_dir or Path(tempfile.mkdtemp(prefix="gate-sounds-"))
        self.sound_dir.mkdir(parents=True, exist_ok=True)
        self.files = {
            verdict: write_tone_wav(self.sound_dir / f"{verdict}.wav", segments)
            for verdict, segments in TONES.items()
        }
        self._playing: subprocess.Popen[bytes] | None = None

    def play(self, verdict: Verdict) -> str:
        """Returns how it sounded: "player" or "bell" (player missing or failed)."""
        if self.player:
            if self._playing is not None and self._playing.poll() is None:
                self._playing.terminate()  # a new verdict cuts the old tone short
            try:
                self._playing = subprocess.Popen(
                    [*self.player, str(self.files[verdict])],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                return "player"
            except OSError as exc:
                log.warning("sound player %s failed (%s); using the bell", self.player[0], exc)
                self.player = None
        self.bell(BELLS[verdict])
        return "bell"

    def wait(self, timeout: float = 5.0) -> int | None:
        """Wait for the tone that is playing; its player's exit code (None if none)."""
        if self._playing is None:
            return None
        return self._playing.wait(timeout)


class Relay:
    """A GPIO output that opens the door/turnstile; on admit only."""

    def __init__(self, pin: int | str | None = None, active_high: bool = True) -> None:
        self._device: Any = None
        self._warned = False
        self.reason: str | None = None
        if pin is None:
            self.reason = "no relay pin configured"
            return
        try:
            from gpiozero import DigitalOutputDevice  # optional: only on GPIO boards
        except ImportError:
            self.reason = "gpiozero is not installed"
            return
        try:
            self._device = DigitalOutputDevice(pin, active_high=active_high, initial_value=False)
        except Exception as exc:  # gpiozero raises many kinds when no GPIO chip is present
            self.reason = f"relay pin {pin} unavailable: {exc}"

    @property
    def available(self) -> bool:
        return self._device is not None

    def pulse(self, ms: int = 800) -> bool:
        """Energise the relay for `ms` in the background; False when there is no relay."""
        if self._device is None:
            if not self._warned:
                log.warning("relay disabled: %s", self.reason)
                self._warned = True
            return False
        self._device.blink(on_time=ms / 1000, off_time=0, n=1, background=True)
        return True

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None


class Feedback:
    """The one call the UI makes once a verdict is durably stored and on screen."""

    def __init__(self, sounds: Sounds, relay: Relay, pulse_ms: int = 800) -> None:
        self.sounds = sounds
        self.relay = relay
        self.pulse_ms = pulse_ms

    def verdict(self, verdict: Verdict) -> None:
        self.sounds.play(verdict)
        if verdict is Verdict.ADMIT:
            self.relay.pulse(self.pulse_ms)

    def attention_confirmed(self) -> None:
        """Staff admitted an attention guest: the door opens now, with the admit tone."""
        self.verdict(Verdict.ADMIT)
