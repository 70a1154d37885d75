"""How many writes of an API process may wait for their outcome, and for how long.

A waiting write holds a gunicorn thread (gthread is synchronous). With the workers stopped
or stalled, writes that each wait their whole wait would hold every thread, and reads would
queue behind them. So a process has `places` (fewer than its threads): a write that takes one
waits its whole wait. A write that finds them all taken waits only while the workers are
answering this process's writes: in slices of `window`, given up (202) once no write of the
process has been answered for `window`. In a burst at healthy workers that is every write,
as if there were no limit; when the workers stop, the writes beyond the places let go of
their threads within about one window, and those that arrive later answer 202 at once.

A new burst (a write taking a place while none was taken) starts with a window of credit,
so that the writes beyond the places that arrive with it, before any is answered, wait too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# No write of the process answered for this long: the workers are taken as stalled.
WINDOW_SECONDS = 0.25


class WaitingPlaces:
    def __init__(
        self,
        places: int,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._places = places
        self._clock = clock
        self._lock = threading.Lock()
        self._taken = 0
        self._progress = float("-inf")  # when a write last got its outcome (or a burst began)

    def take(self) -> bool:
        """A place to wait the whole wait in (give it back with `leave`); False: all taken."""
        with self._lock:
            if self._taken >= self._places:
                return False
            if self._taken == 0:
                self._progress = self._clock()
            self._taken += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._taken -= 1

    def answered(self) -> None:
        """A write of this process got its outcome: the workers are answering."""
        self._progress = self._clock()

    def flowing(self) -> bool:
        """Whether a write without a place may go on waiting (for one more window)."""
        return self._clock() - self._progress < self.window
