-- A hub database made by the hub of schema version 3 (git 54097c8): `git archive 54097c8 hub
-- manifests protocol`, then with that code HubStore(path), create_tenant, create_venue,
-- create_zone and import_catalogue of one event, one ticket type and three tickets; dumped
-- with sqlite3's iterdump. tests/test_hub_ticket_fields.py opens it with today's code.
BEGIN TRANSACTION;
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the bearer token
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    venue_id TEXT REFERENCES venues(id),
    role TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    venue_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail_json TEXT NOT NULL DEFAULT '{}',
    at_ms INTEGER NOT NULL
);
INSERT INTO "audit_log" VALUES(1,'fa54e448-03a9-4b78-9091-639feb7cc248','0221c6c0-f50a-4d73-800b-097bba327719','test','venue.create','0221c6c0-f50a-4d73-800b-097bba327719','{"id": "0221c6c0-f50a-4d73-800b-097bba327719", "tenant_id": "fa54e448-03a9-4b78-9091-639feb7cc248", "name": "Old Hall", "timezone": "Europe/Berlin", "created_ms": 1783670400000}',1783670400000);
INSERT INTO "audit_log" VALUES(2,'fa54e448-03a9-4b78-9091-639feb7cc248','0221c6c0-f50a-4d73-800b-097bba327719','test','zone.create','edeec006-0733-4fee-bf56-7817ab431862','{"id": "edeec006-0733-4fee-bf56-7817ab431862", "venue_id": "0221c6c0-f50a-4d73-800b-097bba327719", "name": "GA"}',1783670400000);
INSERT INTO "audit_log" VALUES(3,'fa54e448-03a9-4b78-9091-639feb7cc248',NULL,'test','catalogue.import','-','{"events": 1, "types": 1, "tickets": 3}',1783670400000);
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY,
    event_id TEXT,
    ticket_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    scan_ids_json TEXT NOT NULL DEFAULT '[]',
    detail_json TEXT NOT NULL DEFAULT '{}',
    detected_ms INTEGER NOT NULL,
    resolved_ms INTEGER
);
CREATE TABLE devices (
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
CREATE TABLE enrollment_codes (
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
CREATE TABLE event_revisions (
    event_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
);
INSERT INTO "event_revisions" VALUES('ev-v3',3);
CREATE TABLE events (
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
INSERT INTO "events" VALUES('ev-v3','0221c6c0-f50a-4d73-800b-097bba327719',303,'Release 3 show','Europe/Berlin',1783670400000,1783674000000,NULL,'[]','{}',NULL,1783670400000);
CREATE TABLE gates (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL REFERENCES venues(id),
    name TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
    zones_json TEXT NOT NULL DEFAULT '[]',  -- zone names this gate leads into
    UNIQUE (venue_id, name)
);
CREATE TABLE hub_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    keys_json TEXT NOT NULL,  -- {"key id": fingerprint}
    pending_json TEXT,  -- the set a key command is writing, until it is recorded
    version INTEGER NOT NULL,  -- the keyring's version, which a new identity continues
    last_key_id INTEGER NOT NULL,  -- so a new identity never reuses a key id
    recorded_ms INTEGER NOT NULL
);
CREATE TABLE scan_outcomes (
    scan_id INTEGER PRIMARY KEY REFERENCES scans(id),
    event_id TEXT,
    ticket_id TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('SUCCESS', 'DUPLICATE', 'ERROR')),
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    corrected_ms INTEGER NOT NULL,
    reconciled_ms INTEGER NOT NULL
);
CREATE TABLE scans (
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
CREATE TABLE schema_info (version INTEGER NOT NULL);
INSERT INTO "schema_info" VALUES(3);
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
INSERT INTO "tenants" VALUES('fa54e448-03a9-4b78-9091-639feb7cc248','legacy',1783670400000);
CREATE TABLE ticket_changes (
    event_id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    revision INTEGER NOT NULL,  -- the manifest revision this change first appears in
    PRIMARY KEY (event_id, ticket_id)
);
INSERT INTO "ticket_changes" VALUES('ev-v3','00000000-0000-4000-8000-000000000001',2);
INSERT INTO "ticket_changes" VALUES('ev-v3','00000000-0000-4000-8000-000000000002',3);
INSERT INTO "ticket_changes" VALUES('ev-v3','00000000-0000-4000-8000-000000000003',4);
CREATE TABLE ticket_credentials (
    ticket_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    credential TEXT NOT NULL,  -- the native credential string the holder's QR carries
    issued_ms INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, generation)
);
CREATE TABLE ticket_types (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events(id),
    code INTEGER NOT NULL,  -- native ticket-type code
    name TEXT NOT NULL,
    zone TEXT,
    UNIQUE (event_id, code),
    UNIQUE (event_id, name)
);
INSERT INTO "ticket_types" VALUES('tt-v3','ev-v3',1,'Standing','GA');
CREATE TABLE tickets (
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
    updated_ms INTEGER NOT NULL
);
INSERT INTO "tickets" VALUES('00000000-0000-4000-8000-000000000001','ev-v3','tt-v3','ACTIVE',0,'GA',NULL,NULL,'[]',NULL,NULL,NULL,NULL,NULL,1783670400000);
INSERT INTO "tickets" VALUES('00000000-0000-4000-8000-000000000002','ev-v3','tt-v3','ACTIVE',0,'GA','R2','Guest 2','[]',NULL,NULL,NULL,NULL,NULL,1783670400000);
INSERT INTO "tickets" VALUES('00000000-0000-4000-8000-000000000003','ev-v3','tt-v3','ACTIVE',0,'GA',NULL,NULL,'[]',NULL,NULL,NULL,NULL,NULL,1783670400000);
CREATE TABLE venues (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
INSERT INTO "venues" VALUES('0221c6c0-f50a-4d73-800b-097bba327719','fa54e448-03a9-4b78-9091-639feb7cc248','Old Hall','Europe/Berlin',1783670400000);
CREATE TABLE zones (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL REFERENCES venues(id),
    name TEXT NOT NULL,
    UNIQUE (venue_id, name)
);
INSERT INTO "zones" VALUES('edeec006-0733-4fee-bf56-7817ab431862','0221c6c0-f50a-4d73-800b-097bba327719','GA');
CREATE INDEX tickets_event ON tickets(event_id);
CREATE INDEX tickets_event_status ON tickets(event_id, status);
CREATE UNIQUE INDEX conflicts_pair ON conflicts(ticket_id, kind, scan_ids_json);
CREATE INDEX scan_outcomes_event ON scan_outcomes(event_id, outcome);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE INDEX ticket_changes_revision ON ticket_changes(event_id, revision);
CREATE TRIGGER tickets_bump_insert AFTER INSERT ON tickets
BEGIN
    INSERT INTO event_revisions (event_id, revision) VALUES (NEW.event_id, 1)
        ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1;
    INSERT INTO ticket_changes (event_id, ticket_id, revision)
        SELECT NEW.event_id, NEW.id, revision + 1 FROM event_revisions
        WHERE event_id = NEW.event_id
        ON CONFLICT (event_id, ticket_id) DO UPDATE SET revision = excluded.revision;
END;
CREATE TRIGGER tickets_bump_update AFTER UPDATE ON tickets
BEGIN
    INSERT INTO event_revisions (event_id, revision) VALUES (NEW.event_id, 1)
        ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1;
    INSERT INTO ticket_changes (event_id, ticket_id, revision)
        SELECT NEW.event_id, NEW.id, revision + 1 FROM event_revisions
        WHERE event_id = NEW.event_id
        ON CONFLICT (event_id, ticket_id) DO UPDATE SET revision = excluded.revision;
END;
CREATE TRIGGER tickets_bump_delete AFTER DELETE ON tickets
BEGIN
    INSERT INTO event_revisions (event_id, revision) VALUES (OLD.event_id, 1)
        ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1;
    INSERT INTO ticket_changes (event_id, ticket_id, revision)
        SELECT OLD.event_id, OLD.id, revision + 1 FROM event_revisions
        WHERE event_id = OLD.event_id
        ON CONFLICT (event_id, ticket_id) DO UPDATE SET revision = excluded.revision;
END;
CREATE TRIGGER events_bump_update AFTER UPDATE ON events
BEGIN INSERT INTO event_revisions (event_id, revision) VALUES (NEW.id, 1)
      ON CONFLICT (event_id) DO UPDATE SET revision = revision + 1; END;
CREATE INDEX scans_device_ticket ON scans(ticket_id, scanned_ms);
CREATE INDEX devices_hardware ON devices(venue_id, hardware_id);
CREATE INDEX scans_event ON scans(event_id, id);
COMMIT;
