"""Scan policies exactly as the TicketToken scanning service defined them, plus the zone
hierarchy and check-in window defaults. Pure data: the admission engine reads them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# Backend policy type names (scanning-service policies.ts).
DUPLICATE_WINDOW = "DUPLICATE_WINDOW"
REENTRY = "REENTRY"
ZONE_ENFORCEMENT = "ZONE_ENFORCEMENT"

GA, VIP, BACKSTAGE = "GA", "VIP", "BACKSTAGE"

# Which ticket zone may enter which gate zone; venues may define more zones as data.
DEFAULT_ZONE_ACCESS: dict[str, tuple[str, ...]] = {
    BACKSTAGE: (BACKSTAGE, VIP, GA),
    VIP: (VIP, GA),
    GA: (GA,),
}

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
DEFAULT_CHECKIN_BEFORE_MS = 4 * HOUR_MS  # check-in opens 4 h before start
DEFAULT_CHECKIN_AFTER_MS = 2 * HOUR_MS  # and closes 2 h after end
EXPIRY_AFTER_END_MS = 24 * HOUR_MS  # tickets are expired 24 h after the event ends


def event_to_hold(events: Iterable[tuple[str, int, int]], now_ms: int) -> str | None:
    """Which of a venue's events (id, start, end) its gates should hold now: one whose
    check-in is open (the first to close, if several overlap), else the next to open; None
    once all are over. The hub names it, so a gate enrolled on the spot needs no setup."""
    open_now: list[tuple[int, str]] = []
    upcoming: list[tuple[int, str]] = []
    for event_id, start_ms, end_ms in events:
        opens = start_ms - DEFAULT_CHECKIN_BEFORE_MS
        closes = end_ms + DEFAULT_CHECKIN_AFTER_MS
        if opens <= now_ms <= closes:
            open_now.append((closes, event_id))
        elif now_ms < opens:
            upcoming.append((opens, event_id))
    chosen = min(open_now or upcoming, default=None)
    return None if chosen is None else chosen[1]


@dataclass(frozen=True, slots=True)
class ScanPolicy:
    """The three backend policy types folded into one value.

    `duplicate_window_minutes=None` means no duplicate window; `max_reentries=None` means
    unlimited re-entries when re-entry is enabled. Zone `strict` denies a ticket outside its
    zones; non-strict asks staff to check (attention). `vip_all_access` lets VIP in anywhere.
    """

    duplicate_window_minutes: int | None = 5
    reentry_enabled: bool = False
    cooldown_minutes: int = 0
    max_reentries: int | None = None
    zone_strict: bool = True
    vip_all_access: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanPolicy:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @classmethod
    def from_backend(cls, policies: Iterable[Mapping[str, Any]]) -> ScanPolicy:
        """Build from backend rows `{"policy_type": ..., "config": {...}}`; absent types keep
        the backend's behaviour: no window, no re-entry, hierarchy enforced."""
        values: dict[str, Any] = {"duplicate_window_minutes": None}
        for row in policies:
            kind, cfg = row["policy_type"], row.get("config") or {}
            if kind == DUPLICATE_WINDOW:
                minutes = int(cfg.get("window_minutes", 0))
                values["duplicate_window_minutes"] = minutes or None
            elif kind == REENTRY:
                values["reentry_enabled"] = bool(cfg.get("enabled", False))
                values["cooldown_minutes"] = int(cfg.get("cooldown_minutes", 0))
                limit = cfg.get("max_reentries")
                values["max_reentries"] = None if limit is None else int(limit)
            elif kind == ZONE_ENFORCEMENT:
                values["zone_strict"] = bool(cfg.get("strict", True))
                values["vip_all_access"] = bool(cfg.get("vip_all_access", False))
            else:
                raise ValueError(f"unknown policy type {kind!r}")
        return cls(**values)


TEMPLATES: dict[str, ScanPolicy] = {
    "standard": ScanPolicy(duplicate_window_minutes=5, reentry_enabled=False),
    "festival": ScanPolicy(duplicate_window_minutes=30, reentry_enabled=True, max_reentries=None),
    "concert": ScanPolicy(
        duplicate_window_minutes=10, reentry_enabled=True, max_reentries=1, zone_strict=True
    ),
    "conference": ScanPolicy(
        duplicate_window_minutes=None, reentry_enabled=True, max_reentries=None
    ),
    "vip_event": ScanPolicy(duplicate_window_minutes=5, vip_all_access=True),
}


@dataclass(frozen=True, slots=True)
class ZoneRules:
    """Zone access as data: `access[ticket_zone]` lists gate zones that ticket may enter."""

    access: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_ZONE_ACCESS)

    def may_enter(self, ticket_zone: str | None, gate_zone: str, vip_all_access: bool) -> bool:
        if ticket_zone is None or ticket_zone == gate_zone:
            return True
        if vip_all_access and ticket_zone == VIP:
            return True
        return gate_zone in self.access.get(ticket_zone, (ticket_zone,))

    def to_json(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.access.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Iterable[str]] | None) -> ZoneRules:
        if not data:
            return cls()
        return cls({k: tuple(v) for k, v in data.items()})
