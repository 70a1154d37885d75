"""Exposures: the few free times a customer is shown, sticky for their TTL in every process.

The choice itself is pure (`models.exposure`); the day's live times come from
`salon.public_times.day_times`, stored answers from `salon.public_times.stored_answers`. A repeat
within the TTL is answered by one Redis script with the stored bytes, while no write changed any of
the stylists concerned or the catalogue; otherwise the exposure is chosen again over the day's live
times: the shown times still free stay, and each taken one is replaced by one other."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from models.exposure import (
    SHOW_ALL_UP_TO,
    Candidate,
    CandidateRow,
    replace_taken,
    row_of,
    seed_for,
    top_up,
)
from salon.encoding import rfc3339
from salon.errors import InvalidInput
from salon.ports import Reads
from salon.public_times.free_times import Offer, Window, free_days, local_today
from salon.public_times.stored_answers import Lookup, StoredAnswers, stream_entry
from salon.public_times.versions import bump_versions, version_key

__all__ = ["ExposureService", "bump_versions", "version_key"]


# The seed changes every hour, so a time nobody was shown gets its chance (seed doc, "rotate").
SEED_ROTATION_SECONDS = 3600
LEDGER_DAYS = 7


def _hyphenated(hex_id: str) -> str:
    """A UUID's text from its hex, as `str(uuid.UUID(hex=...))` gives it (without building one)."""
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"


def _row_view(o: Offer, r: CandidateRow) -> dict[str, Any]:
    """What the customer is shown of one candidate: ids as text, the service's own start and
    end (not the buffer) in UTC and in the location's time. From the row: building a
    `Candidate` (two UUIDs) per shown time was a tenth of a new exposure's CPU."""
    service_end = r[3] + dt.timedelta(minutes=o.durations_by_hex.get(r[1], 0))
    return {
        "slot_id": _hyphenated(r[2]),
        "stylist_id": _hyphenated(r[1]),
        "start_at": rfc3339(r[3]),
        "end_at": rfc3339(service_end),
        "local_start": r[5].isoformat(),
        "local_end": service_end.astimezone(o.zone).isoformat(),
    }


def _row_doc(r: CandidateRow) -> dict[str, Any]:
    """A shown candidate as the exposure's stored state keeps it (`_candidate_from` reads it)."""
    return {
        "key": r[0],
        "stylist_id": _hyphenated(r[1]),
        "slot_id": _hyphenated(r[2]),
        "start_at": r[3].isoformat(),
        "end_at": r[4].isoformat(),
        "gap_before": r[6].total_seconds(),
        "gap_after": r[7].total_seconds(),
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
    def __init__(self, container: Reads, reads: StoredAnswers | None = None) -> None:
        self.container = container
        self.settings = container.settings
        self.ns = container.settings.redis_namespace
        self.reads = reads or StoredAnswers(container)

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
        return self.key_of(
            subject,
            str(location_id),
            str(service_id),
            str(stylist_id) if stylist_id else None,
            day.isoformat(),
            variant,
        )

    def key_of(
        self,
        subject: str,
        location_id: str,
        service_id: str,
        stylist_id: str | None,
        day: str,
        variant: str,
    ) -> str:
        """`key` of the ask's fields as canonical text (lower-case UUIDs, ISO date)."""
        parts = (subject, location_id, service_id, stylist_id or "any", day, variant)
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
        (`api.slots_entrance`); used only if the key is this ask's."""
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
        times = self.reads.live.day(o, day, versions, now)
        free = times.within(window)
        stylist_part = str(stylist_id) if stylist_id else "any"
        stored = found.state
        if stored is not None:
            previous = [_candidate_from(o, d) for d in stored["shown"]]
            seed = int(stored["seed"])
            replaced = replace_taken(
                previous, free.candidates(), seed=seed, shortest_service=o.shortest, variant=variant
            )
            if len(replaced) < min(SHOW_ALL_UP_TO, free.count):
                # Fewer than a new exposure might show (times taken and not replaced, or
                # few were free): grown back as the same seed chooses now.
                fresh = free.choose(seed=seed, variant=variant)
                replaced = top_up(replaced, fresh, avoid=(c.start_at for c in previous))
            shown = [row_of(c) for c in replaced]
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
            shown = free.choose_rows(seed=seed, variant=variant)
            expires_at = now + dt.timedelta(seconds=self.settings.exposure_ttl_seconds)
        total = free.count
        response = {
            "date": day.isoformat(),
            "location_id": o.location_key,
            "service_id": o.service_key,
            "stylist_id": str(stylist_id) if stylist_id else None,
            "timezone": o.location.timezone,
            "exposed_slots": [_row_view(o, r) for r in shown],
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
        # Served until the exposure expires, never once its day is over at the location, and
        # not once its first free time comes within the minimum notice (today's exposures:
        # a shown time that can no longer be booked is replaced, the total counts it out).
        until = min(expires_at, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), o.zone))
        if free.count:
            # The first time is bookable while the window's earliest has not passed it.
            until = min(until, now + (free.starts[0] - window.earliest))
        if not times.current:
            # Chosen from a list served while it is recomputed: not past its grace.
            until = min(until, times.valid_until)
        entry = self._ledger_entry(subject, o, day, stylist_part, variant, seed, shown, total, now)
        self.reads.store(
            key,
            answer,
            versions,
            until=until,
            ttl=int((expires_at - now).total_seconds()),
            state={
                "shown": [_row_doc(r) for r in shown],
                "seed": str(seed),
                "expires_at": expires_at.isoformat(),
            },
            also=[
                stream_entry(
                    f"{self.ns}:exposures",
                    entry,
                    min_id=f"{int((now.timestamp() - LEDGER_DAYS * 86400) * 1000)}-0",
                )
            ],
        )
        return answer

    def next_available_date(
        self, session: Session, o: Offer, after: dt.date, window: Window
    ) -> dt.date | None:
        last = window.latest.astimezone(o.zone).date()
        if after >= last:
            return None
        days = free_days(session, o, after + dt.timedelta(days=1), last, window).counts
        return min((d for d, n in days.items() if n > 0), default=None)

    def _ledger_entry(
        self,
        subject: str,
        o: Offer,
        day: dt.date,
        stylist_part: str,
        variant: str,
        seed: int,
        shown: list[CandidateRow],
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
            "shown": ",".join(rfc3339(r[3]) for r in shown),
            # Who and which slot for each shown time, in the same order.
            "shown_stylists": ",".join(_hyphenated(r[1]) for r in shown),
            "shown_slots": ",".join(_hyphenated(r[2]) for r in shown),
            "total_available": str(total),
            "at": rfc3339(now),
        }

    def ledger(
        self,
        *,
        biz: uuid.UUID,
        subject: str | None,
        day: dt.date | None,
        limit: int,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        before: str | None = None,
    ) -> LedgerPage:
        """A brand's exposures, newest first, for support ("why not 15:00?"): those recorded
        from `since` to `until`, older than the entry `before` (a previous page's `next`).

        The stream holds every brand's exposures of the last week, so it is read backwards in
        pages, at most LEDGER_SCAN entries a call; `next` says where to go on when `limit`
        were found or that many were read. An exposure of a date is recorded before that date
        ends anywhere, so `day` also bounds the read."""
        stream = f"{self.ns}:exposures"
        newest = until
        if day is not None:
            # Any zone's end of that date (UTC+14) is before the next UTC day ends.
            day_ends = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(), dt.UTC)
            newest = min(newest, day_ends) if newest else day_ends
        high = f"({before}" if before else (_stream_ms(newest) if newest else "+")
        low = _stream_ms(since) if since else "-"
        # Compared as stored, before anything is decoded: most entries are other brands'.
        wanted = {b"biz": str(biz).encode()}
        if subject:
            wanted[b"subject"] = subject.encode()
        if day:
            wanted[b"date"] = day.isoformat().encode()
        found: list[dict[str, str]] = []
        scanned = 0
        while scanned < LEDGER_SCAN:
            count = min(LEDGER_PAGE, LEDGER_SCAN - scanned)
            raw: list[tuple[bytes, dict[bytes, bytes]]] = self.container.redis.xrevrange(  # type: ignore[assignment]
                stream, max=high, min=low, count=count
            )
            for entry_id, fields in raw:
                scanned += 1
                if any(fields.get(name) != value for name, value in wanted.items()):
                    continue
                doc = {k.decode(): v.decode() for k, v in fields.items()}
                found.append({"id": entry_id.decode(), **doc})
                if len(found) >= limit:
                    return LedgerPage(found, entry_id.decode())
            if len(raw) < count:
                return LedgerPage(found, None)
            high = "(" + raw[-1][0].decode()
        return LedgerPage(found, high[1:])


# A ledger query reads the stream this many entries at a time, and at most LEDGER_SCAN.
LEDGER_PAGE = 5_000
LEDGER_SCAN = 200_000


@dataclass(frozen=True)
class LedgerPage:
    items: list[dict[str, str]]
    next: str | None  # an entry id: older ones may match too (before=next goes on)


def _stream_ms(at: dt.datetime) -> str:
    """A stream id bound: entries are numbered by the millisecond they were added."""
    return str(int(at.timestamp() * 1000))
