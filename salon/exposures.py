"""Exposures: the few free times a customer is shown, sticky for their TTL in every process.

The choice itself is pure (`models.exposure`); the day's live times come from
`salon.live_times`, stored answers from `salon.answers`. A repeat within the TTL is answered by
one Redis script with the stored bytes, while no write changed any of the stylists concerned
or the catalogue; otherwise the exposure is chosen again over the day's live times: the shown
times still free stay, and each taken one is replaced by one other.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.orm import Session

from models.exposure import Candidate, replace_taken, seed_for
from salon.answers import Lookup, PublicReads
from salon.encoding import rfc3339
from salon.errors import InvalidInput
from salon.free_times import Offer, Window, free_days, local_today
from salon.versions import bump_versions, version_key

if TYPE_CHECKING:
    from salon.bootstrap import Container

__all__ = ["ExposureService", "bump_versions", "version_key"]


# The seed changes every hour, so a time nobody was shown gets its chance (seed doc, "rotate").
SEED_ROTATION_SECONDS = 3600
LEDGER_DAYS = 7


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
    def __init__(self, container: Container, reads: PublicReads | None = None) -> None:
        self.container = container
        self.settings = container.settings
        self.ns = container.settings.redis_namespace
        self.reads = reads or PublicReads(container)

    def window(self, now: dt.datetime) -> Window:
        return self.reads.window(now)

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
        looked_up: tuple[str, Lookup] | None = None,
    ) -> bytes:
        """The customer's exposure as JSON: the stored one while none of its stylists' time
        (nor the catalogue) changed, without SQL; else chosen again over the day's live
        times, keeping the shown times still free and replacing each taken one.

        `looked_up`: (key, what the lookup found) when the caller already looked this ask up
        (`api.repeats`); used only if the key is this ask's."""
        key = self.key(subject, location_id, service_id, stylist_id, day, variant)
        if looked_up is not None and looked_up[0] == key:
            found = looked_up[1]
        else:
            found = self.reads.lookup(key, now)
        if found.answer is not None:
            return found.answer
        o, versions = self.reads.offer(found.catalogue_version, location_id, service_id, stylist_id)
        if day < local_today(o, now):
            raise InvalidInput(
                "date is in the past", errors=[{"field": "date", "message": "in the past"}]
            )
        window = self.window(now)
        free = self.reads.live.day(o, day, versions, now).within(window)
        stylist_part = str(stylist_id) if stylist_id else "any"
        stored = found.state
        if stored is not None:
            previous = [_candidate_from(o, d) for d in stored["shown"]]
            seed = int(stored["seed"])
            shown = replace_taken(
                previous, free.candidates(), seed=seed, shortest_service=o.shortest, variant=variant
            )
            expires_at = dt.datetime.fromisoformat(stored["expires_at"])
        else:
            epoch = int(now.timestamp()) // SEED_ROTATION_SECONDS
            seed = seed_for(
                subject,
                o.location_key,
                o.service_key,
                stylist_part,
                day.isoformat(),
                str(epoch),
                variant,
            )
            shown = free.choose(seed=seed, variant=variant)
            expires_at = now + dt.timedelta(seconds=self.settings.exposure_ttl_seconds)
        total = free.count
        response = {
            "date": day.isoformat(),
            "location_id": o.location_key,
            "service_id": o.service_key,
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
        answer = orjson.dumps(response)
        # Served until the exposure expires, and never once its day is over at the location.
        day_over = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), o.zone)
        entry = self._ledger_entry(subject, o, day, stylist_part, variant, seed, shown, total, now)
        self.reads.store_with_entry(
            key,
            answer,
            versions,
            until=min(expires_at, day_over),
            ttl=int((expires_at - now).total_seconds()),
            state={
                "shown": [_candidate_doc(c) for c in shown],
                "seed": str(seed),
                "expires_at": expires_at.isoformat(),
            },
            stream=f"{self.ns}:exposures",
            entry=entry,
            min_id=f"{int((time.time() - LEDGER_DAYS * 86400) * 1000)}-0",
        )
        return answer

    def next_available_date(
        self, session: Session, o: Offer, after: dt.date, window: Window
    ) -> dt.date | None:
        last = window.latest.astimezone(o.zone).date()
        if after >= last:
            return None
        days = free_days(session, o, after + dt.timedelta(days=1), last, window)
        return min((d for d, n in days.items() if n > 0), default=None)

    def _ledger_entry(
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
    ) -> dict[str, str]:
        """One stream entry per exposure computed (not per sticky repeat), trimmed by age."""
        return {
            "subject": subject,
            "biz": o.biz_key,
            "location_id": o.location_key,
            "service_id": o.service_key,
            "stylist": stylist_part,
            "date": day.isoformat(),
            "variant": variant,
            "seed": str(seed),
            "shown": ",".join(rfc3339(c.start_at) for c in shown),
            "total_available": str(total),
            "at": rfc3339(now),
        }

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
