"""Prometheus metrics: request latency per route, and `/metrics` to scrape them.

Under gunicorn every worker is its own process: `salon api` points PROMETHEUS_MULTIPROC_DIR
at a fresh directory so `/metrics` on any worker reports the sum of all of them.
"""

from __future__ import annotations

import os
import time

import falcon
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
)

from api.middleware import ENV_STARTED
from api.openapi import doc

REQUEST_SECONDS = Histogram(
    "salon_http_request_seconds",
    "API request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class MetricsMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        # From when `api.repeats` saw the request, if it did.
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
        REQUEST_SECONDS.labels(route, req.method, status).observe(time.perf_counter() - started)


class Metrics:
    @doc("Prometheus metrics", tag="ops", content_type="text/plain", responses={200: None})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            resp.data = generate_latest(registry)
        else:
            resp.data = generate_latest()
        resp.content_type = CONTENT_TYPE_LATEST
