"""The gate's own log: why its link went down, what each sync did, which faults it met.

A gate at a venue has nobody watching its terminal, so the `scanner` logger tree goes to a
rotating file beside the database (gate.db -> gate.log), one plain line per record with an
ISO UTC time (a gate's clock and the venue's time zone may both be wrong; UTC with a Z is
never ambiguous). Under systemd the records also go to the journal: on stderr when stderr is
the journal (systemd adds the time, the "<N>" prefix carries the level), else over journald's
own socket, as the kiosk unit hands stderr to the app's screen.

The log must never stop the gate: a file that cannot be opened (read-only file system, full
disk) falls back to stderr, or to nothing where the app draws on stderr, and a record that
cannot be written is dropped without a word. Nothing logged carries a holder's name or a
secret: records hold codes, counts, revisions and device ids, never payloads or keys.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import socket
import sys
import time
from pathlib import Path
from typing import TextIO

LOGGER = "scanner"
LINK_LOGGER = "scanner.link"  # link state changes: the lines `stream --sync` shows on stderr
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 4  # gate.log + gate.log.1..4: at most 10 MB
JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "gate-scanner"
# A record the CLI already printed on stderr (its one error line): stderr handlers skip it.
PRINTED = "printed_on_stderr"

_OWNED = "_gate_log"  # marks the handlers this module added, so it can replace them


class UtcFormatter(logging.Formatter):
    """2026-11-28T14:03:05.123Z WARNING scanner.link link: offline — ..."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\n  ")  # tracebacks stay one record


class _Quiet:
    """A log write that fails is dropped: logging's default prints a traceback on stderr,
    which the CLI promises never to do and which would draw over the app's screen."""

    def handleError(self, record: logging.LogRecord) -> None:
        return


class GateFileHandler(_Quiet, logging.handlers.RotatingFileHandler):
    pass


class StderrHandler(_Quiet, logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream)."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.addFilter(lambda record: not getattr(record, PRINTED, False))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class JournalPrefix(logging.Formatter):
    """For stderr read by journald: "<4>message"; the journal adds time and unit."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_syslog_level(record.levelno)}>{record.name}: " + super().format(record).replace(
            "\n", "\n  "
        )


class JournalSocketHandler(_Quiet, logging.Handler):
    """journald's native protocol over its datagram socket (stdlib only): for a unit whose
    stderr is a console, like the kiosk's."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__()
        self.path = path or JOURNAL_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.connect(self.path)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            fields = {
                "MESSAGE": f"{record.name}: {message}",
                "PRIORITY": str(_syslog_level(record.levelno)),
                "SYSLOG_IDENTIFIER": IDENTIFIER,
                "LOGGER": record.name,
            }
            self.sock.send(_journal_datagram(fields))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def _journal_datagram(fields: dict[str, str]) -> bytes:
    out = bytearray()
    for key, value in fields.items():
        data = value.encode()
        if b"\n" in data:  # the protocol's binary-safe form: KEY\n<le64 length>data\n
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def _syslog_level(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def log_path(db: Path | str) -> Path:
    """gate.db -> gate.log, beside it (never the database itself)."""
    db = Path(db)
    path = db.with_suffix(".log")
    return path if path != db else db.with_name(db.name + ".log")


def stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM=dev:inode when stderr goes to the journal; a child whose
    stderr was redirected inherits the variable, so compare it with stderr itself."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


def configure(db: Path | str, *, console: bool = True, link_to_stderr: bool = False) -> Path | None:
    """Set up the `scanner` logger tree for a process that runs a gate on `db`; once per
    process (again with another database re-targets it). Returns the log file, or None when
    it could not be opened and the log went to the fallback.

    `console`: the process's stderr is free for log lines (False for the app, which draws
    there). `link_to_stderr`: link changes as sentences on stderr (`stream --sync`).
    """
    shutdown()
    root = logging.getLogger(LOGGER)
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = []
    target = log_path(db)
    path: Path | None = target
    try:
        file_handler = GateFileHandler(target, maxBytes=MAX_BYTES, backupCount=BACKUPS)
        file_handler.setFormatter(UtcFormatter())
        handlers.append(file_handler)
    except OSError:
        path = None
    journal_on_stderr = stderr_is_journal()
    if journal_on_stderr:
        handlers.append(StderrHandler(JournalPrefix("%(message)s")))
    elif os.environ.get("INVOCATION_ID") and os.path.exists(JOURNAL_SOCKET):
        with contextlib.suppress(OSError):
            handlers.append(JournalSocketHandler())
    if not journal_on_stderr and console and (path is None or link_to_stderr):
        # No file: warnings and worse on stderr. `stream --sync`: link changes there too.
        def wanted(record: logging.LogRecord) -> bool:
            if link_to_stderr and record.name == LINK_LOGGER:
                return True
            return path is None and record.levelno >= logging.WARNING

        fmt = logging.Formatter("%(message)s") if path is not None else UtcFormatter()
        console_handler = StderrHandler(fmt)
        console_handler.addFilter(wanted)
        handlers.append(console_handler)
    for handler in handlers:
        setattr(handler, _OWNED, True)
        root.addHandler(handler)
    return path


def configured() -> bool:
    return any(getattr(h, _OWNED, False) for h in logging.getLogger(LOGGER).handlers)


def shutdown() -> None:
    """Flush and detach this module's handlers (a CLI command's end, or a re-target)."""
    root = logging.getLogger(LOGGER)
    for handler in list(root.handlers):
        if getattr(handler, _OWNED, False):
            root.removeHandler(handler)
            with contextlib.suppress(Exception):  # a full disk refuses the last flush too
                handler.close()
