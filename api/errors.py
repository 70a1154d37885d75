"""Every error leaves the API as an RFC 9457 `application/problem+json` document.

Registered once on the app: Falcon's own HTTP errors, the domain errors of `salon.errors`,
and outages of PostgreSQL or Redis, which answer a fast 503 instead of hanging.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import sqlalchemy.exc

from salon.encoding import json_default
from salon.errors import OUTAGES, DomainError, ServiceUnavailable, problem_type

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    411: "length-required",
    413: "payload-too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
    417: "expectation-failed",
    422: "validation-error",
    429: "rate-limited",
    431: "header-fields-too-large",
    500: "internal-error",
    501: "not-implemented",
    503: "service-unavailable",
}


def _status_code(status: Any) -> int:
    return int(falcon.http_status_to_code(status))


def write_problem(resp: falcon.Response, body: dict[str, Any]) -> None:
    resp.status = falcon.code_to_http_status(int(body["status"]))
    resp.content_type = PROBLEM_JSON
    resp.text = json.dumps(body, default=json_default)


def serialize_http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    code = _status_code(exc.status)
    slug = exc.code if isinstance(exc.code, str) else SLUGS.get(code, "error")
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": exc.title,
        "status": code,
        "detail": exc.description or exc.title,
        "instance": req.path,
    }
    extra = getattr(exc, "extra", None)
    if isinstance(extra, dict):
        body.update(extra)
    write_problem(resp, body)


def handle_domain_error(
    req: falcon.Request, resp: falcon.Response, exc: DomainError, params: dict[str, Any]
) -> None:
    write_problem(resp, exc.problem(req.path))


def handle_outage(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    what = "PostgreSQL" if isinstance(exc, sqlalchemy.exc.SQLAlchemyError) else "Redis"
    log.warning("dependency outage (%s): %s", what, exc.__class__.__name__)
    resp.set_header("Retry-After", "5")
    write_problem(
        resp, ServiceUnavailable(f"{what} is unavailable; try again shortly").problem(req.path)
    )


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    # Falcon's own HTTPError handler is more specific, so only real faults arrive here.
    log.exception("unhandled error")
    write_problem(
        resp,
        {
            "type": problem_type("internal-error"),
            "title": "Internal server error",
            "status": 500,
            "detail": "an unexpected error happened; it was logged with the request id",
            "instance": req.path,
        },
    )


class ProblemError(falcon.HTTPError):
    """A Falcon HTTP error with a stable problem slug and extension members."""

    def __init__(
        self, status: int, title: str, detail: str, slug: str | None = None, **extra: Any
    ) -> None:
        super().__init__(
            falcon.code_to_http_status(status),
            title=title,
            description=detail,
            code=slug or SLUGS.get(status, "error"),  # type: ignore[arg-type]
        )
        self.extra = extra


def register(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(DomainError, handle_domain_error)
    for outage in OUTAGES:
        app.add_error_handler(outage, handle_outage)
    app.set_error_serializer(serialize_http_error)
