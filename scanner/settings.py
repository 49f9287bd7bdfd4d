"""Every setting the gate keeps in its `config` table, named once, typed, with why it exists.

The gate's settings used to be bare strings spread over nine modules, so a module that only
needed the name of a key imported another for it (and the package grew an import cycle).
Here each one is a `Setting[T]`: its key in the table, the JSON type it holds, the value when
it is not set, and one line of why. Read and write them through the store
(`store.setting(EVENT)`, `store.set_setting(EVENT, "e1")`); nothing in `scanner/` names a
config key as a string. This module imports nothing of the gate, so anything may import it.

Key material is not a setting: the device's signing seed and the trusted hub keys live in
the store's `keys` table (`store.key`, `store.set_key`), kept out of `export-scans`; their
names are below too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """One key of the gate's config table. A stored value of another JSON type than `kind`
    (hand-edited, or from a future release) reads as `default`, never as a surprise type."""

    key: str
    kind: type | tuple[type, ...]
    default: T
    why: str

    def accept(self, value: object) -> T:
        """The stored JSON value as this setting's type; the default when unset or mistyped."""
        if value is None or not isinstance(value, self.kind):
            return self.default
        if isinstance(value, bool) and bool not in _kinds(self.kind):
            return self.default  # JSON true is an int to isinstance, not to this setting
        return value  # type: ignore[return-value]  # checked against kind just above


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


# -- identity (enrolment, setup) ---------------------------------------------------------

DEVICE_ID: Setting[str] = Setting(
    "device_id", str, "", "who this gate is to the hub; signs every request with it"
)
HARDWARE_ID: Setting[str | None] = Setting(
    "hardware_id", str, None, "made once when the box has no machine id: stable across enrolments"
)
HUB_URL: Setting[str | None] = Setting(
    "hub_url", str, None, "the hub this gate enrolled with; None runs the gate offline"
)
GATE: Setting[JsonObject | None] = Setting(
    "gate", dict, None, "the gate's place (venue, name, direction, zones): GateStore.gate()"
)

# -- sync with the hub (scanner/sync.py, scanner/live.py) ---------------------------------

EVENT: Setting[str | None] = Setting(
    "event_id", str, None, "the event the operator chose to sync; wins over the hub's choice"
)
HUB_EVENT: Setting[str | None] = Setting(
    "hub_event_id", str, None, "the event the hub says the venue's gates hold now (heartbeat)"
)
MANIFEST_SYNC: Setting[JsonObject | None] = Setting(
    "manifest_sync",
    dict,
    None,
    "{event_id, revision, etag} of the last pull: the next one asks for a delta",
)
LINK: Setting[JsonObject | None] = Setting(
    "link",
    dict,
    None,
    "{state, last_error, last_sync_ms, since_ms}: a restarted gate and `status` show it",
)
CLOCK_OFFSET: Setting[int | None] = Setting(
    "clock_offset_ms", int, None, "hub time ≈ device time + this: signing and peer times use it"
)
HUB_KEYS_VERSION: Setting[int | None] = Setting(
    "hub_keys_version", int, None, "the hub key set taken in full; the heartbeat reports it"
)
PEER_CURSOR_PREFIX = "peer_cursor:"  # + event id: one cursor per event


def peer_cursor(event_id: str) -> Setting[int]:
    """The hub's cursor over other gates' scans already merged, for one event."""
    return Setting(
        PEER_CURSOR_PREFIX + event_id, int, 0, "other gates' movements merged so far (this event)"
    )


# -- the venue's settings (F4, behind the PIN) --------------------------------------------

VENUE_PIN: Setting[JsonObject | None] = Setting(
    "venue_pin", dict, None, "salted scrypt hash of the venue PIN (scanner/pin.py), never the PIN"
)
CAMERA: Setting[str | None] = Setting(
    "camera", str, None, "the camera to read codes with; None: hand scanner only"
)
SOUND: Setting[bool] = Setting("sound", bool, True, "tones and the bell on a verdict")
RELAY_PIN: Setting[int | str | None] = Setting(
    "relay_pin", (int, str), None, "GPIO pin of the turnstile relay; None: no relay"
)
VERDICT_CLEAR_S: Setting[float] = Setting(
    "verdict_clear_s", (int, float), 4.0, "seconds a verdict stays on screen"
)
STALE_AFTER_MS: Setting[int] = Setting(
    "stale_after_ms", int, 60 * 60_000, "a manifest older than this shows STALE (offline gate)"
)

# -- the gate's own health --------------------------------------------------------------

STORAGE_CHECKED_MS: Setting[int | None] = Setting(
    "storage_checked_ms", int, None, "a STORAGE FAULT screen's probe write: the disk takes it"
)

ALL: tuple[Setting[Any], ...] = (
    DEVICE_ID,
    HARDWARE_ID,
    HUB_URL,
    GATE,
    EVENT,
    HUB_EVENT,
    MANIFEST_SYNC,
    LINK,
    CLOCK_OFFSET,
    HUB_KEYS_VERSION,
    VENUE_PIN,
    CAMERA,
    SOUND,
    RELAY_PIN,
    VERDICT_CLEAR_S,
    STALE_AFTER_MS,
    STORAGE_CHECKED_MS,
)

# -- key material: the store's `keys` table, not config ------------------------------------

DEVICE_SEED_KEY = "device_seed"  # the device's Ed25519 request-signing seed (enrolment)
HUB_KEY_PREFIX = "hub_key:"  # + key id: a hub public key trusted for manifests
