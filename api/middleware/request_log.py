"""Every request's id (echoed or made) on its log lines, and one access log line per request."""

from __future__ import annotations

import logging
import random
import re
import time

import falcon

from salon.infra.logs import request_id_var

log = logging.getLogger("api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Set by `api.slots_entrance` for a request it passes on: when it arrived and its request id, so
# the time spent in front of Falcon is measured and logged with the request.
ENV_STARTED = "salon.started"
ENV_REQUEST_ID = "salon.request_id"


def request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token, else a fresh one."""
    # 32 random hex digits, as uuid4().hex but without building a UUID (every request), and not from
    # os.urandom: its getrandom() call lets go of the GIL, and under load wakes a thread waiting
    # for it for nothing. Not secret, only unique (`random` is seeded again in every forked worker).
    return given if given and _REQUEST_ID.match(given) else f"{random.getrandbits(128):032x}"


def log_access(method: str, path: str, status: str, elapsed_ms: float | None) -> None:
    log.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={"status": falcon.http_status_to_code(status), "ms": elapsed_ms},
    )


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
