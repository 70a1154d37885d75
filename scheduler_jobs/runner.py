"""`salon scheduler`: wait for leadership, then run APScheduler until leadership is lost."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from salon.bootstrap import Container
from scheduler_jobs.jobs import Job, default_jobs, fire
from scheduler_jobs.leader import SCHEDULER_LOCK, Leadership

log = logging.getLogger(__name__)


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _start(container: Container, jobs: list[Job], instance: str) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    for job in jobs:
        scheduler.add_job(
            fire,
            "interval",
            seconds=job.seconds,
            args=(container, job, instance),
            id=job.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, job.seconds),
            **({"next_run_time": datetime.now(UTC)} if job.at_start else {}),
        )
    scheduler.start()
    return scheduler


def run(
    container: Container,
    stop: threading.Event,
    jobs: list[Job] | None = None,
    instance: str | None = None,
    lock_key: int = SCHEDULER_LOCK,
) -> None:
    jobs = default_jobs(container) if jobs is None else jobs
    instance = instance or instance_name()
    leadership = Leadership(container.engine, lock_key)
    poll = max(1, min(5, container.settings.scheduler_tick_seconds))
    while not stop.is_set():
        try:
            leading = leadership.try_acquire()
        except Exception as exc:
            log.warning("cannot reach PostgreSQL for the scheduler lock: %s", exc)
            leading = False
        if not leading:
            stop.wait(poll)
            continue
        log.info("scheduler %s is the leader; starting %d jobs", instance, len(jobs))
        scheduler = _start(container, jobs, instance)
        while not stop.wait(poll):
            if not leadership.still_held():
                log.warning("scheduler %s lost its lock; standing by", instance)
                break
        scheduler.shutdown(wait=True)
        leadership.release()
    log.info("scheduler %s stopped", instance)


def main(container: Container) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run(container, stop)
