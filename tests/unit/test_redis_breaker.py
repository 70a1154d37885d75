"""The Redis breaker: fail fast after a call timed out, one trial at a time after it."""

from __future__ import annotations

import threading

import pytest
import redis

from salon.infra.redis_breaker import RedisBreaker, RedisUnanswered


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def time_out() -> object:
    raise redis.TimeoutError("no answer")


def opened() -> tuple[Clock, RedisBreaker]:
    """A breaker whose last call timed out just now."""
    clock = Clock()
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    with pytest.raises(redis.TimeoutError):
        breaker.call(time_out)
    assert breaker.open
    return clock, breaker


def test_after_a_timeout_calls_are_refused_until_the_cooldown_then_tried_again() -> None:
    clock, breaker = opened()
    tried: list[int] = []
    clock.now += 0.9
    with pytest.raises(RedisUnanswered):
        breaker.call(lambda: tried.append(1))
    assert tried == []
    clock.now += 0.2  # past the cooldown: tried again, and it times out again
    with pytest.raises(redis.TimeoutError):
        breaker.call(time_out)
    with pytest.raises(RedisUnanswered):
        breaker.call(lambda: "answer")
    clock.now += 1.1
    assert breaker.call(lambda: "answer") == "answer"
    assert not breaker.open
    assert breaker.call(lambda: "again") == "again"


def test_only_a_timeout_opens_it_and_an_error_reply_is_an_answer() -> None:
    """A refused connection fails at once anyway; an error reply means Redis answered."""
    clock = Clock()
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    for error in (redis.ConnectionError("refused"), redis.ResponseError("WRONGTYPE")):

        def fail(error: Exception = error) -> object:
            raise error

        with pytest.raises(type(error)):
            breaker.call(fail)
        assert not breaker.open

    def socket_timeout() -> object:
        raise TimeoutError("timed out")  # a socket's own timeout counts too

    with pytest.raises(TimeoutError):
        breaker.call(socket_timeout)
    assert breaker.open
    clock.now += 2

    def refused_reply() -> object:
        raise redis.ResponseError("NOSCRIPT")

    with pytest.raises(redis.ResponseError):
        breaker.call(refused_reply)
    assert not breaker.open


def test_one_caller_at_a_time_tries_while_the_others_fail_fast() -> None:
    clock, breaker = opened()
    clock.now += 2
    inside, release = threading.Event(), threading.Event()

    def slow_trial() -> str:
        inside.set()
        release.wait(5)
        return "answer"

    got: list[object] = []
    trial = threading.Thread(target=lambda: got.append(breaker.call(slow_trial)))
    trial.start()
    assert inside.wait(5)
    with pytest.raises(RedisUnanswered):
        breaker.call(lambda: "second")
    release.set()
    trial.join(5)
    assert got == ["answer"] and breaker.call(lambda: "third") == "third"


def test_a_wait_is_never_the_trial_but_its_timeout_opens_the_breaker() -> None:
    """A blocking pop may rightly take seconds: as the trial it would keep every other call
    failing for that long after Redis came back."""
    clock, breaker = opened()
    clock.now += 2
    with pytest.raises(RedisUnanswered):
        breaker.call_unless_open(lambda: "popped")
    assert breaker.call(lambda: "answer") == "answer"  # the trial closes it
    assert breaker.call_unless_open(lambda: "popped") == "popped"
    with pytest.raises(redis.TimeoutError):
        breaker.call_unless_open(time_out)
    assert breaker.open


def test_a_call_inside_a_guarded_call_is_part_of_it() -> None:
    """redis-py connects (a guarded call) inside a command (another): the trial's connect
    must not be refused because the trial is in flight."""
    clock, breaker = opened()
    clock.now += 2
    assert breaker.call(lambda: breaker.call(lambda: "connected")) == "connected"
    assert not breaker.open


def test_a_late_answer_to_a_call_sent_before_the_timeout_does_not_close_it() -> None:
    clock = Clock()
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    sent, answer = threading.Event(), threading.Event()

    def late() -> str:
        sent.set()
        answer.wait(5)
        return "late"

    got: list[object] = []
    early = threading.Thread(target=lambda: got.append(breaker.call(late)))
    early.start()
    assert sent.wait(5)
    with pytest.raises(redis.TimeoutError):
        breaker.call(time_out)
    answer.set()
    early.join(5)
    assert got == ["late"] and breaker.open


def test_an_interrupted_trial_does_not_leave_the_breaker_stuck() -> None:
    clock, breaker = opened()
    clock.now += 2

    def interrupted() -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    clock.now += 2
    assert breaker.call(lambda: "answer") == "answer"


def test_a_refusal_is_an_outage() -> None:
    """Every caller already treats redis.ConnectionError as Redis being down (a read without
    its stored answer, a 202 for a write, a retry in a worker)."""
    from salon.errors import OUTAGES

    assert issubclass(RedisUnanswered, redis.ConnectionError)
    assert redis.ConnectionError in OUTAGES
