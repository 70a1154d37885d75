"""Who is asking: the bearer token parsed into `req.context.principal`."""

from __future__ import annotations

import falcon

from api.errors import ProblemError
from salon.auth import InvalidToken, decode_token
from salon.bootstrap import Container


class AuthMiddleware:
    """Parse the bearer token into `req.context.principal` (None when anonymous).

    Authorization (which roles, which tenant) is decided by the table in `api.access`.
    """

    def __init__(self, container: Container) -> None:
        self.settings = container.settings

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        header = req.get_header("Authorization")
        if not header:
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ProblemError(401, "Unauthorized", "use 'Authorization: Bearer <JWT>'")
        try:
            req.context.principal = decode_token(self.settings, token.strip())
        except InvalidToken as exc:
            raise ProblemError(401, "Unauthorized", f"invalid token: {exc}") from exc
