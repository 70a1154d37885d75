"""The supervisor behind `salon worker`, on small real processes in place of Dramatiq.

The end-to-end behaviour with Dramatiq (a killed worker process, writes still done) is in
tests/e2e/test_worker_supervision.py."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from workers.supervisor import MAX_DELAY, STABLE_SECONDS, Supervisor, backoff


def serves(ready: Path) -> list[str]:
    """Stops cleanly on SIGTERM, as a Dramatiq parent does; leaves a file named by its pid in
    `ready` once it would."""
    return [
        sys.executable,
        "-c",
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "open(os.path.join(sys.argv[1], str(os.getpid())), 'w').close()\n"
        "time.sleep(60)",
        str(ready),
    ]


FAILS = [sys.executable, "-c", "raise SystemExit(3)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_ready(supervisor: Supervisor, ready: Path) -> None:
    pids = {str(s.proc.pid) for s in supervisor.slots if s.proc is not None}
    deadline = time.monotonic() + 10
    while not pids <= {p.name for p in ready.iterdir()}:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def wait_exit(supervisor: Supervisor, index: int) -> None:
    proc = supervisor.slots[index].proc
    assert proc is not None
    proc.wait(timeout=10)


def stop(supervisor: Supervisor) -> None:
    supervisor.stop_signals += 1
    deadline = time.monotonic() + 10
    while supervisor.step():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_backoff_is_none_after_a_stable_run_then_doubles_up_to_the_cap() -> None:
    assert backoff(0) == 0
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 4]
    assert backoff(50) == MAX_DELAY


def test_a_dead_process_is_restarted_at_once_and_the_others_are_left_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    supervisor = Supervisor(serves(tmp_path), 3, clock=clock)
    try:
        supervisor.step()
        wait_ready(supervisor, tmp_path)
        before = [s.proc.pid for s in supervisor.slots if s.proc is not None]
        assert len(before) == 3
        clock.now += STABLE_SECONDS
        first = supervisor.slots[0].proc
        assert first is not None
        first.send_signal(signal.SIGKILL)
        wait_exit(supervisor, 0)
        supervisor.step()
        after = [s.proc.pid for s in supervisor.slots if s.proc is not None]
        assert len(after) == 3 and after[0] != before[0] and after[1:] == before[1:]
        assert supervisor.slots[0].restarts == 1
        wait_ready(supervisor, tmp_path)
    finally:
        stop(supervisor)
    assert supervisor.exit_code == 0
    assert all(s.proc is None for s in supervisor.slots)


def test_quick_deaths_in_a_row_wait_longer_before_each_restart() -> None:
    clock = Clock()
    supervisor = Supervisor(FAILS, 1, clock=clock)
    slot = supervisor.slots[0]
    waits = []
    try:
        supervisor.step()
        for _ in range(4):
            wait_exit(supervisor, 0)
            clock.now += 0.1
            supervisor.step()  # reaped; not started again yet
            assert slot.proc is None
            waits.append(slot.start_at - clock.now)
            clock.now = slot.start_at
            supervisor.step()
            assert slot.proc is not None
    finally:
        stop(supervisor)
    assert waits == [0.5, 1, 2, 4]


def test_nothing_is_restarted_after_a_requested_stop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    supervisor = Supervisor(serves(tmp_path), 2)
    supervisor.step()
    wait_ready(supervisor, tmp_path)
    procs = [s.proc for s in supervisor.slots]
    stop(supervisor)
    assert all(p is not None and p.returncode == 0 for p in procs)
    for _ in range(3):
        assert not supervisor.step()
    assert all(s.proc is None for s in supervisor.slots)
    assert supervisor.exit_code == 0


def test_the_alive_file_is_fresh_only_while_every_process_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    alive = tmp_path / "alive"
    clock = Clock()
    supervisor = Supervisor(FAILS, 1, alive_file=str(alive), clock=clock)
    try:
        supervisor.step()
        assert alive.exists()
        alive.unlink()
        wait_exit(supervisor, 0)
        clock.now += 0.1
        supervisor.step()  # dead, waiting to restart
        assert not alive.exists()
    finally:
        stop(supervisor)
