"""What time it is, as a service asks it: the system's clock, or one a test sets.

Expiry, notice windows and cut-offs are decided by the database's clock (`now()` in SQL), so
every process agrees; this clock is for what a process decides alone: the horizon's first day,
a request's "now" for free times, the exposure ledger's window.
"""

from __future__ import annotations

import datetime as dt
import threading


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class SettableClock:
    """A clock that stands still until it is set or moved (tests: no sleeping)."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a clock's time is timezone-aware")
        self._at = at
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._at

    def set(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a clock's time is timezone-aware")
        with self._lock:
            self._at = at

    def advance(self, by: dt.timedelta) -> None:
        with self._lock:
            self._at += by
