"""Typed keys for what the aiohttp application carries (database, clock, hub identity)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hub.manifest_build import HubKeys
from hub.nonces import RequestNonces
from hub.secret_box import SecretBox
from hub.store_api import HubMemory, HubStorage
from hub.thread_owned import ThreadOwned

# Every database use of a handler or background job: `await app[DB].run(lambda store: ...)`
# runs it on the store's own thread, off the event loop; handlers see the seam, not SQLite.
DB: web.AppKey[ThreadOwned[HubStorage]] = web.AppKey("db")
# The same store's memory of hot rows, which the loop may read (hub/store_api.HubMemory).
MEMORY: web.AppKey[HubMemory] = web.AppKey("memory")
# Device request nonces: checked in memory on the loop (hub/nonces.py), on every signed call.
NONCES = web.AppKey("nonces", RequestNonces)
CLOCK: web.AppKey[Callable[[], int]] = web.AppKey("clock")  # epoch milliseconds
# The hub's keys now (read again from the keyring after a `gate-hub key` command).
HUB_KEYS: web.AppKey[Callable[[], HubKeys]] = web.AppKey("hub_keys")
HUB_URL = web.AppKey("hub_url", str)
ENROLLMENT_TTL_MS = web.AppKey("enrollment_ttl_ms", int)
# Seals and opens backend tokens (hub/secret_box.py), with the key beside the database.
SECRETS = web.AppKey("secrets", SecretBox)
