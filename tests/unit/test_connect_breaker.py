"""The connect breaker: fail fast after a failed connect, one trial at a time after it."""

from __future__ import annotations

import threading

import pytest

from salon.infra.connect_breaker import ConnectBreaker, DatabaseUnreachable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail() -> object:
    raise OSError("no answer")


def due_for_a_trial() -> tuple[Clock, ConnectBreaker]:
    """A breaker whose connect failed and whose cooldown is over: its next caller tries."""
    clock = Clock()
    breaker = ConnectBreaker(cooldown=1.0, clock=clock)
    with pytest.raises(OSError):
        breaker.connect(fail)
    clock.now += 2
    return clock, breaker


def test_after_a_failure_connects_are_refused_until_the_cooldown_then_tried_again() -> None:
    clock = Clock()
    breaker = ConnectBreaker(cooldown=1.0, clock=clock)
    assert breaker.connect(lambda: "conn") == "conn" and not breaker.open
    with pytest.raises(OSError):
        breaker.connect(fail)
    tried: list[int] = []
    clock.now += 0.9
    with pytest.raises(DatabaseUnreachable):
        breaker.connect(lambda: tried.append(1))
    assert tried == [] and breaker.open
    clock.now += 0.2  # past the cooldown: tried again, and it fails again
    with pytest.raises(OSError):
        breaker.connect(fail)
    with pytest.raises(DatabaseUnreachable):
        breaker.connect(lambda: "conn")
    clock.now += 1.1
    assert breaker.connect(lambda: "conn") == "conn"
    assert not breaker.open
    assert breaker.connect(lambda: "again") == "again"


def test_one_caller_at_a_time_tries_while_the_others_fail_fast() -> None:
    _, breaker = due_for_a_trial()
    inside, release = threading.Event(), threading.Event()

    def slow_trial() -> str:
        inside.set()
        release.wait(5)
        return "conn"

    got: list[object] = []
    trial = threading.Thread(target=lambda: got.append(breaker.connect(slow_trial)))
    trial.start()
    assert inside.wait(5)
    with pytest.raises(DatabaseUnreachable):
        breaker.connect(lambda: "second")
    release.set()
    trial.join(5)
    assert got == ["conn"] and breaker.connect(lambda: "third") == "third"


def test_an_interrupted_trial_does_not_leave_the_breaker_stuck() -> None:
    """Dramatiq's time limit is a BaseException raised in the worker's thread."""
    clock, breaker = due_for_a_trial()

    def interrupted() -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.connect(interrupted)
    clock.now += 2
    assert breaker.connect(lambda: "conn") == "conn"


def test_a_refusal_is_an_outage_for_the_api() -> None:
    """SQLAlchemy wraps a DBAPI OperationalError raised by connect in its own, which the API
    answers with a 503 and a worker retries."""
    import psycopg
    import sqlalchemy.exc

    from salon.errors import OUTAGES

    assert issubclass(DatabaseUnreachable, psycopg.OperationalError)
    assert sqlalchemy.exc.OperationalError in OUTAGES
