"""Typed keys for what the aiohttp application carries (store, clock, hub identity)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hub.manifest_build import HubKeys
from hub.store_api import HubStorage

STORE: web.AppKey[HubStorage] = web.AppKey("store")  # handlers see the seam, not SQLite
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock")  # epoch milliseconds
# The hub's keys now (read again from the keyring after a `gate-hub key` command).
HUB_KEYS: web.AppKey[Callable[[], HubKeys]] = web.AppKey("hub_keys")
HUB_URL = web.AppKey("hub_url", str)
ENROLLMENT_TTL_MS = web.AppKey("enrollment_ttl_ms", int)
