"""Initial schema: catalogue, rules, slots, bookings (no overlap), write requests, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    # Stand-ins for the brand's shared tables; real deployments already have them.
    op.execute("CREATE TABLE IF NOT EXISTS public.biz_entity (id uuid PRIMARY KEY, name text)")
    op.execute("CREATE TABLE IF NOT EXISTS public.auth_user (id uuid PRIMARY KEY, email text)")
    op.execute(
        """
        CREATE TABLE scheduler.locations (
            id uuid PRIMARY KEY,
            biz_entity_id uuid NOT NULL REFERENCES public.biz_entity(id),
            name text NOT NULL,
            timezone text NOT NULL,
            address text,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX locations_biz_entity_id_idx ON scheduler.locations (biz_entity_id);

        CREATE TABLE scheduler.stylists (
            id uuid PRIMARY KEY,
            biz_entity_id uuid NOT NULL REFERENCES public.biz_entity(id),
            name text NOT NULL,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX stylists_biz_entity_id_idx ON scheduler.stylists (biz_entity_id);

        CREATE TABLE scheduler.stylist_locations (
            stylist_id uuid NOT NULL REFERENCES scheduler.stylists(id) ON DELETE CASCADE,
            location_id uuid NOT NULL REFERENCES scheduler.locations(id) ON DELETE CASCADE,
            PRIMARY KEY (stylist_id, location_id)
        );
        CREATE INDEX stylist_locations_location_id_idx ON scheduler.stylist_locations (location_id);

        CREATE TABLE scheduler.services (
            id uuid PRIMARY KEY,
            location_id uuid NOT NULL REFERENCES scheduler.locations(id),
            name text NOT NULL,
            duration_minutes integer NOT NULL
                CONSTRAINT services_duration_positive_check CHECK (duration_minutes > 0),
            buffer_minutes integer NOT NULL DEFAULT 0
                CONSTRAINT services_buffer_not_negative_check CHECK (buffer_minutes >= 0),
            price numeric(10, 2),
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX services_location_id_idx ON scheduler.services (location_id);

        CREATE TABLE scheduler.service_stylists (
            service_id uuid NOT NULL REFERENCES scheduler.services(id) ON DELETE CASCADE,
            stylist_id uuid NOT NULL REFERENCES scheduler.stylists(id) ON DELETE CASCADE,
            duration_minutes integer
                CONSTRAINT service_stylists_override_check
                CHECK (duration_minutes IS NULL OR duration_minutes > 0),
            PRIMARY KEY (service_id, stylist_id)
        );
        CREATE INDEX service_stylists_stylist_id_idx ON scheduler.service_stylists (stylist_id);

        CREATE TABLE scheduler.availability_rules (
            id uuid PRIMARY KEY,
            location_id uuid NOT NULL REFERENCES scheduler.locations(id),
            stylist_id uuid REFERENCES scheduler.stylists(id),
            service_id uuid REFERENCES scheduler.services(id),
            rule_kind text NOT NULL CONSTRAINT availability_rules_rule_kind_check
                CHECK (rule_kind IN ('WEEKLY', 'DATE_RANGE', 'EXCEPTION')),
            days_of_week smallint[],
            start_time time NOT NULL,
            end_time time NOT NULL,
            slot_granularity_minutes smallint NOT NULL DEFAULT 15
                CONSTRAINT availability_rules_granularity_check
                CHECK (slot_granularity_minutes > 0),
            valid_from date,
            valid_to date,
            is_closed boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX availability_rules_location_id_idx
            ON scheduler.availability_rules (location_id);
        CREATE INDEX availability_rules_stylist_id_idx ON scheduler.availability_rules (stylist_id);

        CREATE TABLE scheduler.slot_instances (
            id uuid PRIMARY KEY,
            location_id uuid NOT NULL REFERENCES scheduler.locations(id),
            stylist_id uuid NOT NULL REFERENCES scheduler.stylists(id),
            local_date date NOT NULL,
            start_at timestamptz NOT NULL,
            end_at timestamptz NOT NULL,
            status text NOT NULL DEFAULT 'open'
                CONSTRAINT slot_instances_status_check CHECK (status IN ('open', 'blocked')),
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT slot_instances_ordered_check CHECK (end_at > start_at),
            CONSTRAINT slot_instances_stylist_start_key UNIQUE (stylist_id, start_at)
        );
        CREATE INDEX slot_instances_location_date_idx
            ON scheduler.slot_instances (location_id, local_date, start_at);

        CREATE TABLE scheduler.bookings (
            id uuid PRIMARY KEY,
            biz_entity_id uuid NOT NULL REFERENCES public.biz_entity(id),
            location_id uuid NOT NULL REFERENCES scheduler.locations(id),
            stylist_id uuid NOT NULL REFERENCES scheduler.stylists(id),
            service_id uuid NOT NULL REFERENCES scheduler.services(id),
            slot_id uuid REFERENCES scheduler.slot_instances(id),
            user_id uuid,
            customer_name text NOT NULL,
            customer_phone text NOT NULL,
            customer_email text,
            notes text,
            source text,
            consent jsonb,
            status text NOT NULL CONSTRAINT bookings_status_check CHECK (
                status IN ('held', 'confirmed', 'completed', 'cancelled', 'expired', 'no_show')),
            start_at timestamptz NOT NULL,
            end_at timestamptz NOT NULL,
            hold_expires_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            confirmed_at timestamptz,
            cancelled_at timestamptz,
            CONSTRAINT bookings_ordered_check CHECK (end_at > start_at),
            -- The last word on double booking: no two live bookings of one stylist overlap,
            -- at any location, whatever the application does.
            CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
                stylist_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&
            ) WHERE (status IN ('held', 'confirmed'))
        );
        CREATE INDEX bookings_user_id_idx ON scheduler.bookings (user_id);
        CREATE INDEX bookings_held_expiry_idx
            ON scheduler.bookings (hold_expires_at) WHERE status = 'held';

        CREATE TABLE scheduler.idempotency_keys (
            id uuid PRIMARY KEY,
            principal text NOT NULL,
            key text NOT NULL,
            fingerprint text NOT NULL,
            operation text NOT NULL,
            payload jsonb NOT NULL,
            request_id text,
            status text NOT NULL DEFAULT 'pending' CONSTRAINT idempotency_keys_status_check
                CHECK (status IN ('pending', 'succeeded', 'failed')),
            http_status smallint,
            result jsonb,
            location text,
            attempts integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            enqueued_at timestamptz,
            completed_at timestamptz,
            expires_at timestamptz NOT NULL,
            CONSTRAINT idempotency_keys_principal_key_key UNIQUE (principal, key)
        );
        CREATE INDEX idempotency_keys_pending_idx
            ON scheduler.idempotency_keys (enqueued_at) WHERE status = 'pending';
        CREATE INDEX idempotency_keys_expires_at_idx ON scheduler.idempotency_keys (expires_at);

        CREATE TABLE scheduler.outbox_events (
            id bigserial PRIMARY KEY,
            topic text NOT NULL,
            aggregate_id uuid NOT NULL,
            payload jsonb NOT NULL,
            request_id text,
            created_at timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        );
        CREATE INDEX outbox_events_unpublished_idx
            ON scheduler.outbox_events (id) WHERE published_at IS NULL;

        CREATE TABLE scheduler.scheduler_job_runs (
            id bigserial PRIMARY KEY,
            job text NOT NULL,
            instance text NOT NULL,
            fired_at timestamptz NOT NULL DEFAULT now(),
            detail jsonb
        );
        CREATE INDEX scheduler_job_runs_job_idx ON scheduler.scheduler_job_runs (job, fired_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS scheduler.scheduler_job_runs, scheduler.outbox_events,
            scheduler.idempotency_keys, scheduler.bookings, scheduler.slot_instances,
            scheduler.availability_rules, scheduler.service_stylists, scheduler.services,
            scheduler.stylist_locations, scheduler.stylists, scheduler.locations
        """
    )
