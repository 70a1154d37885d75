"""Waiting writes against stalled parts: the worker processes stopped (SIGSTOP) under a burst of
holds, and the system's own Redis frozen (SIGSTOP, not dead) while writes wait on it. Every
write answers within its wait plus a small constant, a write Redis cannot take answers 202 at
once, reads never queue behind waiting writes, and nothing accepted is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import pytest
import redis

from tests.conftest import token_for
from tests.e2e.conftest import Process, System

WAIT = 2.0  # each write's `Prefer: wait`
# What a write may take beyond its wait (the bound is the API's own clock: REDIS_TIMEOUT) and
# what a read or a 202 may take at most; both leave room for a loaded 2-core machine.
SLACK = 1.0
CUSTOMER = {"name": "Wait Client", "phone": "+1 212 555 0101"}


@dataclass
class Posted:
    headers: dict[str, str]
    started: float = 0.0
    seconds: float = 0.0
    status: int = 0
    write_id: str | None = None
    final: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def client(system: System) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.base, timeout=60) as c:
        yield c


@pytest.fixture
def shop(system: System, client: httpx.Client, settings, e2e_tenant) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A location and a service to ask /v1/slots about (no slots: the ask is still computed)."""
    admin = {"Authorization": f"Bearer {token_for(settings, 'admin', e2e_tenant)}"}

    def create(path: str, body: dict[str, Any]) -> str:
        resp = client.post(path, json=body, headers={**admin, "Idempotency-Key": str(uuid.uuid4())})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    location = create("/admin/v1/locations", {"name": "Waits", "timezone": "UTC"})
    service = create(
        "/admin/v1/services", {"location_id": location, "name": "Trim", "duration_minutes": 30}
    )
    return {"location_id": location, "service_id": service}


@pytest.fixture
def whole_again(system: System) -> Iterator[None]:
    """Whatever a test stopped runs again after it."""
    yield
    pid = system.redis.redis_pid
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    resume(system.worker)


def _tree(process: Process) -> list[int]:
    """The process and every descendant: `salon worker` runs each Dramatiq parent in a
    process group of its own, so signalling its group alone would miss the workers."""
    assert process.proc is not None
    root = psutil.Process(process.proc.pid)
    return [root.pid, *(child.pid for child in root.children(recursive=True))]


def stop(process: Process) -> None:
    for pid in _tree(process):
        os.kill(pid, signal.SIGSTOP)


def resume(process: Process) -> None:
    if process.proc is not None:
        for pid in _tree(process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def hold(base: str, p: Posted) -> None:
    """One hold of a slot nobody has (the worker refuses it later: the write still runs)."""
    body = {"slot_id": str(uuid.uuid4()), "service_id": str(uuid.uuid4()), "customer": CUSTOMER}
    headers = {**p.headers, "Idempotency-Key": str(uuid.uuid4()), "Prefer": f"wait={WAIT:g}"}
    with httpx.Client(base_url=base, timeout=60) as c:
        p.started = time.monotonic()
        resp = c.post("/v1/bookings", json=body, headers=headers)
        p.seconds = time.monotonic() - p.started
    p.status = resp.status_code
    if resp.status_code == 202:
        p.write_id = resp.headers["Location"].rsplit("/", 1)[1]
    else:
        p.write_id = resp.headers.get("X-Write-Id")


def holds(settings, n: int) -> list[Posted]:  # type: ignore[no-untyped-def]
    return [
        Posted({"Authorization": f"Bearer {token_for(settings, 'user', None, sub=uuid.uuid4())}"})
        for _ in range(n)
    ]


def send_all(base: str, posted: list[Posted]) -> list[threading.Thread]:
    threads = [threading.Thread(target=hold, args=(base, p)) for p in posted]
    for t in threads:
        t.start()
    return threads


class Reader:
    """Asks /v1/slots (a new anonymous session each time: computed, never a stored repeat)
    and /v1/locations in turn, every 50 ms, and keeps how long each took."""

    def __init__(self, base: str, shop: dict[str, str]) -> None:
        self.base, self.shop = base, shop
        self.seconds: list[float] = []
        self.statuses: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        day = (dt.date.today() + dt.timedelta(days=3)).isoformat()
        with httpx.Client(base_url=self.base, timeout=60) as c:
            while not self._stop.is_set():
                for path, params, headers in (
                    ("/v1/slots", {**self.shop, "date": day}, {"X-Session-Id": uuid.uuid4().hex}),
                    ("/v1/locations", {"page_size": 5}, {}),
                ):
                    t0 = time.monotonic()
                    resp = c.get(path, params=params, headers=headers)
                    self.seconds.append(time.monotonic() - t0)
                    self.statuses.add(resp.status_code)
                self._stop.wait(0.05)

    def summary(self) -> str:
        s = sorted(self.seconds)
        return (
            f"{len(s)} reads, median {statistics.median(s) * 1000:.0f} ms, "
            f"max {s[-1] * 1000:.0f} ms"
        )


def settle(base: str, posted: list[Posted], timeout: float) -> None:
    """Poll every write's request until it is no longer pending."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=30) as c:
        for p in posted:
            assert p.write_id, p
            while True:
                resp = c.get(f"/v1/requests/{p.write_id}", headers=p.headers)
                if resp.status_code == 200 and resp.json()["status"] != "pending":
                    p.final = resp.json()
                    break
                assert time.monotonic() < deadline, (p.write_id, resp.text)
                time.sleep(0.2)


def blocked(client: redis.Redis) -> int:
    """How many connections are blocked (flag b) in a BLPOP: the API's waiting writes."""
    return sum(c["cmd"] == "blpop" and "b" in c["flags"] for c in client.client_list())


def wait_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.05)


def assert_all_done(posted: list[Posted]) -> None:
    """Every write ran: refused by the worker (the slot does not exist), none lost."""
    assert all(p.final.get("http_status") in (404, 422) for p in posted), [
        p.final for p in posted if p.final.get("http_status") not in (404, 422)
    ]


def test_with_the_workers_stopped_reads_do_not_queue_behind_waiting_writes(
    system, settings, shop, whole_again
):
    """24 holds at once while the worker processes are stopped: a few of them wait their
    `Prefer: wait` (a bounded number per API process), the rest answer 202 at once, and reads
    sent meanwhile are answered as fast as ever."""
    posted = holds(settings, 24)
    stop(system.worker)
    with Reader(system.base, shop) as reader:
        time.sleep(0.3)
        for t in send_all(system.base, posted):
            t.join()
        time.sleep(0.3)
    resume(system.worker)
    waited = [p for p in posted if p.seconds >= WAIT]
    print(
        f"\nworkers stopped, 24 holds: {len(waited)} waited (max "
        f"{max(p.seconds for p in posted):.2f} s), {len(posted) - len(waited)} answered 202 in at "
        f"most {max((p.seconds for p in posted if p not in waited), default=0):.2f} s; "
        f"{reader.summary()}"
    )
    assert all(p.status == 202 for p in posted), [p.status for p in posted]
    assert reader.statuses == {200}, reader.statuses
    assert max(reader.seconds) < SLACK, reader.summary()
    # A wait is bounded by the API's clock; the writes that found every waiting place taken
    # did not wait at all.
    assert all(p.seconds < WAIT + SLACK for p in posted), [round(p.seconds, 2) for p in posted]
    assert len(waited) < len(posted)
    assert all(p.seconds < SLACK for p in posted if p not in waited)
    settle(system.base, posted, timeout=30)
    assert_all_done(posted)


def test_a_frozen_redis_bounds_every_write_by_its_wait_and_reads_stay_fast(
    system, settings, shop, whole_again
):
    """Redis frozen (SIGSTOP: connections stay open, nothing answers) while writes wait on it
    and more arrive: the waiting writes answer at their wait plus a constant (the BLPOP's own
    timeout is Redis's, which a frozen Redis never keeps), the new ones 202 at once, reads
    within a fraction of a second. Once Redis thaws, every write runs."""
    pid = system.redis.redis_pid
    assert pid is not None
    waiting, arriving = holds(settings, 4), holds(settings, 8)
    stop(system.worker)  # so that the first writes are still waiting when Redis freezes
    with Reader(system.base, shop) as reader:
        first = send_all(system.base, waiting)
        # Both API processes' waiting places fit them all, but one process may take more
        # than its share of them: at least 3 are waiting in Redis before it freezes.
        observer = redis.Redis.from_url(system.env["REDIS_URL"])
        try:
            wait_until(lambda: blocked(observer) >= 3, timeout=10)
        finally:
            observer.close()
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        reads_before = len(reader.seconds)
        time.sleep(0.3)
        sending = [*first, *send_all(system.base, arriving)]
        # Frozen for longer than any write may take: a write bounded by Redis would show.
        thaw_at = frozen_at + WAIT + SLACK + 1.5
        for t in sending:
            t.join(timeout=max(0.0, thaw_at - time.monotonic()))
        time.sleep(max(0.0, thaw_at - time.monotonic()))
        frozen_reads = reader.seconds[reads_before:]
        os.kill(pid, signal.SIGCONT)
        frozen_for = time.monotonic() - frozen_at
        for t in sending:
            t.join()
    resume(system.worker)
    print(
        f"\nRedis frozen {frozen_for:.1f} s: waiting writes answered in "
        f"{', '.join(f'{p.seconds:.2f}' for p in waiting)} s; writes sent meanwhile in at most "
        f"{max(p.seconds for p in arriving):.2f} s; frozen reads: {len(frozen_reads)}, max "
        f"{max(frozen_reads) * 1000:.0f} ms, median {statistics.median(frozen_reads) * 1000:.0f} ms"
    )
    everything = [*waiting, *arriving]
    assert all(p.status == 202 for p in everything), [p.status for p in everything]
    assert all(p.seconds < WAIT + SLACK for p in waiting), [p.seconds for p in waiting]
    assert sum(p.seconds >= WAIT for p in waiting) >= 3  # they did wait, through the freeze
    assert all(p.seconds < SLACK for p in arriving), [p.seconds for p in arriving]
    assert reader.statuses == {200}, reader.statuses
    assert len(frozen_reads) >= 10
    assert max(frozen_reads) < SLACK, frozen_reads
    settle(system.base, everything, timeout=30)
    assert_all_done(everything)
