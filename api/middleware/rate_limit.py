"""A fixed one-minute window of requests per caller, counted in Redis."""

from __future__ import annotations

import time

import falcon
import redis

from api.errors import ProblemError
from salon.bootstrap import Container

# Set by `api.slots_entrance` when it already counted this request against the caller's rate.
ENV_RATE_COUNT = "salon.rate_count"
UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")


def rate_key(prefix: str, who: str, now: float) -> str:
    """The caller's counter of the current one-minute window."""
    return f"{prefix}:{who}:{int(now // 60)}"


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
