"""The table of write requests says what it holds.

The table keeps its first name, `idempotency_keys` (renaming it would touch every deployed
database for no behaviour); its comment gives the one name the code and the docs use for a
row: a write request.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COMMENT = (
    "Write requests: one row per (principal, Idempotency-Key), recorded by the API before its "
    "message is enqueued; the worker stores the outcome in the same transaction as the write."
)


def upgrade() -> None:
    op.create_table_comment("idempotency_keys", COMMENT, schema="scheduler")


def downgrade() -> None:
    op.drop_table_comment("idempotency_keys", schema="scheduler")
