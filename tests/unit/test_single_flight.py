"""SingleFlight: concurrent callers of one key share one computation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from salon.infra.single_flight import SingleFlight


def test_concurrent_callers_share_one_computation():
    flights: SingleFlight[int] = SingleFlight()
    calls = []
    started = threading.Event()

    def compute() -> int:
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return 42

    with ThreadPoolExecutor(8) as pool:
        leader = pool.submit(flights.run, "k", compute)
        started.wait(2)
        followers = [pool.submit(flights.run, "k", compute) for _ in range(7)]
        results = [leader.result(), *(f.result() for f in followers)]
    assert results == [42] * 8
    assert len(calls) == 1
    # Once done, the next caller computes again (nothing is cached here).
    assert flights.run("k", lambda: 7) == 7


def test_other_keys_do_not_wait_and_a_failed_leader_leaves_followers_to_compute():
    flights: SingleFlight[str] = SingleFlight()
    started = threading.Event()
    release = threading.Event()

    def failing() -> str:
        started.set()
        release.wait(2)
        raise RuntimeError("database went away")

    with ThreadPoolExecutor(3) as pool:
        leader = pool.submit(flights.run, "k", failing)
        started.wait(2)
        follower = pool.submit(flights.run, "k", lambda: "own")
        assert flights.run("other", lambda: "independent") == "independent"
        release.set()
        with pytest.raises(RuntimeError):
            leader.result()
        assert follower.result() == "own"
