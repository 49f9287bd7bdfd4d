"""Serial scanners, over pyserial's real loop:// port."""

from __future__ import annotations

import os
import time

from hardware.dedupe import Deduper
from hardware.serial_scanner import SerialScanner


def _drain(scanner: SerialScanner, n: int, timeout: float = 3.0) -> list[str]:
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        if not scanner.payloads.empty():
            out.append(scanner.payloads.get_nowait())
        else:
            time.sleep(0.01)
    return out


def test_serial_scanner_reads_lines_and_bursts() -> None:
    seen: list[str] = []
    scanner = SerialScanner("loop://", on_payload=seen.append, deduper=Deduper(2500))
    assert scanner.available and scanner.start()
    try:
        assert scanner.port is not None
        scanner.port.write(b"TICKET-ONE\r\nTICKET-ONE\r\n")  # second read: same scan
        scanner.port.write(b"TICKET-TWO\t")
        scanner.port.write(b"NO-TERMINATOR")  # completed by the idle gap
        assert _drain(scanner, 3) == ["TICKET-ONE", "TICKET-TWO", "NO-TERMINATOR"]
        time.sleep(0.15)
        assert scanner.payloads.empty()
        assert seen == ["TICKET-ONE", "TICKET-TWO", "NO-TERMINATOR"]
    finally:
        scanner.stop()


def test_missing_serial_port_is_unavailable() -> None:
    scanner = SerialScanner(os.path.join("/dev", "ttyNO_SUCH_PORT"))
    assert not scanner.available
    assert scanner.error
    assert scanner.start() is False
