"""`/metrics` for Prometheus to scrape.

Under gunicorn every worker is its own process: `salon api` points PROMETHEUS_MULTIPROC_DIR
at a fresh directory so `/metrics` on any worker reports the sum of all of them.

Guarded (README, "Metrics"): with `METRICS_TOKEN` set, a scrape sends
`Authorization: Bearer <METRICS_TOKEN>`; without it, only a caller on the same host (the
socket's loopback peer, never a forwarded address) is answered. Others get 403: the series
tell request rates and error counts, which are nobody else's business.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from api.errors import ProblemError
from api.openapi import doc


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Metrics:
    def __init__(self, token: str) -> None:
        self.token = token

    def allowed(self, req: falcon.Request) -> bool:
        if not self.token:
            return _loopback(req.remote_addr)  # the socket's peer, never a forwarded one
        scheme, _, given = (req.get_header("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    @doc("Prometheus metrics", tag="ops", content_type="text/plain", responses={200: None})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.allowed(req):
            raise ProblemError(
                403,
                "Forbidden",
                "send 'Authorization: Bearer <METRICS_TOKEN>' (or scrape from the same host"
                " when METRICS_TOKEN is not set)",
            )
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            resp.data = generate_latest(registry)
        else:
            resp.data = generate_latest()
        resp.content_type = CONTENT_TYPE_LATEST
