"""Free times: the starts where a service really fits (design.md "Public API", issue 4).

A start fits when the stylist's generated, open slots run without a break from there for the
service's duration plus buffer (the stylist's own override, if any), no live booking or
unexpired hold overlaps any of them (a booking at another location counts: one stylist), and
it lies between the minimum notice and the booking horizon. One SQL statement finds them for
any date range: runs of consecutive free slots per stylist (window functions), then every
start whose need fits inside its run.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from models.free_counts import count_starts
from models.tables import Location, Service, ServiceStylist, Stylist, StylistLocation
from salon.errors import NotFound


@dataclass(frozen=True)
class Offer:
    """What is being asked for: a service at a location, by whom (needs per stylist)."""

    location: Location
    zone: ZoneInfo
    service: Service
    needs: dict[uuid.UUID, int]  # stylist -> minutes a booking occupies (duration + buffer)
    durations: dict[uuid.UUID, int]  # stylist -> minutes of the service itself

    @cached_property
    def stylist_keys(self) -> tuple[str, ...]:
        """The stylists' ids as text, sorted: how versions and kept answers name them (an
        offer is kept per process and asked this at every request)."""
        return tuple(sorted(str(s) for s in self.needs))

    @cached_property
    def location_key(self) -> str:
        return str(self.location.id)

    @cached_property
    def service_key(self) -> str:
        return str(self.service.id)

    @cached_property
    def biz_key(self) -> str:
        return str(self.location.biz_entity_id)

    @cached_property
    def durations_by_hex(self) -> dict[str, int]:
        """`durations` keyed by the stylists' ids in hex, as a day list's rows name them."""
        return {s.hex: minutes for s, minutes in self.durations.items()}

    @cached_property
    def shape(self) -> tuple[Any, ...]:
        """Everything of the offer a day's free starts depend on: two offers of one shape,
        read under different catalogue versions, have the same free starts."""
        return (
            self.location.timezone,
            tuple(sorted(self.needs.items())),
            tuple(sorted(self.durations.items())),
        )

    @cached_property
    def shortest(self) -> dt.timedelta:
        return dt.timedelta(minutes=min(self.durations.values(), default=0))


def offer(
    session: Session,
    location_id: uuid.UUID,
    service_id: uuid.UUID,
    stylist_id: uuid.UUID | None,
) -> Offer:
    location = session.get(Location, location_id)
    if location is None or not location.active:
        raise NotFound(f"location {location_id} not found")
    service = session.get(Service, service_id)
    if service is None or not service.active or service.location_id != location_id:
        raise NotFound(f"service {service_id} not found at this location")
    restricted = {
        o.stylist_id: o.duration_minutes
        for o in session.scalars(
            select(ServiceStylist).where(ServiceStylist.service_id == service_id)
        )
    }
    query = (
        select(Stylist.id)
        .join(StylistLocation, StylistLocation.stylist_id == Stylist.id)
        .where(StylistLocation.location_id == location_id, Stylist.active.is_(True))
    )
    if stylist_id is not None:
        query = query.where(Stylist.id == stylist_id)
    stylists = [s for s in session.scalars(query) if not restricted or s in restricted]
    if stylist_id is not None and not stylists:
        raise NotFound(f"stylist {stylist_id} does not offer this service here")
    durations = {s: restricted.get(s) or service.duration_minutes for s in stylists}
    needs = {s: d + service.buffer_minutes for s, d in durations.items()}
    return Offer(location, ZoneInfo(location.timezone), service, needs, durations)


_FREE_STARTS = """
WITH cand(stylist_id, need) AS (
    SELECT * FROM unnest(CAST(:stylists AS uuid[]), CAST(:needs AS int[]))
),
-- The live bookings of these stylists in range, read once and listed under every UTC day a
-- slot overlapping them can start on (the day before theirs to their last): the anti-join
-- below then hashes on (stylist, day) and compares a slot with a booking or two, where a
-- probe per slot walked each stylist's bookings.
busy AS MATERIALIZED (
    SELECT b.stylist_id, b.start_at, b.end_at, CAST(d AS date) AS day
    FROM scheduler.bookings b,
         generate_series(
             date_trunc('day', b.start_at AT TIME ZONE 'UTC') - interval '1 day',
             date_trunc('day', b.end_at AT TIME ZONE 'UTC'),
             interval '1 day') AS d
    WHERE b.stylist_id = ANY(CAST(:stylists AS uuid[]))
      AND b.status IN ('held', 'confirmed')
      -- An expired hold blocks nothing, even before the sweep marks it.
      AND (b.status = 'confirmed' OR b.hold_expires_at > now())
      AND b.end_at > :lo AND b.start_at < CAST(:hi AS timestamptz) + interval '1 day'
      -- A booking being moved does not block its own new time.
      AND b.id IS DISTINCT FROM CAST(:exclude AS uuid)
),
free AS (
    SELECT sl.id, sl.stylist_id, sl.local_date, sl.start_at, sl.end_at, c.need
    FROM scheduler.slot_instances sl
    JOIN cand c ON c.stylist_id = sl.stylist_id
    -- (stylist_id, start_at) is the narrow index: a day's margin covers any zone's dates.
    WHERE sl.stylist_id = ANY(CAST(:stylists AS uuid[]))
      AND sl.start_at >= :lo AND sl.start_at < :hi
      AND sl.location_id = :location
      AND sl.local_date BETWEEN :first AND :last
      AND sl.status = 'open'
      AND NOT EXISTS (
          SELECT 1 FROM busy b
          WHERE b.stylist_id = sl.stylist_id
            AND b.day = CAST(sl.start_at AT TIME ZONE 'UTC' AS date)
            AND b.start_at < sl.end_at AND b.end_at > sl.start_at)
)
"""

# Each free slot with the start and end of its run of consecutive free slots (a day list
# needs both: the gaps before and after a start).
_RUNS = """,
marked AS (
    SELECT *, CASE WHEN lag(end_at) OVER w = start_at THEN 0 ELSE 1 END AS brk
    FROM free WINDOW w AS (PARTITION BY stylist_id ORDER BY start_at)
),
runs AS (
    SELECT *, sum(brk) OVER (PARTITION BY stylist_id ORDER BY start_at) AS run FROM marked
),
bounded AS (
    SELECT *, min(start_at) OVER r AS run_start, max(end_at) OVER r AS run_end
    FROM runs WINDOW r AS (PARTITION BY stylist_id, run)
)
"""

FREE_STARTS = text(
    _FREE_STARTS
    + _RUNS
    + """
SELECT id AS slot_id, stylist_id, local_date, start_at,
       start_at + make_interval(mins => need) AS end_at, run_start, run_end
FROM bounded
WHERE start_at + make_interval(mins => need) <= run_end
  AND start_at >= :earliest AND start_at <= :latest
ORDER BY start_at, stylist_id
"""
)

# The count per date comes from the free runs the database keeps (migration 0007: runs of
# consecutive free slots of one length per stylist, location and local date, confirmed
# bookings taken off) rather than from every slot, and is finished in Python
# (`models.free_counts`): PostgreSQL reads ~750 runs for a 90-day calendar instead of ~24,000
# slots. Runs of one stylist that follow each other without
# a gap are one stretch of free time, whose end is the nearest end ahead not followed by the
# next run (ends only grow, so the smallest seen so far, walking backwards); each run is cut
# to the starts whose need ends inside its stretch. The rule is `FREE_STARTS`'s; tests check
# that both agree.
_RUNS_OF = """
WITH cand(stylist_id, need, n) AS (
    SELECT * FROM unnest(CAST(:stylists AS uuid[]), CAST(:needs AS int[])) WITH ORDINALITY
),
runs AS (
    SELECT r.stylist_id, r.local_date, r.start_at, r.end_at, r.step, c.need, c.n
    FROM scheduler.free_runs r
    JOIN cand c ON c.stylist_id = r.stylist_id
    WHERE r.location_id = :location AND {dates}
),
ends AS (
    SELECT *, CASE WHEN lag(start_at) OVER w = end_at THEN NULL ELSE end_at END AS last_end
    FROM runs WINDOW w AS (PARTITION BY stylist_id ORDER BY start_at DESC)
),
bounded AS (
    SELECT *, min(last_end) OVER (PARTITION BY stylist_id ORDER BY start_at DESC) AS run_end
    FROM ends
)
SELECT local_date, n AS stylist,
       CAST(extract(epoch FROM start_at) AS bigint) AS first,
       CAST(extract(epoch FROM least(end_at - step, run_end - make_interval(mins => need)))
            AS bigint) AS last,
       CAST(extract(epoch FROM step) AS int) AS step,
       need * 60 AS need
FROM bounded
WHERE start_at + make_interval(mins => need) <= run_end
"""

RUNS_OF_DAYS = text(_RUNS_OF.format(dates="r.local_date BETWEEN :first AND :last"))

# The same for chosen dates only (a calendar bringing a few days up to date).
RUNS_ON_DAYS = text(_RUNS_OF.format(dates="r.local_date = ANY(CAST(:dates AS date[]))"))

# Live holds of the candidate stylists, each widened to the slots it touches at this location
# (a slot a hold overlaps is not free): what `count_starts` takes off. A hold touching no slot
# here hides nothing here.
_HOLDS_WIDENED = text(
    """
SELECT array_position(CAST(:stylists AS uuid[]), b.stylist_id) AS stylist,
       CAST(extract(epoch FROM w.start_at) AS bigint) AS lo,
       CAST(extract(epoch FROM w.end_at) AS bigint) AS hi,
       b.start_at, b.end_at, b.hold_expires_at
FROM scheduler.bookings b,
     LATERAL (
         SELECT min(sl.start_at) AS start_at, max(sl.end_at) AS end_at
         FROM scheduler.slot_instances sl
         WHERE sl.stylist_id = b.stylist_id AND sl.location_id = :location
           AND sl.start_at > b.start_at - interval '1 day' AND sl.start_at < b.end_at
           AND sl.end_at > b.start_at) AS w
WHERE b.stylist_id = ANY(CAST(:stylists AS uuid[])) AND b.status = 'held'
  AND b.hold_expires_at > now()
  AND b.end_at > :lo AND b.start_at < CAST(:hi AS timestamptz) + interval '1 day'
  AND w.start_at IS NOT NULL
"""
)


@dataclass(frozen=True)
class Window:
    """Bookable instants: from now plus the minimum notice to now plus the horizon."""

    earliest: dt.datetime
    latest: dt.datetime

    @classmethod
    def from_now(cls, now: dt.datetime, notice_minutes: int, horizon_days: int) -> Window:
        return cls(
            now + dt.timedelta(minutes=notice_minutes), now + dt.timedelta(days=horizon_days)
        )


def _range(first: dt.date, last: dt.date) -> dict[str, dt.datetime]:
    # Local dates in any zone (UTC-12..+14) lie inside these UTC bounds.
    return {
        "lo": dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC),
        "hi": dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC),
    }


def _params(
    o: Offer, first: dt.date, last: dt.date, window: Window, exclude: uuid.UUID | None = None
) -> dict[str, object]:
    stylists = list(o.needs)
    return {
        "exclude": exclude,
        "stylists": stylists,
        "needs": [o.needs[s] for s in stylists],
        "location": o.location.id,
        "first": first,
        "last": last,
        **_range(first, last),
        "earliest": window.earliest,
        "latest": window.latest,
    }


def free_starts(
    session: Session, o: Offer, day: dt.date, window: Window, exclude: uuid.UUID | None = None
) -> list[Row[Any]]:
    if not o.needs:
        return []
    return list(session.execute(FREE_STARTS, _params(o, day, day, window, exclude)))


@dataclass(frozen=True)
class DayCounts:
    """A calendar's figures: distinct free starts per local date (dates without any left
    out), and per local date when the first live hold that may hide one of them expires."""

    counts: dict[dt.date, int]
    expiries: dict[dt.date, dt.datetime]


def _count(
    session: Session, o: Offer, query: Any, params: dict[str, Any], window: Window
) -> DayCounts:
    runs = session.execute(query, params)
    holds: dict[int, list[tuple[int, int]]] = {}
    live = []
    for stylist, lo, hi, start, end, expires in session.execute(_HOLDS_WIDENED, params):
        holds.setdefault(stylist, []).append((lo, hi))
        live.append((start, end, expires))
    earliest, latest = window.earliest.timestamp(), window.latest.timestamp()
    counts = count_starts(runs, holds, math.ceil(earliest), math.floor(latest))
    return DayCounts(counts, _first_expiries(o, live))


def free_days(
    session: Session, o: Offer, first: dt.date, last: dt.date, window: Window
) -> DayCounts:
    """The figures of the local dates [first, last]."""
    if not o.needs:
        return DayCounts({}, {})
    return _count(session, o, RUNS_OF_DAYS, _params(o, first, last, window), window)


def free_on_days(session: Session, o: Offer, days: set[dt.date], window: Window) -> DayCounts:
    """`free_days` for these dates only; dates without a start count 0."""
    if not o.needs or not days:
        return DayCounts(dict.fromkeys(days, 0), {})
    params = {**_params(o, min(days), max(days), window), "dates": sorted(days)}
    found = _count(session, o, RUNS_ON_DAYS, params, window)
    return DayCounts({d: found.counts.get(d, 0) for d in days}, found.expiries)


def _first_expiries(
    o: Offer, holds: Iterable[tuple[dt.datetime, dt.datetime, dt.datetime]]
) -> dict[dt.date, dt.datetime]:
    # A hold hides starts up to a service's length before it: the day before too.
    found: dict[dt.date, dt.datetime] = {}
    for start, end, expires in holds:
        day = (start - dt.timedelta(days=1)).astimezone(o.zone).date()
        while day <= end.astimezone(o.zone).date():
            found[day] = min(found.get(day, expires), expires)
            day += dt.timedelta(days=1)
    return found


def hold_expiries(
    session: Session, o: Offer, first: dt.date, last: dt.date
) -> dict[dt.date, dt.datetime]:
    """Per local date, when the first live hold that may hide one of its free starts
    expires (the holds `free_days` takes off: a hold touching no slot here hides nothing)."""
    if not o.needs:
        return {}
    params = {"stylists": list(o.needs), "location": o.location.id, **_range(first, last)}
    rows = session.execute(_HOLDS_WIDENED, params)
    return _first_expiries(o, ((start, end, expires) for *_, start, end, expires in rows))


_COVERED = text(
    """
    SELECT coalesce(sum(extract(epoch FROM least(end_at, :end) - start_at)), 0)
    FROM scheduler.slot_instances
    WHERE stylist_id = :stylist AND location_id = :location AND status = 'open'
      AND start_at >= :start AND start_at < :end
    """
)

_BLOCKED = text(
    """
    SELECT EXISTS (
        SELECT 1 FROM scheduler.bookings b
        WHERE b.stylist_id = :stylist AND b.status IN ('held', 'confirmed')
          AND (b.status = 'confirmed' OR b.hold_expires_at > now())
          AND b.start_at < :end AND b.end_at > :start
          AND b.id IS DISTINCT FROM CAST(:exclude AS uuid))
    """
)


def fits(
    session: Session,
    o: Offer,
    stylist_id: uuid.UUID,
    start: dt.datetime,
    window: Window,
    exclude: uuid.UUID | None = None,
) -> bool:
    """The rule of `FREE_STARTS` for one start (what a hold checks): the stylist's open slots
    cover [start, start + need) without a gap (slots never overlap, so the covered seconds
    add up), nothing live overlaps it, and it is inside the bookable window."""
    need = o.needs.get(stylist_id)
    if need is None or not window.earliest <= start <= window.latest:
        return False
    end = start + dt.timedelta(minutes=need)
    params = {"stylist": stylist_id, "location": o.location.id, "start": start, "end": end}
    covered = session.execute(_COVERED, params).scalar_one()
    if float(covered) != (end - start).total_seconds():
        return False
    return not session.execute(_BLOCKED, {**params, "exclude": exclude}).scalar_one()


def local_today(o: Offer, now: dt.datetime) -> dt.date:
    return now.astimezone(o.zone).date()
