"""Slot generation jobs and their chunks; bookings keep their history when a slot goes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- A removed free slot must not take its cancelled/expired bookings' history with it.
        ALTER TABLE scheduler.bookings DROP CONSTRAINT bookings_slot_id_fkey;
        ALTER TABLE scheduler.bookings ADD CONSTRAINT bookings_slot_id_fkey
            FOREIGN KEY (slot_id) REFERENCES scheduler.slot_instances(id) ON DELETE SET NULL;
        CREATE INDEX bookings_stylist_live_idx ON scheduler.bookings (stylist_id, start_at)
            WHERE status IN ('held', 'confirmed');

        CREATE TABLE scheduler.generation_jobs (
            id uuid PRIMARY KEY,
            biz_entity_id uuid NOT NULL REFERENCES public.biz_entity(id),
            requested_by text NOT NULL,
            location_id uuid REFERENCES scheduler.locations(id),
            stylist_ids uuid[],
            date_from date NOT NULL,
            date_to date NOT NULL,
            dry_run boolean NOT NULL DEFAULT false,
            status text NOT NULL DEFAULT 'queued' CONSTRAINT generation_jobs_status_check
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
            chunks_total integer,
            chunks_done integer NOT NULL DEFAULT 0,
            created integer NOT NULL DEFAULT 0,
            removed integer NOT NULL DEFAULT 0,
            skipped integer NOT NULL DEFAULT 0,
            conflicts integer NOT NULL DEFAULT 0,
            conflict_details jsonb NOT NULL DEFAULT '[]'::jsonb,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT generation_jobs_range_check CHECK (date_to >= date_from)
        );
        CREATE INDEX generation_jobs_unfinished_idx ON scheduler.generation_jobs (updated_at)
            WHERE status IN ('queued', 'running');

        -- One row per finished chunk (stylist x location x week): written in the chunk's own
        -- transaction, so a redelivered chunk message finds it and does nothing.
        CREATE TABLE scheduler.generation_chunks (
            job_id uuid NOT NULL REFERENCES scheduler.generation_jobs(id) ON DELETE CASCADE,
            stylist_id uuid NOT NULL,
            location_id uuid NOT NULL,
            week_start date NOT NULL,
            created integer NOT NULL,
            removed integer NOT NULL,
            skipped integer NOT NULL,
            conflicts integer NOT NULL,
            done_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job_id, stylist_id, location_id, week_start)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE scheduler.generation_chunks;
        DROP TABLE scheduler.generation_jobs;
        DROP INDEX scheduler.bookings_stylist_live_idx;
        ALTER TABLE scheduler.bookings DROP CONSTRAINT bookings_slot_id_fkey;
        ALTER TABLE scheduler.bookings ADD CONSTRAINT bookings_slot_id_fkey
            FOREIGN KEY (slot_id) REFERENCES scheduler.slot_instances(id);
        """
    )
