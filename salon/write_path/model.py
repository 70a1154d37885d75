"""A write request (table `idempotency_keys`) and what it carries: its operation, its
context, its outcome, and the ports the write path needs (design.md "Writes through the queue").
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

import redis
from sqlalchemy import Engine, Table
from sqlalchemy.orm import Session

from models.tables import WriteRequest
from salon.auth import Principal
from salon.encoding import jsonable
from salon.infra.pii import PiiCodec, pii_codec
from salon.infra.redis_breaker import RedisBreaker
from salon.ports import Announcer, Dispatcher, HasDispatch
from salon.public_times.versions import TimeChange
from salon.settings import Settings
from salon.write_path.waits import WaitingPlaces

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

    @property
    def pii(self) -> PiiCodec:
        """The codec of customers' PII (salon.infra.pii), one per configuration."""
        return pii_codec(self.settings)


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
    # The audit trail of staff writes (salon.write_path.audit): what the changed object is
    # called (default: the name's first part), and how to read its representation before
    # the write (None: a create, or nothing to compare).
    object_type: str = ""
    before: Callable[[Session, WriteContext], dict[str, Any]] | None = None


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


class Aborted(Exception):
    """A write without a savepoint hit a database refusal: its transaction must roll back."""

    def __init__(self, outcome: WriteOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


@dataclass(frozen=True)
class NewWriteRequest:
    operation: str
    principal: Principal
    key: str
    method: str
    path: str
    body: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None

    def fingerprint(self, pii: PiiCodec | None = None) -> str:
        """What tells a repeat from another request under the same key; keyed by the PII
        hash key when given (a body may carry a phone number: a plain digest of it, stored
        next to the rest of the body, would be brute-forced)."""
        canonical = json.dumps(
            [self.method, self.path, self.body], sort_keys=True, separators=(",", ":"), default=str
        ).encode()
        return pii.blind(canonical) if pii is not None else hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class Submitted:
    write_id: uuid.UUID
    outcome: WriteOutcome | None  # None: still pending after the wait
    replayed: bool = False


def done_key(namespace: str, write_id: uuid.UUID) -> str:
    return f"{namespace}:write-done:{write_id}"


# --- API side -------------------------------------------------------------------------------


# Core, not ORM objects: this is the hot path of every write.
WRITES = cast(Table, WriteRequest.__table__)


STORED_COLUMNS = "id, fingerprint, status, http_status, result, location"


class Stored(Protocol):
    """What the API needs of a recorded write (a `WriteRequest` or a row of `STORED_COLUMNS`)."""

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


def write_aad(write_id: uuid.UUID, part: str) -> str:
    """Where a write request's sealed PII belongs: its `body` (payload) or its `result`."""
    return f"write:{write_id}:{part}"


def revealed(
    pii: PiiCodec, write_id: uuid.UUID, outcome: WriteOutcome | None
) -> WriteOutcome | None:
    """A stored outcome as its client sees it: the customer's own PII in clear again (the
    stored result and the done signal carry it sealed)."""
    if outcome is None:
        return None
    return replace(outcome, body=pii.open_paths(outcome.body, write_aad(write_id, "result")))


def stored_outcome(row: Stored) -> WriteOutcome | None:
    if row.status == "pending" or row.http_status is None:
        return None
    return WriteOutcome(row.http_status, row.result or {}, row.location)


def done_signal(outcome: WriteOutcome | None) -> str:
    """What `notify_done` pushes: the stored outcome as JSON ("1": none, read it back)."""
    if outcome is None:
        return "1"
    return json.dumps(
        {"status": outcome.status, "body": outcome.body, "location": outcome.location},
        separators=(",", ":"),
    )


def signalled_outcome(raw: bytes | str) -> WriteOutcome | None:
    try:
        got = json.loads(raw)
        return WriteOutcome(int(got["status"]), got["body"], got["location"])
    except (ValueError, TypeError, KeyError):
        return None  # an old-style signal ("1"): the caller reads the stored row


def describe(row: WriteRequest, pii: PiiCodec) -> dict[str, Any]:
    """The representation of `GET /v1/requests/{id}`."""
    return {
        "id": str(row.id),
        "status": row.status,
        "http_status": row.http_status,
        "result": pii.open_paths(row.result, write_aad(row.id, "result")),
        "location": row.location,
        "created_at": jsonable(row.created_at),
        "completed_at": jsonable(row.completed_at),
    }
