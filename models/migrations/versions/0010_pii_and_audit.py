"""Customers' PII sealed at rest, found by keyed hashes; staff writes' audit trail.

`bookings.customer_phone`, `customer_email` and `notes` keep their columns but hold sealed
text (`kid:nonce:ciphertext`, salon.infra.pii) from now on; `pii_kid` names the key of a
row's sealed values (NULL: a row written before, still clear until `salon pii rotate` seals
it). The HMAC columns answer staff's search by exact phone or email, the expression index a
customer-name prefix. `audit_events` records who changed what, with before and after.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE scheduler.bookings
            ADD COLUMN IF NOT EXISTS pii_kid text,
            ADD COLUMN IF NOT EXISTS customer_phone_hash bytea,
            ADD COLUMN IF NOT EXISTS customer_email_hash bytea;
        CREATE INDEX IF NOT EXISTS bookings_phone_hash_idx
            ON scheduler.bookings (biz_entity_id, customer_phone_hash);
        CREATE INDEX IF NOT EXISTS bookings_email_hash_idx
            ON scheduler.bookings (biz_entity_id, customer_email_hash)
            WHERE customer_email_hash IS NOT NULL;
        CREATE INDEX IF NOT EXISTS bookings_name_prefix_idx
            ON scheduler.bookings (biz_entity_id, lower(customer_name) text_pattern_ops);
        -- What `salon pii rotate` looks for: rows not yet under the current key.
        CREATE INDEX IF NOT EXISTS bookings_pii_kid_idx ON scheduler.bookings (pii_kid, id);

        CREATE TABLE IF NOT EXISTS scheduler.audit_events (
            id uuid PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            biz_entity_id uuid,
            actor_sub uuid NOT NULL,
            actor_role text NOT NULL,
            action text NOT NULL,
            object_type text NOT NULL,
            object_id uuid,
            request_id text,
            write_id uuid,
            before jsonb,
            after jsonb
        );
        CREATE INDEX IF NOT EXISTS audit_events_biz_at_idx
            ON scheduler.audit_events (biz_entity_id, at, id);
        CREATE INDEX IF NOT EXISTS audit_events_object_idx
            ON scheduler.audit_events (object_id, at);
        CREATE INDEX IF NOT EXISTS audit_events_actor_idx
            ON scheduler.audit_events (actor_sub, at);
        CREATE INDEX IF NOT EXISTS audit_events_at_idx ON scheduler.audit_events (at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS scheduler.audit_events;
        DROP INDEX IF EXISTS scheduler.bookings_pii_kid_idx;
        DROP INDEX IF EXISTS scheduler.bookings_name_prefix_idx;
        DROP INDEX IF EXISTS scheduler.bookings_email_hash_idx;
        DROP INDEX IF EXISTS scheduler.bookings_phone_hash_idx;
        ALTER TABLE scheduler.bookings
            DROP COLUMN IF EXISTS customer_email_hash,
            DROP COLUMN IF EXISTS customer_phone_hash,
            DROP COLUMN IF EXISTS pii_kid;
        """
    )
