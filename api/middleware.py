"""Request id, authentication, rate limiting and access logs, applied to every request."""

from __future__ import annotations

import logging
import re
import time
import uuid

import falcon
import redis

from api.errors import ProblemError
from salon.auth import InvalidToken, decode_token
from salon.bootstrap import Container
from salon.logs import request_id_var

log = logging.getLogger("api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Echo a caller's X-Request-Id (or make one) and tag every log line of the request."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-Id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        req.context.request_id = rid
        req.context.started = time.perf_counter()
        request_id_var.set(rid)
        resp.set_header("X-Request-Id", rid)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        log.info(
            "%s %s %s",
            req.method,
            req.path,
            resp.status,
            extra={"status": falcon.http_status_to_code(resp.status), "ms": elapsed_ms},
        )
        request_id_var.set(None)


class AuthMiddleware:
    """Parse the bearer token into `req.context.principal` (None when anonymous).

    Authorization (which roles, which tenant) is decided per resource by hooks in `api.auth`.
    """

    def __init__(self, container: Container) -> None:
        self.settings = container.settings

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        header = req.get_header("Authorization")
        if not header:
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ProblemError(401, "Unauthorized", "use 'Authorization: Bearer <JWT>'")
        try:
            req.context.principal = decode_token(self.settings, token.strip())
        except InvalidToken as exc:
            raise ProblemError(401, "Unauthorized", f"invalid token: {exc}") from exc


class RateLimitMiddleware:
    """A fixed one-minute window per caller in Redis; fails open when Redis is down."""

    def __init__(self, container: Container) -> None:
        self.redis = container.redis
        self.limit = container.settings.rate_limit_per_minute
        self.prefix = f"{container.settings.redis_namespace}:rate"

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, str]
    ) -> None:
        if self.limit <= 0 or req.path in ("/healthz", "/readyz", "/metrics"):
            return
        principal = req.context.principal
        who = principal.key if principal else (req.access_route[0] if req.access_route else "-")
        window = int(time.time() // 60)
        key = f"{self.prefix}:{who}:{window}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = pipe.execute()
        except redis.RedisError:
            return  # an outage must not turn reads into errors; writes fail on their own
        if int(count) > self.limit:
            resp.set_header("Retry-After", str(60 - int(time.time()) % 60))
            raise ProblemError(429, "Too many requests", f"limit is {self.limit} per minute")
