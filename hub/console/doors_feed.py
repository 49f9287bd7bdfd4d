"""The live doors page's data: a running tally of an event's scans, the state of a venue's
gates, and one feed per (venue, event) that turns stored scans and heartbeats into at most one
update every UPDATE_GAP_S for all the pages open on it.

Nothing polls the database for news. The store's listeners (a scan batch committed, a
heartbeat committed: hub/store_base.py) and refused device requests (hub/auth.py) poke the
feeds on the event loop; a poked feed reads what was stored since its last read
(hub/store_doors.py) on a reading connection of its own (WAL: it never waits behind the
uploads queued on the database thread), renders the page's parts once, and every stream of the
feed sends them. A heartbeat alone waits a moment for the scans a gate's sync sends right
after it, so both go out in one update instead of the scans waiting out the gap behind it.
A slow tick (TICK_S) re-renders for the clock alone: ages, a gate falling silent, the chart's
two hours sliding on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from hub.auth import REFUSAL_LISTENERS
from hub.keys import CLOCK, DB, MEMORY
from hub.live import LIVE
from hub.storage import HubStore
from hub.store_api import HubStorage
from hub.store_base import HeartbeatListener, Row, ScanListener
from hub.store_doors import MINUTE_MS, DoorCounts
from hub.store_search import DeviceQuery
from hub.thread_owned import ThreadOwned
from manifests.admission import venue_clock
from protocol.reasons import Reason, Verdict, default_message
from protocol.signing import BAD_SIGNATURE, HEADER_TIMESTAMP, MAX_SKEW_MS, STALE_TIMESTAMP
from protocol.wire import DEVICE_DEACTIVATED

log = logging.getLogger("hub.console")

UPDATE_GAP_S = 0.1  # at most one update this often per feed (so per stream too)
HEARTBEAT_WAIT_S = 1.0  # a heartbeat's update waits this long for scans to join it
TICK_S = 10.0  # re-rendered this often while watched, for the clock alone
WINDOW_MINUTES = 120  # the chart: entries per minute over the last two hours
RECENT_SCANS = 10
OFFLINE_AFTER_MS = 60_000  # a gate heartbeats every 5 s while well; silent this long: offline
CLOCK_WARN_MS = 60_000  # a gate corrects for its offset, but this far off someone should look
IDLE_FEED_S = 600.0  # an unwatched feed's tally is kept this long for the next page
MAX_REFUSALS = 10_000  # refusals remembered (one per enrolled device at most)
PARTS_TEMPLATE = "doors_parts.html"
PARTS = ("summary", "chart", "zones", "gates", "recent")

# Why the hub refuses an enrolled gate, as its manager should read it: (words, what to do).
# A device id the hub does not know is not listed: it cannot be placed at any venue.
REFUSALS: dict[str, tuple[str, str]] = {
    DEVICE_DEACTIVATED: (
        "deactivated",
        "Deactivated here: its requests are refused. To use it again, add it as a new gate.",
    ),
    BAD_SIGNATURE: (
        "key mismatch",
        "Its requests are signed with a key this hub does not hold for it (its database was"
        " replaced or copied): add it again as a new gate.",
    ),
    STALE_TIMESTAMP: (
        "clock off",
        f"Its clock is more than {MAX_SKEW_MS // 60_000} minutes off the hub's, so its requests"
        " are refused: set its clock (or NTP).",
    ),
}


def span_words(ms: int) -> str:
    """A span for people: "12 s", "4 min", "2 h 5 min"."""
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def offset_words(offset_ms: int | None) -> str | None:
    """A gate's clock against the hub's (hub ≈ gate + offset)."""
    if offset_ms is None:
        return None
    if abs(offset_ms) < 1000:
        return f"{offset_ms:+d} ms"
    side = "behind" if offset_ms > 0 else "ahead"
    if abs(offset_ms) < 60_000:
        return f"{abs(offset_ms) / 1000:.1f} s {side}"
    return f"{span_words(abs(offset_ms))} {side}"


def reason_sentence(reason: str) -> str:
    """A stored reason code as the one list of reasons words it (protocol/reasons.py)."""
    try:
        return default_message(Reason(reason))
    except ValueError:
        return reason.replace("_", " ")


# -- the tally ----------------------------------------------------------------------------


@dataclass
class ZoneTally:
    """Movements in one zone (or the whole venue): first entries admitted, re-entries,
    exits, denials by reason, and counted entries by epoch minute."""

    admitted: int = 0
    reentries: int = 0
    exits: int = 0
    denied: Counter[str] = field(default_factory=Counter)
    minutes: Counter[int] = field(default_factory=Counter)

    @property
    def inside(self) -> int:
        """Entries minus exits (never below 0: exits of people let in before the hub knew)."""
        return max(0, self.admitted + self.reentries - self.exits)

    def merge(self, other: ZoneTally) -> None:
        self.admitted += other.admitted
        self.reentries += other.reentries
        self.exits += other.exits
        self.denied.update(other.denied)
        self.minutes.update(other.minutes)


@dataclass
class DeviceTally:
    scans: int = 0
    last_ms: int | None = None


@dataclass
class DoorsTally:
    """An event's scans summed so far, up to `last_scan_id`: add what was stored since."""

    last_scan_id: int = 0
    zones: dict[str | None, ZoneTally] = field(default_factory=dict)
    devices: dict[str, DeviceTally] = field(default_factory=dict)

    def add(self, counts: DoorCounts) -> None:
        for g in counts.groups:
            zone = self.zones.setdefault(g.zone, ZoneTally())
            if g.counted and g.direction == "entry":
                if g.reason == Reason.REENTRY:
                    zone.reentries += g.scans
                else:
                    zone.admitted += g.scans
            elif g.counted:
                zone.exits += g.scans
            elif g.verdict == Verdict.DENY:
                zone.denied[g.reason] += g.scans
            device = self.devices.setdefault(g.device_id, DeviceTally())
            device.scans += g.scans
            device.last_ms = max(device.last_ms or g.last_ms, g.last_ms)
        for zone_name, minute, entries in counts.entries_by_minute:
            self.zones.setdefault(zone_name, ZoneTally()).minutes[minute] += entries
        self.last_scan_id = counts.last_scan_id

    def forget_before(self, minute: int) -> None:
        """Drop minutes older than the chart shows (the tally lives as long as the event)."""
        for zone in self.zones.values():
            for old in [m for m in zone.minutes if m < minute]:
                del zone.minutes[old]

    def venue(self) -> ZoneTally:
        total = ZoneTally()
        for zone in self.zones.values():
            total.merge(zone)
        return total


# -- the view -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    """The last refused request of an enrolled device."""

    code: str
    at_ms: int
    offset_ms: int | None = None  # stale_timestamp: how far its clock was off


@dataclass(frozen=True, slots=True)
class Status:
    kind: str  # ok, warn, bad, off: the CSS class; the word says it too
    word: str
    icon: str
    detail: str
    online: bool = False  # the hub heard from it lately and takes its requests


def gate_status(
    device: Mapping[str, Any], connected: bool, refusal: Refusal | None, now_ms: int
) -> Status:
    """Online, offline or refused (and why), from the hub's own facts: the device row, its
    live socket, the last refusal of its requests."""
    last_seen = device["last_seen_ms"]
    if not device["active"]:
        return Status("bad", "Refused", "⛔", REFUSALS[DEVICE_DEACTIVATED][1])
    if refusal is not None and refusal.at_ms >= (last_seen or 0) and refusal.code in REFUSALS:
        words, advice = REFUSALS[refusal.code]
        if refusal.code == STALE_TIMESTAMP and refusal.offset_ms is not None:
            words = f"clock off {span_words(abs(refusal.offset_ms))}"
        return Status("bad", f"Refused: {words}", "⛔", advice)
    if connected:
        return Status(
            "ok", "Online", "●", "Live link open: it hears other gates' entries now.", True
        )
    if last_seen is not None and now_ms - last_seen <= OFFLINE_AFTER_MS:
        return Status(
            "warn", "Online, no live link", "◐", "It syncs, but hears entries late.", True
        )
    if last_seen is None:
        return Status("off", "Never heard", "○", "Enrolled, never heard from since.")
    return Status("off", "Offline", "○", f"Silent for {span_words(now_ms - last_seen)}.")


@dataclass(frozen=True, slots=True)
class DoorsRead:
    """One turn of the database thread's worth of facts for a feed."""

    devices: list[Row]
    gates: list[Row]
    zones: list[Row]
    counts: DoorCounts | None
    latest: list[Row]
    revision: int | None
    behind_since: dict[int, int]


def read_doors(
    store: HubStorage, venue: Row, event_id: str | None, after_scan_id: int, now_ms: int
) -> DoorsRead:
    devices = store.device_page(venue["tenant_id"], venue["id"], DeviceQuery(), None).rows
    gates, zones = store.list_gates(venue["id"]), store.list_zones(venue["id"])
    if event_id is None:
        return DoorsRead(devices, gates, zones, None, [], None, {})
    since_ms = now_ms - WINDOW_MINUTES * MINUTE_MS
    counts = store.door_counts(event_id, after_scan_id, since_ms)
    revision = store.current_revision(event_id)
    held = (json.loads(d["manifest_revisions_json"]).get(event_id) for d in devices)
    behind = store.manifest_behind_since(
        event_id, {r for r in held if isinstance(r, int) and r < revision}
    )
    latest = store.latest_door_scans(event_id, RECENT_SCANS)
    return DoorsRead(devices, gates, zones, counts, latest, revision, behind)


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    height: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Entries per minute over the window, as an SVG's geometry (the template draws it)."""

    width: int
    height: int
    plot_left: int
    plot_bottom: int
    bar_width: float
    bars: list[Bar]
    peak: int
    total: int
    ticks: list[tuple[float, str]]  # (x, venue time)
    summary: str


def entries_chart(
    minutes: Mapping[int, int], now_ms: int, timezone: str, *, width: int = 480, height: int = 140
) -> Chart:
    """The last WINDOW_MINUTES minutes (the current one last) as bars scaled to the busiest."""
    left, bottom, top, right = 40, height - 22, 8, 6
    now_minute = now_ms // MINUTE_MS
    first = now_minute - WINDOW_MINUTES + 1
    step = (width - left - right) / WINDOW_MINUTES
    counts = [minutes.get(first + i, 0) for i in range(WINDOW_MINUTES)]
    peak, total = max(counts), sum(counts)
    scale = (bottom - top) / peak if peak else 0.0
    bars = [
        Bar(
            round(left + i * step, 2),
            round(bottom - n * scale, 2),
            round(n * scale, 2),
            f"{venue_clock((first + i) * MINUTE_MS, timezone)[:5]}: {n}",
        )
        for i, n in enumerate(counts)
        if n
    ]
    ticks = [
        (round(left + i * step, 2), venue_clock((first + i) * MINUTE_MS, timezone)[:5])
        for i in (0, WINDOW_MINUTES // 2, WINDOW_MINUTES - 1)
    ]
    if peak:
        busiest = venue_clock((first + counts.index(peak)) * MINUTE_MS, timezone)[:5]
        summary = (
            f"Entries per minute, last 2 hours: {total} in all, busiest minute {busiest}"
            f" with {peak}."
        )
    else:
        summary = "Entries per minute, last 2 hours: none yet."
    return Chart(
        width, height, left, bottom, round(step * 0.8, 2), bars, peak, total, ticks, summary
    )


def zone_view(name: str, tally: ZoneTally, now_ms: int, timezone: str) -> dict[str, Any]:
    return {
        "name": name,
        "admitted": tally.admitted,
        "reentries": tally.reentries,
        "exits": tally.exits,
        "inside": tally.inside,
        "denied": sum(tally.denied.values()),
        "denials": [
            {"reason": reason, "sentence": reason_sentence(reason), "count": count}
            for reason, count in tally.denied.most_common()
        ],
        "chart": entries_chart(tally.minutes, now_ms, timezone, width=240, height=100),
    }


def doors_view(
    venue: Row,
    event: Row | None,
    read: DoorsRead,
    tally: DoorsTally,
    connected: set[str],
    refusals: Mapping[str, Refusal],
    now_ms: int,
) -> dict[str, Any]:
    """Everything the doors page shows, from the facts read and the tally so far."""
    tz = event["timezone"] if event is not None else venue["timezone"]
    gates = {g["id"]: g for g in read.gates}
    event_id = None if event is None else event["id"]
    rows = []
    for d in read.devices:
        refusal = refusals.get(d["id"])
        if not d["active"] and refusal is None:
            continue  # deactivated and quiet: the devices page lists it
        gate = gates.get(d["gate_id"] or "")
        held = json.loads(d["manifest_revisions_json"]).get(event_id) if event_id else None
        scans = tally.devices.get(d["id"], DeviceTally())
        rows.append(
            {
                "id": d["id"],
                "name": d["name"],
                "gate": gate["name"] if gate else None,
                "zone": d["zone"] or (", ".join(json.loads(gate["zones_json"])) if gate else None),
                "status": gate_status(d, d["id"] in connected, refusal, now_ms),
                "last_seen": d["last_seen_ms"] and venue_clock(d["last_seen_ms"], tz),
                "last_seen_ago": d["last_seen_ms"] and span_words(now_ms - d["last_seen_ms"]),
                "manifest": manifest_view(held, read.revision, read.behind_since, now_ms),
                "pending": d["pending_uploads"],
                "clock": offset_words(d["clock_offset_ms"]),
                "clock_warn": abs(d["clock_offset_ms"] or 0) >= CLOCK_WARN_MS,
                "scans": scans.scans,
                "last_scan": scans.last_ms and venue_clock(scans.last_ms, tz),
            }
        )
    zone_names = [z["name"] for z in read.zones]
    zones = [zone_view(n, tally.zones.get(n, ZoneTally()), now_ms, tz) for n in zone_names]
    others = ZoneTally()
    for name, zone in tally.zones.items():
        if name not in zone_names:  # no zone, or one since removed from the venue
            others.merge(zone)
    if others.admitted or others.exits or others.denied or others.reentries:
        zones.append(zone_view("No zone", others, now_ms, tz))
    venue_total = tally.venue()
    return {
        "venue": venue,
        "event": event,
        "now": venue_clock(now_ms, tz),
        "totals": zone_view("Venue", venue_total, now_ms, tz),
        "chart": entries_chart(venue_total.minutes, now_ms, tz),
        "zones": zones,
        "gates": rows,
        "online": sum(1 for r in rows if r["status"].online),
        "recent": [
            {
                "key": f"{s['device_id']}:{s['seq']}",  # the row's data-scan
                "at": venue_clock(s["at_ms"], tz),
                "gate": s["gate_name"] or s["device_name"] or "",
                "verdict": s["verdict"],
                "counted": bool(s["counted"]),
                "direction": s["direction"],
                "sentence": reason_sentence(s["reason"]),
                "zone": s["zone"],
            }
            for s in read.latest
        ],
    }


def manifest_view(
    held: int | None, current: int | None, behind_since: Mapping[int, int], now_ms: int
) -> dict[str, Any]:
    """The ticket list a gate holds for the event against the hub's current one."""
    if current is None:
        return {"kind": "off", "words": "no event"}
    if held is None:
        return {"kind": "bad", "words": "not loaded"}
    if held >= current:
        return {"kind": "ok", "words": f"rev {held}, current"}
    since = behind_since.get(held)
    age = f", {span_words(now_ms - since)} old" if since is not None else ""
    return {"kind": "warn", "words": f"rev {held}, {current - held} behind{age}"}


# -- the feeds ----------------------------------------------------------------------------


class DoorsFeed:
    """One event's doors at one venue (or a venue with no event): its tally, its latest
    rendered parts, and the streams waiting for the next."""

    def __init__(self, hub: DoorsHub, venue: Row, event: Row | None) -> None:
        self.hub = hub
        self.venue = venue
        self.event = event
        self.tally = DoorsTally()
        self.rebuild = True  # read every scan again (first read, or a row changed in place)
        self.device_ids: set[str] = set()
        self.view: dict[str, Any] | None = None
        self.parts: dict[str, str] = {}
        self.version = 0
        self.watchers = 0
        self.used_at = 0.0
        self._lock = asyncio.Lock()
        self._poked = asyncio.Event()
        self._scanned = asyncio.Event()  # the poke was for scans: refresh without waiting
        self._published = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def event_id(self) -> str | None:
        return None if self.event is None else str(self.event["id"])

    def poke(self, *, rebuild: bool = False, scans: bool = True) -> None:
        """Something changed: refresh soon (scans: at once, unless an update went out within
        UPDATE_GAP_S; a gate's health alone: once its scans joined, or HEARTBEAT_WAIT_S)."""
        self.rebuild = self.rebuild or rebuild
        if scans:
            self._scanned.set()
        self._poked.set()

    async def refresh(self) -> dict[str, Any]:
        """Read what changed since the last read, render the parts, wake the streams; the
        view. Reading, summing and rendering run on the reading thread: a 50-gate page is
        milliseconds of templates the event loop does not spend while uploads arrive."""
        app = self.hub.app
        async with self._lock:
            rebuild, self.rebuild = self.rebuild, False
            after = 0 if rebuild else self.tally.last_scan_id
            venue, event, event_id, now = self.venue, self.event, self.event_id, app[CLOCK]()
            tally = DoorsTally() if rebuild else self.tally
            connected = {c.device_id for c in app[LIVE].connections}
            refusals = dict(self.hub.refusals)

            def compose(store: HubStorage) -> tuple[DoorsRead, dict[str, Any], dict[str, str]]:
                read = read_doors(store, venue, event_id, after, now)
                if read.counts is not None:
                    tally.add(read.counts)
                tally.forget_before(now // MINUTE_MS - WINDOW_MINUTES)
                view = doors_view(venue, event, read, tally, connected, refusals, now)
                return read, view, render_parts(app, view)

            try:
                read, view, parts = await (self.hub.reader or app[DB]).run(compose)
            except BaseException:
                self.rebuild = self.rebuild or rebuild
                raise
            self.tally = tally
            self.device_ids = {d["id"] for d in read.devices}
            self.view, self.parts = view, parts
            self.version += 1
            published, self._published = self._published, asyncio.Event()
            published.set()
            return view

    async def current(self) -> dict[str, Any]:
        """The view for a page being loaded: a watched feed's latest (its runner keeps it
        current, and a page load must not add updates beyond its gap), else read now."""
        if self.view is not None and self._runner is not None and not self._runner.done():
            return self.view
        return await self.refresh()

    async def next_parts(
        self, after_version: int, timeout_s: float
    ) -> tuple[int, dict[str, str]] | None:
        """The newest version and its parts when newer than `after_version`, waiting up to
        `timeout_s`; None when nothing newer came (or the hub is stopping)."""
        if self.version <= after_version and not self.hub.closing:
            waiting = self._published
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting.wait(), timeout_s)
        if self.version <= after_version or self.hub.closing:
            return None
        return self.version, self.parts

    @contextlib.asynccontextmanager
    async def watched(self) -> AsyncIterator[None]:
        """While a page streams this feed, it is refreshed when poked and on every tick."""
        self.watchers += 1
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        try:
            yield
        finally:
            self.watchers -= 1
            self.used_at = asyncio.get_running_loop().time()
            if self.watchers == 0 and self._runner is not None:
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
                self._runner = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), TICK_S)
            if self._poked.is_set() and not self._scanned.is_set():
                with contextlib.suppress(TimeoutError):  # a heartbeat: its scans come next
                    await asyncio.wait_for(self._scanned.wait(), HEARTBEAT_WAIT_S)
            gap = last + UPDATE_GAP_S - loop.time()
            if gap > 0:
                await asyncio.sleep(gap)  # pokes meanwhile join this refresh
            self._poked.clear()
            self._scanned.clear()
            last = loop.time()  # the gap runs from the read: a slow read is not added to it
            try:
                await self.refresh()
            except Exception:
                log.exception("doors: refreshing a feed failed")


def render_parts(app: web.Application, view: Mapping[str, Any]) -> dict[str, str]:
    """The page's live parts as HTML, rendered by the same macros the page itself uses."""
    module = aiohttp_jinja2.get_env(app).get_template(PARTS_TEMPLATE).module
    return {name: str(getattr(module, name)(view)) for name in PARTS}


class DoorsHub:
    """The feeds of a hub, and what pokes them."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.feeds: dict[tuple[str, str | None], DoorsFeed] = {}
        self.refusals: OrderedDict[str, Refusal] = OrderedDict()
        self.closing = False
        # the feeds' own reading connection while the hub runs (else the database thread)
        self.reader: ThreadOwned[HubStorage] | None = None

    def feed(self, venue: Row, event: Row | None) -> DoorsFeed:
        """The feed of this venue and event (the caller scoped both), made on first use."""
        now = asyncio.get_running_loop().time()
        for key, idle in list(self.feeds.items()):
            if idle.watchers == 0 and now - idle.used_at > IDLE_FEED_S:
                del self.feeds[key]
        key = (str(venue["id"]), None if event is None else str(event["id"]))
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = DoorsFeed(self, venue, event)
        feed.used_at = now
        return feed

    # what pokes the feeds -------------------------------------------------------------------
    def scan_listener(self, loop: asyncio.AbstractEventLoop) -> ScanListener:
        """The store's scan listener (told on the thread that committed): the feeds of the
        batch's events and of the device's venue. An attention scan may be a confirmation
        that changed a stored row in place, which no read of newer rows sees: those feeds
        read everything again."""

        def on_scans(device_id: str, scans: list[Mapping[str, Any]]) -> None:
            if not self.feeds or not scans:
                return
            events = {s.get("event_id") for s in scans}
            confirmed = {
                s.get("event_id")
                for s in scans
                if s.get("verdict") == Verdict.ATTENTION and s.get("confirmed") is not None
            }
            loop.call_soon_threadsafe(self._scans, device_id, events, confirmed)

        return on_scans

    def heartbeat_listener(self, loop: asyncio.AbstractEventLoop) -> HeartbeatListener:
        def on_heartbeat(device_id: str) -> None:
            if self.feeds:
                loop.call_soon_threadsafe(self._device, device_id)

        return on_heartbeat

    def refused(self, request: web.Request, device_id: str, code: str) -> None:
        """hub/auth.py's refusal listener (on the loop): remembered per enrolled device."""
        if code not in REFUSALS:
            return
        now = self.app[CLOCK]()
        offset = None
        if code == STALE_TIMESTAMP:
            with contextlib.suppress(KeyError, ValueError):
                offset = now - int(request.headers[HEADER_TIMESTAMP])
        self.refusals[device_id] = Refusal(code, now, offset)
        self.refusals.move_to_end(device_id)
        while len(self.refusals) > MAX_REFUSALS:
            self.refusals.popitem(last=False)
        self._device(device_id)

    def _scans(self, device_id: str, events: set[Any], confirmed: set[Any]) -> None:
        for feed in self._feeds_of_device(device_id):
            feed.poke()
        for feed in self.feeds.values():
            if feed.event_id is not None and feed.event_id in events:
                feed.poke(rebuild=feed.event_id in confirmed)

    def _device(self, device_id: str) -> None:
        for feed in self._feeds_of_device(device_id):
            feed.poke(scans=False)

    def _feeds_of_device(self, device_id: str) -> Iterable[DoorsFeed]:
        """The feeds of the device's venue: from the store's memory (the request that told us
        just read the device), else the feeds that listed it, else every feed (a device
        enrolled since their last read)."""
        device = self.app[MEMORY].remembered_device(device_id)
        if device is not None:
            return [f for f in self.feeds.values() if f.venue["id"] == device["venue_id"]]
        listed = [f for f in self.feeds.values() if device_id in f.device_ids]
        return listed or list(self.feeds.values())

    async def close(self, app: web.Application) -> None:
        """The hub is stopping: every stream ends now."""
        self.closing = True
        for feed in self.feeds.values():
            feed._published.set()


DOORS = web.AppKey("console_doors", DoorsHub)


def install(app: web.Application) -> DoorsHub:
    """Attach the doors feeds: listening to the store and to refused devices while the hub
    runs; streams end when it stops."""
    hub = DoorsHub(app)
    app[DOORS] = hub
    if REFUSAL_LISTENERS not in app:
        app[REFUSAL_LISTENERS] = []
    app[REFUSAL_LISTENERS].append(hub.refused)

    @contextlib.asynccontextmanager
    async def listen(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        memory = app[MEMORY]
        on_scans, on_heartbeat = hub.scan_listener(loop), hub.heartbeat_listener(loop)
        memory.scan_listeners.append(on_scans)
        memory.heartbeat_listeners.append(on_heartbeat)
        path = await app[DB].run(lambda store: store.path)
        hub.reader = ThreadOwned(
            "hub-doors", lambda: HubStore(path, migrate=False), lambda store: store.close()
        )
        yield
        memory.scan_listeners.remove(on_scans)
        memory.heartbeat_listeners.remove(on_heartbeat)
        reader, hub.reader = hub.reader, None
        await asyncio.to_thread(reader.close)

    app.cleanup_ctx.append(listen)
    app.on_shutdown.append(hub.close)
    return hub
