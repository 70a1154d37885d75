"""When a process's kept day lists stop being trusted (`salon.live_times`)."""

from __future__ import annotations

import datetime as dt
import random

from salon.live_times import MAX_AGE, trusted_until


def test_day_lists_computed_together_expire_spread_over_the_second_half_of_max_age() -> None:
    now = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
    rng = random.Random(3)
    untils = [trusted_until(now, None, rng.random()) for _ in range(200)]
    assert all(now + MAX_AGE / 2 <= u < now + MAX_AGE for u in untils)
    assert max(untils) - min(untils) > MAX_AGE / 3  # spread, not one moment
    hold_expires = now + MAX_AGE / 4  # an expiring hold frees time: it still comes first
    assert trusted_until(now, hold_expires, 0.99) == hold_expires
