"""A fixed one-minute window of requests per caller and route class, counted in Redis.

The caller is the token's principal, else the client address (`api.client_address`). Counting
happens before routing and before a bad token is refused, so unknown paths (404) and rejected
tokens (401) count against the caller too. Three classes, each with its own limit: reads,
booking writes (POST/PATCH under /v1/bookings and /admin/v1/bookings) and other writes (the
admin API's). With Redis unreachable reads go on uncounted, writes are refused (503): a write
is what a flood must not get through.
"""

from __future__ import annotations

import logging
import time

import falcon
import redis

from api.client_address import ClientAddress
from api.errors import ProblemError
from salon.bootstrap import Container
from salon.settings import Settings

log = logging.getLogger(__name__)

# Set by `api.slots_entrance` when it already counted this request against the caller's rate.
ENV_RATE_COUNT = "salon.rate_count"
UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")

READS, BOOKING_WRITES, ADMIN_WRITES = "read", "booking-write", "admin-write"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
BOOKING_PREFIXES = ("/v1/bookings", "/admin/v1/bookings")
OUTAGE_RETRY_AFTER = "5"
_LOG_EVERY_SECONDS = 10.0


def rate_key(prefix: str, route_class: str, who: str, now: float) -> str:
    """The caller's counter of the current one-minute window for a route class."""
    return f"{prefix}:{route_class}:{who}:{int(now // 60)}"


def route_class(method: str, path: str) -> str:
    if method not in WRITE_METHODS:
        return READS
    if path.startswith(BOOKING_PREFIXES):
        return BOOKING_WRITES
    return ADMIN_WRITES


def limits(settings: Settings) -> dict[str, int]:
    """Each class's requests per minute; 0 turns a class off, and reads' 0 turns all off (the
    tests' switch)."""
    if settings.rate_limit_per_minute <= 0:
        return {READS: 0, BOOKING_WRITES: 0, ADMIN_WRITES: 0}
    return {
        READS: settings.rate_limit_per_minute,
        BOOKING_WRITES: settings.rate_limit_booking_writes_per_minute,
        ADMIN_WRITES: settings.rate_limit_admin_writes_per_minute,
    }


class RateLimitMiddleware:
    """Counts every request before routing; runs after `AuthMiddleware`, whose refusal of a bad
    token (`req.context.token_error`) it raises once the request was counted."""

    def __init__(self, container: Container, client: ClientAddress) -> None:
        self.redis = container.redis
        self.limits = limits(container.settings)
        self.client = client
        self.prefix = f"{container.settings.redis_namespace}:rate"
        self._logged_at = 0.0

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._count(req, resp)
        token_error = getattr(req.context, "token_error", None)
        if token_error is not None:
            raise token_error

    def _count(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in UNLIMITED_PATHS:
            return
        kind = route_class(req.method, req.path)
        limit = self.limits[kind]
        if limit <= 0:
            return
        count = req.env.get(ENV_RATE_COUNT) if kind == READS else None
        if count is None:
            principal = req.context.principal
            who = principal.key if principal else self.client.address(req.env)
            key = rate_key(self.prefix, kind, who, time.time())
            try:
                pipe = self.redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, 61)
                count, _ = pipe.execute()
            except redis.RedisError as exc:
                self._log_outage(kind, exc)
                if kind == READS:
                    return  # an outage must not turn reads into errors
                resp.set_header("Retry-After", OUTAGE_RETRY_AFTER)
                raise ProblemError(
                    503, "Service unavailable", "the rate limiter is unavailable; try again shortly"
                ) from exc
        if int(count) > limit:
            resp.set_header("Retry-After", str(60 - int(time.time()) % 60))
            raise ProblemError(429, "Too many requests", f"limit is {limit} per minute")

    def _log_outage(self, kind: str, exc: Exception) -> None:
        # Once per interval, not once per request of an outage.
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_SECONDS:
            self._logged_at = now
            action = "reads pass uncounted" if kind == READS else "writes are refused"
            log.warning("rate limiter: Redis unavailable (%s); %s", exc.__class__.__name__, action)
