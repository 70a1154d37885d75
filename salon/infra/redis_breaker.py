"""Fail fast while Redis does not answer: one Redis timeout per process, not one per call.

A frozen Redis (a stopped process, a stalled host) keeps its connections open and answers
nothing, so every call waits its whole socket timeout (`REDIS_TIMEOUT`). A public read makes
several calls (the stored-answer lookup, the version counters, the changed dates, the store),
so it would wait their sum (1-1.6 s measured), and every write's enqueue too. After a call
times out, `RedisBreaker` refuses every Redis call of the process at once for `cooldown`
seconds; then one call at a time tries again (a trial) while the others keep failing fast,
until a trial gets an answer. Only the API uses one (`api.app.api_container`): a worker's
long fetches must not be refused.

A refusal is `RedisUnanswered`, a `redis.ConnectionError`, which every caller already treats
as an outage: a read is computed without its stored answer, a write is answered 202 and
re-sent by the scheduler. Calls through redis-py are guarded by the client's retry policy
(`GuardedRetry`, which redis-py runs around every connect, command and pipeline); the plain
lanes (`salon.infra.redis_pipelines`) and the writes' wait call the breaker themselves.

Not pybreaker: it holds one lock across the guarded call, which would make every Redis call
of the process wait for the one before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, TypeVarTuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class RedisUnanswered(redis.ConnectionError):
    """Raised instead of calling Redis while its last call timed out (an outage)."""


# What a call that got no answer in time raises: redis-py's error, or a socket's own.
_TIMEOUTS = (redis.TimeoutError, TimeoutError)


class RedisBreaker:
    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: float | None = None  # None: closed, every call goes to Redis
        self._trying = False
        # Set in the thread making the trial: a call made inside it (redis-py's connect or
        # health check inside a command) is part of it, neither refused nor a trial of its own.
        self._in_trial = threading.local()

    @property
    def open(self) -> bool:
        """True while the last call timed out: calls are refused or tried by one."""
        return self._failed_at is not None

    def call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)`, unless Redis did not answer lately (RedisUnanswered)."""
        return self._guarded(True, fn, args)

    def call_unless_open(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """As `call`, but never as the trial: for a call that may rightly take long (a
        blocking pop), which must not keep the others failing fast all that time."""
        return self._guarded(False, fn, args)

    def _guarded(self, may_try: bool, fn: Callable[[*Ts], T], args: tuple[*Ts]) -> T:
        if self._failed_at is None:  # closed: no lock, nothing kept (every call of the API)
            try:
                return fn(*args)
            except _TIMEOUTS:
                self._failed(trial=False)
                raise
        return self._call_open(may_try, fn, args)

    def _call_open(self, may_try: bool, fn: Callable[[*Ts], T], args: tuple[*Ts]) -> T:
        in_trial = self._in_trial
        if getattr(in_trial, "yes", False):
            return fn(*args)
        if not self._enter(may_try):  # closed meanwhile
            return self._guarded(may_try, fn, args)
        in_trial.yes = True
        try:
            result = fn(*args)
        except redis.ResponseError:
            self._answered()  # Redis answered, with an error of the command's own
            raise
        except BaseException:  # also an interrupt: never stuck trying
            self._failed(trial=True)
            raise
        finally:
            in_trial.yes = False
        self._answered()
        return result

    def _enter(self, may_try: bool) -> bool:
        """Whether this caller is the trial (False: closed meanwhile); RedisUnanswered if it
        may not call at all."""
        with self._lock:
            failed_at = self._failed_at
            if failed_at is None:
                return False
            if not may_try or self._trying or self._clock() - failed_at < self._cooldown:
                raise RedisUnanswered(
                    "Redis did not answer a call in time lately; not asking it yet"
                )
            self._trying = True
            return True

    def _failed(self, *, trial: bool) -> None:
        with self._lock:
            self._failed_at = self._clock()
            if trial:
                self._trying = False

    def _answered(self) -> None:
        # Only a trial closes the breaker: a call that was sent before Redis froze and was
        # answered late says nothing about now.
        with self._lock:
            self._failed_at = None
            self._trying = False


class GuardedRetry(Retry):
    """redis-py's retry policy, which its clients run around every connect, command and
    pipeline: no retry (redis-py's default for a client made from a URL), behind a breaker."""

    def __init__(self, breaker: RedisBreaker) -> None:
        super().__init__(NoBackoff(), 0)
        self.breaker = breaker

    def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        return self.breaker.call(partial(super().call_with_retry, do, fail, *args, **kwargs))

    def __deepcopy__(self, memo: dict[int, Any]) -> GuardedRetry:
        # redis-py copies a client's retry policy into each connection: the breaker is shared.
        return self


def breaker_of(client: redis.Redis) -> RedisBreaker | None:
    """The breaker guarding `client` (built with a `GuardedRetry`), if any."""
    retry = client.get_retry()
    return retry.breaker if isinstance(retry, GuardedRetry) else None
