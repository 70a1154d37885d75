"""Slot generation: rules → slot instances, in chunks of one stylist, location and week.

A job is planned once (which chunks), then each chunk is one actor message and one
transaction: it takes the stylist's advisory lock (so two jobs never race on one stylist),
compares the slots the rules want with the slots that exist, inserts the missing ones with
COPY, deletes free slots no rule covers any more, and reports booked ones as conflicts. A
chunk row written in the same transaction makes a redelivered chunk a no-op. Running a job
again creates nothing; `dry_run` counts the same numbers and writes no slot.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, func, select, text, update
from sqlalchemy.orm import Session

from models.ids import new_id, new_id_hexes
from models.rules import Slot, expand
from models.tables import (
    Booking,
    GenerationChunk,
    GenerationJob,
    Location,
    SlotInstance,
    Stylist,
    StylistLocation,
)
from salon.auth import Principal
from salon.availability import rules_for
from salon.errors import InvalidInput, NotFound
from salon.locks import lock_stylists
from salon.writes import WriteContext, WriteOutcome, operation

if TYPE_CHECKING:
    from salon.bootstrap import Container

log = logging.getLogger(__name__)

MAX_RANGE_DAYS = 366
MAX_CONFLICT_DETAILS = 200


@dataclass(frozen=True)
class ChunkKey:
    stylist_id: uuid.UUID
    location_id: uuid.UUID
    week_start: dt.date

    def as_args(self) -> tuple[str, str, str]:
        return str(self.stylist_id), str(self.location_id), self.week_start.isoformat()


def job_view(job: GenerationJob) -> dict[str, Any]:
    total = job.chunks_total
    progress = 0.0 if not total else round(job.chunks_done / total, 4)
    if job.status == "succeeded":
        progress = 1.0
    return {
        "id": job.id,
        "status": job.status,
        "progress": progress,
        "location_id": job.location_id,
        "stylist_ids": job.stylist_ids,
        "from": job.date_from,
        "to": job.date_to,
        "dry_run": job.dry_run,
        "created": job.created,
        "removed": job.removed,
        "skipped": job.skipped,
        "conflicts": job.conflicts,
        "conflict_details": job.conflict_details,
        "chunks_total": total,
        "chunks_done": job.chunks_done,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def check_range(date_from: dt.date, date_to: dt.date) -> None:
    if date_to < date_from:
        raise InvalidInput(
            "`to` is before `from`", errors=[{"field": "to", "message": "must not be before from"}]
        )
    if (date_to - date_from).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(
            f"at most {MAX_RANGE_DAYS} days per request",
            errors=[{"field": "to", "message": f"range longer than {MAX_RANGE_DAYS} days"}],
        )


def create_job(
    session: Session,
    *,
    job_id: uuid.UUID,
    biz: uuid.UUID,
    requested_by: str,
    date_from: dt.date,
    date_to: dt.date,
    location_id: uuid.UUID | None,
    stylist_ids: list[uuid.UUID] | None,
    dry_run: bool,
) -> GenerationJob:
    check_range(date_from, date_to)
    if location_id is not None:
        loc = session.get(Location, location_id)
        if loc is None or loc.biz_entity_id != biz:
            raise NotFound(f"location {location_id} not found")
    if stylist_ids:
        found = set(
            session.scalars(
                select(Stylist.id).where(Stylist.id.in_(stylist_ids), Stylist.biz_entity_id == biz)
            )
        )
        missing = [str(s) for s in stylist_ids if s not in found]
        if missing:
            raise InvalidInput(
                "unknown stylist(s)",
                errors=[{"field": "stylist_ids", "message": f"unknown: {missing}"}],
            )
    job = GenerationJob(
        id=job_id,
        biz_entity_id=biz,
        requested_by=requested_by,
        location_id=location_id,
        stylist_ids=stylist_ids or None,
        date_from=date_from,
        date_to=date_to,
        dry_run=dry_run,
    )
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def get_job_by_id(session: Session, job_id: uuid.UUID) -> GenerationJob:
    job = session.get(GenerationJob, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def get_job(session: Session, principal: Principal, job_id: uuid.UUID) -> GenerationJob:
    job = session.get(GenerationJob, job_id)
    if job is None or job.biz_entity_id != principal.biz:
        raise NotFound(f"job {job_id} not found")
    return job


def plan(session: Session, job: GenerationJob, chunk_weeks: int) -> list[ChunkKey]:
    """Every (active stylist, location, block of weeks) the job covers, minus the done ones."""
    query = (
        select(StylistLocation.stylist_id, StylistLocation.location_id)
        .join(Stylist, Stylist.id == StylistLocation.stylist_id)
        .join(Location, Location.id == StylistLocation.location_id)
        .where(
            Stylist.biz_entity_id == job.biz_entity_id,
            Stylist.active.is_(True),
            Location.active.is_(True),
        )
        .order_by(StylistLocation.stylist_id, StylistLocation.location_id)
    )
    if job.location_id is not None:
        query = query.where(StylistLocation.location_id == job.location_id)
    if job.stylist_ids:
        query = query.where(StylistLocation.stylist_id.in_(job.stylist_ids))
    pairs = session.execute(query).all()
    weeks = []
    week = job.date_from
    while week <= job.date_to:
        weeks.append(week)
        week += dt.timedelta(days=7 * chunk_weeks)
    keys = [ChunkKey(s, loc, w) for s, loc in pairs for w in weeks]
    done = {
        ChunkKey(c.stylist_id, c.location_id, c.week_start)
        for c in session.scalars(select(GenerationChunk).where(GenerationChunk.job_id == job.id))
    }
    job.chunks_total = len(keys)
    if job.status == "queued":
        job.status = "running"
        job.started_at = func.now()
    if not keys or len(done) >= len(keys):
        job.status, job.finished_at = "succeeded", func.now()
    job.updated_at = func.now()
    return [k for k in keys if k not in done]


@dataclass
class ChunkResult:
    created: int = 0
    removed: int = 0
    skipped: int = 0
    conflicts: list[dict[str, Any]] | None = None


def run_chunk(
    session: Session, job_id: uuid.UUID, key: ChunkKey, chunk_weeks: int
) -> ChunkResult | None:
    """One chunk, exactly once (None when it was already done or its job is gone)."""
    job = session.get(GenerationJob, job_id)
    if job is None or job.status in ("succeeded", "failed"):
        return None
    lock_stylists(session, [key.stylist_id])
    if session.get(GenerationChunk, (job_id, key.stylist_id, key.location_id, key.week_start)):
        return None
    location = session.get(Location, key.location_id)
    assert location is not None
    zone = ZoneInfo(location.timezone)
    first = max(key.week_start, job.date_from)
    last = min(key.week_start + dt.timedelta(days=7 * chunk_weeks - 1), job.date_to)
    wanted = expand(rules_for(session, key.location_id, key.stylist_id), first, last, zone)
    result = reconcile(session, key, first, last, wanted, dry_run=job.dry_run)
    conflicts = result.conflicts or []
    session.add(
        GenerationChunk(
            job_id=job_id,
            stylist_id=key.stylist_id,
            location_id=key.location_id,
            week_start=key.week_start,
            created=result.created,
            removed=result.removed,
            skipped=result.skipped,
            conflicts=len(conflicts),
        )
    )
    done = session.execute(
        update(GenerationJob)
        .where(GenerationJob.id == job_id)
        .values(
            chunks_done=GenerationJob.chunks_done + 1,
            created=GenerationJob.created + result.created,
            removed=GenerationJob.removed + result.removed,
            skipped=GenerationJob.skipped + result.skipped,
            conflicts=GenerationJob.conflicts + len(conflicts),
            updated_at=func.now(),
        )
        .returning(GenerationJob.chunks_done, GenerationJob.chunks_total)
    ).one()
    if conflicts:
        session.execute(
            text(
                "UPDATE scheduler.generation_jobs SET conflict_details = "
                "(conflict_details || CAST(:more AS jsonb)) WHERE id = :id "
                "AND jsonb_array_length(conflict_details) < :cap"
            ),
            {"id": job_id, "more": _json(conflicts), "cap": MAX_CONFLICT_DETAILS},
        )
    if done.chunks_total is not None and done.chunks_done >= done.chunks_total:
        session.execute(
            update(GenerationJob)
            .where(GenerationJob.id == job_id)
            .values(status="succeeded", finished_at=func.now())
        )
    return result


def _json(value: Any) -> str:
    import json

    from salon.encoding import json_default

    return json.dumps(value, default=json_default)


def _digest(slots: Iterable[tuple[int, int]]) -> str:
    """The same text PostgreSQL builds in `_DAY_DIGESTS`, hashed: one value per local day."""
    return hashlib.md5(",".join(f"{a}:{b}" for a, b in slots).encode()).hexdigest()


# Per local day, a fingerprint of the stylist's slots here: a re-run that finds every day
# unchanged reads a few hundred short rows instead of every slot.
_DAY_DIGESTS = text(
    """
    SELECT local_date, md5(string_agg(
        extract(epoch FROM start_at)::bigint || ':' || extract(epoch FROM end_at)::bigint,
        ',' ORDER BY start_at)) AS digest
    FROM (
        -- OFFSET 0 keeps the outer filters out: the scan must use (stylist_id, start_at),
        -- not the location's index over every stylist's slots.
        SELECT local_date, start_at, end_at, location_id FROM scheduler.slot_instances
        WHERE stylist_id = :stylist AND start_at >= :lo AND start_at < :hi
        OFFSET 0
    ) AS mine
    WHERE location_id = :location AND local_date BETWEEN :first AND :last
    GROUP BY local_date
    """
)


def reconcile(
    session: Session,
    key: ChunkKey,
    first: dt.date,
    last: dt.date,
    wanted: list[Slot],
    *,
    dry_run: bool,
) -> ChunkResult:
    """Make the stylist's slots at this location for [first, last] what the rules want."""
    by_day: dict[dt.date, list[Slot]] = {}
    for slot in wanted:
        by_day.setdefault(slot.local_date, []).append(slot)
    # Local dates of any zone lie within a day of the UTC date: a margin bounds the index scan.
    lo = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC)
    hi = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC)
    stored = {
        row.local_date: row.digest
        for row in session.execute(
            _DAY_DIGESTS,
            {
                "stylist": key.stylist_id,
                "location": key.location_id,
                "lo": lo,
                "hi": hi,
                "first": first,
                "last": last,
            },
        )
    }
    result = ChunkResult(conflicts=[])
    changed: set[dt.date] = set()
    for day in set(by_day) | set(stored):
        slots = by_day.get(day, [])
        digest = _digest((int(x.start_at.timestamp()), int(x.end_at.timestamp())) for x in slots)
        if stored.get(day) == digest:
            result.skipped += len(slots)
        else:
            changed.add(day)
    if not changed:
        return result
    existing = session.execute(
        select(
            SlotInstance.id,
            SlotInstance.location_id,
            SlotInstance.local_date,
            SlotInstance.start_at,
            SlotInstance.end_at,
        ).where(
            SlotInstance.stylist_id == key.stylist_id,
            SlotInstance.start_at >= lo,
            SlotInstance.start_at < hi,
        )
    ).all()
    # Any location: one stylist cannot have two slots starting at the same instant.
    taken_starts = {row.start_at for row in existing}
    here = {
        (row.start_at, row.end_at): row
        for row in existing
        if row.location_id == key.location_id and row.local_date in changed
    }
    wanted_keys = set()
    to_create: list[Slot] = []
    for day in changed:
        for slot in by_day.get(day, []):
            wanted_keys.add((slot.start_at, slot.end_at))
            if (slot.start_at, slot.end_at) in here or slot.start_at in taken_starts:
                result.skipped += 1
            else:
                to_create.append(slot)
    stale = [(row.id, row.start_at, row.end_at) for k, row in here.items() if k not in wanted_keys]
    removable, conflicts = _split_booked(session, key.stylist_id, stale)
    result.conflicts = conflicts
    result.removed = len(removable)
    result.created = len(to_create)
    if dry_run:
        return result
    if removable:
        session.execute(delete(SlotInstance).where(SlotInstance.id.in_(removable)))
    if to_create:
        _copy_slots(session, key, to_create)
    return result


def _split_booked(
    session: Session, stylist_id: uuid.UUID, stale: list[tuple[uuid.UUID, dt.datetime, dt.datetime]]
) -> tuple[list[uuid.UUID], list[dict[str, Any]]]:
    """Stale slots overlapped by a live booking are conflicts for staff; the rest may go."""
    if not stale:
        return [], []
    lo = min(s for _, s, _ in stale)
    hi = max(e for _, _, e in stale)
    bookings = session.execute(
        select(Booking.id, Booking.start_at, Booking.end_at).where(
            Booking.stylist_id == stylist_id,
            Booking.start_at < hi,
            Booking.end_at > lo,
            Booking.status.in_(("held", "confirmed")),
            # An expired hold blocks nothing, even before the sweep marks it.
            ~and_(Booking.status == "held", Booking.hold_expires_at < func.now()),
        )
    ).all()
    removable: list[uuid.UUID] = []
    conflicts: list[dict[str, Any]] = []
    for slot_id, start, end in stale:
        booked = next((b for b in bookings if b.start_at < end and b.end_at > start), None)
        if booked is None:
            removable.append(slot_id)
        else:
            conflicts.append(
                {
                    "slot_id": slot_id,
                    "stylist_id": stylist_id,
                    "start_at": start,
                    "booking_id": booked.id,
                }
            )
    return removable, conflicts


def _copy_slots(session: Session, key: ChunkKey, slots: list[Slot]) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    columns = "id, location_id, stylist_id, local_date, start_at, end_at, status"
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY scheduler.slot_instances ({columns}) FROM STDIN") as copy,
    ):
        location, stylist = str(key.location_id), str(key.stylist_id)
        for slot_id, slot in zip(new_id_hexes(len(slots)), slots, strict=True):
            copy.write_row(
                (slot_id, location, stylist, slot.local_date, slot.start_at, slot.end_at, "open")
            )


# --- the write operation and the actors' bodies ---------------------------------------------


@operation("slots.generate")
def request_generation(session: Session, ctx: WriteContext) -> WriteOutcome:
    body = ctx.body
    biz = ctx.principal.biz
    if biz is None:
        raise NotFound("no such brand")
    job = create_job(
        session,
        job_id=ctx.write_id,
        biz=biz,
        requested_by=ctx.principal.key,
        date_from=dt.date.fromisoformat(body["from"]),
        date_to=dt.date.fromisoformat(body["to"]),
        location_id=uuid.UUID(body["location_id"]) if body.get("location_id") else None,
        stylist_ids=[uuid.UUID(s) for s in body.get("stylist_ids") or []],
        dry_run=bool(body.get("dry_run", False)),
    )
    return WriteOutcome(
        202,
        job_view(job),
        f"/admin/v1/jobs/{job.id}",
        followups=(("plan_generation", (str(job.id),)),),
    )


def plan_and_fan_out(container: Container, job_id: uuid.UUID) -> int:
    """Plan a job's remaining chunks and send one message per chunk."""
    with container.sessions.begin() as session:
        job = session.get(GenerationJob, job_id, with_for_update=True)
        if job is None or job.status in ("succeeded", "failed"):
            return 0
        keys = plan(session, job, container.settings.generation_chunk_weeks)
    actor = container.broker.get_actor("generate_chunk")
    for key in keys:
        actor.send(str(job_id), *key.as_args())
    log.info("job %s: %d chunks sent", job_id, len(keys))
    return len(keys)


def generate_chunk(
    container: Container, job_id: str, stylist_id: str, location_id: str, week_start: str
) -> None:
    key = ChunkKey(uuid.UUID(stylist_id), uuid.UUID(location_id), dt.date.fromisoformat(week_start))
    with container.sessions.begin() as session:
        result = run_chunk(
            session, uuid.UUID(job_id), key, container.settings.generation_chunk_weeks
        )
    if result is not None and (result.created or result.removed):
        from salon.exposures import bump_versions

        bump_versions(container, [key.stylist_id])


def mark_failed(container: Container, job_id: uuid.UUID, error: str) -> None:
    with container.sessions.begin() as session:
        session.execute(
            update(GenerationJob)
            .where(GenerationJob.id == job_id, GenerationJob.status.in_(("queued", "running")))
            .values(
                status="failed", error=error[:500], finished_at=func.now(), updated_at=func.now()
            )
        )


def start_horizon_jobs(container: Container) -> list[uuid.UUID]:
    """The rolling horizon: one job per brand from today to N days ahead (idempotent runs)."""
    days = container.settings.horizon_days
    today = dt.datetime.now(dt.UTC).date()
    created: list[uuid.UUID] = []
    with container.sessions.begin() as session:
        brands = session.scalars(
            select(Stylist.biz_entity_id).where(Stylist.active.is_(True)).distinct()
        ).all()
        for biz in brands:
            job = create_job(
                session,
                job_id=new_id(),
                biz=biz,
                requested_by="scheduler:horizon",
                # A day of margin: the earliest zone's "today" may still be yesterday in UTC.
                date_from=today - dt.timedelta(days=1),
                date_to=today + dt.timedelta(days=days),
                location_id=None,
                stylist_ids=None,
                dry_run=False,
            )
            created.append(job.id)
    for job_id in created:
        container.broker.get_actor("plan_generation").send(str(job_id))
    return created


def resume_stalled_jobs(container: Container, stalled_after_seconds: int = 120) -> int:
    """Re-plan jobs that made no progress for a while (their messages were lost)."""
    with container.sessions() as session:
        ids = session.scalars(
            select(GenerationJob.id).where(
                GenerationJob.status.in_(("queued", "running")),
                GenerationJob.updated_at < func.now() - dt.timedelta(seconds=stalled_after_seconds),
            )
        ).all()
    for job_id in ids:
        container.broker.get_actor("plan_generation").send(str(job_id))
    return len(ids)
