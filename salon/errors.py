"""Domain errors, each with the HTTP status and stable problem `type` it is reported as.

Service functions raise these; the API and the write actor turn them into RFC 9457
problem documents in exactly one place each (`api/errors.py`, `salon/write_path/`).
"""

from __future__ import annotations

from typing import Any

import redis
import sqlalchemy.exc

PROBLEM_BASE = "https://salon.example/problems/"


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


class DomainError(Exception):
    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class SlotUnavailable(Conflict):
    slug, title = "slot-unavailable", "Slot unavailable"


class InvalidInput(DomainError):
    """Well-formed but unacceptable input; `errors` names the fields."""

    status, slug, title = 422, "validation-error", "Invalid input"


class IdempotencyKeyMissing(DomainError):
    status, slug, title = 400, "idempotency-key-missing", "Idempotency-Key header required"


class IdempotencyKeyReused(DomainError):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused with another body"


class RequestInProgress(DomainError):
    status, slug, title = 409, "request-in-progress", "Request still in progress"


class WriteFailed(DomainError):
    status, slug, title = 500, "write-failed", "Write failed"


class ServiceUnavailable(DomainError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


# What an outage of PostgreSQL or Redis raises: a 503 at the API, a retry in a worker.
OUTAGES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.ConnectionError,
    redis.TimeoutError,
)
