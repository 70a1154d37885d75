"""Authorization hooks (design.md "Auth"), applied per responder with `@falcon.before`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from api.errors import ProblemError
from salon.auth import ADMIN_ROLES, Principal

Hook = Callable[[falcon.Request, falcon.Response, Any, dict[str, Any]], None]


def require_roles(*roles: str) -> Hook:
    def hook(
        req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        principal: Principal | None = req.context.principal
        if principal is None:
            raise ProblemError(401, "Unauthorized", "this endpoint needs a bearer token")
        if principal.role not in roles:
            raise ProblemError(403, "Forbidden", f"role {principal.role!r} may not do this")

    hook.roles = roles  # type: ignore[attr-defined]  # read by the OpenAPI builder
    return hook


def require_staff_of_biz() -> Hook:
    """Staff roles, and a token that names the biz_entity whose data they manage."""
    roles_hook = require_roles(*ADMIN_ROLES)

    def hook(
        req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        roles_hook(req, resp, resource, params)
        if req.context.principal.biz is None:
            raise ProblemError(403, "Forbidden", "staff tokens must carry a 'biz' claim")

    hook.roles = ADMIN_ROLES  # type: ignore[attr-defined]
    return hook


admin_only = require_staff_of_biz()
