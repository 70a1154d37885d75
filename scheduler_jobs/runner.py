"""`salon scheduler`: wait for leadership, then run APScheduler until leadership is lost."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from salon.bootstrap import Container
from scheduler_jobs.jobs import Job, default_jobs, fire
from scheduler_jobs.leader import SCHEDULER_LOCK, Holder, Leadership

log = logging.getLogger(__name__)


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _start(
    container: Container, jobs: list[Job], instance: str, holder: Holder, deposed: threading.Event
) -> BackgroundScheduler:
    # A firing holds two connections (its fence transaction and the job's own) and the lock
    # session one more: so many threads fit the process's pool (2 x DB_POOL_SIZE).
    threads = max(1, container.settings.db_pool_size - 1)
    scheduler = BackgroundScheduler(
        timezone="UTC", executors={"default": ThreadPoolExecutor(max_workers=threads)}
    )
    for job in jobs:
        scheduler.add_job(
            fire,
            "interval",
            seconds=job.seconds,
            args=(container, job, instance, holder, deposed),
            id=job.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, job.seconds),
            **({"next_run_time": datetime.now(UTC)} if job.at_start else {}),
        )
    scheduler.start()
    return scheduler


def _lead(
    leadership: Leadership, stop: threading.Event, deposed: threading.Event, beat: float
) -> str | None:
    """While leading: the heartbeat every `beat` seconds; why leadership ended, or None when
    stopped."""
    next_beat = time.monotonic() + beat
    # Short waits: a refused fence (`deposed`) is acted on within a quarter second.
    while not stop.wait(min(beat, 0.25)):
        if deposed.is_set():
            return "a job's fence found the lock gone"
        if time.monotonic() >= next_beat:
            if not leadership.still_held():
                return "its lock session is gone"
            next_beat = time.monotonic() + beat
    return None


def run(
    container: Container,
    stop: threading.Event,
    jobs: list[Job] | None = None,
    instance: str | None = None,
    lock_key: int = SCHEDULER_LOCK,
) -> None:
    jobs = default_jobs(container) if jobs is None else jobs
    instance = instance or instance_name()
    lease = container.settings.scheduler_lease_seconds
    leadership = Leadership(container.engine, lock_key, lease)
    # The heartbeat (and a standby's try) well within the lease: a quarter of it.
    beat = max(0.1, min(container.settings.scheduler_tick_seconds, lease / 4))
    standing_by = False
    while not stop.is_set():
        try:
            holder = leadership.try_acquire()
        except Exception as exc:
            log.warning("cannot take the scheduler lock: %s", exc)
            holder = None
        if holder is None:
            if not standing_by:
                log.info("scheduler %s is standing by", instance)
                standing_by = True
            stop.wait(beat)
            continue
        standing_by = False
        log.info("scheduler %s is the leader; starting %d jobs", instance, len(jobs))
        deposed = threading.Event()
        scheduler = _start(container, jobs, instance, holder, deposed)
        why = _lead(leadership, stop, deposed, beat)
        if why:
            log.warning("scheduler %s lost its lock (%s); standing by", instance, why)
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
