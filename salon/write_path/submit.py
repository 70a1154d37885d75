"""API side of the write path: `submit` records the write request under its idempotency key,
commits, enqueues one Dramatiq message carrying only the request's id, then waits a bounded
time for the outcome.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import replace
from typing import cast

import redis
from sqlalchemy import Connection, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from models.ids import new_id
from salon.encoding import jsonable
from salon.errors import (
    OUTAGES,
    IdempotencyKeyReused,
    RequestInProgress,
)
from salon.infra.pii import PiiCodec, pii_codec
from salon.write_path.model import (
    STORED_COLUMNS,
    WRITES,
    NewWriteRequest,
    Stored,
    Submitted,
    WriteOutcome,
    WritePorts,
    done_key,
    revealed,
    signalled_outcome,
    stored_outcome,
    write_aad,
)

log = logging.getLogger(__name__)
# Prebuilt statements (no per-call construction or cache-key walk): the API's hot path.
_RECORD = text(
    f"""
INSERT INTO scheduler.idempotency_keys (id, principal, key, fingerprint, operation, payload,
    request_id, attempts, enqueued_at, expires_at)
VALUES (:id, :principal, :key, :fingerprint, :operation, CAST(:payload AS jsonb), :request_id,
    1, now(), now() + make_interval(hours => :ttl_hours))
ON CONFLICT (principal, key) DO NOTHING
RETURNING {STORED_COLUMNS}
"""
)
_FIND_KEY = text(
    f"SELECT {STORED_COLUMNS} FROM scheduler.idempotency_keys WHERE principal = :principal"
    " AND key = :key"
)
_FIND_ID = text(f"SELECT {STORED_COLUMNS} FROM scheduler.idempotency_keys WHERE id = :id")


def record(
    db: Session | Connection,
    cmd: NewWriteRequest,
    ttl_hours: int,
    pii: PiiCodec,
    write_id: uuid.UUID | None = None,
) -> tuple[Stored, bool]:
    """Insert the write under (principal, key), or find the one already there.

    One statement when the key is new (the common case): INSERT ... ON CONFLICT DO NOTHING
    RETURNING; only a conflict reads the existing row. A row carrying `write_id` is this very
    call's own insert (retried after a lost connection), so it counts as created.
    The body's PII is sealed (bound to this write) before it is stored: the worker opens it.
    """
    write_id = write_id or new_id()
    fingerprint = cmd.fingerprint(pii)
    payload = {
        "principal": cmd.principal.as_dict(),
        "body": pii.seal_paths(jsonable(cmd.body), write_aad(write_id, "body")),
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


def _record_alone(container: WritePorts, cmd: NewWriteRequest) -> tuple[Stored, bool]:
    """`record` as a transaction of its own: autocommit, so no BEGIN and no COMMIT round trip
    (the INSERT is atomic by itself). A connection found dead by its first statement is
    replaced once: the same write id makes a retry of an INSERT that did commit find itself."""
    write_id = new_id()
    for attempt in (1, 2):
        try:
            with container.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                return record(
                    conn,
                    cmd,
                    container.settings.idempotency_ttl_hours,
                    pii_codec(container.settings),
                    write_id,
                )
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            log.warning("connection lost while recording a write; retrying on a new one")
    raise AssertionError("unreachable")


def submit(container: WritePorts, cmd: NewWriteRequest, wait_seconds: float) -> Submitted:
    """Record, enqueue, wait: the outcome as the client sees it (its PII in clear)."""
    submitted = _submit(container, cmd, wait_seconds)
    outcome = revealed(pii_codec(container.settings), submitted.write_id, submitted.outcome)
    return replace(submitted, outcome=outcome)


def _submit(container: WritePorts, cmd: NewWriteRequest, wait_seconds: float) -> Submitted:
    if cmd.operation not in container.operations:
        raise ValueError(f"unknown operation {cmd.operation!r}")
    row, created = _record_alone(container, cmd)
    if not created:
        return Submitted(row.id, stored_outcome(row), replayed=True)
    try:
        container.dispatch.execute_write(row.id, cmd.request_id)
    except (redis.RedisError, OSError):
        # Recorded but not enqueued: the scheduler's re-enqueue job sends it once Redis is back.
        log.warning("enqueue failed; write %s left for the re-enqueue job", row.id)
        try:
            with container.engine.begin() as conn:
                conn.execute(update(WRITES).where(WRITES.c.id == row.id).values(enqueued_at=None))
        except OUTAGES:
            pass  # it is re-sent anyway once its enqueued_at is old enough
        return Submitted(row.id, None)
    if wait_seconds > 0:
        signal = _wait_for_signal(container, row.id, wait_seconds)
        # The worker's signal carries the stored outcome: no second read of the database.
        signalled = signalled_outcome(signal) if signal is not None else None
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
    """The worker's done signal for the write, or None after `seconds`. A write that finds no
    waiting place (`salon.write_path.waits`) waits only while the process's writes are answered, so
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
        return stored_outcome(row) if row is not None else None
