"""Exposures: the few free times a customer is shown, sticky for their TTL in every process;
and the 90-day calendars.

The choice itself is pure (`models.exposure`); the day's live times come from
`salon.live_times`, the offer from `salon.offers`. Here: the stored answers in Redis and the
ledger. A repeat within the TTL is answered by one Redis script, with the stored bytes, while
no write changed any of the stylists concerned or the catalogue (version counters bumped after
every write that takes or frees time); otherwise the exposure is chosen again over the live
times: the shown times still free stay, and each taken one is replaced by one other.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy.orm import Session

from models.exposure import Candidate, replace_taken, seed_for
from salon.encoding import rfc3339
from salon.errors import InvalidInput
from salon.free_times import Offer, Window, free_days, local_today, next_hold_expiry
from salon.live_times import LiveTimes
from salon.offers import OfferCache, catalogue_key

if TYPE_CHECKING:
    from salon.bootstrap import Container

log = logging.getLogger(__name__)

# The seed changes every hour, so a time nobody was shown gets its chance (seed doc, "rotate").
SEED_ROTATION_SECONDS = 3600
LEDGER_DAYS = 7
# A calendar is recomputed at least this often: the notice window moves with the clock.
CALENDAR_SECONDS = 60


def version_key(namespace: str, stylist_id: uuid.UUID | str) -> str:
    return f"{namespace}:stylist-version:{stylist_id}"


def bump_versions(container: Container, stylist_ids: Iterable[uuid.UUID | str]) -> None:
    """Called after a commit that takes or frees a stylist's time: sticky exposures recheck."""
    ids = list(stylist_ids)
    if not ids:
        return
    try:
        pipe = container.redis.pipeline(transaction=False)
        for stylist_id in ids:
            pipe.incr(version_key(container.settings.redis_namespace, stylist_id))
        pipe.execute()
    except redis.RedisError:
        # The exposure then shows a taken time until its TTL: a hold on it answers 409.
        log.warning("could not bump stylist versions %s", ids)


def _shown_view(o: Offer, c: Candidate) -> dict[str, Any]:
    service_end = c.start_at + dt.timedelta(minutes=o.durations.get(c.stylist_id, 0))
    return {
        "slot_id": str(c.slot_id),
        "stylist_id": str(c.stylist_id),
        "start_at": rfc3339(c.start_at),
        "end_at": rfc3339(service_end),
        "local_start": c.start_at.astimezone(o.zone).isoformat(),
        "local_end": service_end.astimezone(o.zone).isoformat(),
    }


def _candidate_doc(c: Candidate) -> dict[str, Any]:
    return {
        "key": c.key,
        "stylist_id": str(c.stylist_id),
        "slot_id": str(c.slot_id),
        "start_at": c.start_at.isoformat(),
        "end_at": c.end_at.isoformat(),
        "gap_before": c.gap_before.total_seconds(),
        "gap_after": c.gap_after.total_seconds(),
    }


def _candidate_from(o: Offer, d: dict[str, Any]) -> Candidate:
    start = dt.datetime.fromisoformat(d["start_at"])
    return Candidate(
        key=d["key"],
        stylist_id=uuid.UUID(d["stylist_id"]),
        slot_id=uuid.UUID(d["slot_id"]),
        start_at=start,
        end_at=dt.datetime.fromisoformat(d["end_at"]),
        local_start=start.astimezone(o.zone),
        gap_before=dt.timedelta(seconds=d["gap_before"]),
        gap_after=dt.timedelta(seconds=d["gap_after"]),
    )


# A stored answer is a hash: the response as sent, the version keys and values it was
# computed under, and an epoch after which it must not be served. One round trip answers a
# repeat: on a hit the stored bytes; on a miss what the recomputation needs (the catalogue
# version, the previous choice).
_CACHED_ANSWER = """
local h = redis.call('HMGET', KEYS[1], 'response', 'vkeys', 'versions', 'until',
                     'shown', 'seed', 'expires_at')
local catalogue = redis.call('GET', KEYS[2]) or '0'
if h[1] and tonumber(h[4]) > tonumber(ARGV[1]) then
  local keys = {}
  for k in string.gmatch(h[2], '%S+') do keys[#keys + 1] = k end
  local current = redis.call('MGET', unpack(keys))
  local parts = {}
  for i, v in ipairs(current) do parts[i] = v or '0' end
  if table.concat(parts, ',') == h[3] then return {1, h[1]} end
end
return {0, catalogue, h[5], h[6], h[7]}
"""


@dataclass(frozen=True)
class Lookup:
    """What the cached-answer script found: the answer, or what recomputing it needs."""

    answer: bytes | None
    catalogue_version: int  # -1: unknown (Redis unreachable)
    previous: dict[str, Any] | None = None


class ExposureService:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.settings = container.settings
        self.ns = container.settings.redis_namespace
        self.offers = OfferCache(container)
        self.live = LiveTimes(container)
        self._cached_answer = container.redis.register_script(_CACHED_ANSWER)

    def window(self, now: dt.datetime) -> Window:
        return Window.from_now(
            now, self.settings.min_notice_minutes, self.settings.booking_horizon_days
        )

    def key(
        self,
        subject: str,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
        day: dt.date,
        variant: str,
    ) -> str:
        stylist_part = str(stylist_id) if stylist_id else "any"
        parts = (subject, str(location_id), str(service_id), stylist_part, day.isoformat(), variant)
        return ":".join((self.ns, "exposure", *parts))

    def exposure(
        self,
        *,
        subject: str,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
        day: dt.date,
        variant: str,
        now: dt.datetime,
    ) -> bytes:
        """The customer's exposure as JSON: the stored one while none of its stylists' time
        (nor the catalogue) changed, without SQL; else chosen again over the day's live
        times, keeping the shown times still free and replacing each taken one."""
        key = self.key(subject, location_id, service_id, stylist_id, day, variant)
        found = self._lookup(key, now, previous=True)
        if found.answer is not None:
            return found.answer
        o, versions = self._offer(found.catalogue_version, location_id, service_id, stylist_id)
        if day < local_today(o, now):
            raise InvalidInput(
                "date is in the past", errors=[{"field": "date", "message": "in the past"}]
            )
        window = self.window(now)
        free = self.live.day(o, day, versions, now).within(window)
        stylist_part = str(stylist_id) if stylist_id else "any"
        stored = found.previous
        if stored is not None:
            previous = [_candidate_from(o, d) for d in json.loads(stored["shown"])]
            seed = int(stored["seed"])
            shown = replace_taken(
                previous, free.candidates(), seed=seed, shortest_service=o.shortest, variant=variant
            )
            expires_at = dt.datetime.fromisoformat(stored["expires_at"])
        else:
            epoch = int(now.timestamp()) // SEED_ROTATION_SECONDS
            seed = seed_for(
                subject,
                str(o.location.id),
                str(o.service.id),
                stylist_part,
                day.isoformat(),
                str(epoch),
                variant,
            )
            shown = free.choose(seed=seed, variant=variant)
            expires_at = now + dt.timedelta(seconds=self.settings.exposure_ttl_seconds)
        total = len(free.times)
        response = {
            "date": day.isoformat(),
            "location_id": str(o.location.id),
            "service_id": str(o.service.id),
            "stylist_id": str(stylist_id) if stylist_id else None,
            "timezone": o.location.timezone,
            "exposed_slots": [_shown_view(o, c) for c in shown],
            "total_available": total,
            "has_more": total > len(shown),
            "exposure_expires_at": rfc3339(expires_at),
            "next_available_date": None,
        }
        if not shown:
            with self.container.sessions() as session:
                nxt = self.next_available_date(session, o, day, window)
            response["next_available_date"] = nxt.isoformat() if nxt else None
        answer = json.dumps(response).encode()
        # Served until the exposure expires, and never once its day is over at the location.
        day_over = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), o.zone)
        pipe = self.container.redis.pipeline(transaction=False)
        if versions is not None:
            self._store(
                pipe,
                key,
                answer,
                o,
                versions,
                until=min(expires_at, day_over),
                ttl=max(1, int((expires_at - now).total_seconds())),
                extra={
                    "shown": json.dumps([_candidate_doc(c) for c in shown]),
                    "seed": str(seed),
                    "expires_at": expires_at.isoformat(),
                },
            )
        self._ledger(pipe, subject, o, day, stylist_part, variant, seed, shown, total, now)
        try:
            pipe.execute()
        except redis.RedisError:
            log.warning("could not store an exposure or its ledger entry")
        return answer

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
        """Free starts per day as JSON, cached for a minute while no stylist's time changes
        and no hold in range expires (a 90-day calendar is the heaviest read)."""
        stylist_part = str(stylist_id) if stylist_id else "any"
        start = first.isoformat() if first else "today"
        key = ":".join(
            (self.ns, "days", str(location_id), str(service_id), stylist_part, start, str(days))
        )
        found = self._lookup(key, now, previous=False)
        if found.answer is not None:
            return found.answer
        o, versions = self._offer(found.catalogue_version, location_id, service_id, stylist_id)
        today = local_today(o, now)
        first = first or today
        last = first + dt.timedelta(days=days - 1)
        with self.container.sessions() as session:
            counts = free_days(session, o, first, last, self.window(now))
            expiry = next_hold_expiry(session, o, first, last)
        answer = json.dumps(
            {
                "location_id": str(location_id),
                "service_id": str(service_id),
                "stylist_id": str(stylist_id) if stylist_id else None,
                "timezone": o.location.timezone,
                "dates": days_view(first, counts, days),
            }
        ).encode()
        if versions is not None:
            # The notice window moves with the clock: recompute at least every minute, and
            # "today" at the location's midnight.
            until = now + dt.timedelta(seconds=CALENDAR_SECONDS)
            if expiry is not None:
                until = min(until, expiry)
            if start == "today":
                midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), o.zone)
                until = min(until, midnight)
            pipe = self.container.redis.pipeline(transaction=False)
            self._store(pipe, key, answer, o, versions, until=until, ttl=CALENDAR_SECONDS)
            try:
                pipe.execute()
            except redis.RedisError:
                log.warning("could not store a calendar")
        return answer

    def next_available_date(
        self, session: Session, o: Offer, after: dt.date, window: Window
    ) -> dt.date | None:
        last = window.latest.astimezone(o.zone).date()
        if after >= last:
            return None
        days = free_days(session, o, after + dt.timedelta(days=1), last, window)
        return min((d for d, n in days.items() if n > 0), default=None)

    # --- Redis: stored answers, versions, ledger (all optional: an outage costs caching,
    # never an answer) ---------------------------------------------------------------------

    def _lookup(self, key: str, now: dt.datetime, *, previous: bool) -> Lookup:
        try:
            reply = self._cached_answer(
                keys=[key, catalogue_key(self.ns)], args=[int(now.timestamp())]
            )
        except redis.RedisError:
            return Lookup(None, -1)
        if int(reply[0]) == 1:
            return Lookup(bytes(reply[1]), 0)
        stored = None
        if previous and reply[2] is not None:
            stored = {"shown": reply[2], "seed": reply[3].decode(), "expires_at": reply[4].decode()}
        return Lookup(None, int(reply[1]), stored)

    def _offer(
        self,
        catalogue_version: int,
        location_id: uuid.UUID,
        service_id: uuid.UUID,
        stylist_id: uuid.UUID | None,
    ) -> tuple[Offer, tuple[int, ...] | None]:
        """The offer and the versions (catalogue first, then the stylists) it is current
        under; None when Redis cannot tell them (then nothing is cached)."""
        o = self.offers.get(location_id, service_id, stylist_id, catalogue_version)
        versions = self._versions(o)
        if versions is not None and versions[0] != catalogue_version:
            # The catalogue changed since the lookup: read the offer as it is now.
            o = self.offers.get(location_id, service_id, stylist_id, versions[0])
            versions = self._versions(o)
        return o, versions

    def _version_keys(self, o: Offer) -> list[str]:
        stylists = sorted(str(s) for s in o.needs)
        return [catalogue_key(self.ns), *(version_key(self.ns, s) for s in stylists)]

    def _versions(self, o: Offer) -> tuple[int, ...] | None:
        try:
            raw = self.container.redis.mget(self._version_keys(o))
        except redis.RedisError:
            return None
        return tuple(int(v or 0) for v in raw)

    def _store(
        self,
        pipe: Any,
        key: str,
        answer: bytes,
        o: Offer,
        versions: tuple[int, ...],
        *,
        until: dt.datetime,
        ttl: int,
        extra: dict[str, str] | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "response": answer,
            "vkeys": " ".join(self._version_keys(o)),
            "versions": ",".join(map(str, versions)),
            "until": int(until.timestamp()),
            **(extra or {}),
        }
        pipe.delete(key)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl)

    def _ledger(
        self,
        pipe: Any,
        subject: str,
        o: Offer,
        day: dt.date,
        stylist_part: str,
        variant: str,
        seed: int,
        shown: list[Candidate],
        total: int,
        now: dt.datetime,
    ) -> None:
        """One stream entry per exposure computed (not per sticky repeat), trimmed by age."""
        min_id = f"{int((time.time() - LEDGER_DAYS * 86400) * 1000)}-0"
        entry: dict[Any, Any] = {
            "subject": subject,
            "biz": str(o.location.biz_entity_id),
            "location_id": str(o.location.id),
            "service_id": str(o.service.id),
            "stylist": stylist_part,
            "date": day.isoformat(),
            "variant": variant,
            "seed": str(seed),
            "shown": ",".join(rfc3339(c.start_at) for c in shown),
            "total_available": str(total),
            "at": rfc3339(now),
        }
        pipe.xadd(f"{self.ns}:exposures", entry, minid=min_id, approximate=True)

    def ledger(
        self, *, biz: uuid.UUID, subject: str | None, day: dt.date | None, limit: int
    ) -> list[dict[str, str]]:
        """Recent exposures of a brand, newest first, for support ("why not 15:00?")."""
        found: list[dict[str, str]] = []
        raw: list[tuple[bytes, dict[bytes, bytes]]] = self.container.redis.xrevrange(  # type: ignore[assignment]
            f"{self.ns}:exposures", count=20_000
        )
        for entry_id, fields in raw:
            doc = {k.decode(): v.decode() for k, v in fields.items()}
            if doc.get("biz") != str(biz):
                continue
            if subject and doc.get("subject") != subject:
                continue
            if day and doc.get("date") != day.isoformat():
                continue
            found.append({"id": entry_id.decode(), **doc})
            if len(found) >= limit:
                break
        return found


def days_view(first: dt.date, counts: dict[dt.date, int], days: int) -> list[dict[str, Any]]:
    out = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        n = counts.get(day, 0)
        out.append({"date": day.isoformat(), "has_availability": n > 0, "total_slots": n})
    return out
