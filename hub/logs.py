"""Structured logs: one JSON object per line, so the hub's logs can be searched and shipped.

What an operator reads at INFO, besides start and stop: `device enrolled` (device, venue,
gate), `device refused` (the device id it claims and the code: bad_signature,
replayed_nonce, device_deactivated, unknown_device, ...), `enrolment refused` (its code) and
`database fault` (db_unavailable or disk_full). No line carries a code, token, key, signature,
request body or holder name."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def iso_utc(epoch_s: float) -> str:
    """A moment as ISO 8601 UTC to the millisecond, the way the hub writes times for people:
    2026-07-10T08:00:00.000Z."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
