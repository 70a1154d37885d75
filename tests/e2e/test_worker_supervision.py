"""`salon worker` keeps serving when one of its Dramatiq worker processes dies.

Dramatiq's own parent process stops every worker process when one of them dies, then exits;
`salon worker` restarts what died and nothing else. Real processes throughout: the API, the
worker under `salon worker`, its own Redis and database, the product's default broker settings
and no scheduler (nothing re-sends a write: only the workers, and the broker's redelivery of a
killed worker's messages, finish them).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psutil
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import migrated_database, token_for
from tests.e2e.conftest import BROKER_AND_REDELIVERY, System, running_system


@dataclass
class Setup:
    system: System
    db: Engine
    client: httpx.Client
    admin: dict[str, str]


@pytest.fixture(scope="module")
def supervised(servers, run_id, settings, tmp_path_factory) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    """Its own database: another system's scheduler would re-send these writes to its own
    workers, and a dead `salon worker` would go unnoticed."""
    with migrated_database(servers.admin_database_url, f"salon_e2e_sup_{run_id}") as url:
        db = create_engine(url)
        try:
            biz = uuid.uuid4()
            with db.begin() as conn:
                conn.execute(
                    text("INSERT INTO public.biz_entity (id, name) VALUES (:id, 'sup')"),
                    {"id": biz},
                )
            env = {k: v for k, v in os.environ.items() if k not in BROKER_AND_REDELIVERY}
            env.update({"API_WAIT_SECONDS": "5", "RATE_LIMIT_PER_MINUTE": "0"})
            with (
                running_system(
                    url,
                    f"e2e-sup-{run_id}",
                    tmp_path_factory,
                    env,
                    worker_processes=2,
                    scheduler=False,
                ) as system,
                httpx.Client(base_url=system.base, timeout=30) as client,
            ):
                admin = {"Authorization": f"Bearer {token_for(settings, 'admin', biz)}"}
                yield Setup(system, db, client, admin)
        finally:
            db.dispose()


def tree(system: System) -> list[psutil.Process]:
    """`salon worker` and every process under it."""
    assert system.worker.proc is not None
    root = psutil.Process(system.worker.proc.pid)
    return [root, *root.children(recursive=True)]


def worker_processes(system: System) -> list[psutil.Process]:
    """The processes that run actors: the children of a Dramatiq parent process."""
    found = []
    for proc in tree(system)[1:]:
        try:
            parent = proc.parent()
            if parent is not None and "dramatiq" in " ".join(parent.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not {what} after {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - start


def writes_for(setup: Setup, seconds: float) -> list[str]:
    """A location created every 0.2 s for `seconds`, answered at once (202): their keys."""
    keys = []
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        key = str(uuid.uuid4())
        resp = setup.client.post(
            "/admin/v1/locations",
            json={"name": f"Sup {key[:8]}", "timezone": "UTC"},
            headers={**setup.admin, "Idempotency-Key": key, "Prefer": "respond-async"},
        )
        assert resp.status_code == 202, resp.text
        keys.append(key)
        time.sleep(0.2)
    return keys


def done_within(setup: Setup, keys: list[str], timeout: float) -> list[float]:
    """Waits until every write is done; each one's seconds from recorded to done."""

    def latencies() -> list[float]:
        with setup.db.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT extract(epoch FROM completed_at - created_at)"
                    " FROM scheduler.idempotency_keys WHERE key = ANY(:keys)"
                    " AND status <> 'pending'"
                ),
                {"keys": keys},
            ).scalars()
            return [float(r) for r in rows]

    deadline = time.monotonic() + timeout
    while len(found := latencies()) < len(keys):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(keys) - len(found)} of {len(keys)} writes not done {timeout:.0f} s later"
                f"\n{setup.system.logs()}"
            )
        time.sleep(0.2)
    return found


def kill(processes: list[psutil.Process]) -> None:
    for proc in processes:
        proc.send_signal(signal.SIGKILL)


def test_one_worker_process_killed_the_others_keep_serving_and_it_comes_back(supervised):
    system = supervised.system
    wait_until(lambda: len(worker_processes(system)) == 2, 30, "2 worker processes")
    first, second = worker_processes(system)
    with ThreadPoolExecutor(1) as pool:
        kill([first])
        writing = pool.submit(writes_for, supervised, 8.0)
        back = wait_until(lambda: len(worker_processes(system)) == 2, 20, "2 processes again")
        keys = writing.result()
    latencies = done_within(supervised, keys, timeout=30)
    # Written while one of two processes was dead or coming back: the other took them at once.
    assert max(latencies) <= 3.0, sorted(latencies)[-5:]
    assert second in worker_processes(system), "the surviving worker process was restarted"
    assert system.worker.proc is not None and system.worker.proc.poll() is None
    print(
        f"\none of 2 worker processes SIGKILLed: {len(keys)} writes in the 8 s after, slowest"
        f" {max(latencies):.2f} s; a new process {back:.1f} s after the kill"
    )


def test_every_worker_process_killed_writes_complete_within_seconds(supervised):
    """What `make run` (one worker process) sees when that process dies."""
    system = supervised.system
    wait_until(lambda: len(worker_processes(system)) == 2, 30, "2 worker processes")
    kill(worker_processes(system))
    keys = writes_for(supervised, 5.0)
    latencies = done_within(supervised, keys, timeout=30)
    wait_until(lambda: len(worker_processes(system)) == 2, 20, "2 worker processes again")
    # The first writes wait for a process to start (import, connect): seconds, not minutes.
    assert max(latencies) <= 10.0, sorted(latencies)[-5:]
    print(
        f"\nevery worker process SIGKILLed: the {len(keys)} writes of the next 5 s each done"
        f" within {max(latencies):.2f} s of being recorded"
    )


def test_salon_worker_killed_alone_leaves_no_worker_process_behind(supervised):
    """SIGKILL reaches no child, so each process is told by the kernel when its parent dies
    and goes too: nothing keeps consuming unsupervised."""
    system = supervised.system
    wait_until(lambda: len(worker_processes(system)) == 2, 30, "2 worker processes")
    everything = tree(system)
    assert system.worker.proc is not None
    os.kill(system.worker.proc.pid, signal.SIGKILL)
    system.worker.proc.wait()
    wait_until(
        lambda: not [p for p in everything if p.is_running() and p.status() != "zombie"],
        5,
        "every process gone",
    )
    system.worker.start()


def test_salon_worker_stops_cleanly_on_sigterm(supervised):
    system = supervised.system
    wait_until(lambda: len(worker_processes(system)) == 2, 30, "2 worker processes")
    keys = writes_for(supervised, 1.0)
    everything = tree(system)
    assert system.worker.proc is not None
    os.kill(system.worker.proc.pid, signal.SIGTERM)
    assert system.worker.proc.wait(timeout=30) == 0
    assert not [p for p in everything if p.is_running() and p.status() != "zombie"]
    done_within(supervised, keys, timeout=1)  # nothing in hand was dropped
    system.worker.start()
