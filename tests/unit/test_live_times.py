"""When a process's kept day lists are recomputed (`salon.live_times`): in the background,
spread out in time, never used past a hold's expiry or MAX_AGE."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from types import SimpleNamespace
from typing import Any

from salon.live_times import MAX_AGE, DayTimes, LiveTimes, trusted_until
from salon.versions import Versions

NOW = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)


def test_lists_computed_together_are_refreshed_spread_out_and_never_used_past_max_age() -> None:
    rng = random.Random(3)
    bounds = [trusted_until(NOW, None, rng.random()) for _ in range(200)]
    assert all(until == NOW + MAX_AGE for until, _ in bounds)
    refreshes = [after for _, after in bounds]
    assert all(NOW + MAX_AGE / 2 <= r < NOW + MAX_AGE * 3 / 4 for r in refreshes)
    assert max(refreshes) - min(refreshes) > MAX_AGE / 6  # spread, not one moment
    hold_expires = NOW + MAX_AGE / 4  # an expiring hold frees time: it comes first
    assert trusted_until(NOW, hold_expires, 0.99) == (hold_expires, hold_expires)


class CountedLists(LiveTimes):
    """LiveTimes whose computation is counted and stamped instead of reading PostgreSQL."""

    def __init__(self) -> None:
        super().__init__(SimpleNamespace(settings=SimpleNamespace(redis_namespace="t")))  # type: ignore[arg-type]
        self.computed: list[str] = []
        self.release = threading.Event()
        self.release.set()

    def _compute(self, o: Any, day: dt.date, versions: Versions, now: dt.datetime) -> DayTimes:
        self.release.wait(5)
        self.computed.append(threading.current_thread().name)
        until, after = trusted_until(now, None, 0.0)
        return DayTimes(None, versions, until, after)  # type: ignore[arg-type]


OFFER = SimpleNamespace(location_key="l", service_key="s", stylist_keys=("a",))
DAY = dt.date(2026, 12, 10)
VERSIONS = Versions(1, (("a", 1),))


def _wait_for(predicate: Any) -> bool:
    deadline = time.monotonic() + 5
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(predicate())


def test_an_old_list_is_served_while_it_is_recomputed_in_the_background() -> None:
    lists = CountedLists()
    first = lists.day(OFFER, DAY, VERSIONS, NOW)  # type: ignore[arg-type]
    assert len(lists.computed) == 1
    assert lists.day(OFFER, DAY, VERSIONS, NOW + MAX_AGE / 4) is first  # young: kept
    assert len(lists.computed) == 1
    lists.release.clear()  # the background computation waits until released
    old = NOW + MAX_AGE * 3 / 4
    served = [lists.day(OFFER, DAY, VERSIONS, old) for _ in range(5)]  # type: ignore[arg-type]
    assert all(s is first for s in served)  # nobody waited for it
    lists.release.set()
    assert _wait_for(lambda: len(lists.computed) == 2)  # once, not five times
    assert lists.computed[1].startswith("day-refresh")
    assert _wait_for(lambda: lists.day(OFFER, DAY, VERSIONS, old) is not first)  # type: ignore[arg-type]


def test_a_list_past_max_age_is_computed_by_the_request() -> None:
    lists = CountedLists()
    first = lists.day(OFFER, DAY, VERSIONS, NOW)  # type: ignore[arg-type]
    again = lists.day(OFFER, DAY, VERSIONS, NOW + MAX_AGE)  # type: ignore[arg-type]
    assert again is not first
    assert lists.computed[1] == threading.current_thread().name
