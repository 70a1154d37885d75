"""The settable clock tests use instead of sleeping."""

from __future__ import annotations

import datetime as dt

import pytest

from salon.infra.clock import SettableClock, SystemClock


def test_a_settable_clock_stands_still_until_moved():
    at = dt.datetime(2027, 3, 28, 0, 59, tzinfo=dt.UTC)
    clock = SettableClock(at)
    assert clock.now() == at
    clock.advance(dt.timedelta(minutes=2))
    assert clock.now() == dt.datetime(2027, 3, 28, 1, 1, tzinfo=dt.UTC)
    clock.set(at)
    assert clock.now() == at


def test_clocks_tell_aware_time_only():
    assert SystemClock().now().utcoffset() == dt.timedelta(0)
    with pytest.raises(ValueError):
        SettableClock(dt.datetime(2027, 1, 1))  # a naive time is refused
