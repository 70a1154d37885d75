"""Bookings remember the service's own minutes (end_at includes the buffer) and who cancelled.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE scheduler.bookings
            ADD COLUMN service_minutes integer,
            ADD COLUMN cancel_reason text,
            ADD COLUMN cancelled_by text,
            ADD COLUMN rescheduled_from timestamptz;
        CREATE INDEX bookings_user_start_idx ON scheduler.bookings (user_id, start_at);
        CREATE INDEX bookings_location_start_idx ON scheduler.bookings (location_id, start_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX scheduler.bookings_location_start_idx;
        DROP INDEX scheduler.bookings_user_start_idx;
        ALTER TABLE scheduler.bookings DROP COLUMN service_minutes, DROP COLUMN cancel_reason,
            DROP COLUMN cancelled_by, DROP COLUMN rescheduled_from;
        """
    )
