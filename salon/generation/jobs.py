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
import json
import logging
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from models.ids import new_id
from models.rules import expand
from models.tables import (
    AvailabilityRule,
    GenerationChunk,
    GenerationJob,
    Location,
    Stylist,
    StylistLocation,
)
from salon.auth import Principal
from salon.encoding import json_default
from salon.errors import InvalidInput, NotFound
from salon.generation.slot_sync import ChunkKey, ChunkResult, reconcile
from salon.infra.locks import lock_stylists
from salon.ports import Generation
from salon.public_times.version_repair import chunk_change, run_with_receipt
from salon.public_times.versions import TimeChange, queue_bumps
from salon.rules.coverage import rules_for
from salon.write_path.model import WriteContext, WriteOutcome

log = logging.getLogger(__name__)

MAX_RANGE_DAYS = 366
MAX_CONFLICT_DETAILS = 200


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
    # Week-major: consecutive messages belong to different stylists, so worker threads do not
    # queue on one stylist's lock (each chunk takes it).
    keys = [ChunkKey(s, loc, w) for w in weeks for s, loc in pairs]
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
    first = max(key.week_start, job.date_from)
    last = min(key.week_start + dt.timedelta(days=7 * chunk_weeks - 1), job.date_to)
    fingerprint = _inputs_fingerprint(session, key, location.timezone)
    previous = _latest_chunk(session, key, first, last)
    if (
        previous is not None
        and previous.fingerprint == fingerprint
        and (previous.first_day, previous.last_day) == (first, last)
        and previous.conflicts == 0
        and previous.wanted is not None
    ):
        # The same rules made these days' slots last time and nothing has changed them
        # since (the latest chunk over these days is that one): nothing to read or write.
        result, wanted_count = ChunkResult(skipped=previous.wanted, conflicts=[]), previous.wanted
    else:
        rules = rules_for(session, key.location_id, key.stylist_id)
        wanted = expand(rules, first, last, ZoneInfo(location.timezone))
        result = reconcile(session, key, first, last, wanted, dry_run=job.dry_run)
        wanted_count = len(wanted)
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
            first_day=first,
            last_day=last,
            dry_run=job.dry_run,
            fingerprint=fingerprint,
            wanted=wanted_count,
            # When the chunk finished (its commit follows), not when its transaction began:
            # what `salon.public_times.version_repair` finds recent commits by.
            done_at=func.clock_timestamp(),
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
            {
                "id": job_id,
                "more": json.dumps(conflicts, default=json_default),
                "cap": MAX_CONFLICT_DETAILS,
            },
        )
    if done.chunks_total is not None and done.chunks_done >= done.chunks_total:
        session.execute(
            update(GenerationJob)
            .where(GenerationJob.id == job_id)
            .values(status="succeeded", finished_at=func.now())
        )
    result.days = (first, last)
    return result


def _inputs_fingerprint(session: Session, key: ChunkKey, timezone: str) -> str:
    """What a chunk's slots are computed from: the rules that apply (each one's id and last
    change) and the location's zone. The same fingerprint means the same wanted slots."""
    rows = session.execute(
        select(AvailabilityRule.id, AvailabilityRule.updated_at)
        .where(
            AvailabilityRule.location_id == key.location_id,
            or_(
                AvailabilityRule.stylist_id == key.stylist_id,
                AvailabilityRule.stylist_id.is_(None),
            ),
        )
        .order_by(AvailabilityRule.id)
    ).all()
    text_ = timezone + "|" + ";".join(f"{r.id}@{r.updated_at.isoformat()}" for r in rows)
    return hashlib.sha256(text_.encode()).hexdigest()


def _latest_chunk(
    session: Session, key: ChunkKey, first: dt.date, last: dt.date
) -> GenerationChunk | None:
    """The last chunk that wrote (or confirmed) any of these days' slots for this stylist here.
    Only generation writes slots, and every generation chunk leaves a row: if that row covers
    exactly these days with the same inputs, the slots are what the rules want."""
    return session.scalars(
        select(GenerationChunk)
        .where(
            GenerationChunk.stylist_id == key.stylist_id,
            GenerationChunk.location_id == key.location_id,
            GenerationChunk.dry_run.is_(False),
            GenerationChunk.first_day <= last,
            GenerationChunk.last_day >= first,
        )
        .order_by(GenerationChunk.seq.desc())
        .limit(1)
    ).first()


# --- the write operation and the actors' bodies ---------------------------------------------


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
        followups=(lambda dispatch: dispatch.plan_generation(job.id),),
    )


def plan_and_fan_out(container: Generation, job_id: uuid.UUID) -> int:
    """Plan a job's remaining chunks and send one message per chunk."""
    with container.sessions.begin() as session:
        job = session.get(GenerationJob, job_id, with_for_update=True)
        if job is None or job.status in ("succeeded", "failed"):
            return 0
        keys = plan(session, job, container.settings.generation_chunk_weeks)
    for key in keys:
        container.dispatch.generate_chunk(job_id, key.stylist_id, key.location_id, key.week_start)
    log.info("job %s: %d chunks sent", job_id, len(keys))
    return len(keys)


def generate_chunk(
    container: Generation, job_id: str, stylist_id: str, location_id: str, week_start: str
) -> None:
    key = ChunkKey(uuid.UUID(stylist_id), uuid.UUID(location_id), dt.date.fromisoformat(week_start))
    with container.sessions.begin() as session:
        # A chunk is recomputed from the rules if lost: no need to wait for its WAL flush
        # (every chunk commits after updating the job's row, so that wait serializes them).
        session.execute(text("SET LOCAL synchronous_commit = off"))
        result = run_chunk(
            session, uuid.UUID(job_id), key, container.settings.generation_chunk_weeks
        )
    if result is not None and (result.created or result.removed):
        announce_chunk(container, job_id, key, result.days)


def announce_chunk(
    container: Generation, job_id: str, key: ChunkKey, days: tuple[dt.date, dt.date] | None
) -> None:
    """Bump the stylist's version for the chunk's dates (every date when unknown) and leave the
    chunk's receipt (`salon.public_times.version_repair`) in one round trip. Naming the dates keeps
    what every process holds for the stylist's other days: the daily horizon job adds a day at the
    far end, it need not recompute the rest."""
    ns = container.settings.redis_namespace
    change = chunk_change(job_id, key.stylist_id, key.location_id, key.week_start.isoformat())
    changes: list[TimeChange] = []
    if days is not None:
        # UTC dates first..last: readers widen a changed UTC date to the local dates it can
        # reach in any zone (`salon.public_times.versions.local_dates_reached`).
        start = dt.datetime.combine(days[0], dt.time(), dt.UTC)
        end = dt.datetime.combine(days[1] + dt.timedelta(days=1), dt.time(), dt.UTC)
        changes = [(key.stylist_id, start, end)]

    def fill(pipe: Any) -> None:
        queue_bumps(pipe, ns, [] if changes else [key.stylist_id], changes)

    try:
        run_with_receipt(container, change, fill)
    except redis.RedisError:
        log.warning("could not bump the version of stylist %s", key.stylist_id)


def mark_failed(container: Generation, job_id: uuid.UUID, error: str) -> None:
    with container.sessions.begin() as session:
        session.execute(
            update(GenerationJob)
            .where(GenerationJob.id == job_id, GenerationJob.status.in_(("queued", "running")))
            .values(
                status="failed", error=error[:500], finished_at=func.now(), updated_at=func.now()
            )
        )


def start_horizon_jobs(container: Generation) -> list[uuid.UUID]:
    """The rolling horizon: one job per brand from today to N days ahead (idempotent runs)."""
    days = container.settings.horizon_days
    today = container.clock.now().date()
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
        container.dispatch.plan_generation(job_id)
    return created


def resume_stalled_jobs(container: Generation, stalled_after_seconds: int = 120) -> int:
    """Re-plan jobs that made no progress for a while (their messages were lost)."""
    with container.sessions() as session:
        ids = session.scalars(
            select(GenerationJob.id).where(
                GenerationJob.status.in_(("queued", "running")),
                GenerationJob.updated_at < func.now() - dt.timedelta(seconds=stalled_after_seconds),
            )
        ).all()
    for job_id in ids:
        container.dispatch.plan_generation(job_id)
    return len(ids)
