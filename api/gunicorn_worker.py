"""gunicorn's gthread worker, with the errors gunicorn answers itself as problem+json.

A request line or header block over gunicorn's limits (414, 431), a malformed request (400) or
a failure before the app is reached is answered by gunicorn, not the app, as an HTML page.
This worker makes those answers `application/problem+json` like every other error of the API
(api/errors.py), with the same security headers. `salon api` runs it
(`--worker-class api.gunicorn_worker.ProblemThreadWorker`).

gunicorn has no hook for these answers: its `Worker.handle_error` writes them with
`gunicorn.util.write_error`, which this worker replaces, in its own process only, when it
starts.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from api.errors import PROBLEM_JSON, SLUGS
from api.middleware.security_headers import security_headers
from salon.errors import problem_type


def problem_response(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP response gunicorn sends for an error it handles itself."""
    body = json.dumps(
        {
            "type": problem_type(SLUGS.get(status, "error")),
            "title": reason,
            "status": status,
            "detail": message or reason,
        }
    ).encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Connection: close",
        f"Content-Type: {PROBLEM_JSON}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in security_headers(False)),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body


def write_problem_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, problem_response(status_int, reason, mesg))


class ProblemThreadWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> Any:
        util.write_error = write_problem_error
        return super().init_process()
