"""Two `salon scheduler` processes on a database and a Redis of their own: a frozen leader
(SIGSTOP) loses leadership after its lease, fires nothing once resumed, and stands by.
(A terminated lock session: tests/integration/test_scheduler.py.)"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from salon.infra.embedded.services import EmbeddedServices
from tests.conftest import TEST_PII_HASH_KEY, TEST_PII_KEYS, migrated_database
from tests.e2e.conftest import Process

LEASE_SECONDS = 3.0


@pytest.fixture
def own_database(servers, run_id) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """No other scheduler (the e2e system's) may compete for the lock or fire here."""
    with migrated_database(servers.admin_database_url, f"salon_e2e_leader_{run_id}") as url:
        yield url


@pytest.fixture
def db(own_database) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    engine = create_engine(own_database, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


class Schedulers:
    """`salon scheduler` processes on one database and Redis; their logs, should a test fail."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs_dir = env, logs
        self.started: list[Process] = []

    def start(self, name: str) -> Process:
        p = Process(name, ["scheduler"], self.env, self.logs_dir).start()
        self.started.append(p)
        return p

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.log_path.read_text(errors='replace')[-20000:]}" for p in self.started
        )


@pytest.fixture
def schedulers(own_database, run_id, tmp_path) -> Iterator[Schedulers]:  # type: ignore[no-untyped-def]
    redis = EmbeddedServices(tmp_path / "redis")
    redis.start_redis()
    env = {
        **os.environ,
        "DATABASE_URL": own_database,
        "REDIS_URL": redis.redis_url,
        "REDIS_NAMESPACE": f"e2e-leader-{run_id}",
        "SCHEDULER_TICK_SECONDS": "1",
        "SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS),
        "LOG_JSON": "false",
        "PII_KEYS": TEST_PII_KEYS,
        "PII_HASH_KEY": TEST_PII_HASH_KEY,
        "SALON_DEV": "true",  # the development JWT secret
    }
    processes = Schedulers(env, Path(tmp_path))
    try:
        yield processes
    finally:
        for p in processes.started:
            if p.proc is not None and p.proc.poll() is None:
                os.killpg(p.proc.pid, signal.SIGCONT)
            p.kill(signal.SIGTERM)
        redis.stop_redis()


def runs_of(db: Engine, p: Process) -> list[dt.datetime]:
    """When each recorded job run of that process fired (the database's clock)."""
    assert p.proc is not None
    with db.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT fired_at FROM scheduler.scheduler_job_runs"
                    " WHERE split_part(instance, ':', 2) = :pid ORDER BY fired_at"
                ),
                {"pid": str(p.proc.pid)},
            ).scalars()
        )


def logged(p: Process, line: str) -> bool:
    """Anywhere in its log (`Process.log` is the tail only, which APScheduler fills fast)."""
    return line in p.log_path.read_text(errors="replace")


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `predicate` held."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_frozen_leader_is_replaced_and_once_resumed_fires_nothing(db, schedulers):
    try:
        frozen_leader_replaced(db, schedulers.start)
    except BaseException:
        print(schedulers.logs())
        raise


def frozen_leader_replaced(db: Engine, schedulers: Callable[[str], Process]) -> None:
    first = schedulers("scheduler-a")
    wait_for(lambda: runs_of(db, first), 60, "the first scheduler's runs")
    second = schedulers("scheduler-b")
    wait_for(lambda: logged(second, "standing by"), 60, "the second scheduler standing by")
    assert not runs_of(db, second)

    # Frozen: its lock session's TCP connection stays open (the kernel answers for it), so
    # only the lease the server enforces can end it.
    assert first.proc is not None
    os.killpg(first.proc.pid, signal.SIGSTOP)
    took = wait_for(lambda: runs_of(db, second), 4 * LEASE_SECONDS, "the standby's takeover")
    print(f"\nfrozen leader replaced after {took:.1f} s (lease {LEASE_SECONDS} s)")
    os.killpg(first.proc.pid, signal.SIGCONT)
    wait_for(lambda: logged(first, "lost its lock"), 10, "the resumed leader stepping down")
    time.sleep(2.0)  # two ticks: whatever it had missed was due at once
    took_over_at = runs_of(db, second)[0]
    assert all(t < took_over_at for t in runs_of(db, first))
    assert len(runs_of(db, second)) >= 5
    assert first.proc.poll() is None  # alive, standing by

    # Standing by, it leads again once the other stops.
    count = len(runs_of(db, first))
    second.kill(signal.SIGTERM)
    wait_for(lambda: len(runs_of(db, first)) > count, 4 * LEASE_SECONDS, "the takeover")
