-- TicketToken's ticket-service tables as its code uses them (../shared/context/
-- tickettoken-ticket-service.md: the INSERTs, UPDATEs and SELECTs of its routes, services and
-- models, and its migration 001_create_ticket_tables.sql as far as the extract quotes it), with
-- row-level security as the remediation plan has it. tests/tickettoken_db.py runs this as the
-- owner role (tickettoken_owner) in a fresh tickettoken_db; the roles exist already.
--
-- Only what the code reads or writes is here; where the extract is silent we chose:
-- * timestamps are TIMESTAMPTZ (001_create_ticket_tables.sql: "TIMESTAMP WITH TIME ZONE
--   DEFAULT NOW()"; an older create_tickets_table.sql has plain TIMESTAMP);
-- * tenant_id is NOT NULL and has no default: ticket-service's INSERTs do not name it (it runs
--   as the postgres superuser, DB_USER=postgres), ours always do;
-- * indexes only on what its queries look rows up by; none on updated_at (none is quoted).

-- Shared by the platform's services ("Move update_updated_at_column() to shared migration");
-- ticket-service's 001_create_ticket_tables.sql puts it on ticket_types and tickets, and
-- qrService's check-in UPDATE relies on it (it sets status and validated_at, not updated_at).
-- NOW() is the transaction's start: a transaction that commits late carries an early time.
CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = NOW();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE tenants (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  name VARCHAR(255) NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- transferService: JOIN venues v ON e.venue_id = v.id, v.transfer_deadline_hours.
CREATE TABLE venues (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id),
  name VARCHAR(255) NOT NULL,
  transfer_deadline_hours INTEGER DEFAULT 0,
  wallet_address VARCHAR(255),
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- transferService and orders.controller: e.start_date, e.name, e.allow_transfers, ...
CREATE TABLE events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id),
  venue_id UUID REFERENCES venues(id),
  name VARCHAR(255) NOT NULL,
  start_date TIMESTAMPTZ,
  end_date TIMESTAMPTZ,
  status VARCHAR(50) DEFAULT 'PUBLISHED',
  allow_transfers BOOLEAN DEFAULT true,
  max_transfers_per_ticket INTEGER,
  transfer_blackout_start TIMESTAMPTZ,
  transfer_blackout_end TIMESTAMPTZ,
  require_identity_verification BOOLEAN DEFAULT false,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- ticketService.createTicketType's INSERT; price_cents from calculate-price and purchaseController.
CREATE TABLE ticket_types (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id),
  event_id UUID NOT NULL REFERENCES events(id),
  name VARCHAR(255) NOT NULL,
  description TEXT,
  price DECIMAL(10, 2) NOT NULL DEFAULT 0,
  price_cents INTEGER NOT NULL DEFAULT 0,
  quantity INTEGER NOT NULL DEFAULT 0,
  available_quantity INTEGER NOT NULL DEFAULT 0,
  total_quantity INTEGER,
  max_per_purchase INTEGER DEFAULT 10,
  sale_start_date TIMESTAMPTZ,
  sale_end_date TIMESTAMPTZ,
  metadata JSONB DEFAULT '{}',
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- purchaseController's insert (both amount columns "during transition"), the OrderModel, the
-- payment event handler (status PAID, payment_intent_id) and refundHandler (REFUND_INITIATED).
-- Statuses come in both cases here too (pending, PAID, AWAITING_MINT, COMPLETED, ...): no CHECK.
CREATE TABLE orders (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id),
  user_id UUID,
  event_id UUID REFERENCES events(id),
  order_number VARCHAR(50),
  status VARCHAR(50) NOT NULL DEFAULT 'pending',
  total_amount DECIMAL(10, 2),
  total_amount_cents INTEGER,
  ticket_quantity INTEGER,
  currency VARCHAR(3) DEFAULT 'USD',
  tickets JSONB,
  payment_id VARCHAR(255),
  payment_intent_id VARCHAR(255),
  idempotency_key VARCHAR(255),
  metadata JSONB DEFAULT '{}',
  expires_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

-- Every column ticket-service's code names: TicketModel (user_id, status, price, seat_number,
-- barcode, metadata), confirmPurchase (owner_id, owner_user_id, payment_id, purchased_at,
-- total_paid, blockchain_status), mintWorker (order_id, nft_address), transfers (is_transferable,
-- transfer_locked_until, transfer_history), the status route (validated_at, used_at, nft_*),
-- qrService's check-in (validated_at, validator_id, entrance), orders.controller (ticket_number,
-- mint_address, order_item_id), and the scan counters the scanning service's reconcile keeps
-- ("Updates ticket scan_count, last_scanned_at, first_scanned_at", the flow audit).
CREATE TABLE tickets (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id),
  event_id UUID NOT NULL REFERENCES events(id),
  ticket_type_id UUID REFERENCES ticket_types(id),
  order_id UUID REFERENCES orders(id),
  order_item_id UUID,
  user_id UUID,
  owner_id UUID,
  owner_user_id UUID,
  -- The state machine's upper-case states and the TicketModel's lower-case ones, each in
  -- either case (the remediation plan counts status = 'used'); nothing else.
  status VARCHAR(50) NOT NULL DEFAULT 'available' CHECK (
    status IN (
      'AVAILABLE', 'RESERVED', 'SOLD', 'MINTED', 'ACTIVE', 'TRANSFERRED', 'CHECKED_IN',
      'USED', 'CANCELLED', 'REFUNDED', 'REVOKED', 'EXPIRED'
    )
    OR status IN (
      'available', 'reserved', 'sold', 'minted', 'active', 'transferred', 'checked_in',
      'used', 'cancelled', 'refunded', 'revoked', 'expired'
    )
  ),
  price DECIMAL(10, 2),
  total_paid DECIMAL(10, 2),
  seat_number VARCHAR(50),
  section VARCHAR(50),
  "row" VARCHAR(50),
  barcode VARCHAR(255),
  ticket_number VARCHAR(50),
  metadata JSONB DEFAULT '{}',
  is_transferable BOOLEAN DEFAULT true,
  transfer_locked_until TIMESTAMPTZ,
  transfer_history JSONB NOT NULL DEFAULT '[]',
  payment_id VARCHAR(255),
  purchased_at TIMESTAMPTZ,
  blockchain_status VARCHAR(50),
  nft_token_id VARCHAR(255),
  nft_transaction_hash VARCHAR(255),
  nft_minted_at TIMESTAMPTZ,
  nft_address VARCHAR(255),
  mint_address VARCHAR(255),
  validated_at TIMESTAMPTZ,
  validator_id UUID,
  entrance VARCHAR(255),
  used_at TIMESTAMPTZ,
  scan_count INTEGER NOT NULL DEFAULT 0,
  first_scanned_at TIMESTAMPTZ,
  last_scanned_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE INDEX idx_tickets_event_id ON tickets(event_id);
CREATE INDEX idx_tickets_user_id ON tickets(user_id);
CREATE INDEX idx_tickets_owner_id ON tickets(owner_id);
CREATE INDEX idx_tickets_order_id ON tickets(order_id);
CREATE INDEX idx_ticket_types_event_id ON ticket_types(event_id);

-- transferService's INSERT INTO ticket_transfers.
CREATE TABLE ticket_transfers (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id),
  ticket_id UUID NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
  from_user_id UUID,
  to_user_id UUID,
  reason TEXT,
  transaction_hash VARCHAR(255),
  transferred_at TIMESTAMPTZ DEFAULT NOW()
);

CREATE TRIGGER update_ticket_types_updated_at BEFORE UPDATE ON ticket_types
  FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
CREATE TRIGGER update_tickets_updated_at BEFORE UPDATE ON tickets
  FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

-- The remediation plan's RLS policy template, applied by one loop to each table (the plan
-- repeats it per table, verbatim but for the names): ENABLE and FORCE (the owner is held to it
-- too; only superusers and BYPASSRLS roles are not), one policy <table>_tenant_isolation for ALL
-- commands on tenant_id (tenants: id) = current_setting('app.current_tenant_id', true)::UUID.
-- Unset, the setting reads NULL and no row matches. Beware: once a session has set it with
-- set_config(..., true), later transactions of that session read '' and the cast fails
-- (invalid input syntax for type uuid) instead of matching nothing.
DO $$
DECLARE
  t RECORD;
BEGIN
  FOR t IN
    SELECT * FROM (VALUES
      ('tenants', 'id'),
      ('venues', 'tenant_id'),
      ('events', 'tenant_id'),
      ('ticket_types', 'tenant_id'),
      ('orders', 'tenant_id'),
      ('tickets', 'tenant_id'),
      ('ticket_transfers', 'tenant_id')
    ) AS isolated (table_name, tenant_column)
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.table_name);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.table_name);
    EXECUTE format(
      'CREATE POLICY %I ON %I FOR ALL '
      'USING (%I = current_setting(''app.current_tenant_id'', true)::UUID) '
      'WITH CHECK (%I = current_setting(''app.current_tenant_id'', true)::UUID)',
      t.table_name || '_tenant_isolation', t.table_name, t.tenant_column, t.tenant_column
    );
  END LOOP;
END
$$;

-- The hub's connector (group role tickettoken_connector; hub_connector and any role
-- add_connector_role makes are its members): reads what a pull needs and writes only what an
-- entry sets. Not the owner, not a superuser, no BYPASSRLS: every row it touches is its tenant's.
GRANT USAGE ON SCHEMA public TO tickettoken_connector;
GRANT SELECT ON venues, events, ticket_types, orders, tickets TO tickettoken_connector;
GRANT UPDATE (validated_at, status, scan_count, first_scanned_at, last_scanned_at, updated_at)
  ON tickets TO tickettoken_connector;
