"""Headers every response carries, from the full path and the /v1/slots fast path alike.

The API serves JSON and its own docs pages: nothing of it is meant to be framed, sniffed as
another type, or to leak its URL (ids, tokens in a query) to another site; what a token or
session reached must not be kept by a shared cache or the browser.
"""

from __future__ import annotations

import falcon

ALWAYS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # Only `frame-ancestors`: the docs pages run Swagger UI's and ReDoc's scripts.
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)
AUTHENTICATED: tuple[tuple[str, str], ...] = (*ALWAYS, ("Cache-Control", "no-store"))


def security_headers(authenticated: bool) -> tuple[tuple[str, str], ...]:
    """The headers of a response; `authenticated`: the request carried credentials."""
    return AUTHENTICATED if authenticated else ALWAYS


class SecurityHeadersMiddleware:
    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        for name, value in security_headers(req.get_header("Authorization") is not None):
            resp.set_header(name, value)
