"""The composition root: the one place that turns settings into engine, Redis and broker.

The API, the worker, the scheduler, the CLI and the tests all call `bootstrap()`. Building a
container opens no connection (SQLAlchemy and redis-py connect lazily), so importing any module
of the project never touches the network.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from redis import Redis
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from salon.infra.clock import SystemClock
from salon.infra.connect_breaker import ConnectBreaker
from salon.infra.pii import pii_codec
from salon.infra.redis_breaker import GuardedRetry, RedisBreaker
from salon.infra.redis_pipelines import RedisPipelines
from salon.settings import Settings
from salon.write_path.waits import WaitingPlaces

if TYPE_CHECKING:
    from salon.ports import Clock, Dispatcher
    from salon.write_path.model import Operation
    from workers.actors import Actors


@dataclass
class Container:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis
    # For BLPOP while the API waits for a write (`salon.write_path`), bounded by our own clock.
    redis_blocking: Redis
    broker: RedisBroker
    # Guards every Redis call of the process (the API's; None elsewhere): salon.infra.redis_breaker.
    redis_breaker: RedisBreaker | None = None
    # What time it is for what a process decides alone (salon.infra.clock); tests set it.
    clock: Clock = field(default_factory=SystemClock)
    # What a write sends after its commit (salon.public_times.versions.run_pipeline), on plain
    # connections.
    redis_pipelines: RedisPipelines = field(init=False)
    # Places for writes waiting for their outcome, fewer than the API's threads, so that
    # writes waiting on stopped workers never hold every thread (salon.write_path.waits).
    write_waits: WaitingPlaces = field(init=False)
    actors: Actors = field(init=False)
    # The one way services send work to the workers (salon.ports), over `actors`.
    dispatch: Dispatcher = field(init=False)
    # Every write operation by name (salon.operations): what the API records, the worker
    # runs.
    operations: dict[str, Operation] = field(init=False)

    def __post_init__(self) -> None:
        self.redis_pipelines = RedisPipelines(self.redis)
        self.write_waits = WaitingPlaces(self.settings.waiting_writes())

    def close(self) -> None:
        self.broker.close()
        self.redis.close()
        self.redis_blocking.close()
        self.engine.dispose()


# After a failed connect, new ones fail at once this long, then one caller tries again.
CONNECT_COOLDOWN_SECONDS = 1.0
# After a Redis call timed out, the API's calls fail at once this long, then one tries again.
REDIS_COOLDOWN_SECONDS = 1.0


def build_engine(settings: Settings, *, statement_timeout_ms: int | None = None) -> Engine:
    timeout = (
        settings.db_statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    )
    engine = create_engine(
        settings.database_url,
        # DB_POOL_SIZE connections plus as many again under load, as before, but all kept
        # once opened: an overflow connection was closed at every check-in, so a worker with
        # more threads than DB_POOL_SIZE opened (and PostgreSQL forked) a connection per write.
        pool_size=2 * settings.db_pool_size,
        max_overflow=0,
        # A dead database must turn into a 503 within 2 s, never a hang: bounded connect,
        # bounded wait for a pooled connection, bounded statements.
        pool_timeout=1.0,
        # No `pool_pre_ping` (a round trip at every checkout, three per booking write): a
        # check-out instead looks whether the idle connection's socket has anything to read,
        # which costs no round trip, and only then pings (see `_liveness_check`).
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "options": f"-c statement_timeout={timeout} -c timezone=UTC",
            "application_name": "salon",
        },
    )
    event.listen(engine, "checkout", _liveness_check(engine))
    breaker = ConnectBreaker(cooldown=CONNECT_COOLDOWN_SECONDS)

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> Any:
        return breaker.connect(lambda: dialect.connect(*cargs, **cparams))

    return engine


def _liveness_check(engine: Engine) -> Callable[[Any, Any, Any], None]:
    """A pooled connection is idle: the server has nothing to say on it unless it is going away
    (a terminated backend or a shutting-down server sends its FATAL error, then EOF). So a
    socket with something to read is pinged, and one that fails the ping is replaced by a fresh
    connection before the caller sees it (DisconnectionError makes the pool retry). A silent
    socket is used as it is: a connection that died without a word fails its first statement,
    which is an outage like any other (503, or a retried message)."""

    def check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        try:
            poller = select.poll()
            poller.register(dbapi_connection.fileno(), select.POLLIN)
            readable = bool(poller.poll(0))
        except Exception as exc:  # closed: no socket any more
            raise DisconnectionError("pooled connection is closed") from exc
        if readable:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError("pooled connection is gone") from exc

    return check


def build_redis(
    settings: Settings,
    *,
    socket_timeout: float | None = None,
    breaker: RedisBreaker | None = None,
) -> Redis:
    """A client; with `breaker`, each of its calls (and those of the pipelines built on it,
    `salon.infra.redis_pipelines`) is refused at once while Redis does not answer."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds if socket_timeout is None else socket_timeout,
        retry_on_timeout=False,
        health_check_interval=30,
        **({"retry": GuardedRetry(breaker)} if breaker is not None else {}),
    )


def build_broker(
    settings: Settings, *, socket_timeout: float = 10.0, breaker: RedisBreaker | None = None
) -> RedisBroker:
    from workers.middleware import RequestIdMiddleware

    # The broker gets its own client. A worker's fetch that timed out after it reached Redis
    # would strand its messages in the worker's ack set, so workers wait long; the API passes
    # its sub-second timeout (an enqueue that timed out is re-sent, harmlessly, by the
    # scheduler's re-enqueue job).
    client = build_redis(settings, socket_timeout=socket_timeout, breaker=breaker)
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
    settings: Settings | None = None,
    *,
    statement_timeout_ms: int | None = None,
    broker_timeout_seconds: float = 10.0,
    redis_breaker: bool = False,
) -> Container:
    """`redis_breaker`: every Redis call fails fast for a while after one timed out (the API;
    a worker waits for Redis instead, its fetches being long by design)."""
    settings = settings or Settings.from_env()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError(
            "DATABASE_URL and REDIS_URL must be set "
            "(or run `salon dev`, which starts embedded servers)"
        )
    # Refuses to start without PII keys (outside development): salon.infra.pii.
    pii_codec(settings)
    engine = build_engine(settings, statement_timeout_ms=statement_timeout_ms)
    breaker = RedisBreaker(cooldown=REDIS_COOLDOWN_SECONDS) if redis_breaker else None
    broker = build_broker(settings, socket_timeout=broker_timeout_seconds, breaker=breaker)
    # The dramatiq CLI finds the broker through the global; actors are bound to it explicitly.
    dramatiq.set_broker(broker)
    container = Container(
        settings=settings,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        redis=build_redis(settings, breaker=breaker),
        # The wait is bounded by `salon.write_path` itself: with a socket timeout as long as the
        # longest wait, a frozen Redis would hold every waiting write that long.
        redis_blocking=build_redis(settings, breaker=breaker),
        broker=broker,
        redis_breaker=breaker,
    )
    from salon.operations import BY_NAME
    from workers.actors import ActorDispatcher, declare_actors

    container.operations = dict(BY_NAME)
    container.actors = declare_actors(container)
    container.dispatch = ActorDispatcher(container.actors)
    return container
