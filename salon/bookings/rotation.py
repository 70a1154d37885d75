"""`salon pii rotate`: every stored PII value put under the current key (the first of
PII_KEYS), in batches of one short transaction each; run again, it changes nothing.

It also seals what was stored before encryption (rows of an older release: `pii_kid` NULL,
write requests with clear bodies) and masks clear outbox events, so it is the one command to
run after migration 0010 and after every key change (docs/security.md).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.tables import Booking, OutboxEvent, WriteRequest
from salon.bookings.customer import resealed
from salon.infra.pii import PiiCodec, mask_paths
from salon.write_path.model import write_aad

log = logging.getLogger(__name__)


@dataclass
class Rotated:
    bookings: int = 0
    write_requests: int = 0
    events: int = 0


def rotate(
    sessions: sessionmaker[Session], pii: PiiCodec, *, batch: int = 500, rehash: bool = False
) -> Rotated:
    """`rehash`: every booking's search hashes recomputed as well, even those under the
    current key already (after a change of PII_HASH_KEY)."""
    done = Rotated()
    done.bookings = _bookings(sessions, pii, batch, rehash)
    done.write_requests = _write_requests(sessions, pii, batch)
    done.events = _events(sessions, batch)
    return done


def _bookings(sessions: sessionmaker[Session], pii: PiiCodec, batch: int, rehash: bool) -> int:
    changed, after = 0, None
    while True:
        with sessions.begin() as session:
            query = select(Booking).order_by(Booking.id).limit(batch).with_for_update()
            if not rehash:
                query = query.where(or_(Booking.pii_kid.is_(None), Booking.pii_kid != pii.kid))
            if after is not None:
                query = query.where(Booking.id > after)
            rows = list(session.scalars(query))
            updates = []
            for b in rows:
                columns = resealed(pii, b, force=rehash)
                if columns is not None:
                    updates.append({"id": b.id, **columns})
            if updates:
                session.execute(update(Booking), updates)
            changed += len(updates)
        if len(rows) < batch:
            return changed
        after = rows[-1].id
        log.info("pii rotate: %d bookings so far", changed)


def _write_requests(sessions: sessionmaker[Session], pii: PiiCodec, batch: int) -> int:
    """Write requests live for IDEMPOTENCY_TTL_HOURS: all are read, the stale ones changed."""
    changed, after = 0, None
    while True:
        with sessions.begin() as session:
            query = (
                select(WriteRequest.id, WriteRequest.payload, WriteRequest.result)
                .order_by(WriteRequest.id)
                .limit(batch)
                .with_for_update()
            )
            if after is not None:
                query = query.where(WriteRequest.id > after)
            rows = session.execute(query).all()
            updates = [u for u in (_resealed_write(pii, *r) for r in rows) if u is not None]
            if updates:
                session.execute(update(WriteRequest), updates)
            changed += len(updates)
        if len(rows) < batch:
            return changed
        after = rows[-1].id


def _resealed_write(
    pii: PiiCodec, write_id: uuid.UUID, payload: dict[str, Any], result: dict[str, Any] | None
) -> dict[str, Any] | None:
    body = payload.get("body")
    if not pii.stale_paths(body) and not pii.stale_paths(result):
        return None
    return {
        "id": write_id,
        "payload": {**payload, "body": pii.reseal_paths(body, write_aad(write_id, "body"))},
        "result": pii.reseal_paths(result, write_aad(write_id, "result")),
    }


def _events(sessions: sessionmaker[Session], batch: int) -> int:
    """Outbox events of an older release carried the PII in clear: masked (masks are fixed
    points of masking, so a second run finds nothing)."""
    changed, after = 0, 0
    while True:
        with sessions.begin() as session:
            rows = session.execute(
                select(OutboxEvent.id, OutboxEvent.payload)
                .where(OutboxEvent.id > after, OutboxEvent.topic.like("booking.%"))
                .order_by(OutboxEvent.id)
                .limit(batch)
            ).all()
            updates = [
                {"id": r.id, "payload": masked}
                for r in rows
                if (masked := mask_paths(r.payload)) != r.payload
            ]
            if updates:
                session.execute(update(OutboxEvent), updates)
            changed += len(updates)
        if len(rows) < batch:
            return changed
        after = rows[-1].id
