"""The periodic jobs. Each only enqueues actors (or re-sends recorded writes) and records
that it fired, so operators can see every job's last run."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from threading import Event
from typing import Any

from sqlalchemy import delete, func, insert

from models.tables import AuditEvent, SchedulerJobRun
from salon.bootstrap import Container
from salon.generation import jobs as generation
from salon.public_times.version_repair import LostBumpWatch
from salon.write_path import resend
from scheduler_jobs.leader import Holder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    seconds: int
    run: Callable[[Container], dict[str, Any] | None]
    at_start: bool = False  # also fire as soon as this scheduler becomes the leader


def reenqueue_writes(container: Container) -> dict[str, Any]:
    return {"sent": resend.reenqueue_due(container)}


def purge_old_records(container: Container) -> dict[str, Any]:
    container.dispatch.purge_write_requests()
    retention = dt.timedelta(days=container.settings.audit_retention_days)
    with container.sessions.begin() as session:
        session.execute(
            delete(SchedulerJobRun).where(
                SchedulerJobRun.fired_at < func.now() - dt.timedelta(days=7)
            )
        )
        # An hour's worth of old rows at a time, by the index on `at`.
        audit = session.execute(delete(AuditEvent).where(AuditEvent.at < func.now() - retention))
    return {"audit_purged": int(getattr(audit, "rowcount", 0) or 0)}


def generate_horizon(container: Container) -> dict[str, Any]:
    container.dispatch.generate_horizon()
    return {}


def resume_generation(container: Container) -> dict[str, Any]:
    return {"resumed": generation.resume_stalled_jobs(container)}


def expire_holds(container: Container) -> dict[str, Any]:
    container.dispatch.expire_holds()
    return {}


def default_jobs(container: Container) -> list[Job]:
    tick = container.settings.scheduler_tick_seconds
    return [
        Job("reenqueue_writes", tick, reenqueue_writes),
        Job("expire_holds", tick, expire_holds),
        Job("purge_old_records", 3600, purge_old_records),
        Job("generate_horizon", 24 * 3600, generate_horizon, at_start=True),
        Job("resume_generation", 60, resume_generation),
        Job("find_lost_bumps", 30, LostBumpWatch().run),
    ]


def fire(container: Container, job: Job, instance: str, holder: Holder, deposed: Event) -> None:
    """Run one job, fenced: only while `holder` still holds the scheduler's lock, inside the
    transaction that checked it (which also records the run). A refused fence runs nothing and
    sets `deposed`, so the scheduler steps down; a failing job is logged and tried at its next
    tick."""
    ran = False
    try:
        with container.sessions.begin() as session:
            if not holder.fence(session):
                log.warning("job %s not fired: this scheduler no longer leads", job.name)
                deposed.set()
                return
            ran = True
            try:
                detail = job.run(container)
            except Exception:
                log.exception("job %s failed", job.name)
                detail = {"error": True}
            session.execute(
                insert(SchedulerJobRun).values(job=job.name, instance=instance, detail=detail)
            )
    except Exception as exc:
        if ran:
            log.warning("could not record the run of job %s: %s", job.name, exc)
        else:  # database unreachable: no leadership to check, so nothing fires
            log.warning("job %s not fired: its fence failed: %s", job.name, exc)
