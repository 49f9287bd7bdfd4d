"""The two background links of an enrolled gate, built one way for the CLI and for the app
(which attaches them the moment staff enrol it from the gate itself): one HubClient shared by
the sync worker and the live channel, so both sign with the same clock offset."""

from __future__ import annotations

from scanner.clock import Clock, wall_clock_ms
from scanner.hub_client import HubClient
from scanner.live import LiveChannel
from scanner.settings import HUB_URL
from scanner.store import GateStore
from scanner.sync import SyncWorker


def hub_link(
    store: GateStore, clock: Clock = wall_clock_ms
) -> tuple[SyncWorker, LiveChannel] | None:
    """The sync worker and live channel (not started); None for a gate with no hub."""
    url = store.setting(HUB_URL)
    if not url:
        return None
    hub = HubClient(store, url, clock)
    sync = SyncWorker(hub)
    # A deactivation seen on the live socket shows in the sync snapshot at once: the status
    # bar reads the snapshot's reason, whichever link heard the hub refuse this gate first.
    live = LiveChannel(store, url, clock=clock, hub=hub, on_deactivated=sync.hub_refused)
    live.on_tickets_changed = sync.wake_whole
    sync.live_connected = live.connected.is_set
    return sync, live
