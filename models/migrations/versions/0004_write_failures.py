"""Write requests count crashed executions apart from sends.

`attempts` counts sends (the re-enqueue job backs off on it); `failures` counts executions
that crashed on something other than an outage, and only those can fail a write for good.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE scheduler.idempotency_keys ADD COLUMN failures integer NOT NULL DEFAULT 0"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE scheduler.idempotency_keys DROP COLUMN failures")
