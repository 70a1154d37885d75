"""Every free start of one day for one offer, computed once per process and shared by customers.

A new customer's exposure is a seeded choice over the same list every other customer of that
location, service and day gets: computing it per customer (one SQL statement and ~350
candidates built each time) was ~85 % of the API's CPU under load. The list is kept per
process, tagged with the versions it was computed under (catalogue and stylists, fetched from
Redis by every request anyway; when they moved, the changed dates say whether this day is
still current) and with the moment the first live hold in it expires, since
an expired hold frees its time without any write.

The list ignores the notice window (it moves with the clock); callers filter by `Window`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from cachetools import FIFOCache, LRUCache

from models.exposure import CandidateRow, FreeDay
from salon.infra.single_flight import SingleFlight
from salon.ports import Reads
from salon.public_times.free_times import Offer, Window, free_starts, hold_expiries
from salon.public_times.versions import Versions, dirty_local_dates

log = logging.getLogger(__name__)


# The longest a list is trusted without any version moving. A lost version bump is made up for by
# the scheduler within a minute (`salon.public_times.version_repair`); this only bounds changes made
# behind the application's back. A list is recomputed in the background from a random point between
# half and three quarters of it (requests go on using it meanwhile): lists computed together (a cold
# process computes hundreds in its first seconds) would otherwise all expire together, and the
# requests that found them expired would each wait for their SQL.
MAX_AGE = dt.timedelta(minutes=30)
MAX_ENTRIES = 1024

# A catalogue change that leaves an offer's shape as it was cannot, by itself, make the day lists of
# that offer wrong. What it may stand for is the lost-change watch's bump
# (`salon.public_times.version_repair`: changes whose own bumps never reached Redis, which the
# design already lets stand for up to ~50 s, the watch's period and settling time). Recomputing
# every kept list at once, in the requests that find them (hundreds per process, all API processes
# together, each request waiting for its SQL), was the stampede after a Redis that lost its data.
# Such a list is served for at most SUSPECT_GRACE after this process first saw the new catalogue
# while the refresh thread recomputes it (the lists requests ask for, in the order they ask, one at
# a time per process); one not recomputed by then is computed by the request, as any list that is no
# longer current. A counter more than NEAR_BUMPS ahead was started again (Redis lost its data: a
# random value), not bumped: nothing kept is served.
SUSPECT_GRACE = dt.timedelta(seconds=10)
NEAR_BUMPS = 64

DayKey = tuple[str, str, str, dt.date]
NO_VERSIONS = Versions(-1, ())


@dataclass(frozen=True)
class DayTimes:
    free: FreeDay  # ignores the notice window: see `within`
    versions: Versions
    valid_until: dt.datetime  # never used after this (a hold in it expires, or MAX_AGE)
    refresh_after: dt.datetime  # recomputed in the background from this moment on
    shape: Hashable = None  # the offer's `shape` it was computed for
    # False: computed under an older catalogue and served while it is recomputed, at most
    # until `valid_until` (see SUSPECT_GRACE): nothing derived from it may outlive that.
    current: bool = True

    def within(self, window: Window) -> FreeDay:
        return self.free.between(window.earliest, window.latest)


def candidate_rows(o: Offer, rows: Any) -> list[CandidateRow]:
    """The free-start rows as `FreeDay` keeps them (see `models.exposure.CandidateRow`); what
    many rows share (a start's text and local time, a stylist's ids) is made once."""
    starts: dict[dt.datetime, tuple[str, dt.datetime]] = {}
    stylists: dict[Any, tuple[str, str]] = {}
    out: list[CandidateRow] = []
    for r in rows:
        start = r.start_at
        stamp = starts.get(start)
        if stamp is None:
            stamp = starts[start] = (f"{start:%Y%m%dT%H%M%SZ}", start.astimezone(o.zone))
        ids = stylists.get(r.stylist_id)
        if ids is None:
            ids = stylists[r.stylist_id] = (str(r.stylist_id), r.stylist_id.hex)
        out.append(
            (
                f"{ids[0]}@{stamp[0]}",
                ids[1],
                r.slot_id.hex,
                start,
                r.end_at,
                stamp[1],
                start - r.run_start,
                r.run_end - r.end_at,
            )
        )
    return out


def trusted_until(
    now: dt.datetime, first_expiry: dt.datetime | None, draw: float
) -> tuple[dt.datetime, dt.datetime]:
    """(until when, after when) a list computed `now` may be used, and should be recomputed
    in the background, without a version moving: until the first expiry of a hold in it and
    at most MAX_AGE; recomputed from a point between half and three quarters of MAX_AGE set
    by `draw` (uniform in [0, 1))."""
    until = now + MAX_AGE if first_expiry is None else min(first_expiry, now + MAX_AGE)
    return until, min(until, now + MAX_AGE * (0.5 + draw / 4))


def whole_days(day: dt.date) -> Window:
    """A window wider than any zone's version of `day`: only the generated slots bound it."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return Window(start - dt.timedelta(days=2), start + dt.timedelta(days=3))


class DayTimesCache:
    def __init__(self, container: Reads, *, max_entries: int = MAX_ENTRIES) -> None:
        self.container = container
        self.max_entries = max_entries
        # Not thread-safe: used under `_lock`.
        self._days: LRUCache[DayKey, DayTimes] = LRUCache(max_entries)
        self._lock = threading.Lock()
        self._flights: SingleFlight[DayTimes] = SingleFlight()
        self._refreshing: set[DayKey] = set()
        self._refresher: ThreadPoolExecutor | None = None
        self._refresher_pid = 0
        self._catalogues_seen: FIFOCache[int, dt.datetime] = FIFOCache(NEAR_BUMPS)

    def day(self, o: Offer, day: dt.date, versions: Versions | None, now: dt.datetime) -> DayTimes:
        """The day's free starts under `versions` (None: Redis is down, so nothing can tell
        a kept list is current: always compute)."""
        key = (o.location_key, o.service_key, ",".join(o.stylist_keys), day)
        if versions is not None:
            if versions.catalogue not in self._catalogues_seen:
                self._saw(versions.catalogue, now)
            with self._lock:
                hit = self._days.get(key)
            if hit is not None and now < hit.valid_until:
                if hit.versions == versions:
                    if now >= hit.refresh_after:
                        self._refresh_later(key, o, day, versions)
                    return hit
                # Versions moved: still current if no change reached this day.
                ns = self.container.settings.redis_namespace
                dirty = dirty_local_dates(self.container.redis, ns, versions, hit.versions)
                if dirty is not None and day not in dirty:
                    return self._keep(key, replace(hit, versions=versions))
                grace_until = self._grace_until(hit, o, day, versions, now)
                if grace_until is not None:
                    self._refresh_later(key, o, day, versions)
                    until = min(hit.valid_until, grace_until)
                    return replace(hit, valid_until=until, current=False)
        if versions is None:
            return self._compute(o, day, NO_VERSIONS, now)
        return self._flights.run(
            (key, versions), lambda: self._keep(key, self._compute(o, day, versions, now))
        )

    def _grace_until(
        self, hit: DayTimes, o: Offer, day: dt.date, versions: Versions, now: dt.datetime
    ) -> dt.datetime | None:
        """Until when `hit` may be served while it is recomputed (see SUSPECT_GRACE); None:
        not at all (the offer changed, a stylist's change reached this day, the counter was
        started again, or the grace is over)."""
        ahead = versions.catalogue - hit.versions.catalogue
        if not 0 < ahead <= NEAR_BUMPS or hit.shape != o.shape:
            return None
        # The stylists' own changes are known by date: any on this day rules the list out.
        same_catalogue = replace(hit.versions, catalogue=versions.catalogue)
        ns = self.container.settings.redis_namespace
        dirty = dirty_local_dates(self.container.redis, ns, versions, same_catalogue)
        if dirty is None or day in dirty:
            return None
        with self._lock:
            seen = [
                self._catalogues_seen[v]
                for v in range(hit.versions.catalogue + 1, versions.catalogue + 1)
                if v in self._catalogues_seen
            ]
        until = min(seen, default=now) + SUSPECT_GRACE
        return until if now < until else None

    def _saw(self, catalogue: int, now: dt.datetime) -> None:
        """When this process first saw each recent catalogue version (the grace's start)."""
        with self._lock:
            if catalogue in self._catalogues_seen:
                return
            self._catalogues_seen[catalogue] = now

    def _refresh_later(self, key: DayKey, o: Offer, day: dt.date, versions: Versions) -> None:
        """Recompute the list in this process's refresh thread (once at a time per day)."""
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
            if self._refresher is None or self._refresher_pid != os.getpid():
                # Made in the process that uses it: a pool from before a fork has no thread.
                self._refresher = ThreadPoolExecutor(1, thread_name_prefix="day-refresh")
                self._refresher_pid = os.getpid()
            refresher = self._refresher

        def refresh() -> None:
            now = self.container.clock.now()
            with self._lock:
                kept = self._days.get(key)
            if kept is not None and kept.versions == versions and kept.refresh_after > now:
                # A request computed it meanwhile (it waited past its grace).
                with self._lock:
                    self._refreshing.discard(key)
                return
            try:
                self._flights.run(
                    (key, versions), lambda: self._keep(key, self._compute(o, day, versions, now))
                )
            except Exception:  # the kept list serves until valid_until; then a request computes
                log.warning("could not refresh the free times of %s", day, exc_info=True)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        refresher.submit(refresh)

    def _compute(self, o: Offer, day: dt.date, versions: Versions, now: dt.datetime) -> DayTimes:
        with self.container.sessions() as session:
            rows = free_starts(session, o, day, whole_days(day))
            expiry = hold_expiries(session, o, day, day).get(day)
        until, refresh_after = trusted_until(now, expiry, random.random())
        free = FreeDay.of_rows(candidate_rows(o, rows), o.shortest)
        return DayTimes(free, versions, until, refresh_after, o.shape)

    def _keep(self, key: DayKey, times: DayTimes) -> DayTimes:
        with self._lock:
            self._days[key] = times
        return times
