"""When a process's kept day lists are recomputed (`salon.public_times.day_times`): in the
background, spread out in time, never used past a hold's expiry or MAX_AGE."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from types import SimpleNamespace
from typing import Any

from salon.infra.clock import SystemClock
from salon.public_times.day_times import (
    MAX_AGE,
    NEAR_BUMPS,
    SUSPECT_GRACE,
    DayTimes,
    DayTimesCache,
    trusted_until,
)
from salon.public_times.versions import Versions

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


class CountedLists(DayTimesCache):
    """DayTimesCache whose computation is counted and stamped instead of reading PostgreSQL."""

    def __init__(self) -> None:
        settings = SimpleNamespace(redis_namespace="t")
        container = SimpleNamespace(settings=settings, clock=SystemClock())
        super().__init__(container)  # type: ignore[arg-type]
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


# --- after the lost-change watch's catalogue bump ------------------------------------------


class ShapedLists(CountedLists):
    """CountedLists whose lists remember the offer's shape, and which counts how many are
    computed at once."""

    def __init__(self) -> None:
        super().__init__()
        self.container.redis = None  # type: ignore[attr-defined]  # asked only if a stylist moved
        self.background = threading.Event()  # the refresh thread waits while it is clear
        self.background.set()
        self.running = 0
        self.most_at_once = 0
        self._count = threading.Lock()

    def _compute(self, o: Any, day: dt.date, versions: Versions, now: dt.datetime) -> DayTimes:
        if threading.current_thread().name.startswith("day-refresh"):
            self.background.wait(5)
        with self._count:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(0.002)  # long enough for computations to overlap if they could
            times = super()._compute(o, day, versions, now)
        finally:
            with self._count:
                self.running -= 1
        return DayTimes(times.free, versions, times.valid_until, times.refresh_after, o.shape)


SHAPED = SimpleNamespace(location_key="l", service_key="s", stylist_keys=("a",), shape="60 min")
DAYS = [DAY + dt.timedelta(days=i) for i in range(40)]
BUMPED = Versions(2, (("a", 1),))  # the watch's bump: the catalogue one ahead


def test_after_the_watchs_bump_requests_get_the_old_lists_while_one_thread_recomputes_them() -> (
    None
):
    lists = ShapedLists()
    old = {day: lists.day(SHAPED, day, VERSIONS, NOW) for day in DAYS}  # type: ignore[arg-type]
    assert len(lists.computed) == len(DAYS)
    lists.computed.clear()
    lists.background.clear()
    later = NOW + dt.timedelta(seconds=1)
    served = [lists.day(SHAPED, day, BUMPED, later) for day in DAYS for _ in range(3)]  # type: ignore[arg-type]
    # Nobody waited and no request computed anything: each got the list it had, not current,
    # and not to be used (nor anything chosen from it kept) past the grace.
    assert lists.computed == []
    assert all(s.free is old[s_day].free for s, s_day in zip(served, sorted(DAYS * 3), strict=True))
    assert all(not s.current and s.valid_until == later + SUSPECT_GRACE for s in served)
    lists.background.set()
    assert _wait_for(lambda: len(lists.computed) == len(DAYS))  # each once, not three times
    assert all(name.startswith("day-refresh") for name in lists.computed)
    assert lists.most_at_once == 1  # one list at a time: the recovery's rate is bounded
    fresh = [lists.day(SHAPED, day, BUMPED, later) for day in DAYS]  # type: ignore[arg-type]
    assert all(f.current and f.versions == BUMPED for f in fresh)
    assert len(lists.computed) == len(DAYS)


def test_past_the_grace_a_list_not_recomputed_yet_is_computed_by_the_request() -> None:
    lists = ShapedLists()
    first = lists.day(SHAPED, DAY, VERSIONS, NOW)  # type: ignore[arg-type]
    busy = DAY + dt.timedelta(days=1)  # the refresh thread is busy with this one meanwhile
    lists.day(SHAPED, busy, VERSIONS, NOW)  # type: ignore[arg-type]
    lists.background.clear()
    seen = NOW + dt.timedelta(seconds=1)
    lists.day(SHAPED, busy, BUMPED, seen)  # type: ignore[arg-type]
    assert lists.day(SHAPED, DAY, BUMPED, seen).free is first.free  # type: ignore[arg-type]
    halfway = seen + SUSPECT_GRACE / 2
    assert lists.day(SHAPED, DAY, BUMPED, halfway).free is first.free  # type: ignore[arg-type]
    late = lists.day(SHAPED, DAY, BUMPED, seen + SUSPECT_GRACE)  # type: ignore[arg-type]
    assert late.current and late.versions == BUMPED
    assert lists.computed[-1] == threading.current_thread().name
    lists.background.set()


def test_a_changed_offer_or_a_counter_started_again_is_computed_by_the_request() -> None:
    lists = ShapedLists()
    lists.day(SHAPED, DAY, VERSIONS, NOW)  # type: ignore[arg-type]
    reshaped = SimpleNamespace(**{**vars(SHAPED), "shape": "90 min"})  # a real catalogue edit
    changed = lists.day(reshaped, DAY, BUMPED, NOW)  # type: ignore[arg-type]
    assert changed.current and lists.computed[-1] == threading.current_thread().name
    # A Redis that lost its data starts the counter again at a random value: far ahead or
    # behind, never a bump away.
    ahead = Versions(BUMPED.catalogue + NEAR_BUMPS + 1, VERSIONS.stylists)
    assert lists.day(reshaped, DAY, ahead, NOW).current  # type: ignore[arg-type]
    behind = Versions(BUMPED.catalogue - 1, VERSIONS.stylists)
    assert lists.day(reshaped, DAY, behind, NOW).current  # type: ignore[arg-type]
    assert len(lists.computed) == 4
