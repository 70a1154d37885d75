"""Authorization: every routed request checked against the table of `api.access`."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from api.access import ACCESS, decide
from api.errors import ProblemError

log = logging.getLogger(__name__)


def _responds(resource: object, method: str) -> bool:
    return callable(getattr(resource, f"on_{method.lower()}", None))


class AccessMiddleware:
    """Checks every routed request against `ACCESS` (after authentication has set
    `req.context.principal`); keeps the grant in `req.context.grant` for the resource."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        req.context.grant = None
        # No resource: Falcon answers 404 itself. OPTIONS: CORS preflight, no data.
        if resource is None or req.method == "OPTIONS":
            return
        access = ACCESS.get((req.uri_template or "", req.method))
        if access is None:
            if not _responds(resource, req.method):
                return  # Falcon answers 405
            log.error("no access rule for %s %s: refused", req.method, req.uri_template)
            raise ProblemError(403, "Forbidden", "this route has no access rule")
        req.context.grant = decide(access, req.context.principal)
