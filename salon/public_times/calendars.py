"""The calendar of `/v1/dates`: free starts per local date, kept up to date day by day.

Computing 90 days is the heaviest read (one statement, ~60 ms of PostgreSQL CPU). So a calendar is
stored (`salon.public_times.stored_answers`) with its counts and recomputed only where it may be
wrong: the dates a write touched since (`salon.public_times.versions` records them), the dates whose
first live hold has expired, and, at most once a minute, the dates at the ends of the bookable
window, which move with the clock; all of them in one statement. A change it cannot place (the
catalogue, a generation job) recomputes everything."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

from salon.infra.single_flight import SingleFlight
from salon.ports import Reads
from salon.public_times.free_times import Offer, Window, free_days, free_on_days, local_today
from salon.public_times.stored_answers import Lookup, StoredAnswers
from salon.public_times.versions import Versions, dirty_local_dates

# The dates at the ends of the bookable window are recomputed at least this often.
EDGE_SECONDS = 60
# Kept this long without being asked for.
KEEP_SECONDS = 600


def days_view(first: dt.date, counts: dict[dt.date, int], days: int) -> list[dict[str, Any]]:
    out = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        n = counts.get(day, 0)
        out.append({"date": day.isoformat(), "has_availability": n > 0, "total_slots": n})
    return out


class Calendars:
    def __init__(self, container: Reads, reads: StoredAnswers | None = None) -> None:
        self.container = container
        self.ns = container.settings.redis_namespace
        self.reads = reads or StoredAnswers(container)
        self._flights: SingleFlight[bytes] = SingleFlight()

    def calendar(
        self,
        *,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
        first: dt.date | None,
        days: int,
        now: dt.datetime,
    ) -> bytes:
        """Free starts per day as JSON."""
        stylist_part = str(stylist_id) if stylist_id else "any"
        start = first.isoformat() if first else "today"
        key = ":".join(
            (self.ns, "days", str(location_id), str(service_id), stylist_part, start, str(days))
        )
        found = self.reads.lookup(key, now)
        if found.answer is not None:
            return found.answer
        return self._flights.run(
            key,
            lambda: self._compute(
                key, found, location_id, service_id, stylist_id, first, days, start, now
            ),
        )

    def _compute(
        self,
        key: str,
        found: Lookup,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
        first: dt.date | None,
        days: int,
        start: str,
        now: dt.datetime,
    ) -> bytes:
        o, versions = self.reads.offer(found.catalogue_version, location_id, service_id, stylist_id)
        today = local_today(o, now)
        first = first or today
        last = first + dt.timedelta(days=days - 1)
        window = self.reads.window(now)
        counts, expiries, edges_at = self._counts(
            o, first, last, window, versions, found.state, now
        )
        answer = orjson.dumps(
            {
                "location_id": str(location_id),
                "service_id": str(service_id),
                "stylist_id": str(stylist_id) if stylist_id else None,
                "timezone": o.location.timezone,
                "dates": days_view(first, counts, days),
            }
        )
        if versions is not None:
            until = min([edges_at + dt.timedelta(seconds=EDGE_SECONDS), *expiries.values()])
            if start == "today":
                midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), o.zone)
                until = min(until, midnight)
            state = {
                "first": first.isoformat(),
                "counts": {d.isoformat(): n for d, n in counts.items()},
                "expiries": {d.isoformat(): x.isoformat() for d, x in expiries.items()},
                "edges_at": edges_at.isoformat(),
            }
            self.reads.store(key, answer, versions, until=until, ttl=KEEP_SECONDS, state=state)
        return answer

    def _counts(
        self,
        o: Offer,
        first: dt.date,
        last: dt.date,
        window: Window,
        versions: Versions | None,
        state: dict[str, Any] | None,
        now: dt.datetime,
    ) -> tuple[dict[dt.date, int], dict[dt.date, dt.datetime], dt.datetime]:
        """The counts per date, the first hold expiry per date, and when the window's edge
        dates were last computed: from the stored state where it is still right."""
        moved = self._moved(first, versions, state)
        with self.container.sessions() as session:
            if moved is None or state is None:
                found = free_days(session, o, first, last, window)
                return found.counts, found.expiries, now
            counts = {dt.date.fromisoformat(d): int(n) for d, n in state["counts"].items()}
            expiries = {
                dt.date.fromisoformat(d): dt.datetime.fromisoformat(x)
                for d, x in state["expiries"].items()
            }
            # Stale: what a write reached, and the dates whose first hold has expired.
            dirty = moved | {d for d, x in expiries.items() if x <= now}
            edges_at = dt.datetime.fromisoformat(state["edges_at"])
            if now - edges_at >= dt.timedelta(seconds=EDGE_SECONDS):
                dirty |= self._edges(o, first, window)
                edges_at = now
            dirty = {d for d in dirty if first <= d <= last}
            if dirty:
                fresh = free_on_days(session, o, dirty, window)
                counts.update(fresh.counts)
                fresh_expiries = fresh.expiries
                for day in dirty:
                    expiries.pop(day, None)
                    if day in fresh_expiries:
                        expiries[day] = fresh_expiries[day]
            return counts, expiries, edges_at

    def _moved(
        self, first: dt.date, versions: Versions | None, state: dict[str, Any] | None
    ) -> set[dt.date] | None:
        """The dates a write may have changed since the stored state; None: all of them."""
        if versions is None or state is None or state["first"] != first.isoformat():
            return None
        older = Versions.from_doc(state["versions"])
        return dirty_local_dates(self.container.redis, self.ns, versions, older)

    @staticmethod
    def _edges(o: Offer, first: dt.date, window: Window) -> set[dt.date]:
        """The dates whose free starts the passing of time changes: up to the earliest
        bookable instant, and around the latest."""
        earliest = window.earliest.astimezone(o.zone).date()
        latest = window.latest.astimezone(o.zone).date()
        edges = {first + dt.timedelta(days=i) for i in range(max(0, (earliest - first).days) + 1)}
        return edges | {latest - dt.timedelta(days=1), latest}
