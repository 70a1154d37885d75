"""Pure parts of the change records: which dates a write touched, which dates that reaches."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from salon.public_times.versions import Versions, local_dates_reached, utc_dates

UTC = dt.UTC


def test_a_booking_touches_the_utc_dates_it_spans():
    start = dt.datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert utc_dates(start, start + dt.timedelta(minutes=30)) == [dt.date(2026, 3, 1)]
    assert utc_dates(start, start + dt.timedelta(minutes=31)) == [
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 2),
    ]
    paris = dt.timezone(dt.timedelta(hours=1))
    local = dt.datetime(2026, 3, 2, 0, 30, tzinfo=paris)  # 23:30 UTC the day before
    assert utc_dates(local, local + dt.timedelta(minutes=15)) == [dt.date(2026, 3, 1)]


@given(
    st.datetimes(
        min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=24 * 60),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
    st.integers(min_value=0, max_value=24 * 60),
)
def test_every_local_start_a_booking_can_block_is_reached(start, minutes, offset, before):
    """A start blocked by a booking lies less than a day before it ends: in any zone
    (UTC-12..+14) its local date is among the dates the booking's UTC dates reach."""
    end = start + dt.timedelta(minutes=minutes)
    zone = dt.timezone(dt.timedelta(minutes=offset))
    blocked = start - dt.timedelta(minutes=before)
    assert blocked.astimezone(zone).date() in local_dates_reached(utc_dates(start, end))


def test_moved_since_names_the_stylists_whose_version_moved():
    older = Versions(3, (("a", 1), ("b", 5)))
    assert Versions(3, (("a", 1), ("b", 7))).moved_since(older) == {"b": 5}
    assert Versions(3, (("a", 1), ("b", 5))).moved_since(older) == {}
    # The catalogue or the stylists changed: nothing of the older answer is reusable.
    assert Versions(4, (("a", 1), ("b", 5))).moved_since(older) is None
    assert Versions(3, (("a", 1),)).moved_since(older) is None
    assert Versions.from_doc(older.as_doc()) == older
