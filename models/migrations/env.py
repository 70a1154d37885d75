"""Alembic environment: migrations run on one connection holding an advisory lock.

The lock makes `salon migrate` safe to run from several processes at once (every replica's
init container, a Job and a developer): the first migrates, the others wait and find nothing
left to do.
"""

from alembic import context
from sqlalchemy import create_engine, text

from models.tables import SCHEMA, Base

MIGRATION_LOCK = 7_242_001  # arbitrary, fixed: the key of the migration advisory lock


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "salon migrate passes the database URL"
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        try:
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            connection.commit()
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                version_table_schema=SCHEMA,
                include_schemas=True,
                transaction_per_migration=False,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            connection.commit()
    engine.dispose()


run_migrations_online()
