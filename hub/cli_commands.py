"""What a noun's commands (`gate-hub backend ...`, `venue-keys ...`, `user ...`) get from
hub/cli.py: the open store, the tenant named by --tenant, and the CLI's own ways to name a
venue and print rows, so every noun speaks the same way without importing hub/cli.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hub.storage import HubStore, Row


@dataclass(frozen=True, slots=True)
class CommandContext:
    store: HubStore
    tenant: Row
    venue_of: Callable[[str], Row]  # a venue of the tenant by id or name, else a refusal
    local: Callable[[int | None], str | None]  # epoch ms as the operator's local time
    print_rows: Callable[[list[Row], Sequence[str], bool], int]  # rows, columns, as JSON
    now_ms: int
