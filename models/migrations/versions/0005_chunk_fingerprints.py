"""Generation chunks remember what they were computed from, so an unchanged re-run skips.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE scheduler.generation_chunks
            ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
            ADD COLUMN first_day date,
            ADD COLUMN last_day date,
            ADD COLUMN dry_run boolean NOT NULL DEFAULT false,
            ADD COLUMN fingerprint text,
            ADD COLUMN wanted integer;
        CREATE INDEX generation_chunks_stylist_seq_idx
            ON scheduler.generation_chunks (stylist_id, location_id, seq DESC);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX scheduler.generation_chunks_stylist_seq_idx;
        ALTER TABLE scheduler.generation_chunks DROP COLUMN seq, DROP COLUMN first_day,
            DROP COLUMN last_day, DROP COLUMN dry_run, DROP COLUMN fingerprint,
            DROP COLUMN wanted;
        """
    )
