"""Typed keys for what the aiohttp application carries (store, clock, hub identity)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hub.storage import HubStore

STORE = web.AppKey("store", HubStore)
CLOCK = web.AppKey("clock", Callable[[], int])  # epoch milliseconds
HUB_PUBLIC_KEY = web.AppKey("hub_public_key", bytes)
HUB_URL = web.AppKey("hub_url", str)
ENROLLMENT_TTL_MS = web.AppKey("enrollment_ttl_ms", int)
