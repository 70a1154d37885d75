"""Fail fast while PostgreSQL does not answer: one connect timeout per process, not per request.

A server that accepts connections and never answers (frozen, or cut off behind a proxy) makes
every connect wait its whole timeout (psycopg waits at least 2 s, whatever is asked). With
every request opening its own attempt, a busy API would queue behind them and answer its 503s
late. After a failed connect, `ConnectBreaker` refuses new connects at once for `cooldown`
seconds; then one caller at a time tries again while the others keep failing fast, until one
attempt succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")


class DatabaseUnreachable(psycopg.OperationalError):
    """Raised instead of connecting while the last attempt failed (an outage: a 503)."""


class ConnectBreaker:
    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._trying = False

    @property
    def open(self) -> bool:
        """True while the last attempt failed: connects are being refused or tried by one."""
        return self._failed_at is not None

    def connect(self, attempt: Callable[[], T]) -> T:
        with self._lock:
            if self._failed_at is not None:
                waited = self._clock() - self._failed_at
                if waited < self._cooldown or self._trying:
                    raise DatabaseUnreachable(
                        "PostgreSQL did not answer the last connection attempt; not retrying yet"
                    )
                self._trying = True  # this caller is the one trial
        try:
            conn = attempt()
        except BaseException:  # also an interrupt (Dramatiq's time limit): never stuck trying
            with self._lock:
                self._failed_at = self._clock()
                self._trying = False
            raise
        with self._lock:
            self._failed_at = None
            self._trying = False
        return conn
