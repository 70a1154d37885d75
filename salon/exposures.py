"""Exposures: the few free times a customer is shown, sticky for their TTL in every process.

The choice itself is pure (`models.exposure`). Here: the candidates from PostgreSQL, the
sticky copy in Redis, and the ledger. A repeat within the TTL is answered from Redis alone
while no booking changed any of the stylists concerned (their version counters, bumped by
every write that takes or frees time); otherwise the live candidates are read again, the
shown times still free stay, and each taken one is replaced by one other.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy.orm import Session

from models.exposure import Candidate, choose, replace_taken, seed_for
from salon.encoding import rfc3339
from salon.free_times import Offer, Window, free_days, free_starts

if TYPE_CHECKING:
    from salon.bootstrap import Container

log = logging.getLogger(__name__)

# The seed changes every hour, so a time nobody was shown gets its chance (seed doc, "rotate").
SEED_ROTATION_SECONDS = 3600
LEDGER_DAYS = 7


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


def candidates(o: Offer, rows: Iterable[Any]) -> list[Candidate]:
    return [
        Candidate(
            key=f"{r.stylist_id}@{r.start_at:%Y%m%dT%H%M%SZ}",
            stylist_id=r.stylist_id,
            slot_id=r.slot_id,
            start_at=r.start_at,
            end_at=r.end_at,
            local_start=r.start_at.astimezone(o.zone),
            gap_before=r.start_at - r.run_start,
            gap_after=r.run_end - r.end_at,
        )
        for r in rows
    ]


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


class ExposureService:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.settings = container.settings
        self.ns = container.settings.redis_namespace

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

    def sticky(self, key: str) -> dict[str, Any] | None:
        """The stored exposure when none of its stylists' time changed since: no SQL at all
        (the path of most requests: a customer's app repeats itself)."""
        stored = self._load(key)
        if stored is None:
            return None
        versions = self._versions(stored["stylists"])
        if versions is None or versions != stored["versions"]:
            return None
        response: dict[str, Any] = stored["response"]
        return response

    def exposure(
        self,
        session: Session,
        o: Offer,
        *,
        key: str,
        subject: str,
        day: dt.date,
        stylist_id: uuid.UUID | None,
        variant: str,
        now: dt.datetime,
    ) -> dict[str, Any]:
        """Compute (or repair) the exposure: the first request, or a stylist's time changed."""
        stylist_part = str(stylist_id) if stylist_id else "any"
        stylists = sorted(str(s) for s in o.needs)
        # Versions first: a booking committed while we compute makes the next repeat recheck.
        versions = self._versions(stylists)
        stored = self._load(key)
        window = self.window(now)
        live = candidates(o, free_starts(session, o, day, window))
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
        if stored is not None:
            previous = [_candidate_from(o, d) for d in stored["shown"]]
            shown = replace_taken(
                previous, live, seed=seed, shortest_service=o.shortest, variant=variant
            )
            expires_at = dt.datetime.fromisoformat(stored["expires_at"])
            seed = stored["seed"]
        else:
            shown = choose(live, seed=seed, shortest_service=o.shortest, variant=variant)
            expires_at = now + dt.timedelta(seconds=self.settings.exposure_ttl_seconds)
        total = len({c.start_at for c in live})
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
            nxt = self.next_available_date(session, o, day, window)
            response["next_available_date"] = nxt.isoformat() if nxt else None
        ttl = max(1, int((expires_at - now).total_seconds()))
        if versions is not None:
            self._save(
                key,
                ttl,
                {
                    "stylists": stylists,
                    "versions": versions,
                    "seed": seed,
                    "expires_at": expires_at.isoformat(),
                    "shown": [_candidate_doc(c) for c in shown],
                    "response": response,
                },
            )
        self._ledger(subject, o, day, stylist_part, variant, seed, shown, total, now)
        return response

    def free_days(
        self, session: Session, o: Offer, first: dt.date, last: dt.date, now: dt.datetime
    ) -> dict[dt.date, int]:
        """Free starts per day, cached for a minute while no stylist's time changes (a
        90-day calendar is the heaviest read; the minute bounds drift of the notice window)."""
        stylists = sorted(str(s) for s in o.needs)
        key = ":".join(
            (
                self.ns,
                "days",
                str(o.location.id),
                str(o.service.id),
                ",".join(stylists),
                first.isoformat(),
                last.isoformat(),
            )
        )
        versions = self._versions(stylists)
        stored = self._load(key)
        if stored is not None and versions is not None and stored["versions"] == versions:
            return {dt.date.fromisoformat(d): n for d, n in stored["counts"].items()}
        counts = free_days(session, o, first, last, self.window(now))
        if versions is not None:
            doc = {"versions": versions, "counts": {d.isoformat(): n for d, n in counts.items()}}
            self._save(key, 60, doc)
        return counts

    def next_available_date(
        self, session: Session, o: Offer, after: dt.date, window: Window
    ) -> dt.date | None:
        last = window.latest.astimezone(o.zone).date()
        if after >= last:
            return None
        days = free_days(session, o, after + dt.timedelta(days=1), last, window)
        return min((d for d, n in days.items() if n > 0), default=None)

    # --- Redis: sticky copies, versions, ledger (all optional: an outage costs stickiness,
    # never an answer) ---------------------------------------------------------------------

    def _versions(self, stylists: list[str]) -> list[int] | None:
        try:
            raw = self.container.redis.mget([version_key(self.ns, s) for s in stylists])
        except redis.RedisError:
            return None
        return [int(v or 0) for v in raw]

    def _load(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self.container.redis.get(key)
        except redis.RedisError:
            return None
        doc: dict[str, Any] | None = json.loads(raw) if raw else None
        return doc

    def _save(self, key: str, ttl: int, doc: dict[str, Any]) -> None:
        try:
            self.container.redis.set(key, json.dumps(doc), ex=ttl)
        except redis.RedisError:
            log.warning("could not store an exposure; the next repeat recomputes it")

    def _ledger(
        self,
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
        try:
            self.container.redis.xadd(
                f"{self.ns}:exposures",
                entry,
                minid=min_id,
                approximate=True,
            )
        except redis.RedisError:
            log.warning("could not record an exposure in the ledger")

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


def days_view(
    o: Offer, first: dt.date, counts: dict[dt.date, int], days: int
) -> list[dict[str, Any]]:
    out = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        n = counts.get(day, 0)
        out.append({"date": day.isoformat(), "has_availability": n > 0, "total_slots": n})
    return out
