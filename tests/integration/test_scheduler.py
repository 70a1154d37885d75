"""Two scheduler processes: only the one holding the advisory lock fires; the other takes over
when it goes away."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import select

from models.tables import SchedulerJobRun
from salon.bootstrap import bootstrap
from scheduler_jobs import runner
from scheduler_jobs.jobs import Job
from scheduler_jobs.leader import Leadership


def _runs(container, job: str) -> list[str]:
    with container.sessions() as s:
        return list(s.scalars(select(SchedulerJobRun.instance).where(SchedulerJobRun.job == job)))


def test_only_one_of_two_schedulers_fires_and_the_other_takes_over(settings, container):
    job_name = f"tick-{uuid.uuid4().hex[:8]}"
    # Its own lock key, so a scheduler of another test or process cannot interfere.
    jobs = [Job(job_name, 1, lambda c: {"sent": 0})]
    key = 9_000_000 + uuid.uuid4().int % 1_000_000
    instances = []
    for name in ("first", "second"):
        c = bootstrap(settings.with_(scheduler_tick_seconds=1))
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(c, stop, jobs, name, key), daemon=True)
        thread.start()
        instances.append((name, c, stop, thread))
        time.sleep(0.3)  # "first" starts first and takes the lock
    try:
        time.sleep(4.5)
        fired = _runs(container, job_name)
        assert len(fired) >= 3
        assert set(fired) == {"first"}
        # The leader stops: the standby acquires the lock and fires.
        instances[0][2].set()
        instances[0][3].join(timeout=10)
        time.sleep(4.5)
        fired = _runs(container, job_name)
        assert "second" in fired
        assert fired.count("second") >= 2
    finally:
        for _, c, stop, thread in instances:
            stop.set()
            thread.join(timeout=10)
            c.close()


def test_leadership_is_exclusive_and_released(container):
    key = 8_000_000 + uuid.uuid4().int % 1_000_000
    a, b = Leadership(container.engine, key), Leadership(container.engine, key)
    assert a.try_acquire() is True
    assert b.try_acquire() is False
    assert a.still_held() is True
    a.release()
    assert b.try_acquire() is True
    b.release()
