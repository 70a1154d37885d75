"""Dramatiq middleware carrying the API's X-Request-Id into the worker's log lines."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from salon.infra.logs import request_id_var


class RequestIdMiddleware(Middleware):
    @property
    def actor_options(self) -> set[str]:
        return {"request_id"}

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        request_id_var.set(message.options.get("request_id"))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        request_id_var.set(None)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        request_id_var.set(None)
