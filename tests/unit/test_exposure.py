"""Exposure choice: determinism, 2-5 times, day parts, gap preference, fairness by simulation."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.exposure import (
    DAY_PARTS,
    VARIANTS,
    Candidate,
    choose,
    day_part,
    replace_taken,
    seed_for,
    top_up,
)

UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
MIN = dt.timedelta(minutes=1)
ZERO = dt.timedelta(0)
SHORTEST = 30 * MIN
# A summer day: London is UTC+1, so wall clock and UTC differ and day parts must use the former.
DAY = dt.date(2025, 6, 10)

Booking = tuple[str, str]


def _at(hhmm: str) -> dt.datetime:
    hour, minute = map(int, hhmm.split(":"))
    return dt.datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=LONDON)


def make_day(
    stylists: int = 1,
    bookings: dict[int, list[Booking]] | None = None,
    duration: dt.timedelta = SHORTEST,
    opens: str = "09:00",
    closes: str = "20:00",
) -> list[Candidate]:
    """Every 15-minute start where `duration` fits between bookings, with the gaps it leaves."""
    bookings = bookings or {}
    start_of_day, end_of_day = _at(opens), _at(closes)
    out: list[Candidate] = []
    for index in range(stylists):
        stylist = uuid.UUID(int=index + 1)
        busy = sorted((_at(a), _at(b)) for a, b in bookings.get(index, []))
        start = start_of_day
        while start + duration <= end_of_day:
            end = start + duration
            if all(end <= b_start or start >= b_end for b_start, b_end in busy):
                free_from = max([b_end for _, b_end in busy if b_end <= start] + [start_of_day])
                free_to = min([b_start for b_start, _ in busy if b_start >= end] + [end_of_day])
                start_utc = start.astimezone(UTC)
                out.append(
                    Candidate(
                        key=f"{stylist}@{start_utc:%Y%m%dT%H%M%SZ}",
                        stylist_id=stylist,
                        slot_id=uuid.uuid5(stylist, start_utc.isoformat()),
                        start_at=start_utc,
                        end_at=end.astimezone(UTC),
                        local_start=start,
                        gap_before=start - free_from,
                        gap_after=free_to - end,
                    )
                )
            start += 15 * MIN
    return out


def _seed(i: int, variant: str = "balanced") -> int:
    return seed_for(f"customer-{i}", "loc-1", "svc-1", "any", DAY.isoformat(), "0", variant)


def _pick(cands: Sequence[Candidate], i: int, variant: str = "balanced") -> list[Candidate]:
    return choose(cands, seed=_seed(i, variant), shortest_service=SHORTEST, variant=variant)


def _times(cands: Sequence[Candidate]) -> set[dt.datetime]:
    return {c.start_at for c in cands}


FULL = make_day()
BOOKED = make_day(bookings={0: [("10:00", "10:45"), ("13:00", "14:00"), ("17:30", "18:15")]})
TEAM = make_day(
    3,
    {
        0: [("10:00", "10:45"), ("13:00", "14:00")],
        1: [("11:15", "12:00"), ("17:00", "18:30")],
        2: [("09:30", "10:15"), ("15:00", "15:30")],
    },
)


def test_day_part_goes_by_local_wall_clock() -> None:
    assert day_part(_at("11:59")) == "morning"
    assert day_part(_at("12:00")) == "afternoon"
    assert day_part(_at("16:59")) == "afternoon"
    assert day_part(_at("17:00")) == "evening"
    # 11:30 UTC is 12:30 in London: the wall clock there decides.
    assert day_part(_at("12:30")) == "afternoon"
    assert _at("12:30").astimezone(UTC).hour == 11


def test_seed_for_is_stable_and_sensitive_to_every_part() -> None:
    parts = ("customer-1", "loc-1", "svc-1", "any", "2025-06-10", "483", "balanced")
    # Fixed value: a change here would reshuffle every customer's sticky exposure.
    assert seed_for(*parts) == 9423088682645531194
    assert 0 <= seed_for(*parts) < 2**64
    seeds = {seed_for(*parts)}
    for index in range(len(parts)):
        changed = list(parts)
        changed[index] += "x"
        seeds.add(seed_for(*changed))
    assert len(seeds) == len(parts) + 1
    # Parts are delimited, not just concatenated.
    assert seed_for("ab", "c") != seed_for("a", "bc")
    assert seed_for("a") != seed_for("a", "")


def test_empty_and_single() -> None:
    assert choose([], seed=1, shortest_service=SHORTEST) == []
    one = FULL[:1]
    assert choose(one, seed=1, shortest_service=SHORTEST) == one


def test_five_or_fewer_times_are_all_shown_once_each() -> None:
    team = make_day(3, opens="09:00", closes="10:30")  # 09:00..10:00: five starts, three stylists
    assert len(_times(team)) == 5
    for i in range(20):
        shown = _pick(team, i)
        assert [c.start_at for c in shown] == sorted(_times(team))
    for n in range(2, 6):
        assert _pick(FULL[:n], 0) == FULL[:n]


def test_deterministic_and_order_irrelevant() -> None:
    for cands in (FULL, TEAM):
        shuffled = list(cands)
        random.Random(7).shuffle(shuffled)
        for i in range(20):
            first = _pick(cands, i)
            assert _pick(cands, i) == first
            assert _pick(shuffled, i) == first
            assert _pick(shuffled + shuffled[:10], i) == first  # duplicate keys change nothing
            assert first == sorted(first, key=lambda c: (c.start_at, c.stylist_id))


def test_different_seeds_give_different_answers() -> None:
    answers = {tuple(c.key for c in _pick(FULL, i)) for i in range(100)}
    assert len(answers) >= 95


def test_count_is_2_to_5_and_every_count_occurs() -> None:
    # A day open 09:00-17:00 has times in two parts: every count can be drawn.
    two_parts = make_day(closes="17:00")
    assert {day_part(c.local_start) for c in two_parts} == {"morning", "afternoon"}
    counts = Counter(len(_pick(two_parts, i)) for i in range(1000))
    assert set(counts) == {2, 3, 4, 5}
    # Documented chances 10/60/15/15 %: loose bounds, fixed seeds.
    assert counts.most_common(1)[0][0] == 3
    assert 50 <= counts[2] <= 160
    assert 520 <= counts[3] <= 680


def test_a_day_with_times_in_three_parts_shows_at_least_three() -> None:
    # The 2s become 3s (each part represented), the rest of the draw is unchanged.
    counts = Counter(len(_pick(FULL, i)) for i in range(1000))
    assert set(counts) == {3, 4, 5}
    assert 620 <= counts[3] <= 780


def test_one_candidate_per_start_time_with_several_stylists() -> None:
    stylists_at_shared_times: Counter[uuid.UUID] = Counter()
    for i in range(300):
        shown = _pick(TEAM, i)
        assert len(_times(shown)) == len(shown)
        stylists_at_shared_times.update(c.stylist_id for c in shown)
    # The stylist for a shared time is drawn, not always the first one.
    assert len(stylists_at_shared_times) == 3
    assert min(stylists_at_shared_times.values()) > 100


def test_day_parts_each_represented() -> None:
    for i in range(300):
        shown = _pick(FULL, i)
        assert {day_part(c.local_start) for c in shown} == set(DAY_PARTS)


def test_day_part_with_a_single_time_is_represented() -> None:
    # The evening holds only 19:30 (19:30-20:00): the stylist is booked 17:00-19:30.
    cands = make_day(bookings={0: [("17:00", "19:30")]})
    evening = [c for c in cands if day_part(c.local_start) == "evening"]
    assert [c.local_start.strftime("%H:%M") for c in evening] == ["19:30"]
    for i in range(200):
        assert evening[0] in _pick(cands, i)


# Seven bookings leave times touching a booking and times leaving a 15-minute hole in each part.
GAPPY = make_day(
    bookings={
        0: [
            ("10:00", "10:30"),
            ("11:30", "12:00"),
            ("13:00", "13:30"),
            ("14:30", "15:00"),
            ("16:00", "16:30"),
            ("17:30", "18:00"),
            ("19:00", "19:30"),
        ]
    }
)


def _kind(c: Candidate) -> str:
    touches = ZERO in (c.gap_before, c.gap_after)
    holes = any(ZERO < gap < SHORTEST for gap in (c.gap_before, c.gap_after))
    return "adjacent" if touches and not holes else "hole" if holes and not touches else "other"


def _adjacent_over_hole(variant: str, customers: int = 1500) -> float:
    sizes = Counter(_kind(c) for c in GAPPY)
    shown: Counter[str] = Counter()
    for i in range(customers):
        shown.update(_kind(c) for c in _pick(GAPPY, i, variant))
    return (shown["adjacent"] / sizes["adjacent"]) / (shown["hole"] / sizes["hole"])


def test_gap_preference_is_measurable() -> None:
    assert Counter(_kind(c) for c in GAPPY)["hole"] >= 5
    balanced = _adjacent_over_hole("balanced")
    uniform = _adjacent_over_hole("uniform")
    compact = _adjacent_over_hole("compact")
    assert balanced > 2.0
    # Uniform: no preference; what is left is the day-part structure and sampling noise.
    assert 0.8 < uniform < 1.25
    assert compact > balanced * 1.5


@pytest.mark.parametrize("name", ["full", "booked", "team"])
def test_fairness_over_a_thousand_customers(name: str) -> None:
    cands = {"full": FULL, "booked": BOOKED, "team": TEAM}[name]
    shown: Counter[dt.datetime] = Counter()
    for i in range(1000):
        shown.update(c.start_at for c in _pick(cands, i))
    times = _times(cands)
    mean = sum(shown.values()) / len(times)
    assert set(shown) == times  # every free time shown to someone
    assert max(shown.values()) <= 3 * mean


def test_unknown_variant_and_bad_candidates_are_rejected() -> None:
    assert VARIANTS[0] == "balanced"
    with pytest.raises(ValueError, match="variant"):
        choose(FULL, seed=1, shortest_service=SHORTEST, variant="greedy")
    c = FULL[0]
    with pytest.raises(ValueError, match="aware"):
        Candidate(
            c.key, c.stylist_id, c.slot_id, c.start_at.replace(tzinfo=None), c.end_at,
            c.local_start, c.gap_before, c.gap_after,
        )  # fmt: skip
    with pytest.raises(ValueError, match="negative"):
        Candidate(c.key, c.stylist_id, c.slot_id, c.start_at, c.end_at, c.local_start, -MIN, ZERO)


def _replace(shown: Sequence[Candidate], live: Sequence[Candidate], i: int) -> list[Candidate]:
    return replace_taken(shown, live, seed=_seed(i), shortest_service=SHORTEST)


def test_replace_taken_nothing_taken_returns_shown_unchanged() -> None:
    shown = _pick(FULL, 3)
    assert _replace(shown, FULL, 0) == shown
    assert _replace(shown, list(reversed(FULL)), 0) == shown


def test_replace_taken_replaces_one_per_taken_time_in_its_day_part() -> None:
    for i in range(100):
        shown = _pick(TEAM, i)
        gone = shown[len(shown) // 2]
        live = [c for c in TEAM if c.key != gone.key]
        result = _replace(shown, live, i)
        assert result == sorted(result, key=lambda c: (c.start_at, c.stylist_id))
        assert len(result) == len(shown)
        kept = [c for c in shown if c is not gone]
        assert all(any(c is r for r in result) for c in kept)  # the very same objects
        (new,) = [c for c in result if c not in kept]
        assert new in live
        assert new.start_at not in _times(shown)  # a fresh time, not the taken one elsewhere
        assert day_part(new.local_start) == day_part(gone.local_start)
        assert _replace(shown, list(reversed(live)), i) == result


def test_replace_taken_several_taken_and_other_part_when_own_is_empty() -> None:
    shown = _pick(FULL, 11)
    evening = [c for c in FULL if day_part(c.local_start) == "evening"]
    gone = {c.key for c in shown if day_part(c.local_start) == "evening"}
    assert gone
    # Every evening time is taken: the replacement comes from another part.
    live = [c for c in FULL if c not in evening]
    result = _replace(shown, live, 11)
    assert len(result) == len(shown)
    assert len(_times(result)) == len(result)
    assert all(c in live for c in result)
    # Two taken at once: two replacements, all start times distinct.
    taken = set(shown[:2])
    result = _replace(shown, [c for c in FULL if c not in taken], 11)
    assert len(result) == len(shown) and len(_times(result)) == len(result)
    assert not taken & set(result)


def test_replace_taken_drops_when_nothing_is_left() -> None:
    cands = FULL[:4]
    shown = _pick(cands, 0)
    assert shown == cands
    assert _replace(shown, cands[1:], 0) == cands[1:]
    # One other time left for two taken ones: one replaced, one dropped.
    shown = cands[:2]
    assert _replace(shown, cands[2:3], 0) == cands[2:3]


def test_top_up_grows_what_was_kept_to_a_new_choice_and_keeps_it() -> None:
    fresh = _pick(FULL, 7)
    assert top_up([], fresh) == fresh
    # One time kept that the new choice does not show: kept, and the new choice's first
    # times added up to its count.
    kept = [c for c in FULL if c.start_at not in _times(fresh)][:1]
    grown = top_up(kept, fresh)
    assert len(grown) == len(fresh) and kept[0] in grown
    assert set(grown) - set(kept) <= set(fresh)
    assert grown == sorted(grown, key=lambda c: c.start_at)
    # Times to avoid (shown before and taken) are not added.
    assert not set(top_up([], fresh, avoid=[fresh[0].start_at])) & {fresh[0]}
    # A kept time the new choice also shows is not added twice.
    assert top_up(fresh[:1], fresh) == fresh
    # Already as many as a new choice: unchanged.
    assert top_up(fresh, fresh[:2]) == fresh


def test_top_up_keeps_every_day_part_a_new_choice_shows() -> None:
    # Shown 09:00 and 09:15 when only those were free; now the whole day is free again.
    early = [c for c in FULL if c.local_start.strftime("%H:%M") in ("09:00", "09:15")]
    for i in range(200):
        fresh = _pick(FULL, i)
        grown = top_up(early, fresh)
        assert early[0] in grown and early[1] in grown
        # As many as the new choice, or more where needed to show its every part (<= 5).
        assert len(fresh) <= len(grown) <= max(len(fresh), 4)
        assert {day_part(c.local_start) for c in grown} == set(DAY_PARTS)


@settings(max_examples=60, deadline=None)
@given(
    mask=st.lists(st.booleans(), min_size=len(TEAM), max_size=len(TEAM)),
    seed=st.integers(0, 2**64 - 1),
    variant=st.sampled_from(VARIANTS),
    order=st.randoms(use_true_random=False),
)
def test_property_distinct_times_right_count_from_input(
    mask: list[bool], seed: int, variant: str, order: random.Random
) -> None:
    cands = [c for c, keep in zip(TEAM, mask, strict=True) if keep]
    shown = choose(cands, seed=seed, shortest_service=SHORTEST, variant=variant)
    n_times = len(_times(cands))
    assert len(_times(shown)) == len(shown)
    assert all(c in cands for c in shown)
    if n_times <= 5:
        assert len(shown) == n_times
    else:
        assert 2 <= len(shown) <= 5
        parts = {day_part(c.local_start) for c in cands}
        assert len({day_part(c.local_start) for c in shown}) == min(len(shown), len(parts))
    shuffled = list(cands)
    order.shuffle(shuffled)
    assert choose(shuffled, seed=seed, shortest_service=SHORTEST, variant=variant) == shown
    assert set(DAY_PARTS) >= {day_part(c.local_start) for c in shown}


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=0, max_value=44),
    st.integers(min_value=0, max_value=44),
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from(VARIANTS),
)
def test_a_kept_day_cut_to_a_window_chooses_as_the_candidates_in_that_window(
    stylists: int, lo: int, span: int, seed: int, variant: str
) -> None:
    """The server keeps one FreeDay per day and cuts the notice window out of it per request:
    that must choose exactly what choosing among the window's candidates would."""
    from models.exposure import FreeDay

    day = make_day(stylists, {0: [("12:00", "13:00")]})
    earliest = _at("09:00").astimezone(UTC) + lo * 15 * MIN
    latest = earliest + span * 15 * MIN
    inside = [c for c in day if earliest <= c.start_at <= latest]
    kept = FreeDay.of(day, SHORTEST).between(earliest, latest)
    assert kept.candidates() == sorted(inside, key=lambda c: (c.start_at, c.stylist_id))
    assert kept.choose(seed=seed, variant=variant) == choose(
        inside, seed=seed, shortest_service=SHORTEST, variant=variant
    )


def test_a_kept_day_is_not_walked_by_the_garbage_collector() -> None:
    """A process keeps hundreds of days; as tracked objects each full collection walked them
    all (50-150 ms pauses). Its rows hold plain values only, which the collector untracks."""
    import gc

    from models.exposure import FreeDay

    kept = FreeDay.of(make_day(3, {0: [("12:00", "13:00")]}), SHORTEST)
    for _ in range(3):  # one collection per level of nesting: a tuple goes after its items
        gc.collect()
    assert kept.count > 0
    assert not gc.is_tracked(kept.rows)
    assert all(not gc.is_tracked(t) for t in kept.rows)
    assert kept.times[0][0].stylist_id == uuid.UUID(hex=kept.rows[0][0][1])
