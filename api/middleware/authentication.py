"""Who is asking: the bearer token parsed into `req.context.principal`."""

from __future__ import annotations

import falcon

from api.errors import ProblemError
from salon.auth import InvalidToken, decode_token
from salon.bootstrap import Container

METRICS_PATH = "/metrics"


class AuthMiddleware:
    """Parse the bearer token into `req.context.principal` (None when anonymous).

    Authorization (which roles, which tenant) is decided by the table in `api.access`. A bad
    token's 401 is kept in `req.context.token_error` and raised by the rate limiter once it
    has counted the request against the caller's address. `/metrics` checks its own token.
    """

    def __init__(self, container: Container) -> None:
        self.settings = container.settings

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        req.context.token_error = None
        header = req.get_header("Authorization")
        if not header or req.path == METRICS_PATH:
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            req.context.token_error = ProblemError(
                401, "Unauthorized", "use 'Authorization: Bearer <JWT>'"
            )
            return
        try:
            req.context.principal = decode_token(self.settings, token.strip())
        except InvalidToken as exc:
            req.context.token_error = ProblemError(401, "Unauthorized", f"invalid token: {exc}")
