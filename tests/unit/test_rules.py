"""Rule expansion on concrete days: DST changes (including at midnight), filters, exceptions."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.rules import Rule, Slot, expand, intervals_overlap, open_intervals
from models.rules import open_intervals_between as between

UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
DUBAI = ZoneInfo("Asia/Dubai")
# Zones whose clocks change at local midnight (tzdata 2026): the tests check which still do.
JUMP_AT_MIDNIGHT = ("America/Santiago", "America/Havana", "Asia/Beirut", "Africa/Cairo")
BACK_AT_MIDNIGHT = ("America/Santiago", "Asia/Beirut", "Africa/Cairo")


def rule(start: str, end: str, kind: str = "WEEKLY", **kw: Any) -> Rule:
    return Rule(uuid.uuid4(), kind, dt.time.fromisoformat(start), dt.time.fromisoformat(end), **kw)


def walls(slots: list[Slot]) -> list[tuple[str, int]]:
    return [(s.local_start.strftime("%H:%M"), s.local_start.fold) for s in slots]


def real_time(slots: list[Slot]) -> dt.timedelta:
    return sum((s.end_at - s.start_at for s in slots), dt.timedelta())


def assert_disjoint_sorted(slots: list[Slot]) -> None:
    for a, b in itertools.pairwise(slots):
        assert a.end_at <= b.start_at, (a, b)


def exists(wall: dt.datetime, zone: ZoneInfo) -> bool:
    back = wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) == wall


def repeated(wall: dt.datetime, zone: ZoneInfo) -> bool:
    return wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(
        tzinfo=zone, fold=1
    ).utcoffset() and exists(wall, zone)


def first_day_where(test: Callable[[dt.date], bool], years: range) -> dt.date | None:
    for year in years:
        day = dt.date(year, 1, 1)
        while day.year == year:
            if test(day):
                return day
            day += dt.timedelta(days=1)
    return None


# --- London ---------------------------------------------------------------------------------


def test_london_spring_forward_skips_the_missing_hour():
    day = dt.date(2026, 3, 29)
    slots = expand([rule("00:00", "04:00")], day, day, LONDON)
    assert not [s for s in slots if s.local_start.hour == 1]
    assert len(slots) == 12 and real_time(slots) == dt.timedelta(hours=3)
    assert walls(slots)[3:5] == [("00:45", 0), ("02:00", 0)]
    assert slots[4].start_at == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert open_intervals([rule("00:00", "04:00")], day, LONDON) == [
        (dt.datetime(2026, 3, 29, 0, 0, tzinfo=UTC), dt.datetime(2026, 3, 29, 3, 0, tzinfo=UTC))
    ]
    assert_disjoint_sorted(slots)


def test_london_fall_back_gives_both_instants_of_the_repeated_hour():
    day = dt.date(2026, 10, 25)
    slots = expand([rule("00:00", "04:00")], day, day, LONDON)
    assert len(slots) == 20 and real_time(slots) == dt.timedelta(hours=5)
    for minute in (0, 15, 30, 45):
        both = [s for s in slots if (s.local_start.hour, s.local_start.minute) == (1, minute)]
        assert [s.local_start.fold for s in both] == [0, 1]
        assert both[1].start_at - both[0].start_at == dt.timedelta(hours=1)
        assert [s.local_start.utcoffset() for s in both] == [dt.timedelta(hours=1), dt.timedelta()]
    assert len({s.start_at for s in slots}) == 20
    assert_disjoint_sorted(slots)


def test_a_bound_inside_the_gap_or_the_repeated_hour():
    spring, autumn = dt.date(2026, 3, 29), dt.date(2026, 10, 25)
    # Starting in the gap starts at the jump; ending in it ends at the jump.
    assert open_intervals([rule("01:30", "03:00")], spring, LONDON) == [
        (dt.datetime(2026, 3, 29, 1, tzinfo=UTC), dt.datetime(2026, 3, 29, 2, tzinfo=UTC))
    ]
    assert open_intervals([rule("00:00", "01:30")], spring, LONDON)[0][1] == dt.datetime(
        2026, 3, 29, 1, tzinfo=UTC
    )
    # A repeated start takes the earlier instant, a repeated end the later one.
    assert open_intervals([rule("01:30", "01:45")], autumn, LONDON) == [
        (dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC), dt.datetime(2026, 10, 25, 1, 45, tzinfo=UTC))
    ]
    slots = expand([rule("01:30", "01:45")], autumn, autumn, LONDON)
    assert walls(slots) == [("01:30", 0), ("01:30", 1)]


def test_closing_the_repeated_hour_closes_both_passes():
    day = dt.date(2026, 10, 25)
    closed = rule("01:00", "02:00", "EXCEPTION", valid_from=day, valid_to=day, is_closed=True)
    slots = expand([rule("00:00", "04:00"), closed], day, day, LONDON)
    assert not [s for s in slots if s.local_start.hour == 1]
    assert real_time(slots) == dt.timedelta(hours=3)


# --- New York -------------------------------------------------------------------------------


def test_new_york_spring_forward():
    day = dt.date(2026, 3, 8)
    slots = expand([rule("00:00", "04:00")], day, day, NEW_YORK)
    assert not [s for s in slots if s.local_start.hour == 2]
    assert len(slots) == 12 and real_time(slots) == dt.timedelta(hours=3)
    assert_disjoint_sorted(slots)


def test_new_york_fall_back():
    day = dt.date(2026, 11, 1)
    slots = expand([rule("00:00", "04:00", granularity_minutes=30)], day, day, NEW_YORK)
    assert walls(slots) == [
        ("00:00", 0),
        ("00:30", 0),
        ("01:00", 0),
        ("01:30", 0),
        ("01:00", 1),
        ("01:30", 1),
        ("02:00", 0),
        ("02:30", 0),
        ("03:00", 0),
        ("03:30", 0),
    ]
    assert real_time(slots) == dt.timedelta(hours=5)
    assert_disjoint_sorted(slots)


# --- No DST, odd shifts, skipped days --------------------------------------------------------


def test_a_zone_without_dst_is_the_same_every_day():
    year = expand(
        [rule("09:00", "17:00", granularity_minutes=30)],
        dt.date(2026, 1, 1),
        dt.date(2026, 12, 31),
        DUBAI,
    )
    assert len(year) == 365 * 16
    assert {s.local_start.utcoffset() for s in year} == {dt.timedelta(hours=4)}
    assert {s.start_at.time() for s in year} == {
        dt.time(5 + m // 60, m % 60) for m in range(0, 8 * 60, 30)
    }
    assert_disjoint_sorted(year)


def test_a_half_hour_change_with_hour_slots_drops_the_overlapping_instant():
    # Lord Howe falls back 02:00 -> 01:30: 01:45 happens twice, 30 real minutes apart.
    zone, day = ZoneInfo("Australia/Lord_Howe"), dt.date(2026, 4, 5)
    assert repeated(dt.datetime(2026, 4, 5, 1, 45), zone)
    slots = expand([rule("00:45", "05:00", granularity_minutes=60)], day, day, zone)
    assert walls(slots) == [("00:45", 0), ("01:45", 0), ("02:45", 0), ("03:45", 0)]
    assert_disjoint_sorted(slots)


def test_a_skipped_calendar_day_has_no_slots():
    # Samoa jumped the date line: 2011-12-30 never happened there.
    zone, day = ZoneInfo("Pacific/Apia"), dt.date(2011, 12, 30)
    assert not exists(dt.datetime(2011, 12, 30, 12), zone)
    r = rule("00:00", "00:00")
    assert expand([r], day, day, zone) == []
    assert open_intervals([r], day, zone) == []
    around = expand([r], day - dt.timedelta(days=1), day + dt.timedelta(days=1), zone)
    assert {s.local_date for s in around} == {dt.date(2011, 12, 29), dt.date(2011, 12, 31)}
    assert_disjoint_sorted(around)


# --- Changes at local midnight --------------------------------------------------------------


def _midnight_gap(name: str) -> dt.date | None:
    zone = ZoneInfo(name)
    return first_day_where(
        lambda d: not exists(dt.datetime(d.year, d.month, d.day), zone), range(2026, 2029)
    )


def _late_repeat(name: str) -> dt.date | None:
    zone = ZoneInfo(name)
    return first_day_where(
        lambda d: repeated(dt.datetime(d.year, d.month, d.day, 23, 30), zone),
        range(2026, 2029),
    )


def test_some_installed_zone_changes_at_midnight():
    assert any(_midnight_gap(n) for n in JUMP_AT_MIDNIGHT)
    assert any(_late_repeat(n) for n in BACK_AT_MIDNIGHT)


@pytest.mark.parametrize("name", JUMP_AT_MIDNIGHT)
def test_clocks_jumping_at_midnight(name):
    day = _midnight_gap(name)
    if day is None:
        pytest.skip(f"{name} no longer jumps at midnight in this tzdata")
    zone = ZoneInfo(name)
    slots = expand([rule("00:00", "03:00")], day, day, zone)
    expected = [m for m in range(0, 180, 15) if exists(dt.datetime.combine(day, _t(m)), zone)]
    assert [s.local_start.hour * 60 + s.local_start.minute for s in slots] == expected
    assert expected[0] > 0
    # The day opens at the jump, which is where the day before (ending 24:00) closes.
    opened = open_intervals([rule("00:00", "03:00")], day, zone)[0][0]
    assert opened == slots[0].start_at
    before = open_intervals([rule("22:00", "00:00")], day - dt.timedelta(days=1), zone)
    assert before[0][1] == opened
    both = expand([rule("00:00", "00:00")], day - dt.timedelta(days=1), day, zone)
    assert_disjoint_sorted(both)
    assert real_time(both) == dt.timedelta(hours=47)


@pytest.mark.parametrize("name", BACK_AT_MIDNIGHT)
def test_clocks_going_back_at_midnight(name):
    day = _late_repeat(name)
    if day is None:
        pytest.skip(f"{name} no longer goes back at midnight in this tzdata")
    zone = ZoneInfo(name)
    nxt = day + dt.timedelta(days=1)
    rules = [rule("22:00", "00:00", valid_to=day), rule("00:00", "01:00", valid_from=nxt)]
    slots = expand(rules, day, nxt, zone)
    late = [s for s in slots if s.local_date == day]
    assert walls(late) == [
        ("22:00", 0),
        ("22:15", 0),
        ("22:30", 0),
        ("22:45", 0),
        *[(f"23:{m:02}", f) for f in (0, 1) for m in (0, 15, 30, 45)],
    ]
    assert real_time(late) == dt.timedelta(hours=3)
    assert [s.local_date for s in slots[len(late) :]] == [nxt] * 4
    assert_disjoint_sorted(slots)


def test_a_day_starting_with_a_repeated_hour():
    # Havana goes back 01:00 -> 00:00: the day's own midnight happens twice.
    zone, day = ZoneInfo("America/Havana"), dt.date(2026, 11, 1)
    assert repeated(dt.datetime(2026, 11, 1, 0, 30), zone)
    slots = expand([rule("00:00", "02:00", granularity_minutes=30)], day, day, zone)
    assert walls(slots) == [
        ("00:00", 0),
        ("00:30", 0),
        ("00:00", 1),
        ("00:30", 1),
        ("01:00", 0),
        ("01:30", 0),
    ]
    assert real_time(slots) == dt.timedelta(hours=3)
    before = expand([rule("00:00", "00:00")], day - dt.timedelta(days=1), day, zone)
    assert_disjoint_sorted(before)
    assert real_time(before) == dt.timedelta(hours=49)


def test_a_midnight_repeated_the_next_morning():
    # Havana's 2026-11-01 midnight happens twice: 24:00 on the 31st ends at the later one, and a
    # long slot before it pushes the 1st's first slot along (resolved across the two dates).
    zone, day = ZoneInfo("America/Havana"), dt.date(2026, 10, 31)
    nxt = day + dt.timedelta(days=1)
    late = rule("22:00", "00:00", valid_to=day)
    assert open_intervals([late], day, zone)[0][1] == dt.datetime(2026, 11, 1, 5, tzinfo=UTC)
    rules = [
        rule("23:30", "00:00", valid_to=day, granularity_minutes=60),
        rule("00:00", "02:00", valid_from=nxt, granularity_minutes=30),
    ]
    slots = expand(rules, day, nxt, zone)
    assert walls(slots) == [
        ("23:30", 0),
        ("00:30", 0),
        ("00:00", 1),
        ("00:30", 1),
        ("01:00", 0),
        ("01:30", 0),
    ]
    assert slots[0].end_at == dt.datetime(2026, 11, 1, 4, 30, tzinfo=UTC)
    assert_disjoint_sorted(slots)


def _t(minutes: int) -> dt.time:
    return dt.time(minutes // 60, minutes % 60)


# --- Filters, exceptions, bounds ------------------------------------------------------------


def test_weekly_days_filter():
    r = rule("09:00", "10:00", days_of_week=(1, 3, 5))
    slots = expand([r], dt.date(2026, 6, 1), dt.date(2026, 6, 14), LONDON)
    assert sorted({s.local_date.isoweekday() for s in slots}) == [1, 3, 5]
    assert len({s.local_date for s in slots}) == 6 and len(slots) == 24


def test_valid_from_and_valid_to_are_inclusive():
    r = rule(
        "09:00",
        "10:00",
        "DATE_RANGE",
        valid_from=dt.date(2026, 6, 10),
        valid_to=dt.date(2026, 6, 12),
    )
    slots = expand([r], dt.date(2026, 6, 1), dt.date(2026, 6, 30), LONDON)
    assert sorted({s.local_date.day for s in slots}) == [10, 11, 12]


def test_a_closing_exception_removes_lunch():
    day = dt.date(2026, 6, 10)
    rules = [
        rule("09:00", "17:00", days_of_week=(1, 2, 3, 4, 5)),
        rule("12:00", "13:00", "EXCEPTION", valid_from=day, valid_to=day, is_closed=True),
    ]
    slots = expand(rules, day - dt.timedelta(days=1), day, LONDON)
    today = [s for s in slots if s.local_date == day]
    assert len(today) == 28 and not [s for s in today if s.local_start.hour == 12]
    assert len(slots) == 28 + 32
    assert open_intervals(rules, day, LONDON) == [
        (dt.datetime(2026, 6, 10, 8, tzinfo=UTC), dt.datetime(2026, 6, 10, 11, tzinfo=UTC)),
        (dt.datetime(2026, 6, 10, 12, tzinfo=UTC), dt.datetime(2026, 6, 10, 16, tzinfo=UTC)),
    ]


def test_a_closed_weekly_rule_closes_too():
    rules = [rule("09:00", "17:00"), rule("09:00", "10:00", days_of_week=(1,), is_closed=True)]
    slots = expand(rules, dt.date(2026, 6, 8), dt.date(2026, 6, 9), LONDON)
    assert [len([s for s in slots if s.local_date.day == d]) for d in (8, 9)] == [28, 32]


def test_closing_keeps_the_rule_grid():
    day = dt.date(2026, 6, 10)
    rules = [
        rule("09:00", "11:00", granularity_minutes=30),
        rule("09:40", "10:05", "EXCEPTION", valid_from=day, valid_to=day, is_closed=True),
    ]
    assert walls(expand(rules, day, day, LONDON)) == [("09:00", 0), ("10:30", 0)]


def test_an_open_exception_adds_a_sunday():
    sunday = dt.date(2026, 6, 14)
    rules = [
        rule("09:00", "17:00", days_of_week=(1, 2, 3, 4, 5, 6)),
        rule("10:00", "14:00", "EXCEPTION", valid_from=sunday, valid_to=sunday),
    ]
    slots = expand(rules, dt.date(2026, 6, 8), dt.date(2026, 6, 21), LONDON)
    sundays = [s for s in slots if s.local_date.isoweekday() == 7]
    assert {s.local_date for s in sundays} == {sunday} and len(sundays) == 16
    assert sundays[0].local_start.time() == dt.time(10)


def test_midnight_as_an_end_is_the_end_of_the_day():
    day = dt.date(2026, 6, 10)
    late = expand([rule("22:00", "00:00")], day, day, LONDON)
    assert len(late) == 8
    assert late[-1].end_at == dt.datetime(2026, 6, 10, 23, tzinfo=UTC)
    assert late[-1].end_at.astimezone(LONDON).replace(tzinfo=None) == dt.datetime(2026, 6, 11)
    assert len(expand([rule("00:00", "00:00")], day, day, LONDON)) == 96
    assert len(expand([rule("23:00", "23:59")], day, day, LONDON)) == 3


def test_a_granularity_that_does_not_divide_the_span():
    day = dt.date(2026, 6, 10)
    slots = expand([rule("09:00", "10:00", granularity_minutes=25)], day, day, LONDON)
    assert walls(slots) == [("09:00", 0), ("09:25", 0)]


def test_overlapping_rules_with_different_granularities():
    day = dt.date(2026, 6, 10)
    rules = [
        rule("09:00", "12:00", granularity_minutes=30),
        rule("10:00", "11:00", granularity_minutes=20),
    ]
    slots = expand(rules, day, day, LONDON)
    assert [
        (w, int((s.end_at - s.start_at).total_seconds()) // 60)
        for s, (w, _) in zip(slots, walls(slots), strict=True)
    ] == [
        ("09:00", 30),
        ("09:30", 30),
        ("10:00", 20),
        ("10:20", 20),
        ("10:40", 20),
        ("11:00", 30),
        ("11:30", 30),
    ]
    assert_disjoint_sorted(slots)
    # The same rules in the other order give the same slots.
    assert expand(rules[::-1], day, day, LONDON) == slots


def test_open_intervals_between_merges_days():
    r = rule("00:00", "00:00")
    assert between([r], dt.date(2026, 10, 24), dt.date(2026, 10, 26), LONDON) == [
        (dt.datetime(2026, 10, 23, 23, tzinfo=UTC), dt.datetime(2026, 10, 27, 0, tzinfo=UTC))
    ]
    assert between([r], dt.date(2026, 1, 2), dt.date(2026, 1, 1), LONDON) == []


def test_intervals_overlap_across_zones():
    day = dt.date(2026, 1, 15)
    dubai = open_intervals([rule("09:00", "12:00")], day, DUBAI)  # 05:00-08:00 UTC
    london = open_intervals([rule("06:00", "08:00")], day, LONDON)  # 06:00-08:00 UTC
    assert intervals_overlap(dubai, london) == (
        dt.datetime(2026, 1, 15, 6, tzinfo=UTC),
        dt.datetime(2026, 1, 15, 8, tzinfo=UTC),
    )
    early = open_intervals([rule("09:00", "10:00")], day, DUBAI)  # ends as London starts
    assert intervals_overlap(early, london) is None
    assert intervals_overlap([], london) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "MONTHLY"},
        {"start_time": dt.time(10), "end_time": dt.time(9)},
        {"start_time": dt.time(10), "end_time": dt.time(10)},
        {"granularity_minutes": 0},
        {"days_of_week": (0, 1)},
        {"days_of_week": ()},
        {"valid_from": dt.date(2026, 2, 1), "valid_to": dt.date(2026, 1, 1)},
        {"start_time": dt.time(9, tzinfo=UTC)},
    ],
)
def test_invalid_rules_are_refused(kwargs):
    base = {"id": uuid.uuid4(), "kind": "WEEKLY", "start_time": dt.time(9), "end_time": dt.time(17)}
    with pytest.raises(ValueError):
        Rule(**{**base, **kwargs})


def test_days_from_the_database_become_a_tuple():
    r = Rule(uuid.uuid4(), "WEEKLY", dt.time(9), dt.time(17), [5, 1, 1])  # type: ignore[arg-type]
    assert r.days_of_week == (1, 5)
    assert hash(r) == hash(Rule(r.id, "WEEKLY", dt.time(9), dt.time(17), (1, 5)))
