"""Scheduler side of the write path: `reenqueue_due` sends again what was recorded but never
finished (Redis down at the time, or its message lost with a restarted Redis); `purge_expired`
drops write requests past their retention.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from typing import cast

import redis
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from models.tables import WriteRequest
from salon.write_path.model import WritePorts

log = logging.getLogger(__name__)


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
