"""Rule expansion against zoneinfo itself, over every zone, 2000-2037 and random rules.

The reference here converts every wall time of every grid through zoneinfo (no fast path) and
resolves overlaps over the whole range at once; `expand` must give exactly the same slots.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import uuid
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.rules import KINDS, Rule, Slot, expand, intervals_overlap, open_intervals

UTC = dt.UTC
DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)
GRAINS = (5, 10, 15, 20, 30, 60)
# Always in the draw: the usual DST zones, a zone without DST, changes at midnight, a 30-minute
# change (Lord Howe), a 2-hour one (Troll), negative DST (Dublin), a skipped day (Apia).
FORCED = (
    "Europe/London",
    "America/New_York",
    "Asia/Dubai",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
    "Africa/Cairo",
    "America/Scoresbysund",
    "Australia/Lord_Howe",
    "Antarctica/Troll",
    "Europe/Dublin",
    "Pacific/Apia",
)
ZONES = sorted(available_timezones())
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RULE_ID = uuid.UUID(int=1)


def _offset(instant: dt.datetime, zone: ZoneInfo) -> dt.timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


@functools.cache
def change_days(key: str, year: int) -> tuple[dt.date, ...]:
    """Dates of `year` whose two midnights (as real instants) have different offsets."""
    zone, found = ZoneInfo(key), []
    day = dt.date(year, 1, 1)
    while day.year == year:
        here = dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        if _offset(here, zone) != _offset(here + DAY, zone):
            found.append(day)
        day += DAY
    return tuple(found)


def regular(day: dt.date, zone: ZoneInfo) -> bool:
    """No offset change between the day's first instant and the next day's (5-minute steps)."""
    lo = dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC) - DAY
    offsets = {_offset(lo + k * 5 * MINUTE, zone) for k in range(3 * 288)}
    return len(offsets) == 1


# --- reference -------------------------------------------------------------------------------


def instants(wall: dt.datetime, zone: ZoneInfo) -> list[dt.datetime]:
    found = set()
    for fold in (0, 1):
        t = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if t.astimezone(zone).replace(tzinfo=None) == wall:
            found.add(t)
    return sorted(found)


def jump(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first instant whose wall clock reads at least `wall` (clocks jump on whole minutes)."""
    t = min(wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    t = t.replace(second=0, microsecond=0)
    while t.astimezone(zone).replace(tzinfo=None) < wall:
        t += MINUTE
    return t


def bounds(r: Rule, day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, r.start_time)
    end = dt.datetime.combine(day + DAY if r.end_time == dt.time(0) else day, r.end_time)
    first, last = instants(start, zone), instants(end, zone)
    return (first[0] if first else jump(start, zone)), (last[-1] if last else jump(end, zone))


def applies(r: Rule, day: dt.date) -> bool:
    return (
        (r.valid_from is None or r.valid_from <= day)
        and (r.valid_to is None or day <= r.valid_to)
        and (r.days_of_week is None or day.isoweekday() in r.days_of_week)
    )


Row = tuple[dt.datetime, dt.datetime, dt.date, dt.datetime, int]
Row2 = tuple[dt.datetime, dt.datetime]


def reference(rules: list[Rule], first: dt.date, last: dt.date, zone: ZoneInfo) -> list[Row]:
    candidates: list[Row] = []
    day = first
    while day <= last:
        todays = [r for r in rules if applies(r, day)]
        holes = [bounds(r, day, zone) for r in todays if r.is_closed]
        for r in (r for r in todays if not r.is_closed):
            lo, hi = bounds(r, day, zone)
            step = dt.timedelta(minutes=r.granularity_minutes)
            wall = dt.datetime.combine(day, r.start_time)
            stop = dt.datetime.combine(day + DAY if r.end_time == dt.time(0) else day, r.end_time)
            while wall < stop:
                for t in instants(wall, zone):
                    e = t + step
                    if lo <= t and e <= hi and not any(a < e and t < b for a, b in holes):
                        candidates.append((t, e, day, wall, t.astimezone(zone).fold))
                wall += step
        day += DAY
    kept: list[Row] = []
    for row in sorted(candidates, key=lambda c: (c[0], c[1])):
        if not kept or row[0] >= kept[-1][1]:
            kept.append(row)
    return kept


def reference_open(rules: list[Rule], day: dt.date, zone: ZoneInfo) -> list[Row2]:
    todays = [r for r in rules if applies(r, day)]
    holes = [bounds(r, day, zone) for r in todays if r.is_closed]
    # A span wholly inside a skipped stretch starts and ends at the jump: empty, not open.
    pieces = [
        (lo, hi) for lo, hi in (bounds(r, day, zone) for r in todays if not r.is_closed) if lo < hi
    ]
    for a, b in holes:
        pieces = [
            piece
            for lo, hi in pieces
            for piece in ((lo, min(hi, a)), (max(lo, b), hi))
            if piece[0] < piece[1]
        ]
    merged: list[Row2] = []
    for lo, hi in sorted(pieces):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def rows(slots: list[Slot]) -> list[Row]:
    return [
        (s.start_at, s.end_at, s.local_date, s.local_start.replace(tzinfo=None), s.local_start.fold)
        for s in slots
    ]


# --- strategies -------------------------------------------------------------------------------

zone_names = st.one_of(st.sampled_from(FORCED), st.sampled_from(ZONES))


@st.composite
def days_in(draw: st.DrawFn, key: str) -> dt.date:
    """A date of 2000-2037, half the time one on which the zone's offset changes."""
    year = draw(st.integers(2000, 2037))
    changes = change_days(key, year)
    on_a_change = draw(st.booleans())
    if changes and on_a_change:
        return draw(st.sampled_from(changes))
    return draw(st.dates(dt.date(year, 1, 1), dt.date(year, 12, 31)))


@st.composite
def rules_for(draw: st.DrawFn, first: dt.date, last: dt.date, closed: bool | None = None) -> Rule:
    # Minutes on a 5-minute grid; night ones are likelier, since most changes happen at night.
    start = draw(st.one_of(st.integers(0, 287), st.integers(0, 36), st.integers(264, 287))) * 5
    span = draw(st.one_of(st.integers(1, 288 - start // 5), st.integers(1, 36)))
    end = min(start + span * 5, 1440)
    days = draw(st.none() | st.lists(st.integers(1, 7), min_size=1, max_size=7).map(tuple))
    near = st.dates(first - 2 * DAY, last + 2 * DAY)
    valid_from = draw(st.none() | near)
    valid_to = draw(st.none() | st.dates(valid_from or first - 2 * DAY, last + 2 * DAY))
    return Rule(
        id=RULE_ID,
        kind=draw(st.sampled_from(KINDS)),
        start_time=dt.time(start // 60, start % 60),
        end_time=dt.time(end // 60 % 24, end % 60),
        days_of_week=days,
        valid_from=valid_from,
        valid_to=valid_to,
        granularity_minutes=draw(st.sampled_from(GRAINS)),
        is_closed=draw(st.sampled_from((False, False, True))) if closed is None else closed,
    )


@st.composite
def scenarios(draw: st.DrawFn, max_rules: int = 4) -> tuple[ZoneInfo, dt.date, dt.date, list[Rule]]:
    key = draw(zone_names)
    day = draw(days_in(key))
    first = day - draw(st.integers(0, 1)) * DAY
    last = day + draw(st.integers(0, 1)) * DAY
    rules = draw(st.lists(rules_for(first, last), min_size=1, max_size=max_rules))
    return ZoneInfo(key), first, last, rules


def on_grid(slot: Slot, rules: list[Rule]) -> bool:
    wall = slot.local_start.replace(tzinfo=None)
    minutes = wall.hour * 60 + wall.minute
    length = slot.end_at - slot.start_at
    for r in rules:
        start = r.start_time.hour * 60 + r.start_time.minute
        end = 1440 if r.end_time == dt.time(0) else r.end_time.hour * 60 + r.end_time.minute
        g = r.granularity_minutes
        if r.is_closed or not applies(r, slot.local_date) or length != dt.timedelta(minutes=g):
            continue
        if start <= minutes < end and (minutes - start) % g == 0 and wall.second == 0:
            return True
    return False


# --- properties -------------------------------------------------------------------------------


@PROPERTY
@given(scenarios())
def test_slots_agree_with_zoneinfo(scenario):
    zone, first, last, rules = scenario
    slots = expand(rules, first, last, zone)
    open_by_day = {}
    for s in slots:
        assert s.start_at.utcoffset() == dt.timedelta() == s.end_at.utcoffset()
        assert s.local_start.tzinfo == zone
        assert s.local_start.astimezone(UTC) == s.start_at
        # The wall time exists: back from the wall clock (with its fold) to the same instant,
        # and from the instant to the same wall clock and fold (not in a skipped hour).
        wall = s.local_start.replace(tzinfo=None)
        assert wall.replace(tzinfo=zone, fold=s.local_start.fold).astimezone(UTC) == s.start_at
        back = s.start_at.astimezone(zone)
        assert (back.replace(tzinfo=None), back.fold) == (wall, s.local_start.fold)
        assert s.local_date == wall.date() and first <= s.local_date <= last
        assert on_grid(s, rules), s
        if s.local_date not in open_by_day:
            open_by_day[s.local_date] = open_intervals(rules, s.local_date, zone)
        assert any(a <= s.start_at and s.end_at <= b for a, b in open_by_day[s.local_date])
    for a, b in itertools.pairwise(slots):
        assert a.start_at < b.start_at and a.end_at <= b.start_at
    assert rows(slots) == reference(rules, first, last, zone)
    day = first
    while day <= last:
        assert open_intervals(rules, day, zone) == reference_open(rules, day, zone)
        day += DAY


@st.composite
def fall_backs(draw: st.DrawFn) -> tuple[ZoneInfo, dt.date, Rule]:
    key, year = draw(zone_names), draw(st.integers(2000, 2037))
    if not [d for d in change_days(key, year) if _shift(key, d) < dt.timedelta()]:
        key = "Europe/London"
    backs = [d for d in change_days(key, year) if _shift(key, d) < dt.timedelta()]
    day = draw(st.sampled_from(backs))
    shift = -_shift(key, day)
    # A grain dividing the change keeps the two passes of the repeated stretch apart.
    grains = [g for g in GRAINS if shift % dt.timedelta(minutes=g) == dt.timedelta()]
    r = draw(rules_for(day, day, closed=False))
    r = Rule(
        r.id, "WEEKLY", r.start_time, r.end_time, granularity_minutes=draw(st.sampled_from(grains))
    )
    return ZoneInfo(key), day, r


def _shift(key: str, day: dt.date) -> dt.timedelta:
    zone = ZoneInfo(key)
    here = dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    return _offset(here + DAY, zone) - _offset(here, zone)


@PROPERTY
@given(fall_backs())
def test_both_instants_of_a_repeated_wall_time(case):
    zone, day, r = case
    slots = {s.start_at for s in expand([r], day, day, zone)}
    lo, hi = bounds(r, day, zone)
    step = dt.timedelta(minutes=r.granularity_minutes)
    wall = dt.datetime.combine(day, r.start_time)
    stop = dt.datetime.combine(day + DAY if r.end_time == dt.time(0) else day, r.end_time)
    while wall < stop:
        both = instants(wall, zone)
        if len(both) == 2 and lo <= both[0] and both[1] + step <= hi:
            assert set(both) <= slots, wall
        wall += step


@PROPERTY
@given(st.data())
def test_a_regular_day_has_the_wall_clock_count(data):
    key = data.draw(zone_names)
    day = data.draw(days_in(key))
    zone = ZoneInfo(key)
    r = data.draw(rules_for(day, day, closed=False))
    r = Rule(r.id, "WEEKLY", r.start_time, r.end_time, granularity_minutes=r.granularity_minutes)
    slots = expand([r], day - DAY, day + DAY, zone)
    for d in (day - DAY, day, day + DAY):
        if regular(d, zone):
            start = dt.datetime.combine(d, r.start_time)
            end = dt.datetime.combine(d + DAY if r.end_time == dt.time(0) else d, r.end_time)
            wanted = (end - start) // dt.timedelta(minutes=r.granularity_minutes)
            assert len([s for s in slots if s.local_date == d]) == wanted


instants_2026 = st.datetimes(
    dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 3), timezones=st.just(UTC)
).map(lambda t: t.replace(second=0, microsecond=0))


@st.composite
def interval_lists(draw: st.DrawFn) -> list[tuple[dt.datetime, dt.datetime]]:
    zone = ZoneInfo(draw(zone_names))
    out = []
    for start in draw(st.lists(instants_2026, max_size=5)):
        length = draw(st.integers(0, 600)) * MINUTE
        out.append((start.astimezone(zone), (start + length).astimezone(zone)))
    return out


@settings(max_examples=300, deadline=None)
@given(interval_lists(), interval_lists())
def test_intervals_overlap_matches_every_pair(a, b):
    found = intervals_overlap(a, b)
    pairs = [(max(x[0], y[0]), min(x[1], y[1])) for x in a for y in b]
    overlaps = [p for p in pairs if p[0] < p[1]]
    if not overlaps:
        assert found is None
    else:
        assert found in overlaps
