"""The composition root: the one place that turns settings into engine, Redis and broker.

The API, the worker, the scheduler, the CLI and the tests all call `bootstrap()`. Building a
container opens no connection (SQLAlchemy and redis-py connect lazily), so importing any module
of the project never touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from redis import Redis
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from salon.settings import Settings

if TYPE_CHECKING:
    from workers.actors import Actors


@dataclass
class Container:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    # For BLPOP while the API waits for a write: its socket timeout must exceed the wait.
    redis_blocking: Redis
    broker: RedisBroker
    actors: Actors = field(init=False)

    def close(self) -> None:
        self.broker.close()
        self.redis.close()
        self.redis_blocking.close()
        self.engine.dispose()


def build_engine(settings: Settings, *, statement_timeout_ms: int | None = None) -> Engine:
    timeout = (
        settings.db_statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    )
    return create_engine(
        settings.database_url,
        # DB_POOL_SIZE connections plus as many again under load, as before, but all kept
        # once opened: an overflow connection was closed at every check-in, so a worker with
        # more threads than DB_POOL_SIZE opened (and PostgreSQL forked) a connection per write.
        pool_size=2 * settings.db_pool_size,
        max_overflow=0,
        # A dead database must turn into a 503 within 2 s, never a hang: bounded connect,
        # bounded wait for a pooled connection, bounded statements.
        pool_timeout=1.0,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "options": f"-c statement_timeout={timeout} -c timezone=UTC",
            "application_name": "salon",
        },
    )


def build_redis(settings: Settings, *, socket_timeout: float | None = None) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds if socket_timeout is None else socket_timeout,
        retry_on_timeout=False,
        health_check_interval=30,
    )


def build_broker(settings: Settings) -> RedisBroker:
    from workers.middleware import RequestIdMiddleware

    # The broker gets its own client: Dramatiq blocks on it, and its timeouts must not be the
    # API's sub-second ones.
    client = build_redis(settings, socket_timeout=10.0)
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=client,
        namespace=f"{settings.redis_namespace}-dramatiq",
        # A SIGKILLed worker's unacked messages come back after this heartbeat timeout, on the
        # next maintenance pass; the defaults (60 s, 0.1 %) would leave bookings waiting minutes.
        heartbeat_timeout=settings.broker_heartbeat_ms,
        maintenance_chance=50_000,
    )
    broker.add_middleware(RequestIdMiddleware())
    broker.add_middleware(CurrentMessage())
    return broker


def bootstrap(
    settings: Settings | None = None, *, statement_timeout_ms: int | None = None
) -> Container:
    settings = settings or Settings.from_env()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError(
            "DATABASE_URL and REDIS_URL must be set "
            "(or run `salon dev`, which starts embedded servers)"
        )
    engine = build_engine(settings, statement_timeout_ms=statement_timeout_ms)
    broker = build_broker(settings)
    # The dramatiq CLI finds the broker through the global; actors are bound to it explicitly.
    dramatiq.set_broker(broker)
    container = Container(
        settings=settings,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        redis=build_redis(settings),
        redis_blocking=build_redis(settings, socket_timeout=settings.api_max_wait_seconds + 2),
        broker=broker,
    )
    from workers.actors import declare_actors

    container.actors = declare_actors(container)
    return container
