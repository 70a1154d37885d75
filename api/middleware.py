"""Request id, authentication, rate limiting and access logs, applied to every request."""

from __future__ import annotations

import logging
import random
import re
import time

import falcon
import redis

from api.errors import ProblemError
from salon.auth import InvalidToken, decode_token
from salon.bootstrap import Container
from salon.logs import request_id_var

log = logging.getLogger("api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Set by `api.repeats` when it already counted this request against the caller's rate.
ENV_RATE_COUNT = "salon.rate_count"
# Set by `api.repeats` for a request it passes on: when it arrived and its request id, so
# the time spent in front of Falcon is measured and logged with the request.
ENV_STARTED = "salon.started"
ENV_REQUEST_ID = "salon.request_id"
UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")


def request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token, else a fresh one."""
    # 32 random hex digits, as uuid4().hex but without building a UUID (every request), and
    # not from os.urandom: its getrandom() call lets go of the GIL (see `salon.resp.has_input`).
    # Not secret, only unique (`random` is seeded again in every forked worker).
    return given if given and _REQUEST_ID.match(given) else f"{random.getrandbits(128):032x}"


def log_access(method: str, path: str, status: str, elapsed_ms: float | None) -> None:
    log.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={"status": falcon.http_status_to_code(status), "ms": elapsed_ms},
    )


def rate_key(prefix: str, who: str, now: float) -> str:
    """The caller's counter of the current one-minute window."""
    return f"{prefix}:{who}:{int(now // 60)}"


class RequestIdMiddleware:
    """Echo a caller's X-Request-Id (or make one) and tag every log line of the request."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        rid = req.env.get(ENV_REQUEST_ID) or request_id(req.get_header("X-Request-Id"))
        req.context.request_id = rid
        req.context.started = req.env.get(ENV_STARTED) or time.perf_counter()
        request_id_var.set(rid)
        resp.set_header("X-Request-Id", rid)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        log_access(req.method, req.path, str(resp.status), elapsed_ms)
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
        if self.limit <= 0 or req.path in UNLIMITED_PATHS:
            return
        count = req.env.get(ENV_RATE_COUNT)
        if count is None:
            principal = req.context.principal
            who = principal.key if principal else (req.access_route[0] if req.access_route else "-")
            key = rate_key(self.prefix, who, time.time())
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
