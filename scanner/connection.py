"""The gate's view of its link to the hub: online, offline or syncing, with hysteresis.

Pure state (no sockets, no clock): the sync worker reports each exchange with the hub and
asks how long to wait before the next one. One lost packet must not flip the screen to
"offline", and one lucky reply must not flip it back, so the state changes only after
`fail_after` bad exchanges in a row (a reply slower than `slow_after_s` counts as bad: a hub
that slow cannot answer online checks in time) or `recover_after` good ones in a row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class LinkState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    SYNCING = "syncing"  # online and moving data (scans up, manifest down)


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    fail_after: int = 3
    recover_after: int = 2
    slow_after_s: float = 2.0
    poll_s: float = 5.0  # between exchanges while all is well
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0


class ConnectionMonitor:
    """Counts good and bad exchanges; starts offline (nothing is known about the hub yet)."""

    def __init__(self, policy: LinkPolicy | None = None, rng: random.Random | None = None) -> None:
        self.policy = policy or LinkPolicy()
        self._rng = rng or random.Random()
        self.online = False
        self.failures = 0  # consecutive bad exchanges
        self.successes = 0  # consecutive good exchanges
        self.last_latency_s: float | None = None

    def good(self, latency_s: float) -> None:
        """The hub answered; too slow counts as bad."""
        self.last_latency_s = latency_s
        if latency_s > self.policy.slow_after_s:
            self.bad()
            return
        self.failures = 0
        self.successes += 1
        if not self.online and self.successes >= self.policy.recover_after:
            self.online = True

    def bad(self) -> None:
        self.successes = 0
        self.failures += 1
        if self.online and self.failures >= self.policy.fail_after:
            self.online = False

    def refused(self) -> None:
        """The hub answered and refused this device (deactivated, unknown, wrong key): no
        flaky link to ride out, so offline at once; retries still back off."""
        self.bad()
        self.online = False

    def backoff_ceiling_s(self) -> float:
        """The un-jittered wait after the current run of failures: doubles each time."""
        if self.failures == 0:
            return self.policy.poll_s
        exp = min(self.failures - 1, 30)  # keep 2**n small
        return min(self.policy.backoff_cap_s, self.policy.backoff_base_s * 2.0**exp)

    def next_delay_s(self) -> float:
        """How long to wait before the next exchange. After failures: exponential backoff
        with jitter (half to all of the ceiling), so many gates do not retry in step when the
        hub comes back."""
        if self.failures == 0:
            return self.policy.poll_s
        ceiling = self.backoff_ceiling_s()
        return ceiling * self._rng.uniform(0.5, 1.0)
