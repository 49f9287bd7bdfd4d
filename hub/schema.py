"""The hub's SQLite schema. Times are epoch milliseconds (UTC); ids are UUID strings.

Kept as plain DDL so a PostgreSQL store can be written from the same model. A database gets it
through the numbered steps of hub/migrations.py: BASE_DDL is step 1, frozen as shipped; a
change to the schema is a new step there, never an edit here.
"""

from __future__ import annotations

from hub.backends.kinds import PRETIX, TICKETTOKEN
from protocol.limits import MAX_COUNT

# What a ticket's gate-facing facts may hold (manifests.model.TicketRow), checked where values
# enter the hub (import, admin API) and again by the columns themselves. A character a line of
# text may hold (no control or line-break character), and one that is also not blank: the
# patterns read the same in Python and in JSON Schema (ECMA-262), so /openapi.json states them.
_IN_LINE = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
_VISIBLE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
ORDER_REF_MAX_LEN = 64  # the box office's order reference: F2 on a gate finds tickets by it
ORDER_REF_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"  # printable ASCII, not blank
ATTENTION_MAX_LEN = 200  # a note staff read on the verdict screen ("Check student ID")
ATTENTION_PATTERN = f"^{_IN_LINE}*{_VISIBLE}{_IN_LINE}*$"  # one line, not blank
MAX_ENTRIES_LOW = 1  # entries a ticket allows; the top is protocol.limits.MAX_COUNT
TICKET_FIELD_COLUMNS = (
    ("order_ref", f"TEXT CHECK (length(order_ref) BETWEEN 1 AND {ORDER_REF_MAX_LEN})"),
    ("attention", f"TEXT CHECK (length(attention) BETWEEN 1 AND {ATTENTION_MAX_LEN})"),
    ("max_entries", f"INTEGER CHECK (max_entries BETWEEN {MAX_ENTRIES_LOW} AND {MAX_COUNT})"),
)
TICKET_FIELDS = tuple(column for column, _ in TICKET_FIELD_COLUMNS)
# A ticket id from an import that is not a UUID, kept as given (the hub's id is derived from
# it, hub/importer.py): what the ticketing system calls the ticket, found by a search.
EXTERNAL_ID_MAX_LEN = 64
EXTERNAL_ID_PATTERN = ORDER_REF_PATTERN  # printable ASCII, not blank: any case matches
EXTERNAL_ID_COLUMN = (
    "external_id",
    f"TEXT CHECK (length(external_id) BETWEEN 1 AND {EXTERNAL_ID_MAX_LEN})",
)

# A ticket inserted, updated or deleted bumps its event's revision and records the manifest
# revision the change first appears in (see the manifests comment in BASE_DDL).
_TICKET_BUMP = """CREATE TRIGGER IF NOT EXISTS tickets_bump_{name} AFTER {event} ON tickets
BEGIN
    INSERT INTO event_revisions (event_id, revision) VALUES ({row}.event_id, 1)
        ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1;
    INSERT INTO ticket_changes (event_id, ticket_id, revision)
        SELECT {row}.event_id, {row}.id, revision + 1 FROM event_revisions
        WHERE event_id = {row}.event_id
        ON CONFLICT (event_id, ticket_id) DO UPDATE SET revision = excluded.revision;
END;
"""
_TICKET_BUMPS = (
    ("insert", "INSERT", "NEW"),
    ("update", "UPDATE", "NEW"),
    ("delete", "DELETE", "OLD"),
)

# Step 1 (frozen): the tables as the release before versioned steps made them. The ticket
# field bounds and _TICKET_BUMP above are part of it: changing a bound takes a step that
# rebuilds `tickets`, changing a trigger a step that replaces it.
BASE_DDL = (
    """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS venues (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE IF NOT EXISTS zones (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL REFERENCES venues(id),
    name TEXT NOT NULL,
    UNIQUE (venue_id, name)
);

CREATE TABLE IF NOT EXISTS gates (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL REFERENCES venues(id),
    name TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
    zones_json TEXT NOT NULL DEFAULT '[]',  -- zone names this gate leads into
    UNIQUE (venue_id, name)
);

CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL REFERENCES venues(id),
    code INTEGER NOT NULL UNIQUE,  -- short code native credentials carry
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    doors_ms INTEGER,
    days_json TEXT NOT NULL DEFAULT '[]',
    policy_json TEXT NOT NULL DEFAULT '{}',
    comp_limit INTEGER,
    created_ms INTEGER NOT NULL,
    CHECK (end_ms >= start_ms)
);

CREATE TABLE IF NOT EXISTS ticket_types (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events(id),
    code INTEGER NOT NULL,  -- native ticket-type code
    name TEXT NOT NULL,
    zone TEXT,
    UNIQUE (event_id, code),
    UNIQUE (event_id, name)
);

CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,  -- the backend's ticket UUID
    event_id TEXT NOT NULL REFERENCES events(id),
    ticket_type_id TEXT REFERENCES ticket_types(id),
    status TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    zone TEXT,
    seat TEXT,
    holder_name TEXT,
    valid_days_json TEXT NOT NULL DEFAULT '[]',
    lock_reason TEXT,
    locked_by TEXT,
    locked_ms INTEGER,
    comp_reason TEXT,
    comp_issuer TEXT,
    updated_ms INTEGER NOT NULL"""
    # order_ref, attention, max_entries: NULL is none (no order, no note, the policy's limit)
    + "".join(f",\n    {column} {definition}" for column, definition in TICKET_FIELD_COLUMNS)
    + """
);
CREATE INDEX IF NOT EXISTS tickets_event ON tickets(event_id);
-- The event's REVOKED tickets, read for every manifest header: without it, a scan of all the
-- event's tickets (20 ms at 100k) on the event loop each time a revision moves.
CREATE INDEX IF NOT EXISTS tickets_event_status ON tickets(event_id, status);

CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    venue_id TEXT NOT NULL REFERENCES venues(id),
    hardware_id TEXT NOT NULL,
    name TEXT NOT NULL,
    gate_id TEXT REFERENCES gates(id),
    zone TEXT,
    public_key BLOB NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    enrolled_ms INTEGER NOT NULL,
    deactivated_ms INTEGER,
    last_seen_ms INTEGER,
    app_version TEXT,
    manifest_revisions_json TEXT NOT NULL DEFAULT '{}',  -- event id -> revision held
    pending_uploads INTEGER NOT NULL DEFAULT 0,
    clock_offset_ms INTEGER,
    hub_keys_version INTEGER  -- the hub key set the device last took (key rotation)
);
-- hardware_id is a label, never a key: every enrolment is a device of its own, so a wiped or
-- cloned gate, or two gate databases on one machine, never take over another's identity.

CREATE TABLE IF NOT EXISTS enrollment_codes (
    id TEXT PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the code; the code itself is never stored
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    venue_id TEXT NOT NULL REFERENCES venues(id),
    gate_id TEXT REFERENCES gates(id),
    zone TEXT,
    name TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER,
    device_id TEXT REFERENCES devices(id)
);

CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    device_seq INTEGER NOT NULL,
    event_id TEXT,
    ticket_id TEXT,
    raw_hash TEXT,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    direction TEXT NOT NULL,
    gate_id TEXT,
    zone TEXT,
    scanned_ms INTEGER NOT NULL,  -- the device's own clock
    clock_offset_ms INTEGER NOT NULL DEFAULT 0,  -- device's measure: hub ≈ device + offset
    manifest_revision INTEGER,
    counted INTEGER NOT NULL DEFAULT 0,
    detail_json TEXT NOT NULL DEFAULT '{}',  -- everything else the device reported
    arrived_ms INTEGER NOT NULL,
    device_deactivated INTEGER NOT NULL DEFAULT 0,  -- kept for audit, never counted
    UNIQUE (device_id, device_seq)
);

CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY,
    event_id TEXT,
    ticket_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    scan_ids_json TEXT NOT NULL DEFAULT '[]',
    detail_json TEXT NOT NULL DEFAULT '{}',
    detected_ms INTEGER NOT NULL,
    resolved_ms INTEGER
);
-- One double entry per (winner scan, duplicate scan): re-reconciling never repeats it.
CREATE UNIQUE INDEX IF NOT EXISTS conflicts_pair ON conflicts(ticket_id, kind, scan_ids_json);

-- Reconciliation's verdict on each scan, kept BESIDE the scan (scans are never rewritten);
-- replaced whenever the ticket is re-reconciled after a new upload.
CREATE TABLE IF NOT EXISTS scan_outcomes (
    scan_id INTEGER PRIMARY KEY REFERENCES scans(id),
    event_id TEXT,
    ticket_id TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('SUCCESS', 'DUPLICATE', 'ERROR')),
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    corrected_ms INTEGER NOT NULL,
    reconciled_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS scan_outcomes_event ON scan_outcomes(event_id, outcome);

CREATE TABLE IF NOT EXISTS admin_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the bearer token
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    venue_id TEXT REFERENCES venues(id),
    role TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);

CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    venue_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail_json TEXT NOT NULL DEFAULT '{}',
    at_ms INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The hub's identity: the fingerprints (never seeds) of the keys in its key file `<db>.hubkey`,
-- one row. The hub refuses a key file that does not match, so a lost or altered file never
-- silently becomes a new identity that every enrolled gate would refuse. A `gate-hub key`
-- command records the set it is about to write as pending first, so a crash between writing
-- the file and recording it trips nothing (hub/keyring.py).
CREATE TABLE IF NOT EXISTS hub_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    keys_json TEXT NOT NULL,  -- {"key id": fingerprint}
    pending_json TEXT,  -- the set a key command is writing, until it is recorded
    version INTEGER NOT NULL,  -- the keyring's version, which a new identity continues
    last_key_id INTEGER NOT NULL,  -- so a new identity never reuses a key id
    recorded_ms INTEGER NOT NULL
);


-- Manifests: a revision per event, bumped by triggers whenever a ticket or the event changes,
-- so no code path that edits tickets can forget to; per ticket, the manifest revision of its
-- last change, so a delta from any revision is "every ticket changed since" (removed tickets
-- keep their change row); the native credential the hub issued per ticket generation.
-- Manifest revision = event_revisions.revision + 1 (an event nothing changed is revision 1).
CREATE TABLE IF NOT EXISTS event_revisions (
    event_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ticket_changes (
    event_id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    revision INTEGER NOT NULL,  -- the manifest revision this change first appears in
    PRIMARY KEY (event_id, ticket_id)
);
CREATE INDEX IF NOT EXISTS ticket_changes_revision ON ticket_changes(event_id, revision);
"""
    # tickets_bump_insert, _update, _delete: the same two statements on the row's event
    + "".join(_TICKET_BUMP.format(name=n, event=e, row=r) for n, e, r in _TICKET_BUMPS)
    + """CREATE TRIGGER IF NOT EXISTS events_bump_update AFTER UPDATE ON events
BEGIN INSERT INTO event_revisions (event_id, revision) VALUES (NEW.id, 1)
      ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1; END;

CREATE TABLE IF NOT EXISTS ticket_credentials (
    ticket_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    credential TEXT NOT NULL,  -- the native credential string the holder's QR carries
    issued_ms INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, generation)
);
CREATE INDEX IF NOT EXISTS scans_device_ticket ON scans(ticket_id, scanned_ms);
"""
)

# Step 9: upstream ticketing systems ("backends": pretix, TicketToken) the hub pulls tickets
# from and pushes scans back to, and the codes those systems printed.
BACKEND_KINDS = (PRETIX, TICKETTOKEN)
BACKEND_TICKET_COLUMNS = (
    # the backend a ticket came from (NULL: the hub's own) and the code it printed on the
    # ticket (a pretix secret); hub-only: gates get a keyed hash of it (manifests/codec.py)
    ("backend_id", "TEXT REFERENCES backends(id)"),
    ("backend_code", "TEXT CHECK (length(backend_code) BETWEEN 1 AND 512)"),
)
BACKENDS_DDL = f"""
CREATE TABLE IF NOT EXISTS backends (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    venue_id TEXT REFERENCES venues(id),  -- NULL: every venue of the tenant
    kind TEXT NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in BACKEND_KINDS)})),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    settings_json TEXT NOT NULL DEFAULT '{{}}',  -- nothing secret
    secret_sealed BLOB,  -- its token, sealed with the hub's secrets key (hub/secret_box.py)
    cursor_json TEXT NOT NULL DEFAULT '{{}}',  -- where the next incremental pull starts
    active INTEGER NOT NULL DEFAULT 1,
    created_ms INTEGER NOT NULL,
    last_pull_ms INTEGER,
    last_pull_ok_ms INTEGER,
    last_pull_error TEXT,
    last_push_ok_ms INTEGER,
    last_push_error TEXT,
    UNIQUE (tenant_id, name)
);
-- A hub event fed by a backend, and what the backend calls it (pretix: the event slug and
-- the check-in lists scans go to).
CREATE TABLE IF NOT EXISTS backend_events (
    event_id TEXT PRIMARY KEY REFERENCES events(id),
    backend_id TEXT NOT NULL REFERENCES backends(id),
    upstream_ref TEXT NOT NULL,
    detail_json TEXT NOT NULL DEFAULT '{{}}',
    UNIQUE (backend_id, upstream_ref)
);
-- Codes a backend printed that no longer admit: revoked (superseded by a newer one) or
-- blocked. Kept so a gate can say why instead of "unknown".
CREATE TABLE IF NOT EXISTS ticket_retired_codes (
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    code TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('superseded', 'blocked')),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, code)
);
-- The key a gate hashes a scanned backend code with to find its ticket, one per event, so
-- the codes themselves are never on a gate's disk; and the event's public keys for codes
-- its backend signs (pretix_sig1: raw Ed25519, hex).
CREATE TABLE IF NOT EXISTS event_code_keys (
    event_id TEXT PRIMARY KEY REFERENCES events(id),
    lookup_key BLOB NOT NULL CHECK (length(lookup_key) = 32),
    signing_keys_json TEXT NOT NULL DEFAULT '[]'
);
-- Scans owed to a backend. Filled by a trigger in the transaction that stores the scan, so
-- no path that stores scans (uploads, online checks) can forget one; a pusher drains it.
CREATE TABLE IF NOT EXISTS backend_outbox (
    scan_id INTEGER PRIMARY KEY REFERENCES scans(id),
    backend_id TEXT NOT NULL REFERENCES backends(id),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    pushed_ms INTEGER,  -- NULL: still owed
    answer_json TEXT  -- what the backend answered, for the reconciliation report
);
CREATE INDEX IF NOT EXISTS backend_outbox_owed ON backend_outbox(backend_id, next_attempt_ms)
    WHERE pushed_ms IS NULL;
CREATE TRIGGER IF NOT EXISTS scans_owed_upstream AFTER INSERT ON scans
WHEN NEW.ticket_id IS NOT NULL AND NEW.device_deactivated = 0
BEGIN
    INSERT INTO backend_outbox (scan_id, backend_id)
        SELECT NEW.id, backend_id FROM tickets
        WHERE id = NEW.ticket_id AND backend_id IS NOT NULL;
END;
"""

# Step 12: TicketToken's webhooks, each nonce taken once and each idempotency key acted on
# once (kept 10 minutes: a webhook older than 5 is refused by its timestamp anyway).
WEBHOOK_NONCES_DDL = """
CREATE TABLE IF NOT EXISTS backend_webhooks (
    backend_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    idempotency_key TEXT,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (backend_id, nonce)
);
CREATE UNIQUE INDEX IF NOT EXISTS backend_webhooks_key
    ON backend_webhooks(backend_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS backend_webhooks_seen ON backend_webhooks(seen_ms);
"""

# Step 13: a scan is owed to a ticket's backend only when the device that made it is at
# that ticket's venue: a gate that read another tenant's or venue's code (refused there as
# wrong_event) must not report to that other backend.
OWED_UPSTREAM_TRIGGER = """
DROP TRIGGER IF EXISTS scans_owed_upstream;
CREATE TRIGGER scans_owed_upstream AFTER INSERT ON scans
WHEN NEW.ticket_id IS NOT NULL AND NEW.device_deactivated = 0
BEGIN
    INSERT INTO backend_outbox (scan_id, backend_id)
        SELECT NEW.id, t.backend_id FROM tickets t
        JOIN events e ON e.id = t.event_id
        JOIN devices d ON d.id = NEW.device_id AND d.venue_id = e.venue_id
        WHERE t.id = NEW.ticket_id AND t.backend_id IS NOT NULL;
END;
"""

# How readers see a stored scan (`scans s LEFT JOIN gates g ON g.id = s.gate_id`), one way
# for every reader: its time on the hub's clock (corrected once by the offset its gate
# measured), and the hub's name for its gate, else the name the device reported.
SCAN_HUB_MS = "s.scanned_ms + s.clock_offset_ms"
SCAN_GATE_NAME = "COALESCE(g.name, json_extract(s.detail_json, '$.gate'), '')"

# Request nonces live in their own database file beside the hub's (`<path>-nonces`): every
# signed request writes one, and that write must never wait behind a scan commit's fsync.
# Not fsynced (a power cut may forget the last few; their timestamps expire in minutes).
NONCE_DDL = """
CREATE TABLE IF NOT EXISTS request_nonces (
    device_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX IF NOT EXISTS request_nonces_seen ON request_nonces(seen_ms);
"""

# Step 11: a venue's TicketToken keys (protocol/legacy.py's formats A, B and C), in the states
# the hub's own keys go through (hub/keyring.py): `next` announced (gates trust it from their
# next sync), `current` (TicketToken issues with it now), `retired` (still trusted, so codes
# issued just before a rotation keep scanning) until removed. A removed set keeps its row
# without its secrets, so its number always names the one set the audit log speaks of.
LEGACY_KEY_STATES = ("next", "current", "retired", "removed")
LEGACY_MS_LOW, LEGACY_MS_HIGH = 1_000, 3_600_000  # rotation interval, format C validity
VENUE_LEGACY_KEYS_DDL = f"""
CREATE TABLE IF NOT EXISTS venue_legacy_keys (
    venue_id TEXT NOT NULL REFERENCES venues(id),
    key_set INTEGER NOT NULL CHECK (key_set >= 1),  -- 1, 2, ... per venue, never reused
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in LEGACY_KEY_STATES)})),
    -- the set's keys, sealed with the hub's secrets key (hub/secret_box.py); none once removed
    secrets_sealed BLOB CHECK ((secrets_sealed IS NULL) = (state = 'removed')),
    fingerprints_json TEXT NOT NULL,  -- format -> a short hash of its key, never the key
    rotation_interval_ms INTEGER NOT NULL
        CHECK (rotation_interval_ms BETWEEN {LEGACY_MS_LOW} AND {LEGACY_MS_HIGH}),
    format_c_validity_ms INTEGER NOT NULL
        CHECK (format_c_validity_ms BETWEEN {LEGACY_MS_LOW} AND {LEGACY_MS_HIGH}),
    created_ms INTEGER NOT NULL,
    activated_ms INTEGER,
    retired_ms INTEGER,
    removed_ms INTEGER,
    PRIMARY KEY (venue_id, key_set)
);
-- at most one next and one current set a venue
CREATE UNIQUE INDEX IF NOT EXISTS venue_legacy_keys_one_each
    ON venue_legacy_keys(venue_id, state) WHERE state IN ('next', 'current');
"""

# Step 14: people who sign in to the venue console (hub/console/): a password (argon2id,
# hub/staff_accounts.py), the roles and tenant/venue scope admin tokens have, and their sessions.
# A session is stored by the SHA-256 of its cookie value; its CSRF token is per session.
STAFF_USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{1,63}$"  # lower case: one spelling per person
STAFF_DDL = """
CREATE TABLE IF NOT EXISTS staff_users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    venue_id TEXT REFERENCES venues(id),  -- NULL: every venue of the tenant
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    disabled_ms INTEGER
);
CREATE TABLE IF NOT EXISTS staff_sessions (
    session_hash TEXT PRIMARY KEY,  -- SHA-256 of the cookie's value
    user_id TEXT NOT NULL REFERENCES staff_users(id),
    csrf_token TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS staff_sessions_user ON staff_sessions(user_id);
"""

# Step 15: will-call (hub/will_call.py). An order (the tickets of an event sharing an order_ref)
# held at the box office under a name; the photo-ID check before it is handed over (who, when)
# and its pick-up (who, when; `releases` counts the first hand-over and each confirmed reprint).
# The name is kept here and on the printed list only, never in the audit log.
WILL_CALL_NAME_MAX_LEN = 200
WILL_CALL_NAME_PATTERN = ATTENTION_PATTERN  # one line of text, not blank
WILL_CALL_DDL = f"""
CREATE TABLE IF NOT EXISTS will_call (
    event_id TEXT NOT NULL REFERENCES events(id),
    order_ref TEXT NOT NULL CHECK (length(order_ref) BETWEEN 1 AND {ORDER_REF_MAX_LEN}),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND {WILL_CALL_NAME_MAX_LEN}),
    held_by TEXT NOT NULL,
    held_ms INTEGER NOT NULL,
    id_checked_by TEXT,
    id_checked_ms INTEGER,
    released_by TEXT,
    released_ms INTEGER,
    releases INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, order_ref),
    CHECK ((released_ms IS NULL) = (releases = 0))
);
"""

# Step 16: a backend's first pull inserts 100,000 tickets at once, and the insert trigger's two
# statements for each were most of that time. While `ticket_bulk_inserts` holds its one row
# (only ever inside the inserting transaction: hub/store_tickets.py insert_tickets) the insert
# trigger stands aside, and the writer records the same changes for all the rows at once.
_BULK_GUARDED_BUMP = _TICKET_BUMP.replace(
    " ON tickets\nBEGIN", " ON tickets\nWHEN NOT EXISTS (SELECT 1 FROM ticket_bulk_inserts)\nBEGIN"
)
assert _BULK_GUARDED_BUMP != _TICKET_BUMP
TICKET_BULK_INSERTS_DDL = (
    "CREATE TABLE IF NOT EXISTS ticket_bulk_inserts (id INTEGER PRIMARY KEY CHECK (id = 1));\n"
    "DROP TRIGGER IF EXISTS tickets_bump_insert;\n"
    + _BULK_GUARDED_BUMP.format(name="insert", event="INSERT", row="NEW")
)
