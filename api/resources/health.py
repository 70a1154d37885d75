"""Probes: /healthz says the process lives; /readyz says its dependencies answer."""

from __future__ import annotations

from collections.abc import Callable

import falcon
from sqlalchemy import text

from api.errors import write_problem
from api.openapi import doc
from api.schemas.common import Health, Ready
from salon.bootstrap import Container
from salon.errors import problem_type


class Healthz:
    @doc("Process is alive", tag="ops", responses={200: Health})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Readyz:
    def __init__(self, container: Container) -> None:
        self.container = container

    def _checks(self) -> dict[str, Callable[[], object]]:
        c = self.container

        def postgres() -> object:
            with c.engine.connect() as conn:
                return conn.execute(text("SELECT 1")).scalar()

        return {"postgres": postgres, "redis": c.redis.ping, "broker": c.broker.client.ping}

    @doc(
        "PostgreSQL, Redis and the broker are reachable",
        tag="ops",
        responses={200: Ready, 503: Ready},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results: dict[str, str] = {}
        for name, check in self._checks().items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready", whatever its kind
                results[name] = f"unavailable: {exc.__class__.__name__}"
        failing = [n for n, r in results.items() if r != "ok"]
        if not failing:
            resp.media = {"status": "ready", "checks": results}
            return
        write_problem(
            resp,
            {
                "type": problem_type("not-ready"),
                "title": "Not ready",
                "status": 503,
                "detail": f"unavailable: {', '.join(failing)}",
                "checks": results,
            },
        )
