"""The small interfaces services depend on, implemented by the edges and wired by the root.

A service sends work to the workers through a `Dispatcher`, never through Dramatiq or the
broker: the one way to send work, named by what it asks for. `workers.actors.ActorDispatcher`
implements it over the Dramatiq actors; `salon.bootstrap` puts one in the container.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from salon.infra.redis_pipelines import RedisPipelines
from salon.settings import Settings


class Clock(Protocol):
    """What time it is (timezone-aware, UTC). `salon.infra.clock` has the system's and a
    settable one."""

    def now(self) -> dt.datetime: ...


class Dispatcher(Protocol):
    """Every message the product sends. Each call enqueues one message carrying ids only and
    raises redis-py's errors when the broker cannot take it (callers decide what a lost send
    means: most are resumed by a scheduler job)."""

    def execute_write(self, write_id: uuid.UUID, request_id: str | None) -> None: ...

    def plan_generation(self, job_id: uuid.UUID) -> None: ...

    def generate_chunk(
        self, job_id: uuid.UUID, stylist_id: uuid.UUID, location_id: uuid.UUID, week: dt.date
    ) -> None: ...

    def generate_horizon(self) -> None: ...

    def expire_holds(self) -> None: ...

    def purge_write_requests(self) -> None: ...


# What a service needs of the process it runs in, one capability each. The container
# (`salon.bootstrap.Container`) has them all; a service names only those it uses, so no
# service imports the composition root.


class HasSessions(Protocol):
    """Units of work: `with x.sessions.begin() as session:` is one transaction."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...


class HasSettings(Protocol):
    @property
    def settings(self) -> Settings: ...


class HasRedis(Protocol):
    @property
    def redis(self) -> Redis: ...


class HasDispatch(Protocol):
    @property
    def dispatch(self) -> Dispatcher: ...


class HasClock(Protocol):
    @property
    def clock(self) -> Clock: ...


class HasRedisPipelines(Protocol):
    """The plain connection a write's post-commit round trip goes through."""

    @property
    def redis_pipelines(self) -> RedisPipelines: ...


class Reads(HasSessions, HasRedis, HasSettings, HasClock, Protocol):
    """The public read path: the database, the shared Redis, the settings, the clock."""


class Announcer(HasRedis, HasRedisPipelines, HasSessions, HasSettings, Protocol):
    """What tells every process that something changed (`salon.public_times.versions`,
    `salon.public_times.version_repair`)."""


class Generation(Announcer, HasDispatch, HasClock, Protocol):
    """Slot generation: the database, the announcements of changed days, sending chunks."""
