"""The calendar's count by arithmetic on runs equals listing every start and counting them."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from models.free_counts import Run, count_starts

DAY = dt.date(2026, 12, 10)
MIN = 60
BASE = 1_797_000_000 - 1_797_000_000 % 3600  # an hour boundary, in epoch seconds


def listed(
    runs: list[Run], holds: dict[int, list[tuple[int, int]]], earliest: int, latest: int
) -> dict[dt.date, int]:
    """The rule, one start at a time."""
    starts: dict[dt.date, set[int]] = {}
    for day, stylist, first, last, step, need in runs:
        for t in range(first, last + 1, step):
            if not earliest <= t <= latest:
                continue
            if any(lo < t + need and hi > t for lo, hi in holds.get(stylist, ())):
                continue
            starts.setdefault(day, set()).add(t)
    return {d: len(ts) for d, ts in starts.items() if ts}


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Run], dict[int, list[tuple[int, int]]], int, int]:
    runs: list[Run] = []
    for _ in range(draw(st.integers(0, 12))):
        step = draw(st.sampled_from((15, 15, 15, 30, 20))) * MIN
        phase = draw(st.sampled_from((0, 0, 5, 10))) * MIN
        first = BASE + phase + draw(st.integers(0, 40)) * 15 * MIN
        last = first + draw(st.integers(-2, 30)) * MIN * 7  # off-lattice too
        need = draw(st.sampled_from((30, 45, 55, 60, 90))) * MIN
        day = DAY + dt.timedelta(days=draw(st.integers(0, 2)))
        runs.append((day, draw(st.integers(1, 3)), first, last, step, need))
    holds: dict[int, list[tuple[int, int]]] = {}
    for _ in range(draw(st.integers(0, 6))):
        lo = BASE + draw(st.integers(0, 60)) * 5 * MIN
        holds.setdefault(draw(st.integers(1, 3)), []).append(
            (lo, lo + draw(st.integers(1, 24)) * 5 * MIN)
        )
    earliest = BASE + draw(st.integers(-10, 200)) * MIN
    latest = earliest + draw(st.integers(0, 1200)) * MIN
    return runs, holds, earliest, latest


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_count_is_the_number_of_distinct_fitting_starts(case) -> None:  # type: ignore[no-untyped-def]
    runs, holds, earliest, latest = case
    assert count_starts(runs, holds, earliest, latest) == listed(runs, holds, earliest, latest)


def test_stylists_free_at_the_same_instant_count_once_and_a_hold_hides_what_it_overlaps() -> None:
    q, hour = 15 * MIN, 3600
    # Two stylists free 09:00-12:00 (15-minute starts, 60-minute service: 09:00..11:00).
    runs: list[Run] = [
        (DAY, 1, BASE, BASE + 2 * hour, q, hour),
        (DAY, 2, BASE, BASE + 2 * hour, q, hour),
    ]
    everything = (BASE - hour, BASE + 5 * hour)
    assert count_starts(runs, {}, *everything) == {DAY: 9}
    # Stylist 1 held 10:00-10:30: their 09:15..10:15 go, stylist 2 still has them.
    held = {1: [(BASE + hour, BASE + hour + 2 * q)]}
    assert count_starts(runs, held, *everything) == {DAY: 9}
    assert count_starts(runs[:1], held, *everything) == {DAY: 9 - 5}
    # The window cuts: only starts from 10:00.
    assert count_starts(runs, {}, BASE + hour, BASE + 5 * hour) == {DAY: 5}
    # Nothing left: the date is left out.
    assert count_starts(runs, {}, BASE + 3 * hour, BASE + 5 * hour) == {}


def test_a_long_hold_that_starts_long_before_a_run_still_hides_it() -> None:
    # Holds are looked up by their start: one that starts hours before a run and lasts
    # past its first starts must be found among many short ones.
    q, hour = 15 * MIN, 3600
    runs: list[Run] = [(DAY, 1, BASE + 10 * hour, BASE + 12 * hour, q, hour)]  # 10:00..12:00
    everything = (BASE - hour, BASE + 24 * hour)
    short = [(BASE + h * hour, BASE + h * hour + q) for h in (2, 4, 6, 8, 14, 16)]
    long = (BASE + 1 * hour, BASE + 10 * hour + 2 * q)  # 01:00-10:30: hides 10:00 and 10:15
    assert count_starts(runs, {1: short}, *everything) == {DAY: 9}
    assert count_starts(runs, {1: [*short, long]}, *everything) == {DAY: 7}
    assert count_starts(runs, {1: [*short, long]}, *everything) == listed(
        runs, {1: [*short, long]}, *everything
    )
