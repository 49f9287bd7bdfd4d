"""The two background links of an enrolled gate, built one way for the CLI and for the app
(which attaches them the moment staff enrol it from the gate itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner.clock import Clock, wall_clock_ms
from scanner.settings import HUB_URL
from scanner.store import GateStore

if TYPE_CHECKING:
    from scanner.live import LiveChannel
    from scanner.sync import SyncWorker


def hub_link(
    store: GateStore, clock: Clock = wall_clock_ms
) -> tuple[SyncWorker, LiveChannel] | None:
    """The sync worker and live channel (not started); None for a gate with no hub."""
    from scanner.live import LiveChannel  # aiohttp and httpx only for a gate with a hub
    from scanner.sync import SyncWorker

    hub = store.setting(HUB_URL)
    if not hub:
        return None
    sync = SyncWorker(store, hub, clock=clock)
    # A deactivation seen on the live socket shows in the sync snapshot at once: the status
    # bar reads the snapshot's reason, whichever link heard the hub refuse this gate first.
    live = LiveChannel(store, hub, clock=clock, on_deactivated=sync.hub_refused)
    return sync, live
