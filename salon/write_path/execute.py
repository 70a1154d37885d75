"""Worker side of the write path: `execute` runs the write request's operation and stores its
outcome in ONE transaction with the request locked, so a redelivered or duplicated message
finds it done and changes nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Protocol

import redis
from sqlalchemy import func, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from salon.auth import Principal
from salon.encoding import jsonable
from salon.errors import (
    OUTAGES,
    Conflict,
    DomainError,
    InvalidInput,
    SlotUnavailable,
    WriteFailed,
)
from salon.infra.pii import pii_codec
from salon.public_times.offers import queue_catalogue_bump
from salon.public_times.version_repair import run_with_receipt, write_change
from salon.public_times.versions import queue_bumps
from salon.write_path.audit import audited, read_before, record_audit
from salon.write_path.model import (
    STORED_COLUMNS,
    WRITES,
    Aborted,
    Operation,
    WriteContext,
    WriteOutcome,
    WritePorts,
    done_key,
    done_signal,
    stored_outcome,
    write_aad,
)

log = logging.getLogger(__name__)


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
            update(WRITES)
            .where(WRITES.c.id == write_id, WRITES.c.status == "pending")
            .values(failures=WRITES.c.failures + 1)
            .returning(WRITES.c.failures)
        ).scalar_one_or_none()
        log.error("write %s crashed (%s: %s)", write_id, type(exc).__name__, exc)
        if failures is None or failures < container.settings.write_max_attempts:
            return None
        session.execute(
            update(WRITES)
            .where(WRITES.c.id == write_id)
            .values(
                status="failed",
                http_status=error.status,
                result=error.problem(),
                completed_at=func.now(),
            )
        )
    return WriteOutcome(error.status, error.problem())


_LOCK_WRITE = text(
    f"SELECT {STORED_COLUMNS}, operation, payload, request_id FROM scheduler.idempotency_keys"
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
                outcome = stored_outcome(row)
            else:
                fresh = refused or _run(session, row, container)
                # What is stored is what every later answer for this write gets, its PII
                # sealed (the API opens it for the client: `revealed`).
                sealed = pii_codec(container.settings).seal_paths(
                    jsonable(fresh.body), write_aad(write_id, "result")
                )
                outcome = WriteOutcome(fresh.status, sealed, fresh.location)
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
    except Aborted as aborted:
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
    pii = pii_codec(container.settings)
    ctx = WriteContext(
        write_id=row.id,
        principal=Principal.from_dict(row.payload["principal"]),
        body=pii.open_paths(row.payload["body"], write_aad(row.id, "body")),
        params=row.payload.get("params") or {},
        request_id=row.request_id,
        settings=container.settings,
    )
    op = container.operations[row.operation]
    if not audited(ctx):
        return _run_op(session, op, ctx)
    # A staff write: its audit row goes in this same transaction.
    before = read_before(session, op, ctx)
    outcome = _run_op(session, op, ctx)
    record_audit(session, op, ctx, before, outcome)
    return outcome


def _run_op(session: Session, op: Operation, ctx: WriteContext) -> WriteOutcome:
    if not op.savepoint:
        try:
            return op.run(session, ctx)
        except DomainError as exc:  # raised before the operation wrote anything
            return WriteOutcome(exc.status, exc.problem())
        except IntegrityError as exc:
            raise Aborted(WriteOutcome(*_integrity_problem(exc))) from exc
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
    # A committed change leaves a receipt after its bumps (`salon.public_times.version_repair`).
    change = write_change(write_id) if fresh is not None and fresh.status < 400 else None

    def fill(pipe: Any) -> None:
        if fresh is not None and fresh.catalogue_changed:
            queue_catalogue_bump(pipe, ns)
        if fresh is not None and (fresh.touched_stylists or fresh.touched_times):
            queue_bumps(pipe, ns, fresh.touched_stylists, fresh.touched_times)
        pipe.lpush(key, done_signal(outcome))
        pipe.expire(key, 120)

    try:
        run_with_receipt(container, change, fill)
    except redis.RedisError:
        log.warning("could not signal completion of write %s; the API falls back to 202", write_id)
