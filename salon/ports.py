"""The small interfaces services depend on, implemented by the edges and wired by the root.

A service sends work to the workers through a `Dispatcher`, never through Dramatiq or the
broker: the one way to send work, named by what it asks for. `workers.actors.ActorDispatcher`
implements it over the Dramatiq actors; `salon.bootstrap` puts one in the container.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol


class Dispatcher(Protocol):
    """Every message the product sends. Each call enqueues one message carrying ids only and
    raises redis-py's errors when the broker cannot take it (callers decide what a lost send
    means: most are resumed by a scheduler job)."""

    def execute_write(self, write_id: uuid.UUID, request_id: str | None) -> None: ...

    def plan_generation(self, job_id: uuid.UUID) -> None: ...

    def generate_chunk(
        self, job_id: uuid.UUID, stylist_id: uuid.UUID, location_id: uuid.UUID, week: dt.date
    ) -> None: ...

    def generate_horizon(self) -> None: ...

    def expire_holds(self) -> None: ...

    def purge_write_requests(self) -> None: ...
