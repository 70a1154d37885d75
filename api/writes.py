"""The API half of the write path: Idempotency-Key, `Prefer`, and the bounded wait.

Every POST/PATCH resource calls `submit_write`; it never touches tables itself.
"""

from __future__ import annotations

import re
from typing import Any

import falcon

from api.errors import ProblemError, write_problem
from salon.bootstrap import Container
from salon.errors import IdempotencyKeyMissing
from salon.write_path.model import NewWriteRequest, Operation
from salon.write_path.submit import submit

# An Idempotency-Key: 1-255 visible ASCII characters (the OpenAPI document says so too).
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)
_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)")


def wait_seconds(req: falcon.Request, default: float, maximum: float) -> float:
    """RFC 7240: `Prefer: respond-async` answers at once, `Prefer: wait=N` bounds the wait."""
    prefer = req.get_header("Prefer") or ""
    if "respond-async" in prefer:
        return 0.0
    match = _WAIT.search(prefer)
    return min(float(match.group(1)), maximum) if match else default


def submit_write(
    req: falcon.Request,
    resp: falcon.Response,
    container: Container,
    operation: Operation,
    body: dict[str, Any],
    params: dict[str, str] | None = None,
) -> None:
    key = req.get_header("Idempotency-Key")
    if not key:
        raise IdempotencyKeyMissing("send an Idempotency-Key header (a new UUID per intent)")
    if not _KEY.match(key):
        raise ProblemError(400, "Bad Idempotency-Key", "1-255 visible ASCII characters")
    settings = container.settings
    cmd = NewWriteRequest(
        operation=operation.name,
        principal=req.context.principal,
        key=key,
        method=req.method,
        path=req.path,
        body=body,
        params=params or {},
        request_id=req.context.request_id,
    )
    wait = wait_seconds(req, settings.api_wait_seconds, settings.api_max_wait_seconds)
    submitted = submit(container, cmd, wait)
    outcome = submitted.outcome
    if submitted.replayed:
        resp.set_header("Idempotent-Replayed", "true")
    if outcome is None:
        resp.status = falcon.HTTP_202
        resp.set_header("Location", f"/v1/requests/{submitted.write_id}")
        resp.media = {"id": str(submitted.write_id), "status": "pending"}
        return
    if outcome.status >= 400:
        write_problem(resp, outcome.body)
    else:
        resp.status = falcon.code_to_http_status(outcome.status)
        if outcome.status != 204:
            resp.media = outcome.body
    if outcome.location:
        resp.set_header("Location", outcome.location)
    resp.set_header("X-Write-Id", str(submitted.write_id))
