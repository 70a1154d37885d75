"""Availability rules → exact bookable slot instants, correct across DST changes. Pure: no I/O.

Rules are written in the location's wall clock; slots are real (UTC) instants. Most days have
one UTC offset from midnight to midnight, and there a slot is `day's UTC base + wall offset`:
no zone lookups per slot. Only a day whose offset changes (found by comparing the offset at
its two midnights) takes the careful path, which converts every wall time through zoneinfo:
a wall time in a skipped hour gives no slot, one in a repeated hour gives one slot per instant.

The midnight comparison misses a day holding two changes that cancel out; tzdata has none
(1900-2037, every zone: changes of the offset are always at least three days apart).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "KINDS",
    "Interval",
    "Rule",
    "Slot",
    "expand",
    "intervals_overlap",
    "open_intervals",
    "open_intervals_between",
]

UTC = dt.UTC
KINDS = ("WEEKLY", "DATE_RANGE", "EXCEPTION")

Interval = tuple[dt.datetime, dt.datetime]

_DAY = dt.timedelta(days=1)
_SECOND = dt.timedelta(seconds=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Rule:
    """When a stylist works (or, `is_closed`, does not), in the location's wall clock."""

    id: uuid.UUID
    kind: str
    start_time: dt.time
    # Exclusive; midnight means the end of the day (24:00).
    end_time: dt.time
    # ISO weekdays, 1 = Monday; None = every day.
    days_of_week: tuple[int, ...] | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    granularity_minutes: int = 15
    is_closed: bool = False
    # Derived once, as offsets from local midnight: expansion reads them for every day.
    _start: dt.timedelta = field(init=False, repr=False, compare=False)
    _end: dt.timedelta = field(init=False, repr=False, compare=False)
    _step: dt.timedelta = field(init=False, repr=False, compare=False)
    # start, start + step, ... up to the last slot's end, on a day with one offset.
    _grid: tuple[dt.timedelta, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown rule kind {self.kind!r}")
        if self.start_time.tzinfo is not None or self.end_time.tzinfo is not None:
            raise ValueError("rule times are wall-clock times, without tzinfo")
        start = _wall(self.start_time)
        end = _DAY if self.end_time == dt.time(0) else _wall(self.end_time)
        if start >= end:
            raise ValueError("start_time must be before end_time")
        if self.granularity_minutes < 1:
            raise ValueError("granularity_minutes must be positive")
        step = dt.timedelta(minutes=self.granularity_minutes)
        grid = tuple(start + k * step for k in range((end - start) // step + 1))
        for name, value in (("_start", start), ("_end", end), ("_step", step), ("_grid", grid)):
            object.__setattr__(self, name, value)
        if self.days_of_week is not None:
            days = tuple(sorted(set(self.days_of_week)))
            if not days or days[0] < 1 or days[-1] > 7:
                raise ValueError("days_of_week must be ISO weekdays 1..7")
            # Rows from the database bring lists; a tuple keeps the rule hashable.
            object.__setattr__(self, "days_of_week", days)
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to must not be before valid_from")

    def applies_on(self, day: dt.date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        if self.valid_to is not None and day > self.valid_to:
            return False
        return self.days_of_week is None or day.isoweekday() in self.days_of_week


@dataclass(frozen=True, order=True, slots=True)
class Slot:
    start_at: dt.datetime  # UTC
    end_at: dt.datetime  # UTC; start_at + granularity in real time
    local_date: dt.date
    local_start: dt.datetime  # in the location's zone, with the fold of a repeated hour


# The generated frozen __init__ costs about 0.6 µs a slot (four object.__setattr__ calls);
# a year of a hundred stylists is 1.5 million slots, so the hot loops fill the slots directly.
_new_slot = object.__new__
_set_start: Any = Slot.__dict__["start_at"].__set__
_set_end: Any = Slot.__dict__["end_at"].__set__
_set_date: Any = Slot.__dict__["local_date"].__set__
_set_local: Any = Slot.__dict__["local_start"].__set__
_by_time = attrgetter("start_at", "end_at")


def _wall(t: dt.time) -> dt.timedelta:
    return dt.timedelta(
        hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond
    )


def _days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    day = first
    while day <= last:
        yield day
        day += _DAY


def _instants(wall: dt.datetime, zone: ZoneInfo) -> list[dt.datetime]:
    """Every real instant showing `wall` on the zone's clocks: none, one, or two (in order)."""
    found: list[dt.datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        # zoneinfo maps a skipped wall time to some instant anyway; only a round trip proves it.
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    found.sort()
    return found


def _gap_end(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first instant after the skipped stretch holding `wall`: the moment clocks jumped."""
    ends = sorted(wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    # Between the two guesses the offset changes once; changes fall on whole UTC seconds.
    lo = (ends[0] - _EPOCH) // _SECOND
    hi = -((_EPOCH - ends[1]) // _SECOND)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (_EPOCH + mid * _SECOND).astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return _EPOCH + hi * _SECOND


class _Day:
    """One local date in one zone: wall offsets from its midnight → real instants."""

    __slots__ = ("base_utc", "date", "local_midnight", "midnight", "regular", "zone")

    def __init__(self, day: dt.date, zone: ZoneInfo) -> None:
        # Built for every date expanded: constructors, not the slower datetime.replace().
        self.date = day
        self.zone = zone
        self.midnight = dt.datetime(day.year, day.month, day.day)
        self.local_midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
        offset = self.local_midnight.utcoffset()
        # fold=1: if the next midnight is skipped or repeated, use the offset after the change,
        # so any change up to and including that midnight makes the day irregular.
        nxt = day + _DAY
        after = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone, fold=1).utcoffset()
        assert offset is not None
        self.regular = offset == after
        self.base_utc = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) - offset

    def start_instant(self, offset: dt.timedelta) -> dt.datetime:
        """Where wall time `offset` starts: the earlier instant if repeated, the jump if skipped."""
        if self.regular:
            return self.base_utc + offset
        wall = self.midnight + offset
        instants = _instants(wall, self.zone)
        return instants[0] if instants else _gap_end(wall, self.zone)

    def end_instant(self, offset: dt.timedelta) -> dt.datetime:
        """Where wall time `offset` ends a span: the later instant if repeated, the jump if
        skipped, so a shift keeps all of its wall-clock time."""
        if self.regular:
            return self.base_utc + offset
        wall = self.midnight + offset
        instants = _instants(wall, self.zone)
        return instants[-1] if instants else _gap_end(wall, self.zone)

    def span(self, rule: Rule) -> Interval:
        return self.start_instant(rule._start), self.end_instant(rule._end)


def _subtract(interval: Interval, holes: Sequence[Interval]) -> list[Interval]:
    pieces = [interval]
    for h_start, h_end in holes:
        rest: list[Interval] = []
        for start, end in pieces:
            if h_end <= start or end <= h_start:
                rest.append((start, end))
                continue
            if start < h_start:
                rest.append((start, h_start))
            if h_end < end:
                rest.append((h_end, end))
        pieces = rest
    return pieces


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _split(rules: Iterable[Rule], day: dt.date) -> tuple[list[Rule], list[Rule]]:
    opening: list[Rule] = []
    closing: list[Rule] = []
    for rule in rules:
        if rule.applies_on(day):
            (closing if rule.is_closed else opening).append(rule)
    return opening, closing


def _day_open(rules: Iterable[Rule], day: _Day) -> list[Interval]:
    opening, closing = _split(rules, day.date)
    if not opening:
        return []
    holes = [day.span(rule) for rule in closing]
    return [piece for rule in opening for piece in _subtract(day.span(rule), holes)]


def open_intervals(rules: Iterable[Rule], day: dt.date, zone: ZoneInfo) -> list[Interval]:
    """The real (UTC) open time of one local day: open rules less closing ones, merged."""
    return _merge(_day_open(rules, _Day(day, zone)))


def open_intervals_between(
    rules: Iterable[Rule], first_day: dt.date, last_day: dt.date, zone: ZoneInfo
) -> list[Interval]:
    """`open_intervals` over the local dates first_day..last_day (inclusive), merged."""
    rules = list(rules)
    return _merge(
        i for day in _days(first_day, last_day) for i in _day_open(rules, _Day(day, zone))
    )


def intervals_overlap(a: Sequence[Interval], b: Sequence[Interval]) -> Interval | None:
    """The overlap of the first overlapping pair (one from each side), or None.

    Aware datetimes compare as real instants, so the two sides may come from different zones.
    """
    xs = sorted(i for i in a if i[0] < i[1])
    ys = sorted(i for i in b if i[0] < i[1])
    i = j = 0
    while i < len(xs) and j < len(ys):
        start, end = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if start < end:
            return start, end
        # The side ending first cannot reach anything later on the other side.
        if xs[i][1] <= ys[j][1]:
            i += 1
        else:
            j += 1
    return None


def _regular_slots(rule: Rule, day: _Day, holes: Sequence[Interval], out: list[Slot]) -> None:
    """One offset all day: slot k is [base + start + k·g, base + start + (k+1)·g)."""
    base, grid, step = day.base_utc, rule._grid, rule._step
    span_start = base + rule._start
    span = (span_start, base + rule._end)
    for piece_start, piece_end in _subtract(span, holes) if holes else (span,):
        # Stay on the rule's own grid: the first k at or after the piece, the last that fits.
        first = -((span_start - piece_start) // step)
        stop = (piece_end - span_start) // step
        if first >= stop:
            continue
        offsets = grid[first : stop + 1]
        instants = [base + o for o in offsets]
        local, date = day.local_midnight, day.date
        for k in range(stop - first):
            slot = _new_slot(Slot)
            _set_start(slot, instants[k])
            _set_end(slot, instants[k + 1])
            _set_date(slot, date)
            _set_local(slot, local + offsets[k])
            out.append(slot)


def _changing_slots(rule: Rule, day: _Day, holes: Sequence[Interval], out: list[Slot]) -> None:
    """A day whose offset changes: each wall time of the grid through zoneinfo."""
    step = rule._step
    span_start, span_end = day.span(rule)
    wall = day.midnight + rule._start
    stop = day.midnight + rule._end
    while wall < stop:
        for instant in _instants(wall, day.zone):
            end = instant + step
            inside = span_start <= instant and end <= span_end
            if inside and not any(h_start < end and instant < h_end for h_start, h_end in holes):
                out.append(Slot(instant, end, day.date, instant.astimezone(day.zone)))
        wall += step


def _resolve(candidates: list[Slot], out: list[Slot]) -> None:
    """Earliest start wins; a slot overlapping one already kept is dropped."""
    candidates.sort(key=_by_time)
    kept_end: dt.datetime | None = None
    for slot in candidates:
        if kept_end is None or slot.start_at >= kept_end:
            out.append(slot)
            kept_end = slot.end_at


def expand(
    rules: Iterable[Rule], first_day: dt.date, last_day: dt.date, zone: ZoneInfo
) -> list[Slot]:
    """Every bookable slot of the local dates first_day..last_day, sorted, none overlapping."""
    rules = list(rules)
    result: list[Slot] = []
    # Candidates not yet resolved; a later day joins them while its slots start before they end
    # (a repeated hour across midnight interleaves two dates), so overlaps resolve globally.
    pending: list[Slot] = []
    pending_end: dt.datetime | None = None
    pending_clean = True
    for date in _days(first_day, last_day):
        opening, closing = _split(rules, date)
        if not opening:
            continue
        day = _Day(date, zone)
        holes = [day.span(rule) for rule in closing]
        candidates: list[Slot] = []
        for rule in opening:
            (_regular_slots if day.regular else _changing_slots)(rule, day, holes, candidates)
        if not candidates:
            continue
        # One rule on a regular day yields sorted, disjoint slots: nothing to resolve.
        clean = day.regular and len(opening) == 1
        if clean:
            first_start, last_end = candidates[0].start_at, candidates[-1].end_at
        else:
            first_start = min(s.start_at for s in candidates)
            last_end = max(s.end_at for s in candidates)
        if pending_end is not None and first_start < pending_end:
            pending.extend(candidates)
            pending_clean = False
            pending_end = max(pending_end, last_end)
        else:
            _flush(pending, pending_clean, result)
            pending, pending_clean, pending_end = candidates, clean, last_end
    _flush(pending, pending_clean, result)
    return result


def _flush(pending: list[Slot], clean: bool, out: list[Slot]) -> None:
    if clean:
        out.extend(pending)
    else:
        _resolve(pending, out)
