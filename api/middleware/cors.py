"""Which browser origins may read the API's answers (CORS), from `CORS_ORIGINS`.

The admin API is never open to another origin: staff tools are served by the API's own origin
(or call it from a server). The public API is open to the configured origins only ("*": any;
none by default). Credentials are bearer tokens, never cookies a browser adds by itself, so
`Access-Control-Allow-Credentials` is never sent. The /v1/slots fast path asks the same policy.
"""

from __future__ import annotations

import falcon

ADMIN_PREFIX = "/admin"
# What a browser client may read besides the basic headers.
EXPOSED = "Location, Retry-After, X-Request-Id, X-Session-Id, X-Exposure-Variant"
PREFLIGHT_MAX_AGE = "600"


class CorsPolicy:
    def __init__(self, origins: str) -> None:
        listed = {o.strip().rstrip("/") for o in origins.split(",") if o.strip()}
        self.any = "*" in listed
        self.origins = frozenset(listed - {"*"})

    def allow_origin(self, path: str, origin: str | None) -> str | None:
        """The `Access-Control-Allow-Origin` value for a request from `origin`, or None."""
        if origin is None or path.startswith(ADMIN_PREFIX):
            return None
        if self.any:
            return "*"
        return origin if origin in self.origins else None

    def headers(self, path: str, origin: str | None) -> list[tuple[str, str]]:
        """The CORS headers of an answer (not a preflight) to a request from `origin`."""
        allowed = self.allow_origin(path, origin)
        out: list[tuple[str, str]] = []
        if self.origins and not path.startswith(ADMIN_PREFIX):
            out.append(("Vary", "Origin"))  # the answer differs by origin: caches must know
        if allowed is not None:
            out += [
                ("Access-Control-Allow-Origin", allowed),
                ("Access-Control-Expose-Headers", EXPOSED),
            ]
        return out


class CorsMiddleware:
    def __init__(self, policy: CorsPolicy) -> None:
        self.policy = policy

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        origin = req.get_header("Origin")
        for name, value in self.policy.headers(req.path, origin):
            resp.set_header(name, value)
        if (
            req.method == "OPTIONS"
            and req.get_header("Access-Control-Request-Method")
            and self.policy.allow_origin(req.path, origin) is not None
        ):
            # A preflight: Falcon's default OPTIONS responder has set `Allow`.
            resp.set_header("Access-Control-Allow-Methods", resp.get_header("Allow") or "GET")
            asked = req.get_header("Access-Control-Request-Headers")
            if asked:
                resp.set_header("Access-Control-Allow-Headers", asked)
            resp.set_header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE)
