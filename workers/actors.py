"""The actors. Each one only parses its message and calls a service function.

Messages carry ids, never objects (Dramatiq delivers at least once; the service functions
are idempotent). Actors are declared per container so tests can build their own.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import dramatiq
from dramatiq.middleware import CurrentMessage

from salon.bookings import holds
from salon.generation import jobs as generation
from salon.ports import Generation
from salon.write_path import execute, resend
from salon.write_path.model import WritePorts


class Runtime(WritePorts, Generation, Protocol):
    """What the actors run with: the services' ports and the broker they are declared on."""

    @property
    def broker(self) -> dramatiq.Broker: ...


log = logging.getLogger(__name__)

WRITES_QUEUE = "writes"
MAINTENANCE_QUEUE = "maintenance"
# Bulk generation has a queue of its own so it never delays customers' writes.
SLOTS_QUEUE = "slots"


GENERATION_RETRIES = 5


@contextmanager
def _fail_job_when_out_of_retries(container: Runtime, job_id: str) -> Iterator[None]:
    """A chunk that fails on its last retry fails its job, with the reason, for staff to see."""
    try:
        yield
    except Exception as exc:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message is not None else 0
        if retries >= GENERATION_RETRIES:
            generation.mark_failed(container, uuid.UUID(job_id), f"{type(exc).__name__}: {exc}")
        raise


@dataclass(frozen=True)
class Actors:
    execute_write: dramatiq.Actor[[str], None]
    purge_idempotency_keys: dramatiq.Actor[[], None]
    plan_generation: dramatiq.Actor[[str], None]
    generate_chunk: dramatiq.Actor[[str, str, str, str], None]
    generate_horizon: dramatiq.Actor[[], None]
    expire_holds: dramatiq.Actor[[], None]


class ActorDispatcher:
    """`salon.ports.Dispatcher` over the actors: the one way the product sends work."""

    def __init__(self, actors: Actors) -> None:
        self.actors = actors

    def execute_write(self, write_id: uuid.UUID, request_id: str | None) -> None:
        # The request id rides in the message options (workers.middleware logs it).
        self.actors.execute_write.send_with_options(args=(str(write_id),), request_id=request_id)

    def plan_generation(self, job_id: uuid.UUID) -> None:
        self.actors.plan_generation.send(str(job_id))

    def generate_chunk(
        self, job_id: uuid.UUID, stylist_id: uuid.UUID, location_id: uuid.UUID, week: dt.date
    ) -> None:
        self.actors.generate_chunk.send(
            str(job_id), str(stylist_id), str(location_id), week.isoformat()
        )

    def generate_horizon(self) -> None:
        self.actors.generate_horizon.send()

    def expire_holds(self) -> None:
        self.actors.expire_holds.send()

    def purge_write_requests(self) -> None:
        self.actors.purge_idempotency_keys.send()


def declare_actors(container: Runtime) -> Actors:
    broker = container.broker

    def execute_write(write_id: str) -> None:
        execute.execute(container, uuid.UUID(write_id))

    def purge_idempotency_keys() -> None:
        with container.sessions.begin() as session:
            purged = resend.purge_expired(session)
        log.info("purged %d expired idempotency records", purged)

    def plan_generation(job_id: str) -> None:
        with _fail_job_when_out_of_retries(container, job_id):
            generation.plan_and_fan_out(container, uuid.UUID(job_id))

    def generate_chunk(job_id: str, stylist_id: str, location_id: str, week_start: str) -> None:
        with _fail_job_when_out_of_retries(container, job_id):
            generation.generate_chunk(container, job_id, stylist_id, location_id, week_start)

    def generate_horizon() -> None:
        generation.start_horizon_jobs(container)

    def expire_holds() -> None:
        holds.sweep_lapsed_holds(container)

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
        plan_generation=dramatiq.actor(
            broker=broker,
            actor_name="plan_generation",
            queue_name=SLOTS_QUEUE,
            max_retries=8,
            min_backoff=500,
        )(plan_generation),
        generate_chunk=dramatiq.actor(
            broker=broker,
            actor_name="generate_chunk",
            queue_name=SLOTS_QUEUE,
            max_retries=8,
            min_backoff=500,
        )(generate_chunk),
        expire_holds=dramatiq.actor(
            broker=broker, actor_name="expire_holds", queue_name=MAINTENANCE_QUEUE, max_retries=3
        )(expire_holds),
        generate_horizon=dramatiq.actor(
            broker=broker,
            actor_name="generate_horizon",
            queue_name=MAINTENANCE_QUEUE,
            max_retries=3,
        )(generate_horizon),
    )
