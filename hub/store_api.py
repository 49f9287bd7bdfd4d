"""What the hub's storage must offer: the seam a PostgreSQL store plugs into next.

Handlers, workers and the CLI depend on these Protocols, never on SQLite: `hub/storage.py`'s
`HubStore` is today's one implementation (checked below by mypy). Reads an admin makes are
scoped by tenant (and venue) inside the store; every admin change is audited in the same
transaction; scans are acknowledged only once committed. A change made of many values (a
gate, an enrolment code and a device spending it, a comp, a catalogue import, a backend, a
staff user, a venue key set, a device's report, a will-call step) takes them as one frozen
value defined here with the seam: every store and every caller shares its one definition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from manifests.model import TicketStatus

R = TypeVar("R")

if TYPE_CHECKING:
    from hub.backends.seam import OwedScan, Pull, PushOutcome
    from hub.nonces import RequestNonces
    from hub.online_check import CheckContext, OnlineCheck
    from hub.paging import Page, PageAsk
    from hub.store_backends import OutboxState, PullSummary
    from hub.store_base import HeartbeatListener, Row, ScanListener
    from hub.store_devices import StoredScans
    from hub.store_doors import DoorCounts
    from hub.store_manifests import CheckOutcome, ManifestSource
    from hub.store_reconcile import Reconcile
    from hub.store_search import AuditQuery, DeviceQuery, TicketPage, TicketQuery
    from hub.store_tickets import RowChange
    from hub.store_will_call import WillCallHold


# the values a change takes ---------------------------------------------------------------
@dataclass(frozen=True)
class CatalogueImport:
    """What one import writes, all of it or none: new rows, already validated, and `changes`
    to this tenant's rows already at the hub."""

    events: Sequence[Mapping[str, Any]] = ()
    ticket_types: Sequence[Mapping[str, Any]] = ()
    tickets: Sequence[Mapping[str, Any]] = ()
    changes: Sequence[RowChange] = ()
    holds: Sequence[WillCallHold] = ()  # orders put on will-call (or renamed there)


@dataclass(frozen=True)
class NewComp:
    """A complimentary ticket to issue: why, for whom, where it admits; `fields` are its
    TICKET_FIELDS (order_ref, attention, max_entries), already checked."""

    reason: str
    holder_name: str = ""
    ticket_type_id: str | None = None
    zone: str | None = None
    seat: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewGate:
    """A gate to add at a venue: `direction` entry or exit, into `zones` (names of the
    venue's zones, already checked)."""

    venue_id: str
    name: str
    direction: str
    zones: Sequence[str] = ()


@dataclass(frozen=True)
class NewEnrollment:
    """A one-time code for one device: it enrols the device `name` at the venue (pinned to a
    gate and zone when given) if spent within `ttl_ms`."""

    venue_id: str
    name: str
    ttl_ms: int
    gate_id: str | None = None
    zone: str | None = None


@dataclass(frozen=True)
class ConnectedBackend:
    """An upstream ticketing system to keep, once hub/backends/connect.py reached it: its
    `settings` hold nothing secret; `seal(backend_id)` seals its token for that row
    (hub/secret_box.py), so the token never reaches the store in the clear."""

    venue_id: str | None  # None: every venue of the tenant
    kind: str
    name: str
    settings: Mapping[str, Any]
    seal: Callable[[str], bytes] | None = None


@dataclass(frozen=True)
class PushedScans:
    """What one push of owed scans to a backend came back with: each scan's `outcomes`, and
    when a scan upstream did not take is owed again, `retry_at_ms(attempts made)`."""

    backend_id: str
    outcomes: Sequence[PushOutcome]
    retry_at_ms: Callable[[int], int]


@dataclass(frozen=True)
class NewStaffUser:
    """A person who signs in to the venue console: at one venue, or every venue of the
    tenant (`venue_id` None); `password_hash` already made (hub/staff_accounts.py)."""

    venue_id: str | None
    username: str
    role: str
    password_hash: str


@dataclass(frozen=True)
class NewVenueKeySet:
    """A venue's TicketToken key set to keep: `state` current (the venue's first) or next (a
    rotation announced); `seal(key_set)` seals its secrets for the number the store gives
    it (hub/secret_box.py), so the store never sees a key in the clear."""

    venue_id: str
    state: str
    seal: Callable[[int], bytes]
    fingerprints: Mapping[str, str]
    rotation_interval_ms: int
    format_c_validity_ms: int


@dataclass(frozen=True)
class DeviceReport:
    """What a device's heartbeat says about it; None leaves a field as it was."""

    app_version: str | None = None
    pending_uploads: int | None = None
    manifest_revisions: Mapping[str, int] | None = None
    clock_offset_ms: int | None = None  # from its signed timestamp: hub ≈ device + offset
    hub_keys_version: int | None = None


@dataclass(frozen=True)
class DeviceScans:
    """Scan rows a device uploaded (hub/scan_upload.py), to store: a `deactivated` device's
    are kept for audit only; an active device's upload is also its heartbeat, with its
    latest measured `clock_offset_ms` (None: unchanged)."""

    device_id: str
    scans: Iterable[Mapping[str, Any]]
    deactivated: bool
    clock_offset_ms: int | None = None


@dataclass(frozen=True)
class DeviceEnrollment:
    """A device spending a one-time code: its hardware id (a label, never a key), the public
    key it signs with, and its app's version."""

    code: str
    hardware_id: str
    public_key: bytes
    app_version: str | None = None


@dataclass(frozen=True)
class WillCallStep:
    """What every step on a will-call order (hold, drop, ID check, release, print) acts on:
    the order `order_ref` of `event` (scoped by the caller to the tenant), by `actor`, at
    `now_ms`."""

    event: Row
    tenant_id: str
    order_ref: str
    actor: str
    now_ms: int


@dataclass(frozen=True)
class ToReconcile:
    """Scans of one event to judge again in one go: every stored scan of `ticket_ids` (from
    every device) and the ticketless scans `scan_ids`. The reconciler's queue hands them out
    in chunks; after a crash the store finds them again (unreconciled_tickets)."""

    event_id: str
    ticket_ids: Sequence[str] = ()
    scan_ids: Sequence[int] = ()


class HubMemory(Protocol):
    """What the event loop may read without the database: fresh copies of the rows every
    device request needs, kept by the store while its database thread reads them (None
    when not remembered: then ask the database thread). A device's hot path stays on the
    loop, where a turn of the database thread would cost more than the read itself.
    `scan_listeners` hear every committed scan batch (live push, metrics), on the thread
    that committed it; `heartbeat_listeners` hear every device's committed health report
    (the console's live doors page), on the database thread."""

    scan_listeners: list[ScanListener]
    heartbeat_listeners: list[HeartbeatListener]

    def remembered_device(self, device_id: str) -> Row | None: ...
    def remembered_gate(self, gate_id: str, venue_id: str) -> Row | None: ...
    def remembered_event(self, event_id: str) -> Row | None: ...
    def remembered_revision(self, event_id: str) -> int | None: ...


class TenantStorage(Protocol):
    """Tenants, venues, zones, gates, admin tokens and the audit log."""

    def create_tenant(self, name: str, now_ms: int) -> Row: ...
    def find_tenant(self, id_or_name: str) -> Row | None: ...
    def create_venue(
        self, tenant_id: str, name: str, timezone: str, actor: str, now_ms: int
    ) -> Row: ...
    def get_venue(
        self, venue_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None: ...
    def list_venues(self, tenant_id: str, scope_venue: str | None = None) -> list[Row]: ...
    def create_zone(
        self, tenant_id: str, venue_id: str, name: str, actor: str, now_ms: int
    ) -> Row: ...
    def list_zones(self, venue_id: str) -> list[Row]: ...
    def create_gate(self, tenant_id: str, gate: NewGate, actor: str, now_ms: int) -> Row: ...
    def get_gate(self, gate_id: str, venue_id: str) -> Row | None: ...
    def list_gates(self, venue_id: str) -> list[Row]: ...
    def create_token(
        self, tenant_id: str, venue_id: str | None, role: str, label: str, now_ms: int
    ) -> tuple[Row, str]: ...
    def token_for(self, token: str) -> Row | None: ...
    def audit_entries(self, tenant_id: str, scope_venue: str | None = None) -> list[Row]: ...


class DeviceStorage(Protocol):
    """Enrolment, devices, heartbeats and the scans devices upload."""

    def in_one_commit(self, works: Sequence[Callable[[Any], R]]) -> list[R | Exception]: ...

    def create_enrollment(
        self, tenant_id: str, grant: NewEnrollment, actor: str, now_ms: int
    ) -> tuple[Row, str]: ...
    def enroll_device(self, enrollment: DeviceEnrollment, now_ms: int) -> Row | str: ...
    def get_device(self, device_id: str) -> Row | None: ...
    def get_device_scoped(
        self, device_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None: ...
    def list_devices(
        self, tenant_id: str, scope_venue: str | None = None, active: bool | None = None
    ) -> list[Row]: ...
    def deactivate_device(self, device: Row, actor: str, now_ms: int) -> Row: ...
    def update_device(
        self, device: Row, changes: Mapping[str, Any], actor: str, now_ms: int
    ) -> Row: ...
    def record_heartbeat(self, device_id: str, now_ms: int, report: DeviceReport) -> None: ...
    def devices_behind_keys(self, version: int) -> list[Row]: ...
    def record_scans(self, upload: DeviceScans, now_ms: int) -> StoredScans: ...
    def scan_ids(self, device_id: str, seqs: Sequence[int]) -> list[int]: ...
    def scans_of_device(self, device_id: str) -> list[Row]: ...


class TicketStorage(Protocol):
    """Events, ticket types and tickets, and the admin changes to them; an import writes a
    catalogue's will-call holds too (hub/store_will_call.py)."""

    def event_exists(self, event_id: str) -> bool: ...
    def event_codes(self) -> set[int]: ...
    def import_catalogue(
        self, tenant_id: str, catalogue: CatalogueImport, actor: str, now_ms: int
    ) -> None: ...
    def get_event(
        self, event_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None: ...
    def ticket_types_of(self, event_id: str) -> list[Row]: ...
    def existing_ticket_ids(self, ids: Iterable[str]) -> set[str]: ...
    def get_tickets(
        self, ticket_ids: Sequence[str], tenant_id: str, scope_venue: str | None = None
    ) -> dict[str, Row]: ...
    def get_ticket(
        self, ticket_id: str, tenant_id: str, scope_venue: str | None = None
    ) -> Row | None: ...
    def issue_comp(
        self, event: Row, tenant_id: str, comp: NewComp, actor: str, now_ms: int
    ) -> Row | str: ...
    def update_ticket_fields(
        self, ticket: Row, tenant_id: str, changes: Mapping[str, Any], actor: str, now_ms: int
    ) -> Row: ...
    def set_locks(
        self, tickets: Sequence[Row], tenant_id: str, reason: str | None, actor: str, now_ms: int
    ) -> None: ...
    def withdraw_tickets(
        self,
        tickets: Sequence[Row],
        tenant_id: str,
        status: TicketStatus,
        note: str,
        actor: str,
        now_ms: int,
    ) -> str | None: ...
    def reissue_ticket(
        self, ticket: Row, tenant_id: str, actor: str, now_ms: int, *, new_holder: str | None = None
    ) -> Row | str: ...
    def expire_tickets(self, now_ms: int) -> int: ...


class ManifestStorage(Protocol):
    """Revisions, manifest sources, credentials and the online check's transaction."""

    def event_revision(self, event_id: str) -> int: ...
    def current_revision(self, event_id: str) -> int: ...
    def bump_all_revisions(self) -> int: ...
    def event_by_id(self, event_id: str) -> Row | None: ...
    def event_times(self, venue_id: str) -> list[tuple[str, int, int]]: ...
    def manifest_source(
        self, event_id: str, *, with_tickets: bool = True, since: int | None = None
    ) -> ManifestSource | None: ...
    def credentials_of(self, ticket_ids: Sequence[str]) -> dict[tuple[str, int], str]: ...
    def issued_credential(self, ticket_id: str, generation: int) -> str | None: ...
    def save_credentials(self, rows: Iterable[tuple[str, int, str]], now_ms: int) -> None: ...
    def scans_of_ticket(self, ticket_id: str, event_id: str) -> list[Row]: ...
    def check_and_record(
        self, checks: Sequence[OnlineCheck], contexts: Mapping[int, CheckContext]
    ) -> tuple[list[CheckOutcome], list[tuple[str, dict[str, Any]]]]: ...


class ReconcileStorage(Protocol):
    """Cross-gate reconciliation and the peer feed."""

    def reconcile_event_tickets(
        self, work: ToReconcile, judge: Reconcile, now_ms: int
    ) -> tuple[int, int]: ...
    def tickets_of_event(self, event_id: str, ticket_ids: Sequence[str]) -> dict[str, Row]: ...
    def unreconciled_tickets(self, event_id: str) -> ToReconcile: ...
    def outcome_counts(self, event_id: str) -> dict[str, int]: ...
    def scan_outcomes_of(self, scan_ids: Sequence[int]) -> dict[int, Row]: ...
    def double_entries(self, event_id: str) -> list[Row]: ...
    def count_conflicts(self) -> int: ...
    def peer_scans(
        self, event_id: str, device_id: str, after: int, limit: int = 1000
    ) -> tuple[list[Row], int, bool]: ...


class SearchStorage(Protocol):
    """Listings an admin filters and pages through (hub/paging.py; `ask` None: every row),
    scoped by tenant (and venue) inside the query."""

    def venue_page(self, tenant_id: str, scope_venue: str | None, ask: PageAsk | None) -> Page: ...
    def zone_page(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, ask: PageAsk | None
    ) -> Page: ...
    def gate_page(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, ask: PageAsk | None
    ) -> Page: ...
    def device_page(
        self, tenant_id: str, scope_venue: str | None, query: DeviceQuery, ask: PageAsk | None
    ) -> Page: ...
    def event_page(
        self, tenant_id: str, scope_venue: str | None, venue_id: str | None, ask: PageAsk | None
    ) -> Page: ...
    def audit_page(
        self, tenant_id: str, scope_venue: str | None, query: AuditQuery, ask: PageAsk | None
    ) -> Page: ...
    def list_events(
        self, tenant_id: str, scope_venue: str | None = None, venue_id: str | None = None
    ) -> list[Row]: ...
    def search_tickets(
        self, tenant_id: str, scope_venue: str | None, query: TicketQuery
    ) -> TicketPage: ...


class BackendStorage(Protocol):
    """Upstream ticketing systems: their configuration, pulls, and the scan outbox
    (hub/store_backends.py)."""

    def create_backend(
        self, tenant_id: str, backend: ConnectedBackend, actor: str, now_ms: int
    ) -> Row: ...
    def get_backend(self, backend_id: str) -> Row | None: ...
    def backend_secret(self, backend_id: str) -> bytes | None: ...
    def list_backends(
        self, tenant_id: str | None = None, scope_venue: str | None = None
    ) -> list[Row]: ...
    def find_backend(self, tenant_id: str, id_or_name: str) -> Row | None: ...
    def remove_backend(self, backend: Row, actor: str, now_ms: int) -> dict[str, int]: ...
    def backend_cursor(self, backend_id: str) -> dict[str, Any]: ...
    def record_pull_failure(self, backend_id: str, error: str, now_ms: int) -> None: ...
    def apply_pull(self, backend: Row, pull: Pull, now_ms: int) -> PullSummary: ...
    def owed_scans(self, backend_id: str, now_ms: int, limit: int) -> list[OwedScan]: ...
    def record_push(self, pushed: PushedScans, now_ms: int) -> None: ...
    def outbox_state(self, backend_id: str) -> OutboxState: ...
    def record_webhook(
        self, backend_id: str, nonce: str, idempotency_key: str | None, now_ms: int
    ) -> str: ...
    def upstream_answers(self, event_id: str) -> list[Row]: ...


class VenueKeyStorage(Protocol):
    """A venue's TicketToken keys: sealed key sets and their rotation
    (hub/store_venue_keys.py); the store never sees a key in the clear."""

    def venue_key_sets(self, venue_id: str) -> list[Row]: ...
    def add_venue_key_set(
        self, tenant_id: str, keys: NewVenueKeySet, actor: str, now_ms: int
    ) -> Row: ...
    def activate_venue_key_set(
        self, tenant_id: str, venue_id: str, actor: str, now_ms: int
    ) -> list[Row]: ...
    def remove_venue_key_set(
        self, tenant_id: str, venue_id: str, key_set: int, actor: str, now_ms: int
    ) -> Row: ...


class StaffStorage(Protocol):
    """People who sign in to the venue console, and their sessions (hub/store_staff.py)."""

    def create_staff_user(
        self, tenant_id: str, user: NewStaffUser, actor: str, now_ms: int
    ) -> Row: ...
    def staff_users(self, tenant_id: str) -> list[Row]: ...
    def staff_user_named(self, username: str) -> Row | None: ...
    def disable_staff_user(self, user_id: str, actor: str, now_ms: int) -> Row | None: ...
    def start_staff_session(
        self, user: Row, session_hash: str, csrf_token: str, now_ms: int, expires_ms: int
    ) -> None: ...
    def staff_session(self, session_hash: str, now_ms: int) -> Row | None: ...
    def end_staff_session(self, session_hash: str) -> None: ...


class ConsoleReportStorage(Protocol):
    """What the venue console's ticket pages and reports read (hub/store_console_reports.py);
    the caller scoped the event or ticket, except in tickets_for_lines."""

    def ticket_scans(self, ticket_id: str, venue_id: str, limit: int = 200) -> list[Row]: ...
    def event_ticket_counts(self, event_id: str) -> list[Row]: ...
    def comp_counts(self, event_id: str) -> list[Row]: ...
    def scan_outcome_page(
        self, event_id: str, outcomes: Sequence[str], ask: PageAsk | None
    ) -> Page: ...
    def tickets_for_lines(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, lines: Sequence[str]
    ) -> dict[str, list[Row]]: ...


class DoorsStorage(Protocol):
    """What the console's doors and device pages read (hub/store_doors.py); the caller
    scoped the event and the device."""

    def door_counts(self, event_id: str, after_scan_id: int, since_ms: int) -> DoorCounts: ...
    def latest_door_scans(self, event_id: str, limit: int) -> list[Row]: ...
    def latest_device_scans(self, device_id: str, limit: int) -> list[Row]: ...
    def manifest_behind_since(self, event_id: str, revisions: Iterable[int]) -> dict[int, int]: ...
    def device_enrollment(self, device_id: str) -> Row | None: ...


class WillCallStorage(Protocol):
    """Orders held at the box office (hub/store_will_call.py); the caller scoped the event.
    A change answers the row, or a refusal code of hub/store_will_call.py."""

    def will_call(self, event_id: str, order_ref: str) -> Row | None: ...
    def will_call_list(self, event_id: str) -> list[Row]: ...
    def order_tickets(self, event_id: str, order_ref: str, tenant_id: str) -> list[Row]: ...
    def find_will_calls(
        self, tenant_id: str, scope_venue: str | None, venue_id: str, text: str, limit: int = 50
    ) -> list[Row]: ...
    def hold_will_call(self, step: WillCallStep, name: str) -> Row | str: ...
    def drop_will_call(self, step: WillCallStep) -> str | None: ...
    def check_will_call_id(self, step: WillCallStep) -> Row | str: ...
    def release_will_call(self, step: WillCallStep, *, reprint: bool = False) -> Row | str: ...
    def audit_will_call_print(self, step: WillCallStep, what: str) -> None: ...


class StorageCore(Protocol):
    """The connection's life, its health and the hub's own identity."""

    def leave_checkpoints_to_background(self) -> None: ...
    def relaxed_sync(self) -> AbstractContextManager[None]: ...
    def close(self) -> None: ...
    def ping(self) -> None: ...
    def scans_committed(self, device_id: str, scans: list[Mapping[str, Any]]) -> None: ...
    def hub_identity(self) -> Row | None: ...
    def hub_identity_in_use(self) -> bool: ...
    def record_hub_identity(
        self, row: Mapping[str, Any], audit: tuple[str, Mapping[str, Any]] | None = None
    ) -> None: ...


class HubStorage(
    HubMemory,
    TenantStorage,
    DeviceStorage,
    TicketStorage,
    ManifestStorage,
    ReconcileStorage,
    SearchStorage,
    BackendStorage,
    VenueKeyStorage,
    StaffStorage,
    ConsoleReportStorage,
    DoorsStorage,
    WillCallStorage,
    StorageCore,
    Protocol,
):
    """All of it. `path` is where workers beside the event loop (manifest builds, the check
    writer process, WAL checkpoints) open their own connections; a server database would
    give its address there; `nonces` remember request nonces (replay protection)."""

    path: str
    nonces: RequestNonces
