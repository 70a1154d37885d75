"""The write path (design.md "Writes through the queue"), used by every POST/PATCH.

API side: `submit` records the write under its idempotency key, commits, enqueues one
Dramatiq message carrying only the record's id, then waits a bounded time for the result.
Worker side: `execute` runs the write's operation and stores its response in ONE transaction
with the record locked, so a redelivered or duplicated message finds it done and changes
nothing. Scheduler side: `reenqueue_due` sends again what was recorded but never finished
(Redis down at the time, or its message lost with a restarted Redis).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import redis
from sqlalchemy import Connection, Engine, Table, delete, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from models.ids import new_id
from models.tables import WriteRequest
from salon.auth import Principal
from salon.encoding import jsonable
from salon.errors import (
    OUTAGES,
    Conflict,
    DomainError,
    IdempotencyKeyReused,
    InvalidInput,
    RequestInProgress,
    SlotUnavailable,
    WriteFailed,
)
from salon.lost_bumps import run_with_receipt, write_change
from salon.offers import queue_catalogue_bump
from salon.ports import Announcer, Dispatcher, HasDispatch
from salon.redis_breaker import RedisBreaker
from salon.settings import Settings
from salon.versions import TimeChange, queue_bumps
from salon.waits import WaitingPlaces

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteOutcome:
    status: int
    body: dict[str, Any]
    location: str | None = None
    # Work to send once the write has committed. A lost send (Redis down) is the business of
    # the scheduler job that resumes the work it starts.
    followups: tuple[Callable[[Dispatcher], None], ...] = ()
    # Stylists whose time this write took or freed: sticky exposures of theirs recheck.
    touched_stylists: tuple[uuid.UUID, ...] = ()
    # The same, with the instants taken or freed: answers about other dates stay cached.
    touched_times: tuple[TimeChange, ...] = ()
    # Locations, stylists, services or who offers what changed: public reads re-read offers.
    catalogue_changed: bool = False


@dataclass(frozen=True)
class WriteContext:
    write_id: uuid.UUID
    principal: Principal
    body: dict[str, Any]
    params: dict[str, str]
    request_id: str | None
    settings: Settings


@dataclass(frozen=True)
class Operation:
    """A write operation: the API names it (`name` is stored with the write request), the
    actor runs it. Every one is listed in `salon.operations`."""

    name: str
    run: Callable[[Session, WriteContext], WriteOutcome]
    # False: the operation raises every refusal (DomainError) before its first write, so it
    # runs without a savepoint: two round trips fewer. A database error in one of them (a
    # constraint violation) aborts the transaction: it is rolled back whole and the refusal
    # stored in one of its own.
    savepoint: bool = True


class WritePorts(Announcer, HasDispatch, Protocol):
    """What the write path needs of its process, beyond announcing changes and sending work."""

    @property
    def engine(self) -> Engine: ...
    @property
    def redis_blocking(self) -> redis.Redis: ...
    @property
    def redis_breaker(self) -> RedisBreaker | None: ...
    @property
    def write_waits(self) -> WaitingPlaces: ...
    @property
    def operations(self) -> Mapping[str, Operation]: ...


class _Aborted(Exception):
    """A write without a savepoint hit a database refusal: its transaction must roll back."""

    def __init__(self, outcome: WriteOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


@dataclass(frozen=True)
class WriteCommand:
    operation: str
    principal: Principal
    key: str
    method: str
    path: str
    body: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None

    def fingerprint(self) -> str:
        canonical = json.dumps(
            [self.method, self.path, self.body], sort_keys=True, separators=(",", ":"), default=str
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Submitted:
    write_id: uuid.UUID
    outcome: WriteOutcome | None  # None: still pending after the wait
    replayed: bool = False


def done_key(namespace: str, write_id: uuid.UUID) -> str:
    return f"{namespace}:write-done:{write_id}"


# --- API side -------------------------------------------------------------------------------


# Core, not ORM objects: this is the hot path of every write.
_WRITES = cast(Table, WriteRequest.__table__)


_STORED_SQL = "id, fingerprint, status, http_status, result, location"
# Prebuilt statements (no per-call construction or cache-key walk): the API's hot path.
_RECORD = text(
    f"""
INSERT INTO scheduler.idempotency_keys (id, principal, key, fingerprint, operation, payload,
    request_id, attempts, enqueued_at, expires_at)
VALUES (:id, :principal, :key, :fingerprint, :operation, CAST(:payload AS jsonb), :request_id,
    1, now(), now() + make_interval(hours => :ttl_hours))
ON CONFLICT (principal, key) DO NOTHING
RETURNING {_STORED_SQL}
"""
)
_FIND_KEY = text(
    f"SELECT {_STORED_SQL} FROM scheduler.idempotency_keys WHERE principal = :principal"
    " AND key = :key"
)
_FIND_ID = text(f"SELECT {_STORED_SQL} FROM scheduler.idempotency_keys WHERE id = :id")


class Stored(Protocol):
    """What the API needs of a recorded write (a `WriteRequest` or a row of `_STORED_SQL`)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def status(self) -> str: ...
    @property
    def http_status(self) -> int | None: ...
    @property
    def result(self) -> dict[str, Any] | None: ...
    @property
    def location(self) -> str | None: ...


def record(
    db: Session | Connection, cmd: WriteCommand, ttl_hours: int, write_id: uuid.UUID | None = None
) -> tuple[Stored, bool]:
    """Insert the write under (principal, key), or find the one already there.

    One statement when the key is new (the common case): INSERT ... ON CONFLICT DO NOTHING
    RETURNING; only a conflict reads the existing row. A row carrying `write_id` is this very
    call's own insert (retried after a lost connection), so it counts as created.
    """
    write_id = write_id or new_id()
    fingerprint = cmd.fingerprint()
    payload = {
        "principal": cmd.principal.as_dict(),
        "body": jsonable(cmd.body),
        "params": cmd.params,
    }
    inserted = db.execute(
        _RECORD,
        {
            "id": write_id,
            "principal": cmd.principal.key,
            "key": cmd.key,
            "fingerprint": fingerprint,
            "operation": cmd.operation,
            "payload": json.dumps(payload, separators=(",", ":")),
            "request_id": cmd.request_id,
            "ttl_hours": ttl_hours,
        },
    ).one_or_none()
    if inserted is not None:
        return inserted, True
    row = db.execute(_FIND_KEY, {"principal": cmd.principal.key, "key": cmd.key}).one()
    if row.id == write_id:
        return row, True
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request; use a new key"
        )
    if row.status == "pending":
        raise RequestInProgress(
            "a request with this Idempotency-Key is still running",
            request_url=f"/v1/requests/{row.id}",
        )
    return row, False


def _record_alone(container: WritePorts, cmd: WriteCommand) -> tuple[Stored, bool]:
    """`record` as a transaction of its own: autocommit, so no BEGIN and no COMMIT round trip
    (the INSERT is atomic by itself). A connection found dead by its first statement is
    replaced once: the same write id makes a retry of an INSERT that did commit find itself."""
    write_id = new_id()
    for attempt in (1, 2):
        try:
            with container.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                return record(conn, cmd, container.settings.idempotency_ttl_hours, write_id)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            log.warning("connection lost while recording a write; retrying on a new one")
    raise AssertionError("unreachable")


def submit(container: WritePorts, cmd: WriteCommand, wait_seconds: float) -> Submitted:
    if cmd.operation not in container.operations:
        raise ValueError(f"unknown operation {cmd.operation!r}")
    row, created = _record_alone(container, cmd)
    if not created:
        return Submitted(row.id, _outcome(row), replayed=True)
    try:
        container.dispatch.execute_write(row.id, cmd.request_id)
    except (redis.RedisError, OSError):
        # Recorded but not enqueued: the scheduler's re-enqueue job sends it once Redis is back.
        log.warning("enqueue failed; write %s left for the re-enqueue job", row.id)
        try:
            with container.engine.begin() as conn:
                conn.execute(update(_WRITES).where(_WRITES.c.id == row.id).values(enqueued_at=None))
        except OUTAGES:
            pass  # it is re-sent anyway once its enqueued_at is old enough
        return Submitted(row.id, None)
    if wait_seconds > 0:
        signal = _wait_for_signal(container, row.id, wait_seconds)
        # The worker's signal carries the stored outcome: no second read of the database.
        signalled = _signalled_outcome(signal) if signal is not None else None
        if signalled is not None:
            return Submitted(row.id, signalled)
    try:
        return Submitted(row.id, find_outcome(container, row.id))
    except OUTAGES:
        # The write is recorded and enqueued, maybe already done: never a 503 for it now (a
        # client would retry with a new key and do it twice). 202: ask /v1/requests/{id}.
        log.warning("could not read the outcome of write %s", row.id)
        return Submitted(row.id, None)


def _wait_for_signal(container: WritePorts, write_id: uuid.UUID, seconds: float) -> bytes | None:
    """The worker's done signal for the write, or None after `seconds`. A write that finds
    no waiting place (`salon.waits`) waits only while the process's writes are answered, so
    that writes waiting on stopped workers never hold every thread (reads would queue)."""
    key = done_key(container.settings.redis_namespace, write_id)
    places = container.write_waits
    signal: bytes | None = None
    try:
        if places.take():
            try:
                signal = _pop(container, key, seconds)
            finally:
                places.leave()
        else:
            deadline = time.monotonic() + seconds
            while signal is None and places.flowing():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                signal = _pop(container, key, min(remaining, places.window))
    except redis.RedisError:
        log.warning("could not wait on Redis for write %s", write_id)
        return None
    if signal is not None:
        places.answered()
    return signal


def _pop(container: WritePorts, key: str, seconds: float) -> bytes | None:
    margin = container.settings.redis_timeout_seconds
    breaker = container.redis_breaker
    if breaker is None:
        return _pop_within(container.redis_blocking, key, seconds, margin)
    return breaker.call_unless_open(_pop_within, container.redis_blocking, key, seconds, margin)


def _pop_within(client: redis.Redis, key: str, seconds: float, margin: float) -> bytes | None:
    """BLPOP `key` for `seconds`, given up `margin` seconds later by our own clock: the
    command's timeout is kept by the Redis server, which a frozen one never keeps, and a
    socket timeout long enough for the longest wait would let it hold every wait that long.
    redis.TimeoutError when Redis did not answer by then."""
    deadline = time.monotonic() + seconds + margin
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command("BLPOP", key, seconds)  # type: ignore[no-untyped-call]
        if not conn.can_read(timeout=max(0.0, deadline - time.monotonic())):
            raise redis.TimeoutError(f"Redis did not end a {seconds:g} s wait in time")
        reply = conn.read_response()
    except BaseException:
        # Its reply may still come: the connection is never used again.
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(conn)
    return cast(list[bytes], reply)[1] if reply else None


def find_outcome(container: WritePorts, write_id: uuid.UUID) -> WriteOutcome | None:
    with container.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        row = conn.execute(_FIND_ID, {"id": write_id}).one_or_none()
        return _outcome(row) if row is not None else None


def _outcome(row: Stored) -> WriteOutcome | None:
    if row.status == "pending" or row.http_status is None:
        return None
    return WriteOutcome(row.http_status, row.result or {}, row.location)


def _signal(outcome: WriteOutcome | None) -> str:
    """What `notify_done` pushes: the stored outcome as JSON ("1": none, read it back)."""
    if outcome is None:
        return "1"
    return json.dumps(
        {"status": outcome.status, "body": outcome.body, "location": outcome.location},
        separators=(",", ":"),
    )


def _signalled_outcome(raw: bytes | str) -> WriteOutcome | None:
    try:
        got = json.loads(raw)
        return WriteOutcome(int(got["status"]), got["body"], got["location"])
    except (ValueError, TypeError, KeyError):
        return None  # an old-style signal ("1"): the caller reads the stored row


def describe(row: WriteRequest) -> dict[str, Any]:
    """The representation of `GET /v1/requests/{id}`."""
    return {
        "id": str(row.id),
        "status": row.status,
        "http_status": row.http_status,
        "result": row.result,
        "location": row.location,
        "created_at": jsonable(row.created_at),
        "completed_at": jsonable(row.completed_at),
    }


# --- worker side ----------------------------------------------------------------------------


def execute(container: WritePorts, write_id: uuid.UUID) -> WriteOutcome | None:
    """Run one recorded write exactly once; a second run of the same id changes nothing.

    An outage (PostgreSQL unreachable) raises and is retried, then re-sent: it never counts
    against the write. Any other crash is counted; at WRITE_MAX_ATTEMPTS the write fails (500)
    for good, so a poisonous write cannot loop forever.
    """
    try:
        return _execute(container, write_id)
    except OUTAGES:
        raise
    except Exception as exc:
        failed = _count_failure(container, write_id, exc)
        if failed is not None:
            notify_done(container, write_id, failed)
            return None
        raise


def _count_failure(
    container: WritePorts, write_id: uuid.UUID, exc: Exception
) -> WriteOutcome | None:
    """Record a crashed execution; its stored outcome when it was the last one allowed."""
    error = WriteFailed("the write could not be completed; retry it with a new key")
    with container.sessions.begin() as session:
        failures = session.execute(
            update(_WRITES)
            .where(_WRITES.c.id == write_id, _WRITES.c.status == "pending")
            .values(failures=_WRITES.c.failures + 1)
            .returning(_WRITES.c.failures)
        ).scalar_one_or_none()
        log.error("write %s crashed (%s: %s)", write_id, type(exc).__name__, exc)
        if failures is None or failures < container.settings.write_max_attempts:
            return None
        session.execute(
            update(_WRITES)
            .where(_WRITES.c.id == write_id)
            .values(
                status="failed",
                http_status=error.status,
                result=error.problem(),
                completed_at=func.now(),
            )
        )
    return WriteOutcome(error.status, error.problem())


_LOCK_WRITE = text(
    f"SELECT {_STORED_SQL}, operation, payload, request_id FROM scheduler.idempotency_keys"
    " WHERE id = :id FOR UPDATE"
)
_STORE_OUTCOME = text(
    """
UPDATE scheduler.idempotency_keys
SET status = :status, http_status = :http_status, result = CAST(:result AS jsonb),
    location = :location, completed_at = clock_timestamp()
WHERE id = :id
"""
)


def _execute(
    container: WritePorts, write_id: uuid.UUID, refused: WriteOutcome | None = None
) -> WriteOutcome | None:
    """Run the write and store its outcome in one transaction, the write's row locked; with
    `refused`, store that refusal instead of running it (its first run was rolled back)."""
    fresh: WriteOutcome | None = None
    try:
        with container.sessions.begin() as session:
            row = session.execute(_LOCK_WRITE, {"id": write_id}).one_or_none()
            if row is None:
                log.warning("write %s not found (purged?)", write_id)
                return None
            if row.status != "pending":
                log.info("write %s already %s; redelivery ignored", write_id, row.status)
                outcome = _outcome(row)
            else:
                fresh = refused or _run(session, row, container)
                # What is stored is what every later answer for this write gets.
                outcome = WriteOutcome(fresh.status, jsonable(fresh.body), fresh.location)
                session.execute(
                    _STORE_OUTCOME,
                    {
                        "id": write_id,
                        "status": "succeeded" if outcome.status < 400 else "failed",
                        "http_status": outcome.status,
                        "result": json.dumps(outcome.body, separators=(",", ":")),
                        "location": outcome.location,
                    },
                )
    except _Aborted as aborted:
        # Rolled back whole: nothing of the write remains. Its refusal goes in a transaction of
        # its own (unless another delivery has finished the write meanwhile).
        return _execute(container, write_id, aborted.outcome)
    # Only after the commit: a message must never name a row that might still roll back.
    notify_done(container, write_id, outcome, fresh)
    if fresh is not None:
        _send_followups(container, fresh)
    return outcome


def _send_followups(container: WritePorts, outcome: WriteOutcome) -> None:
    for send in outcome.followups:
        try:
            send(container.dispatch)
        except redis.RedisError:
            log.warning("could not send a write's follow-up; the scheduler will resume it")


class _ToRun(Protocol):
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def operation(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def request_id(self) -> str | None: ...


def _run(session: Session, row: _ToRun, container: WritePorts) -> WriteOutcome:
    ctx = WriteContext(
        write_id=row.id,
        principal=Principal.from_dict(row.payload["principal"]),
        body=row.payload["body"],
        params=row.payload.get("params") or {},
        request_id=row.request_id,
        settings=container.settings,
    )
    op = container.operations[row.operation]
    if not op.savepoint:
        try:
            return op.run(session, ctx)
        except DomainError as exc:  # raised before the operation wrote anything
            return WriteOutcome(exc.status, exc.problem())
        except IntegrityError as exc:
            raise _Aborted(WriteOutcome(*_integrity_problem(exc))) from exc
    try:
        # A savepoint: a refused write leaves nothing behind but its recorded refusal.
        with session.begin_nested():
            return op.run(session, ctx)
    except DomainError as exc:
        return WriteOutcome(exc.status, exc.problem())
    except IntegrityError as exc:
        return WriteOutcome(*_integrity_problem(exc))


def _integrity_problem(exc: IntegrityError) -> tuple[int, dict[str, Any]]:
    """Constraint violations are answers (409/422), never 500s: the database had the last word."""
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    error: DomainError
    if constraint == "bookings_no_overlap":
        error = SlotUnavailable("that time was just taken; choose another")
    elif sqlstate in ("23505", "23P01"):
        error = Conflict(f"conflicts with existing data ({constraint})")
    else:
        error = InvalidInput(
            f"refers to something that does not exist or is invalid ({constraint})"
        )
    return error.status, error.problem()


def notify_done(
    container: WritePorts,
    write_id: uuid.UUID,
    outcome: WriteOutcome | None = None,
    fresh: WriteOutcome | None = None,
) -> None:
    """Wake the API waiting on this write, handing it the stored outcome (none: it reads the
    row). A redelivery pushes again: the same stored outcome, so whichever it pops is right.
    A `fresh` outcome (this run committed it) first bumps the versions of the catalogue and
    stylists it changed, in the same round trip: the customer's next read sees the change."""
    ns = container.settings.redis_namespace
    key = done_key(ns, write_id)
    # A committed change leaves a receipt after its bumps (`salon.lost_bumps`).
    change = write_change(write_id) if fresh is not None and fresh.status < 400 else None

    def fill(pipe: Any) -> None:
        if fresh is not None and fresh.catalogue_changed:
            queue_catalogue_bump(pipe, ns)
        if fresh is not None and (fresh.touched_stylists or fresh.touched_times):
            queue_bumps(pipe, ns, fresh.touched_stylists, fresh.touched_times)
        pipe.lpush(key, _signal(outcome))
        pipe.expire(key, 120)

    try:
        run_with_receipt(container, change, fill)
    except redis.RedisError:
        log.warning("could not signal completion of write %s; the API falls back to 202", write_id)


# --- scheduler side -------------------------------------------------------------------------


def broker_epoch_key(namespace: str) -> str:
    """The marker of the Redis the writes' messages went to: missing means a Redis that lost
    its data (restarted without persistence, flushed, replaced)."""
    return f"{namespace}:broker-epoch"


_CATCHING_UP = "resend-before:"  # then the cutoff: pending writes enqueued before it
_KNOWN = "known-since:"


def reenqueue_due(container: WritePorts, limit: int = 1000, chunk: int = 100) -> int:
    """Send again every pending write whose message may be lost (Redis was down, or restarted
    and lost its queues). Duplicates are harmless (`execute` is idempotent); the wait before
    each further send doubles, up to 32x, so a long outage does not pile messages up.

    A Redis found without its marker lost every message it held: then every pending write
    enqueued before that is sent again at once, whatever its wait (over as many ticks as it
    takes, `limit` per tick), instead of REDELIVER_AFTER_SECONDS after its last send.

    Only a write whose send went through is marked as sent. Rows are locked while sent
    (SKIP LOCKED: two schedulers never send one row twice in a tick), `chunk` rows per
    transaction, so a worker given one of them waits at most for one chunk's sends. While
    Redis is still down the first send fails, nothing is marked, and the next tick tries again
    at once: an outage does not push the writes' next try back. Up to `limit` per tick."""
    lost_before = _messages_lost_before(container)
    total = 0
    while total < limit:
        size = min(chunk, limit - total)
        sent, due = _reenqueue_chunk(container, size, lost_before)
        total += sent
        if sent < due:
            return total  # Redis failed: the catch-up, if any, goes on at the next tick
        if due < size:  # nothing more is due
            if lost_before is not None:
                _caught_up(container, lost_before)
            return total
    return total


def _messages_lost_before(container: WritePorts) -> dt.datetime | None:
    """The cutoff of a catch-up under way: a Redis without the marker gets one now, which it
    keeps until every write enqueued before it was sent again. The marker is set before those
    sends, so a Redis that loses its data during them is found empty again at a later tick."""
    key = broker_epoch_key(container.settings.redis_namespace)
    try:
        marker = cast(bytes | None, container.redis.get(key))
        if marker is not None:
            value = marker.decode()
            if value.startswith(_CATCHING_UP):
                return dt.datetime.fromisoformat(value.removeprefix(_CATCHING_UP))
            return None
        # The database's clock, the one `enqueued_at` is written with; read after Redis was
        # found empty, so every message that Redis lost was sent before it.
        with container.engine.connect() as conn:
            cutoff = conn.execute(text("SELECT now()")).scalar_one()
        container.redis.set(key, _CATCHING_UP + cutoff.isoformat())
    except (redis.RedisError, OSError):
        return None  # Redis down: nothing can be sent anyway
    log.warning(
        "Redis has no marker (first start, or it lost its data): every write pending before %s"
        " is sent again",
        cutoff,
    )
    return cast(dt.datetime, cutoff)


def _caught_up(container: WritePorts, cutoff: dt.datetime) -> None:
    key = broker_epoch_key(container.settings.redis_namespace)
    # Failed: still catching up, so the next tick re-sends what is left and finishes.
    with contextlib.suppress(redis.RedisError, OSError):
        # Only over the marker of this catch-up: a Redis that has lost it again is caught up
        # afresh at the next tick.
        container.redis.set(key, _KNOWN + cutoff.isoformat(), xx=True)


def _reenqueue_chunk(
    container: WritePorts, chunk: int, lost_before: dt.datetime | None
) -> tuple[int, int]:
    """(sent, due) for one transaction's rows."""
    redeliver = container.settings.redeliver_after_seconds
    backoff = func.power(2, func.least(WriteRequest.attempts - 1, 5)) * redeliver
    never_sent_before = func.now() - dt.timedelta(seconds=2)
    is_due = (
        (WriteRequest.enqueued_at.is_(None)) & (WriteRequest.created_at < never_sent_before)
    ) | (WriteRequest.enqueued_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, backoff))
    if lost_before is not None:
        is_due = is_due | (WriteRequest.enqueued_at < lost_before)
    sent: list[uuid.UUID] = []
    with container.sessions.begin() as session:
        due = session.execute(
            select(WriteRequest.id, WriteRequest.request_id)
            .where(WriteRequest.status == "pending", is_due)
            .order_by(WriteRequest.created_at)
            .limit(chunk)
            .with_for_update(skip_locked=True)
        ).all()
        try:
            for r in due:
                container.dispatch.execute_write(r.id, r.request_id)
                sent.append(r.id)
        except (redis.RedisError, OSError):
            log.warning(
                "re-enqueue stopped after %d of %d writes: Redis unavailable", len(sent), len(due)
            )
        if sent:
            session.execute(
                update(WriteRequest)
                .where(WriteRequest.id.in_(sent))
                .values(enqueued_at=func.now(), attempts=WriteRequest.attempts + 1)
            )
    return len(sent), len(due)


def purge_expired(session: Session) -> int:
    result = session.execute(
        delete(WriteRequest).where(
            WriteRequest.expires_at < func.now(), WriteRequest.status != "pending"
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
