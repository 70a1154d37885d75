"""Two scheduler processes: only the one holding the advisory lock fires; the other takes over
when it goes away, and the one deposed fires nothing more (see also
tests/e2e/test_scheduler_leadership.py: a frozen leader)."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import select, text

from models.tables import SchedulerJobRun
from salon.bootstrap import bootstrap
from scheduler_jobs import runner
from scheduler_jobs.jobs import Job
from scheduler_jobs.leader import Leadership


def _lock_backend(container, key: int) -> int:
    """The pid of the backend holding the advisory lock `key` in this database."""
    with container.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND objid = :key AND objsubid = 1 AND database ="
                    " (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"key": key},
            ).scalar_one()
        )


def _last_statement(container, pid: int):  # type: ignore[no-untyped-def]
    with container.engine.connect() as conn:
        return conn.execute(
            text("SELECT query_start FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


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
        # Polled, not slept for: three firings of a 1 s job are ~3 s of both schedulers
        # running side by side, and every firing in them must be the leader's.
        _wait(lambda: len(_runs(container, job_name)) >= 3, 10, "three firings")
        fired = _runs(container, job_name)
        assert len(fired) >= 3
        assert set(fired) == {"first"}
        # The leader stops: the standby acquires the lock and fires.
        instances[0][2].set()
        instances[0][3].join(timeout=10)
        _wait(lambda: _runs(container, job_name).count("second") >= 2, 10, "the standby")
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
    a, b = Leadership(container.engine, key, 10), Leadership(container.engine, key, 10)
    assert a.try_acquire() is not None
    assert b.try_acquire() is None
    assert a.still_held() is True
    a.release()
    assert b.try_acquire() is not None
    b.release()


def test_a_leader_whose_lock_session_is_terminated_fires_nothing_once_another_leads(
    settings, container
):
    """The leader's lock backend is terminated right after its heartbeat (next one 5 s away)
    and while one of its jobs runs; a standby takes over at once. The deposed leader's fence
    refuses its next firing, and the new leader waits for the job in flight before it fires:
    every job of the old leader ends before the first of the new one starts. (Unfenced, the
    old leader went on firing every second until its heartbeat noticed, 5 s later.)"""
    key = 9_000_000 + uuid.uuid4().int % 1_000_000
    job_name = f"fenced-{uuid.uuid4().hex[:8]}"
    bodies: list[tuple[str, float, float]] = []  # (instance, started, ended)
    running = {"old": threading.Event(), "new": threading.Event()}

    def probe(name: str) -> list[Job]:
        def body(c) -> dict[str, int]:  # type: ignore[no-untyped-def]
            started = time.monotonic()
            running[name].set()
            time.sleep(0.5)
            bodies.append((name, started, time.monotonic()))
            running[name].clear()
            return {}

        return [Job(job_name, 1, body, at_start=True)]

    # A long lease: the heartbeat comes every 5 s (the tick), so only the fence can stop the
    # old leader within the test's window.
    slow_beat = settings.with_(scheduler_tick_seconds=5, scheduler_lease_seconds=60)
    threads = []
    for name in ("old", "new"):
        c = bootstrap(slow_beat)
        stop = threading.Event()
        thread = threading.Thread(
            target=runner.run, args=(c, stop, probe(name), name, key), daemon=True
        )
        threads.append((c, stop, thread))
    try:
        threads[0][2].start()
        _wait(lambda: len(bodies) >= 1, 10, "the first leader's job")
        lock_pid = _lock_backend(container, key)
        beat = _last_statement(container, lock_pid)
        _wait(lambda: _last_statement(container, lock_pid) != beat, 10, "a heartbeat")
        running["old"].wait(5)
        with container.engine.connect() as conn:
            assert conn.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": lock_pid}
            ).scalar_one()
        threads[1][2].start()
        _wait(lambda: any(n == "new" for n, _, _ in bodies), 10, "the new leader's job")
        # Three of the new leader's firings, all before the old leader's next heartbeat (5 s
        # after the last): unfenced, the old one would fire every second meanwhile.
        _wait(lambda: sum(n == "new" for n, _, _ in bodies) >= 3, 10, "three new firings")
        old = [b for b in bodies if b[0] == "old"]
        new = [b for b in bodies if b[0] == "new"]
        first_new = min(started for _, started, _ in new)
        assert max(ended for _, _, ended in old) <= first_new, (old, new)
        assert len(new) >= 3
        runs = _runs(container, job_name)
        assert runs.count("old") == len(old) and runs.count("new") >= 2
        assert threads[0][2].is_alive()  # standing by, not crashed
    finally:
        for c, stop, thread in threads:
            stop.set()
            if thread.is_alive():
                thread.join(timeout=10)
            c.close()
