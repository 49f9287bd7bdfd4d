"""Scanners on a serial port (RS-232 or USB CDC): the same bursts a keyboard wedge types, read
from the port instead of the keyboard, assembled by the same `WedgeAssembler` rules.

`url` is anything `serial.serial_for_url` opens: "/dev/ttyACM0", "loop://" (tests).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import serial

from hardware.dedupe import Deduper
from hardware.wedge import WedgeAssembler

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class SerialScanner:
    """Reads the port in a daemon thread; each new scan goes to `on_payload` (called in that
    thread) and to the `payloads` queue. A missing port is `available == False`, not an error."""

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        on_payload: Callable[[str], None] | None = None,
        assembler: WedgeAssembler | None = None,
        deduper: Deduper | None = None,
        encoding: str = "ascii",
    ) -> None:
        self.url = url
        self.on_payload = on_payload
        self.assembler = assembler or WedgeAssembler()
        self.deduper = deduper or Deduper()
        self.encoding = encoding
        self.payloads: queue.Queue[str] = queue.Queue()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self.port: serial.SerialBase | None = serial.serial_for_url(
                url, baudrate=baudrate, timeout=0.02
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self.port = None
            self.error = str(exc)

    @property
    def available(self) -> bool:
        return self.port is not None

    def start(self) -> bool:
        if self.port is None:
            return False
        self._thread = threading.Thread(target=self._run, name="serial-scanner", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self.port is not None:
            self.port.close()
            self.port = None

    def _deliver(self, payloads: list[str]) -> None:
        now = _now_ms()
        for payload in payloads:
            if self.deduper.accept(payload, now):
                self.payloads.put(payload)
                if self.on_payload is not None:
                    self.on_payload(payload)

    def _run(self) -> None:
        assert self.port is not None
        while not self._stop.is_set():
            try:
                data = self.port.read(256)
            except (serial.SerialException, OSError) as exc:
                self.error = str(exc)
                log.warning("serial scanner %s stopped: %s", self.url, exc)
                return
            now = _now_ms()
            text = data.decode(self.encoding, errors="replace")
            done: list[str] = []
            for char in text:
                done.extend(self.assembler.feed(char, now))
            done.extend(self.assembler.poll(now))
            self._deliver(done)
