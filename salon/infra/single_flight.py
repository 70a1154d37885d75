"""One computation per key at a time in a process; callers arriving meanwhile share its result.

When a write changes a calendar or a day's free times, every API thread asking for it at that
moment would otherwise recompute it at once, each paying the same SQL. The shared result is at
most one computation old (the leader started before the followers arrived), which a read of
free times can afford: a hold checks again in its own transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.failed = False


class SingleFlight(Generic[T]):
    def __init__(self, wait_seconds: float = 5.0) -> None:
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}

    def run(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            # A leader that failed or takes too long: compute for ourselves.
            if flight.done.wait(self.wait_seconds) and not flight.failed:
                return flight.result  # type: ignore[return-value]
            return compute()
        try:
            flight.result = compute()
            return flight.result
        except BaseException:
            flight.failed = True
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
