"""Request latency per route template, method and status, for Prometheus (`/metrics`)."""

from __future__ import annotations

import time

import falcon
from prometheus_client import Histogram

from api.middleware.request_log import ENV_STARTED

REQUEST_SECONDS = Histogram(
    "salon_http_request_seconds",
    "API request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


# A method outside these is counted as "other": made-up methods must not create series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


class MetricsMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        # From when `api.slots_entrance` saw the request, if it did.
        req.context.metrics_started = req.env.get(ENV_STARTED) or time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "metrics_started", None)
        if started is None:
            return
        # The template, not the path: ids must not explode the label set.
        route = req.uri_template or "unmatched"
        status = str(falcon.http_status_to_code(resp.status))
        REQUEST_SECONDS.labels(route, method_label(req.method), status).observe(
            time.perf_counter() - started
        )
