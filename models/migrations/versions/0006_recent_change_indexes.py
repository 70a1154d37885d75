"""Recent commits are found by when they finished: the scheduler checks each left its version
bump's receipt (`salon.public_times.version_repair`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX IF NOT EXISTS idempotency_keys_succeeded_completed_at_idx
            ON scheduler.idempotency_keys (completed_at) WHERE status = 'succeeded';
        CREATE INDEX IF NOT EXISTS generation_chunks_done_at_idx
            ON scheduler.generation_chunks (done_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX scheduler.idempotency_keys_succeeded_completed_at_idx;
        DROP INDEX scheduler.generation_chunks_done_at_idx;
        """
    )
