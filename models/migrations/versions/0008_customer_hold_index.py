"""A customer's live holds have an index of their own (the hold limit's count in every hold).

The count ran through `bookings_user_start_idx` only while the table's statistics were fresh;
with stale ones (a new database, or a burst of holds before autovacuum's next analyze) the
planner combined the two indexes of every live hold and filtered ~all of them by customer:
0.5 ms of a hold's 0.6 ms check with 1,700 holds, growing with them. This index matches the
count exactly, so no statistics make another plan cheaper. `bookings_user_id_idx` was a
prefix of `bookings_user_start_idx`: dropped, one index less to write per booking.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS bookings_user_held_idx
            ON scheduler.bookings (user_id) WHERE status = 'held';
        DROP INDEX IF EXISTS scheduler.bookings_user_id_idx;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS bookings_user_id_idx ON scheduler.bookings (user_id);
        DROP INDEX scheduler.bookings_user_held_idx;
        """
    )
