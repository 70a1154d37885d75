"""`/metrics` for Prometheus to scrape.

Under gunicorn every worker is its own process: `salon api` points PROMETHEUS_MULTIPROC_DIR
at a fresh directory so `/metrics` on any worker reports the sum of all of them.
"""

from __future__ import annotations

import os

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from api.openapi import doc


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
