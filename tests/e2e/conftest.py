"""Processes started as a user starts them: `salon api`, `salon worker`, `salon scheduler`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from salon.infra.embedded.services import EmbeddedServices
from tests.conftest import (
    TEST_PII_HASH_KEY,
    TEST_PII_KEYS,
    migrated_database,
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        # Own process group: a kill reaches gunicorn's or dramatiq's children too.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "salon", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.signal(sig)
        self.reap()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def reap(self) -> None:
        """Wait (30 s at most) for the process to end after a signal, then SIGKILL its group."""
        if self.proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        # Whatever of the group outlived its leader (a gunicorn or dramatiq child) goes too:
        # nothing a test started may keep running after it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def wait_http(url: str, timeout: float = 30.0, status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == status:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} not answering {status} after {timeout}s: {last}")


class System:
    """API + worker + scheduler against the run's database and a Redis of their own."""

    def __init__(
        self,
        base: str,
        env: dict[str, str],
        redis: EmbeddedServices,
        logs: Path,
        *,
        worker_processes: int = 1,
        scheduler: bool = True,
    ) -> None:
        self.base, self.env, self.redis = base, env, redis
        port = base.rsplit(":", 1)[1]
        metrics = logs / "metrics"  # removed with the test's directory
        metrics.mkdir(exist_ok=True)
        self.api = Process(
            "api",
            ["api", "--port", port, "--workers", "2", "--threads", "4"],
            {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
            logs,
        )
        self.worker = Process(
            "worker", ["worker", "--processes", str(worker_processes), "--threads", "4"], env, logs
        )
        self.scheduler = Process("scheduler", ["scheduler"], env, logs)
        # Without the scheduler nothing re-sends a recorded write: only the broker redelivers.
        self.runs_scheduler = scheduler

    @property
    def processes(self) -> list[Process]:
        return [self.api, self.worker, *([self.scheduler] if self.runs_scheduler else [])]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in self.processes)


@contextlib.contextmanager
def running_system(
    database_url: str,
    namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
    env: dict[str, str],
    *,
    worker_processes: int = 1,
    scheduler: bool = True,
) -> Iterator[System]:
    """Start a Redis of its own and the processes on `database_url`; stop them all after."""
    logs = tmp_path_factory.mktemp("e2e-logs")
    redis = EmbeddedServices(tmp_path_factory.mktemp("e2e-redis"))
    redis.start_redis()
    port = free_port()
    full_env = {
        "PII_KEYS": TEST_PII_KEYS,
        "PII_HASH_KEY": TEST_PII_HASH_KEY,
        **env,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.redis_url,
        "REDIS_NAMESPACE": namespace,
        # The processes sign and check tokens with the development secret, as `salon dev` does.
        "SALON_DEV": "true",
    }
    sys_ = System(
        f"http://127.0.0.1:{port}",
        full_env,
        redis,
        logs,
        worker_processes=worker_processes,
        scheduler=scheduler,
    )
    for p in sys_.processes:
        p.start()
    try:
        wait_http(f"{sys_.base}/readyz", timeout=60)
        yield sys_
    except BaseException:
        print(sys_.logs())
        raise
    finally:
        # All asked to stop at once, then waited for: their graceful stops overlap.
        for p in sys_.processes:
            p.signal(signal.SIGTERM)
        for p in sys_.processes:
            p.reap()
        redis.stop_redis()


@pytest.fixture(scope="session")
def e2e_database_url(servers, run_id) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The processes' own database: their scheduler must not touch other tests' rows."""
    with migrated_database(servers.admin_database_url, f"salon_e2e_{run_id}") as url:
        yield url


@pytest.fixture
def e2e_tenant(e2e_database_url) -> uuid.UUID:  # type: ignore[no-untyped-def]
    biz = uuid.uuid4()
    engine = create_engine(e2e_database_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO public.biz_entity (id, name) VALUES (:id, 'e2e')"), {"id": biz}
        )
    engine.dispose()
    return biz


@pytest.fixture(scope="session")
def system(e2e_database_url, run_id, tmp_path_factory) -> Iterator[System]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "API_WAIT_SECONDS": "5",
        "REDELIVER_AFTER_SECONDS": "3",
        "SCHEDULER_TICK_SECONDS": "1",
        "BROKER_HEARTBEAT_MS": "3000",
        "RATE_LIMIT_PER_MINUTE": "0",
    }
    with running_system(e2e_database_url, f"e2e-{run_id}", tmp_path_factory, env) as sys_:
        yield sys_


# Left to the product's defaults (the README's configuration table) in `default_broker_system`:
# never inherited from the environment the tests run in.
BROKER_AND_REDELIVERY = ("BROKER_HEARTBEAT_MS", "REDELIVER_AFTER_SECONDS", "SCHEDULER_TICK_SECONDS")


@pytest.fixture(scope="module")
def default_broker_system(servers, run_id, tmp_path_factory) -> Iterator[System]:  # type: ignore[no-untyped-def]
    """API (2 gunicorn workers) + 2 worker processes with the product's DEFAULT broker
    settings (heartbeat, maintenance) and NO scheduler, so no re-enqueue job: whatever a
    killed worker had fetched comes back through the broker or not at all. Its own database
    (no other system's scheduler may re-send its writes) and its own Redis."""
    with migrated_database(servers.admin_database_url, f"salon_e2e_plain_{run_id}") as url:
        env = {k: v for k, v in os.environ.items() if k not in BROKER_AND_REDELIVERY}
        env.update({"API_WAIT_SECONDS": "5", "RATE_LIMIT_PER_MINUTE": "0"})
        with running_system(
            url, f"e2e-plain-{run_id}", tmp_path_factory, env, worker_processes=2, scheduler=False
        ) as sys_:
            yield sys_
