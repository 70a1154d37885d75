"""The actors. Each one only parses its message and calls a service function.

Messages carry ids, never objects (Dramatiq delivers at least once; the service functions
are idempotent). Actors are declared per container so tests can build their own.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dramatiq
from sqlalchemy import text

from salon import writes

if TYPE_CHECKING:
    from salon.bootstrap import Container

log = logging.getLogger(__name__)

WRITES_QUEUE = "writes"
MAINTENANCE_QUEUE = "maintenance"


@dataclass(frozen=True)
class Actors:
    execute_write: dramatiq.Actor[[str], None]
    purge_idempotency_keys: dramatiq.Actor[[], None]
    ping: dramatiq.Actor[[str], None]


def declare_actors(container: Container) -> Actors:
    import salon.operations  # noqa: F401  (registers every write operation)

    broker = container.broker

    def execute_write(write_id: str) -> None:
        writes.execute(container, uuid.UUID(write_id))

    def purge_idempotency_keys() -> None:
        with container.sessions.begin() as session:
            purged = writes.purge_expired(session)
        log.info("purged %d expired idempotency records", purged)

    def ping(marker: str) -> None:
        # Used by /readyz-style checks and tests to prove a worker consumes messages.
        with container.sessions.begin() as session:
            session.execute(text("SELECT 1"))
        container.redis.set(f"{container.settings.redis_namespace}:pong:{marker}", "1", ex=60)

    return Actors(
        execute_write=dramatiq.actor(
            broker=broker,
            actor_name="execute_write",
            queue_name=WRITES_QUEUE,
            max_retries=8,
            min_backoff=200,
            max_backoff=10_000,
        )(execute_write),
        purge_idempotency_keys=dramatiq.actor(
            broker=broker,
            actor_name="purge_idempotency_keys",
            queue_name=MAINTENANCE_QUEUE,
            max_retries=3,
        )(purge_idempotency_keys),
        ping=dramatiq.actor(
            broker=broker, actor_name="ping", queue_name=MAINTENANCE_QUEUE, max_retries=0
        )(ping),
    )
