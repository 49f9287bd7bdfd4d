-- A hub database made by the release at git 010fbb00e51038a1e872afe0afc80e82c02f5243
-- (README: Mutation testing section (make mutation; 2026-11-28: admission).
-- Made by tests/vectors/make_upgrade_fixtures.py hub (see its docstring for the
-- recipe and what is in it), dumped with sqlite3's iterdump.
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
INSERT INTO "admin_tokens" VALUES('b11c6882-f5ac-4c8e-aa58-ee816aad8511','1809619b607a9a8fa561c36a5134ddc3d82b8ed46c47bebfbe7a2528a380dab3','f29621c6-f27c-422c-9079-4fcdddb27cca',NULL,'admin','',1795845718108,NULL);
INSERT INTO "admin_tokens" VALUES('3117e192-07dd-4274-bca4-59e73c7c9d8b','a683aa172d37c4ff7d9b1a3c4f7570dac712f948891b4a90c8b713e8f2949dc7','f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','venue_manager','',1795845718108,NULL);
INSERT INTO "admin_tokens" VALUES('fc357334-5952-440c-80b5-5531d7ecfe1e','01e458d010b2d0ac94aa757a9a40b5d792132ac3c94a0e73699527a59934e954','f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','venue_staff','',1795845718108,NULL);
INSERT INTO "admin_tokens" VALUES('efbabd8c-4a3e-4b1e-a8c4-d244df3d2fbe','60024da6b9460441ed0fc3b9e7c71efbc591da7f5033a80da2a6b06abbfe9d47','f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','box_office','',1795845718108,NULL);
INSERT INTO "admin_tokens" VALUES('aeaa942d-a575-4597-8902-726ccd54f552','efe3cfefbd55b980e18fb5671ae98d6e9d1558d145f6557e5eeb0c527cf2d854','2a7f6ee1-065a-4bdf-b152-c49af6aed857',NULL,'admin','',1795845718112,NULL);
INSERT INTO "admin_tokens" VALUES('91d006da-3ee9-4f77-a2b6-9e3b89f96a37','e6956c43632450c437652306e737b3ad4c81f7275dea405d70792425775a4cb4','2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','venue_manager','',1795845718112,NULL);
INSERT INTO "admin_tokens" VALUES('27feac4d-4b30-486b-a40c-5df9ddeebc5e','7faaf30d55ff29ab7c151068ab6ff66113baec15891b517d7f3aabc957e58960','2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','venue_staff','',1795845718112,NULL);
INSERT INTO "admin_tokens" VALUES('ee98c00b-1183-43f3-a6a4-f233b06ad214','7926ae5cdffe34dec7e125774e8ae31a68b38058e53e1bd3e88f31f8725f749c','2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','box_office','',1795845718112,NULL);
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
INSERT INTO "audit_log" VALUES(1,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','test','venue.create','a3b59d0c-43ba-40be-9bad-01dda80faa48','{"id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "tenant_id": "f29621c6-f27c-422c-9079-4fcdddb27cca", "name": "alpha Arena", "timezone": "Europe/Berlin", "created_ms": 1795845718108}',1795845718108);
INSERT INTO "audit_log" VALUES(2,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','test','zone.create','7505316f-4856-4b6f-9060-6c494cd54f16','{"id": "7505316f-4856-4b6f-9060-6c494cd54f16", "venue_id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "name": "GA"}',1795845718108);
INSERT INTO "audit_log" VALUES(3,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','test','zone.create','c42403dc-f210-453f-8519-b37e17b608c2','{"id": "c42403dc-f210-453f-8519-b37e17b608c2", "venue_id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "name": "VIP"}',1795845718108);
INSERT INTO "audit_log" VALUES(4,'f29621c6-f27c-422c-9079-4fcdddb27cca',NULL,'cli','token.create','b11c6882-f5ac-4c8e-aa58-ee816aad8511','{"role": "admin", "venue_id": null, "label": ""}',1795845718108);
INSERT INTO "audit_log" VALUES(5,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','cli','token.create','3117e192-07dd-4274-bca4-59e73c7c9d8b','{"role": "venue_manager", "venue_id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "label": ""}',1795845718108);
INSERT INTO "audit_log" VALUES(6,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','cli','token.create','fc357334-5952-440c-80b5-5531d7ecfe1e','{"role": "venue_staff", "venue_id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "label": ""}',1795845718108);
INSERT INTO "audit_log" VALUES(7,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','cli','token.create','efbabd8c-4a3e-4b1e-a8c4-d244df3d2fbe','{"role": "box_office", "venue_id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "label": ""}',1795845718108);
INSERT INTO "audit_log" VALUES(8,'2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','test','venue.create','0cce3941-8582-42b6-8134-41fcba7b397d','{"id": "0cce3941-8582-42b6-8134-41fcba7b397d", "tenant_id": "2a7f6ee1-065a-4bdf-b152-c49af6aed857", "name": "bravo Arena", "timezone": "Europe/Berlin", "created_ms": 1795845718112}',1795845718112);
INSERT INTO "audit_log" VALUES(9,'2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','test','zone.create','3e4d0d46-2143-4a42-8ce5-77eb4955dece','{"id": "3e4d0d46-2143-4a42-8ce5-77eb4955dece", "venue_id": "0cce3941-8582-42b6-8134-41fcba7b397d", "name": "GA"}',1795845718112);
INSERT INTO "audit_log" VALUES(10,'2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','test','zone.create','06b927b3-ef9f-46da-ad76-c94ee0af6111','{"id": "06b927b3-ef9f-46da-ad76-c94ee0af6111", "venue_id": "0cce3941-8582-42b6-8134-41fcba7b397d", "name": "VIP"}',1795845718112);
INSERT INTO "audit_log" VALUES(11,'2a7f6ee1-065a-4bdf-b152-c49af6aed857',NULL,'cli','token.create','aeaa942d-a575-4597-8902-726ccd54f552','{"role": "admin", "venue_id": null, "label": ""}',1795845718112);
INSERT INTO "audit_log" VALUES(12,'2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','cli','token.create','91d006da-3ee9-4f77-a2b6-9e3b89f96a37','{"role": "venue_manager", "venue_id": "0cce3941-8582-42b6-8134-41fcba7b397d", "label": ""}',1795845718112);
INSERT INTO "audit_log" VALUES(13,'2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','cli','token.create','27feac4d-4b30-486b-a40c-5df9ddeebc5e','{"role": "venue_staff", "venue_id": "0cce3941-8582-42b6-8134-41fcba7b397d", "label": ""}',1795845718112);
INSERT INTO "audit_log" VALUES(14,'2a7f6ee1-065a-4bdf-b152-c49af6aed857','0cce3941-8582-42b6-8134-41fcba7b397d','cli','token.create','ee98c00b-1183-43f3-a6a4-f233b06ad214','{"role": "box_office", "venue_id": "0cce3941-8582-42b6-8134-41fcba7b397d", "label": ""}',1795845718112);
INSERT INTO "audit_log" VALUES(15,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','t','gate.create','0395188d-a7f0-4167-a0a5-979646cbe3a8','{"id": "0395188d-a7f0-4167-a0a5-979646cbe3a8", "venue_id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "name": "North", "direction": "entry", "zones_json": "[\"GA\"]"}',1795845718115);
INSERT INTO "audit_log" VALUES(16,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','t','gate.create','f9181219-e246-4d3c-ac14-15665ad02c54','{"id": "f9181219-e246-4d3c-ac14-15665ad02c54", "venue_id": "a3b59d0c-43ba-40be-9bad-01dda80faa48", "name": "South", "direction": "entry", "zones_json": "[\"VIP\"]"}',1795845718115);
INSERT INTO "audit_log" VALUES(17,'f29621c6-f27c-422c-9079-4fcdddb27cca',NULL,'test','catalogue.import','-','{"events": 1, "types": 0, "tickets": 6}',1795845718115);
INSERT INTO "audit_log" VALUES(18,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','token:3117e192-07dd-4274-bca4-59e73c7c9d8b','enrollment.create','06d07d30-c04b-4d27-a2a0-92d2e5104911','{"gate_id": "0395188d-a7f0-4167-a0a5-979646cbe3a8", "zone": null, "name": "North 1 scanner", "expires_ms": 1795846318135}',1795845718135);
INSERT INTO "audit_log" VALUES(19,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','enrollment:06d07d30-c04b-4d27-a2a0-92d2e5104911','device.enroll','1ad5cfb8-4d26-4a50-b8cd-b115b662f819','{"hardware_id": "hw-north-1"}',1795845718147);
INSERT INTO "audit_log" VALUES(20,'f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','token:3117e192-07dd-4274-bca4-59e73c7c9d8b','ticket.lock','dc69a90d-0fe5-4b11-9a57-e6410f8b62ae','{"reason": "chargeback_pending", "previous": null}',1795845718156);
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
INSERT INTO "devices" VALUES('1ad5cfb8-4d26-4a50-b8cd-b115b662f819','f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','hw-north-1','North 1 scanner','0395188d-a7f0-4167-a0a5-979646cbe3a8',NULL,X'0BBC346A57667C380120BD9C7FD7E51D2C5FDFEA37CD2F5BF405B2C6BF6F2D78',1,1795845718147,NULL,1795845718153,NULL,'{}',0,NULL,NULL);
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
INSERT INTO "enrollment_codes" VALUES('06d07d30-c04b-4d27-a2a0-92d2e5104911','ccc1b9dfd0f19bdcd1bc7d32e31cdab3508be004fb60fd3db8e9371faf2ff943','f29621c6-f27c-422c-9079-4fcdddb27cca','a3b59d0c-43ba-40be-9bad-01dda80faa48','0395188d-a7f0-4167-a0a5-979646cbe3a8',NULL,'North 1 scanner','token:3117e192-07dd-4274-bca4-59e73c7c9d8b',1795845718135,1795846318135,1795845718147,'1ad5cfb8-4d26-4a50-b8cd-b115b662f819');
CREATE TABLE event_revisions (
    event_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL
);
INSERT INTO "event_revisions" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1',7);
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
INSERT INTO "events" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1','a3b59d0c-43ba-40be-9bad-01dda80faa48',22031977,'Show','UTC',1795842118115,1795856518115,NULL,'[]','{"duplicate_window_minutes": 5, "reentry_enabled": false, "cooldown_minutes": 0, "max_reentries": null, "zone_strict": true, "vip_all_access": false}',NULL,1795845718115);
CREATE TABLE gates (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL REFERENCES venues(id),
    name TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('entry', 'exit')),
    zones_json TEXT NOT NULL DEFAULT '[]',  -- zone names this gate leads into
    UNIQUE (venue_id, name)
);
INSERT INTO "gates" VALUES('0395188d-a7f0-4167-a0a5-979646cbe3a8','a3b59d0c-43ba-40be-9bad-01dda80faa48','North','entry','["GA"]');
INSERT INTO "gates" VALUES('f9181219-e246-4d3c-ac14-15665ad02c54','a3b59d0c-43ba-40be-9bad-01dda80faa48','South','entry','["VIP"]');
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
INSERT INTO "scans" VALUES(1,'1ad5cfb8-4d26-4a50-b8cd-b115b662f819',1,'37082f6d-5f69-49ba-915f-51385db6c9f1','1c39be6a-6a2d-4f02-bb2d-a14486247138','2ac86db988f20ea712bd7b0fe442d6b5cf4a0e6ed9aceb6ddf9d3b71d4848852','admit','admitted','entry','0395188d-a7f0-4167-a0a5-979646cbe3a8',NULL,1795845658150,0,1,1,'{"message": "Welcome in.", "gate": "North", "manual": false, "confirmed": null, "payload": "NATIVE:code-1"}',1795845718153,0);
INSERT INTO "scans" VALUES(2,'1ad5cfb8-4d26-4a50-b8cd-b115b662f819',2,'37082f6d-5f69-49ba-915f-51385db6c9f1','1c39be6a-6a2d-4f02-bb2d-a14486247138','82cab6ad4754fe74db6f2183730020dcd4a7ac167e3172f23aa967556d86fa99','deny','already_admitted','entry','0395188d-a7f0-4167-a0a5-979646cbe3a8',NULL,1795845658151,0,1,0,'{"message": "Already admitted.", "gate": "North", "manual": false, "confirmed": null, "payload": "NATIVE:code-2"}',1795845718153,0);
INSERT INTO "scans" VALUES(3,'1ad5cfb8-4d26-4a50-b8cd-b115b662f819',3,'37082f6d-5f69-49ba-915f-51385db6c9f1','5a9cdee9-5346-4de0-8db6-85bbfa47e4ce','9a1d033033145ac261fa73687f7cb1527b9274804cbecc35205ace1d39cecc98','admit','admitted','entry','0395188d-a7f0-4167-a0a5-979646cbe3a8',NULL,1795845658152,0,1,1,'{"message": "Welcome in.", "gate": "North", "manual": false, "confirmed": null, "payload": "NATIVE:code-3"}',1795845718153,0);
CREATE TABLE schema_info (version INTEGER NOT NULL);
INSERT INTO "schema_info" VALUES(4);
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
INSERT INTO "tenants" VALUES('f29621c6-f27c-422c-9079-4fcdddb27cca','alpha',1795845718108);
INSERT INTO "tenants" VALUES('2a7f6ee1-065a-4bdf-b152-c49af6aed857','bravo',1795845718112);
CREATE TABLE ticket_changes (
    event_id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    revision INTEGER NOT NULL,  -- the manifest revision this change first appears in
    PRIMARY KEY (event_id, ticket_id)
);
INSERT INTO "ticket_changes" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1','1c39be6a-6a2d-4f02-bb2d-a14486247138',2);
INSERT INTO "ticket_changes" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1','5a9cdee9-5346-4de0-8db6-85bbfa47e4ce',3);
INSERT INTO "ticket_changes" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1','dc69a90d-0fe5-4b11-9a57-e6410f8b62ae',8);
INSERT INTO "ticket_changes" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1','618168c7-cf07-4162-86f0-0e8b2b1a519f',5);
INSERT INTO "ticket_changes" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1','c879c7e2-b2c1-4d0e-9cef-04a4856b2d6b',6);
INSERT INTO "ticket_changes" VALUES('37082f6d-5f69-49ba-915f-51385db6c9f1','89ea166d-045b-40f4-9e01-a307a76b1f8d',7);
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
    updated_ms INTEGER NOT NULL,
    order_ref TEXT CHECK (length(order_ref) BETWEEN 1 AND 64),
    attention TEXT CHECK (length(attention) BETWEEN 1 AND 200),
    max_entries INTEGER CHECK (max_entries BETWEEN 1 AND 10000000)
);
INSERT INTO "tickets" VALUES('1c39be6a-6a2d-4f02-bb2d-a14486247138','37082f6d-5f69-49ba-915f-51385db6c9f1',NULL,'ACTIVE',0,'GA',NULL,'Guest 0','[]',NULL,NULL,NULL,NULL,NULL,1795845718115,NULL,NULL,NULL);
INSERT INTO "tickets" VALUES('5a9cdee9-5346-4de0-8db6-85bbfa47e4ce','37082f6d-5f69-49ba-915f-51385db6c9f1',NULL,'ACTIVE',0,'GA',NULL,NULL,'[]',NULL,NULL,NULL,NULL,NULL,1795845718115,NULL,NULL,NULL);
INSERT INTO "tickets" VALUES('dc69a90d-0fe5-4b11-9a57-e6410f8b62ae','37082f6d-5f69-49ba-915f-51385db6c9f1',NULL,'ACTIVE',0,'VIP',NULL,'Guest 2','[]','chargeback_pending','token:3117e192-07dd-4274-bca4-59e73c7c9d8b',1795845718156,NULL,NULL,1795845718156,NULL,NULL,NULL);
INSERT INTO "tickets" VALUES('618168c7-cf07-4162-86f0-0e8b2b1a519f','37082f6d-5f69-49ba-915f-51385db6c9f1',NULL,'ACTIVE',0,'GA',NULL,NULL,'[]',NULL,NULL,NULL,NULL,NULL,1795845718115,NULL,NULL,NULL);
INSERT INTO "tickets" VALUES('c879c7e2-b2c1-4d0e-9cef-04a4856b2d6b','37082f6d-5f69-49ba-915f-51385db6c9f1',NULL,'ACTIVE',0,'GA',NULL,'Guest 4','[]',NULL,NULL,NULL,NULL,NULL,1795845718115,NULL,NULL,NULL);
INSERT INTO "tickets" VALUES('89ea166d-045b-40f4-9e01-a307a76b1f8d','37082f6d-5f69-49ba-915f-51385db6c9f1',NULL,'ACTIVE',0,'VIP',NULL,NULL,'[]',NULL,NULL,NULL,NULL,NULL,1795845718115,NULL,NULL,NULL);
CREATE TABLE venues (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
INSERT INTO "venues" VALUES('a3b59d0c-43ba-40be-9bad-01dda80faa48','f29621c6-f27c-422c-9079-4fcdddb27cca','alpha Arena','Europe/Berlin',1795845718108);
INSERT INTO "venues" VALUES('0cce3941-8582-42b6-8134-41fcba7b397d','2a7f6ee1-065a-4bdf-b152-c49af6aed857','bravo Arena','Europe/Berlin',1795845718112);
CREATE TABLE zones (
    id TEXT PRIMARY KEY,
    venue_id TEXT NOT NULL REFERENCES venues(id),
    name TEXT NOT NULL,
    UNIQUE (venue_id, name)
);
INSERT INTO "zones" VALUES('7505316f-4856-4b6f-9060-6c494cd54f16','a3b59d0c-43ba-40be-9bad-01dda80faa48','GA');
INSERT INTO "zones" VALUES('c42403dc-f210-453f-8519-b37e17b608c2','a3b59d0c-43ba-40be-9bad-01dda80faa48','VIP');
INSERT INTO "zones" VALUES('3e4d0d46-2143-4a42-8ce5-77eb4955dece','0cce3941-8582-42b6-8134-41fcba7b397d','GA');
INSERT INTO "zones" VALUES('06b927b3-ef9f-46da-ad76-c94ee0af6111','0cce3941-8582-42b6-8134-41fcba7b397d','VIP');
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
